"""Tests of tfcolor.config: defaults (the paper / released code), validation errors that name the
field (message and ``ConfigError.field``), the learning-rate schedule arithmetic, the dict round
trip and the constants imported from the modules that own them."""
import dataclasses

import pytest

from tfcolor import config, layers, losses
from tfcolor.models import trunk
from tfcolor.train import strategy


def test_defaults_validate_and_hold_the_paper_constants():
    cfg = config.PretrainConfig().validate()
    assert (cfg.data.batch_size, cfg.data.crop_size, cfg.data.points) == (8, 352, 128)
    assert (cfg.loss.kind, cfg.loss.window, cfg.loss.hue_weight) == ("hue_chroma", 7, 5.0)
    assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.9, 5e-4)
    assert cfg.optimizer.learning_rate == 0.001
    assert cfg.train.train_steps == 2_000_000


def test_drops_accept_steps_and_fractions_of_the_run():
    opt = config.OptimizerConfig(learning_rate=0.01, lr_drops=[0.5, 750, 0.5], lr_drop_factor=0.1)
    # 0.5 of 1000 steps = 500 (deduplicated), 750 as a step number.
    assert opt.drop_steps(1000) == [500, 750]
    boundaries, values = opt.learning_rates(1000)
    assert boundaries == [500, 750]
    assert values == pytest.approx([0.01, 0.001, 0.0001])
    # The released Caffe schedule: 1M, 1.5M, 1.75M of 2M.
    caffe = config.OptimizerConfig()
    assert caffe.drop_steps(2_000_000) == [1_000_000, 1_500_000, 1_750_000]
    assert config.OptimizerConfig(lr_drops=[]).learning_rates(10) == ([], [0.001])


@pytest.mark.parametrize("part, field, value, message", [
    ("data", "batch_size", 0, "batch_size must be a positive integer, got 0"),
    ("data", "batch_size", 2.5, "batch_size must be a positive integer"),
    ("data", "batch_size", True, "batch_size must be a positive integer"),
    ("data", "crop_size", -1, "crop_size must be a positive integer"),
    ("data", "points", 0, "points must be a positive integer"),
    ("data", "data", "", "data must name a data source"),
    ("data", "data", "/definitely/not/here", "no such file or directory"),
    ("data", "data", "tfds:", "needs a dataset name"),
    ("data", "min_side", 100, "min_side=100 is smaller than crop_size=352"),
    ("data", "min_side", 700, "max_side=600 \\(the default for this crop_size\\) is smaller "
                              "than min_side=700"),
    ("data", "max_side", 300, "max_side=300 is smaller than crop_size=352"),
    ("data", "heldout_data", "/no/such", "heldout_data='/no/such': no such file or directory"),
    ("data", "validation_images", -1, "validation_images must be a non-negative integer"),
    ("data", "edge_buffer", 176, "edge_buffer=176 leaves no room"),
    ("data", "targets_on_device", "yes", "targets_on_device must be True, False or 'auto'"),
    ("model", "arch", "vgg19", "arch='vgg19' is not a known architecture; known: .*vgg16"),
    ("model", "batch_norm", "group", "batch_norm must be one of"),
    ("model", "dropout", 1.0, "dropout must be in \\[0, 1\\)"),
    ("model", "convention", "center", "convention must be one of"),
    ("model", "prior_bias", "yes", "prior_bias must be true or false"),
    ("loss", "kind", "l1", "kind must be one of 'hue_chroma'"),
    ("loss", "window", 6, "window must be odd"),
    ("optimizer", "learning_rate", 0.0, "learning_rate must be positive"),
    ("optimizer", "learning_rate", float("nan"), "learning_rate must be a non-negative number"),
    ("optimizer", "momentum", 1.0, "momentum must be in \\[0, 1\\)"),
    ("optimizer", "weight_decay", -1e-4, "weight_decay must be a non-negative number"),
    ("optimizer", "clip_norm", 0.0, "clip_norm must be positive"),
    ("optimizer", "lr_drops", [-5], "lr_drops must be positive numbers"),
    ("train", "train_steps", 0, "train_steps must be a positive integer"),
    ("train", "strategy", "gpu", "strategy must be one of 'default'"),
    ("train", "image_every", -1, "image_every must be a non-negative integer"),
    ("train", "model_dir", " ", "model_dir must be a directory path"),
    ("train", "seed", -3, "seed must be a non-negative integer"),
    ("train", "keep_best", 1, "keep_best must be true or false"),
])
def test_bad_values_raise_config_errors_naming_the_field(part, field, value, message):
    cfg = config.PretrainConfig()
    setattr(getattr(cfg, part), field, value)
    with pytest.raises(config.ConfigError, match=message) as raised:
        cfg.validate()
    # The error names the field at fault, qualified by its section, in the message and in
    # .field (which the programs turn into the flag's name), and the section alone says it too.
    named = raised.value.field
    assert named.startswith(part + ".") and str(raised.value).startswith(named)
    with pytest.raises(config.ConfigError, match=message) as alone:
        getattr(cfg, part).validate()
    assert alone.value.field == named.split(".", 1)[1]
    assert raised.value.naming("--x") == "--x" + str(raised.value)[len(named):]


