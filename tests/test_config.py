"""Tests of tfcolor.config: defaults (the paper / released code), validation errors that name the
field, the learning-rate schedule arithmetic and the dict round trip."""
import dataclasses

import pytest

from tfcolor import config


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
    ("data", "edge_buffer", 176, "edge_buffer=176 leaves no room"),
    ("data", "targets_on_device", "yes", "targets_on_device must be True, False or 'auto'"),
    ("model", "arch", "vgg19", "unknown architecture arch='vgg19'; known: .*vgg16"),
    ("model", "batch_norm", "group", "batch_norm must be one of"),
    ("model", "dropout", 1.0, "dropout must be in \\[0, 1\\)"),
    ("model", "convention", "center", "convention must be one of"),
    ("loss", "kind", "l1", "loss must be one of 'hue_chroma'"),
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
])
def test_bad_values_raise_config_errors_naming_the_field(part, field, value, message):
    cfg = config.PretrainConfig()
    setattr(getattr(cfg, part), field, value)
    with pytest.raises(config.ConfigError, match=message):
        cfg.validate()


def test_drops_after_the_end_are_refused():
    cfg = config.PretrainConfig(optimizer=config.OptimizerConfig(lr_drops=[100]),
                                train=config.TrainConfig(train_steps=100))
    with pytest.raises(config.ConfigError, match="at or after train_steps=100"):
        cfg.validate()


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
