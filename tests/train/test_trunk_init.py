"""Tests for tfcolor.train.trunk_init: a pretraining run's shared trunk started from another run's
trunk (multitask.init), and trained end to end or fixed (multitask.train_trunk)."""
import dataclasses
import shutil

import numpy as np
import pytest

from tfcolor import config as cfg
from tfcolor import run_dir
from tfcolor import train
from tfcolor.train import multitask


def _config(model_dir, steps=2, arch="vgg_tiny", **multitask_fields):
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch=arch, hidden=16, dropout=0.0),
        data=cfg.DataConfig(data="embedded", batch_size=2, crop_size=48, points=8,
                            validation_images=0),
        optimizer=cfg.OptimizerConfig(learning_rate=1e-3, lr_drops=()),
        train=cfg.TrainConfig(model_dir=str(model_dir), train_steps=steps, steps_per_loop=1,
                              checkpoint_every=steps, summary_every=steps, image_every=0,
                              export=False, deterministic=True),
        multitask=cfg.MultiTaskConfig(**multitask_fields))


_JIGSAW = dict(task_data={"jigsaw": {"crop_size": 64, "min_side": 64, "max_side": 64}},
               task_options={"jigsaw": {"piece_size": 28}})


@pytest.fixture(scope="module")
def colorizer_run(tmp_path_factory):
    """A (grey-input) colorization run of two steps: the source trunk."""
    model_dir = tmp_path_factory.mktemp("runs") / "C"
    result = train.pretrain(_config(model_dir), export=False)
    assert result.stopped == "completed"
    return str(model_dir)


def _source_weights(model_dir):
    colorizer, _ = run_dir.load_model(model_dir)
    return {l.name: [w.numpy() for w in l.weights] for l in colorizer.trunk.layers if l.weights}


def test_the_trunk_starts_from_the_run_with_conv1_made_rgb(colorizer_run, tmp_path):
    source = _source_weights(colorizer_run)
    config = _config(tmp_path / "J", tasks=("jigsaw",), init=colorizer_run, **_JIGSAW)
    shared = multitask.make_trunk(config.validate())
    fresh = multitask.make_trunk(config, initialize=False)
    copied = 0
    for layer in shared.model.layers:
        if not layer.weights:
            continue
        if layer.name not in source:   # above the colorizer's deepest tap: kept fresh
            continue
        values = [w.numpy() for w in layer.weights]
        expected = source[layer.name]
        if values[0].ndim == 4 and values[0].shape[2] == 3 and expected[0].shape[2] == 1:
            # grey -> RGB: the grey kernel over three channels, divided by 3 (exact on
            # RGB-encoded grey: the three channels sum back to the grey kernel)
            np.testing.assert_allclose(values[0].sum(axis=2, keepdims=True), expected[0],
                                       rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(values[0][:, :, :1] * 3, expected[0], rtol=1e-5,
                                       atol=1e-7)
            values, expected = values[1:], expected[1:]
        for got, want in zip(values, expected):
            np.testing.assert_array_equal(got, want)
        copied += 1
    assert copied >= 3
    # the control: without initialize the trunk is a fresh one, not the source
    conv = next(l.name for l in fresh.model.layers if l.weights)
    assert not np.allclose(fresh.model.get_layer(conv).get_weights()[0][:, :, :1] * 3,
                           source[conv][0])


def test_a_fixed_trunk_stays_the_source_and_the_head_trains(colorizer_run, tmp_path):
    config = _config(tmp_path / "J", tasks=("jigsaw",), init=colorizer_run,
                     train_trunk=False, gradient_rule="sum", **_JIGSAW)
    start = multitask.make_trunk(config.validate())
    before = {l.name: [w.numpy() for w in l.weights] for l in start.model.layers if l.weights}
    result = train.pretrain(config, export=False)
    assert result.stopped == "completed"
    trunk, _ = run_dir.load_shared_trunk(config.train.model_dir)
    for layer in trunk.model.layers:
        for got, want in zip(layer.weights, before.get(layer.name, [])):
            np.testing.assert_array_equal(got.numpy(), want)
    head = result.model.head_variables("jigsaw")
    assert head and result.model.base_variables() == []


@pytest.mark.slow  # two more runs (about 40 s); the copy itself is checked in the default run
def test_end_to_end_from_the_source_moves_the_trunk_and_resume_does_not_reread_init(
        colorizer_run, tmp_path):
    source = tmp_path / "C_copy"
    shutil.copytree(colorizer_run, source)
    config = _config(tmp_path / "C2", tasks=("colorization",), init=str(source))
    assert not config.multitask.single_colorization   # started from a run: the shared path
    start = multitask.make_trunk(config.validate())
    conv = next(l.name for l in start.model.layers if l.weights)
    first = start.model.get_layer(conv).get_weights()[0]
    assert train.pretrain(config, export=False).stopped == "completed"
    trunk, _ = run_dir.load_shared_trunk(config.train.model_dir)
    assert not np.array_equal(trunk.model.get_layer(conv).get_weights()[0], first)
    shutil.rmtree(source)  # resuming reads the checkpoint, never init again
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, train_steps=3))
    assert train.pretrain(longer, export=False).train.step == 3


def test_a_trunk_that_does_not_fit_is_one_config_error(colorizer_run, tmp_path):
    config = _config(tmp_path / "J", arch="alexnet", tasks=("jigsaw",), init=colorizer_run,
                     **_JIGSAW)
    with pytest.raises(cfg.ConfigError, match="vgg_tiny trunk") as info:
        multitask.make_trunk(config.validate())
    assert info.value.field == "init"
    with pytest.raises(cfg.ConfigError) as info:
        multitask.make_trunk(_config(tmp_path / "J", tasks=("jigsaw",),
                                     init=str(tmp_path / "nothing"), **_JIGSAW))
    assert info.value.field == "init"


@pytest.mark.parametrize("fields, field", [
    (dict(train_trunk=False, init="runs/C"), "multitask.gradient_rule"),        # NormSGD
    (dict(init=3), "multitask.init"),
])
def test_bad_init_fields_are_named(fields, field, tmp_path):
    with pytest.raises(cfg.ConfigError) as info:
        _config(tmp_path, tasks=("jigsaw",), **fields).validate()
    assert info.value.field == field