def test_keep_best_needs_a_heldout_set():
    cfg = config.PretrainConfig()
    cfg.train.keep_best = True
    with pytest.raises(config.ConfigError, match="keep_best needs heldout_data") as raised:
        cfg.validate()
    assert raised.value.field == "train.keep_best"
    cfg.data.heldout_data = "embedded:validation"
    assert cfg.validate() is cfg


def test_the_field_of_an_error_is_the_field_set():
    cfg = config.PretrainConfig()
    cfg.data.points = 0
    with pytest.raises(config.ConfigError) as raised:
        cfg.validate()
    assert raised.value.field == "data.points"
    assert str(raised.value) == "data.points must be a positive integer, got 0"
    assert raised.value.naming("--points") == "--points must be a positive integer, got 0"


def test_an_error_without_a_field_keeps_its_message():
    error = config.ConfigError("model_dir x holds another run")
    assert error.field is None and str(error) == "model_dir x holds another run"
    assert error.naming("--y") == str(error) and error.in_section("train") is error
    assert isinstance(error, ValueError)


def test_side_range_and_edge_buffer_defaults_scale_with_the_crop():
    # The paper: short side in [352, 600] for 352 crops; released Caffe: centres in [96, 256).
    paper = config.DataConfig()
    assert paper.side_range == (352, 600) and paper.resolved_edge_buffer == 96
    small = config.DataConfig(crop_size=64)
    assert small.side_range == (64, round(64 * 600 / 352)) == (64, 109)
    assert small.resolved_edge_buffer == round(64 * 96 / 352) == 17
    given = config.DataConfig(crop_size=64, min_side=70, max_side=80, edge_buffer=3)
    assert given.side_range == (70, 80) and given.resolved_edge_buffer == 3
    # The default edge buffer is checked like a given one.
    with pytest.raises(config.ConfigError, match="edge_buffer=1 leaves no room"):
        config.DataConfig(crop_size=2).validate()


def test_validate_without_sources_skips_only_the_existence_checks():
    gone = config.DataConfig(data="/no/such/dir", heldout_data="/no/such/holdout")
    assert gone.validate(sources=False) is gone
    with pytest.raises(config.ConfigError, match="no such file"):
        gone.validate()
    with pytest.raises(config.ConfigError, match="data must name a data source"):
        config.DataConfig(data="").validate(sources=False)
    with pytest.raises(config.ConfigError, match="points must be a positive integer"):
        config.DataConfig(data="/no/such/dir", points=0).validate(sources=False)


def test_allowed_values_are_the_owning_modules_constants():
    # Each constant is defined once, by the module that owns the concept, and validated here.
    for kind in losses.LOSS_KINDS:
        config.LossConfig(kind=kind).validate()
    for name in strategy.STRATEGY_NAMES:
        config.TrainConfig(strategy=name).validate()
    for choice in trunk.BATCH_NORM_CHOICES:
        config.ModelConfig(batch_norm=choice).validate()
    for convention in layers.CONVENTIONS:
        config.ModelConfig(convention=convention).validate()
    assert config.ModelConfig().input_mean == trunk.DEFAULT_INPUT_MEAN
    with pytest.raises(config.ConfigError) as raised:
        config.TrainConfig(strategy="gpu").validate()
    assert str(raised.value) == ("strategy must be one of " + ", ".join(
        map(repr, strategy.STRATEGY_NAMES)) + "; got 'gpu'")


def test_drops_after_the_end_are_refused():
    cfg = config.PretrainConfig(optimizer=config.OptimizerConfig(lr_drops=[100]),
                                train=config.TrainConfig(train_steps=100))
    with pytest.raises(config.ConfigError, match="at or after train_steps=100") as raised:
        cfg.validate()
    assert raised.value.field == "optimizer.lr_drops"


def test_existing_paths_and_globs_are_accepted(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    for data in (str(tmp_path), str(tmp_path / "*.jpg"), "embedded", "embedded:validation",
                 "tfds:imagenet2012", "gs://bucket/train-*"):
        config.DataConfig(data=data).validate()
    with pytest.raises(config.ConfigError, match="matches no file"):
        config.DataConfig(data=str(tmp_path / "*.png")).validate()


def test_dict_round_trip_and_unknown_keys():
    cfg = config.PretrainConfig(model=config.ModelConfig(arch="vgg_tiny", taps="fc6-fc7"),
                                optimizer=config.OptimizerConfig(lr_drops=[10, 20]))
    again = config.PretrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert dataclasses.asdict(again) == cfg.to_dict()
    bad = cfg.to_dict()
    bad["model"]["depth"] = 3
    with pytest.raises(config.ConfigError, match="unknown model config keys: \\['depth'\\]"):
        config.PretrainConfig.from_dict(bad)
    with pytest.raises(config.ConfigError, match="unknown config sections"):
        config.PretrainConfig.from_dict(dict(cfg.to_dict(), extra={}))
