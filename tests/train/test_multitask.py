"""Tests for tfcolor.train.multitask (tasks of a multi-task config) and the multi-task path of
tfcolor.train.pretrain, run_dir and the downstream initialisation."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as cfg
from tfcolor import run_dir
from tfcolor import surgery
from tfcolor import train
from tfcolor.downstream import initialization
from tfcolor.tasks import scaled
from tfcolor.train import multitask


def _config(model_dir="runs/x", steps=6, **multitask_fields):
    fields = dict(tasks=("colorization", "jigsaw"),
                  task_data={"jigsaw": {"crop_size": 64, "min_side": 64, "max_side": 64}},
                  task_options={"jigsaw": {"piece_size": 28}})
    fields.update(multitask_fields)
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", hidden=16, dropout=0.0),
        data=cfg.DataConfig(data="embedded", batch_size=2, crop_size=48, points=8,
                            validation_images=2, heldout_data="embedded:validation",
                            heldout_images=2),
        optimizer=cfg.OptimizerConfig(learning_rate=1e-5, lr_drops=(0.5,), warmup_steps=2),
        train=cfg.TrainConfig(model_dir=str(model_dir), train_steps=steps, steps_per_loop=3,
                              checkpoint_every=3, summary_every=3, eval_every=3, image_every=0,
                              deterministic=True),
        multitask=cfg.MultiTaskConfig(**fields))


def test_each_task_gets_its_own_input_section_and_seed():
    config = _config(task_data={"jigsaw": {"crop_size": 64, "min_side": 64, "max_side": 64,
                                           "batch_size": 3}})
    jigsaw = multitask.task_data_config(config, "jigsaw")
    assert (jigsaw.crop_size, jigsaw.batch_size, jigsaw.data) == (64, 3, "embedded")
    colorization = multitask.task_data_config(config, "colorization")
    assert colorization == config.data            # the run's data section, no overrides
    video = multitask.task_data_config(config, "video")
    assert video.data != "embedded"               # the video corpus, not the photos
    tasks = multitask.build_tasks(config)
    assert [t.name for t in tasks] == ["colorization", "jigsaw"]
    assert tasks[1].seed == config.train.seed + multitask.SEED_OFFSETS["jigsaw"]
    assert tasks[1].piece_size == 28


@pytest.mark.slow  # two input pipelines and a model (30 s); ScaledTask's invariance under
# NormSGD is in the default run (tests/train/test_multitask_step.py)
def test_loss_scales_wrap_the_task_and_multiply_its_loss():
    config = _config(loss_scales={"jigsaw": 100.0})
    tasks = multitask.build_tasks(config)
    assert isinstance(tasks[1], scaled.ScaledTask) and tasks[1].name == "jigsaw"
    plain = multitask.build_tasks(_config())[1]
    model = plain.build_model()
    batch = dict(next(iter(plain.build_inputs(0))))
    batch.pop("index")
    a, terms_a = plain.compute_loss(model, batch, training=False, global_batch_size=2)
    b, terms_b = tasks[1].compute_loss(model, batch, training=False, global_batch_size=2)
    np.testing.assert_allclose(float(b), 100.0 * float(a), rtol=1e-6)
    np.testing.assert_allclose(float(terms_b["accuracy"]), 100.0 * float(terms_a["accuracy"]))


@pytest.mark.parametrize("fields, field", [
    (dict(tasks=("colorization", "colorization")), "multitask.tasks"),
    (dict(tasks=("colorization", "sudoku")), "multitask.tasks"),
    (dict(task_weights={"video": 1.0}), "multitask.task_weights"),
    (dict(loss_scales={"jigsaw": 0}), "multitask.loss_scales"),
    (dict(task_data={"jigsaw": {"crop": 3}}), "multitask.task_data"),
    (dict(gradient_rule="adam"), "multitask.gradient_rule"),
    (dict(input_channels=2), "multitask.input_channels"),
])
def test_bad_multitask_fields_are_named(fields, field):
    with pytest.raises(cfg.ConfigError) as info:
        _config(**fields).validate()
    assert info.value.field == field


def test_split_brain_cannot_share_a_trunk_and_keep_best_is_refused():
    with pytest.raises(cfg.ConfigError, match="split in two"):
        multitask.build_tasks(_config(tasks=("colorization", "split_brain")))
    config = _config()
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, keep_best=True))
    with pytest.raises(cfg.ConfigError, match="several objectives"):
        config.validate()


def test_parse_task_lists():
    assert cfg.parse_task_weights("colorization:1,jigsaw:0.5") == {"colorization": 1.0,
                                                                    "jigsaw": 0.5}
    assert cfg.parse_task_fields("jigsaw.crop_size=128,jigsaw.color=false,video.data=x/y") == {
        "jigsaw": {"crop_size": 128, "color": False}, "video": {"data": "x/y"}}
    for bad in ("jigsaw", "jigsaw:x", ":1"):
        with pytest.raises(cfg.ConfigError, match="TASK:WEIGHT"):
            cfg.parse_task_weights(bad)
    with pytest.raises(cfg.ConfigError, match="TASK.NAME=VALUE"):
        cfg.parse_task_fields("crop_size=3")


@pytest.fixture(scope="module")
def cj_run(tmp_path_factory):
    """A finished 6-step C+J NormSGD run (built once for the tests below)."""
    model_dir = tmp_path_factory.mktemp("cj")
    result = train.pretrain(_config(model_dir))
    return model_dir, result


@pytest.mark.slow  # a whole C+J run with its export (about a minute)
def test_a_multitask_run_logs_each_task_and_exports_the_colorizer(cj_run):
    model_dir, result = cj_run
    assert result.stopped == "completed" and result.train.step == 6
    losses = result.train.losses
    for task in ("colorization", "jigsaw"):
        assert np.isfinite(losses[task])
        assert losses[f"grad/{task}/l1_mean"] > 0 and losses[f"grad/{task}/normaliser"] > 0
    with open(os.path.join(model_dir, "train.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == [3, 6]
    assert {"loss/jigsaw", "grad/jigsaw/l2", "learning_rate"} <= set(rows[-1])
    assert os.path.exists(os.path.join(model_dir, "colorizations.png"))
    assert result.heldout_curve and result.heldout_curve[-1][0] == 6
    assert os.path.exists(os.path.join(result.export_dir, run_dir.EXPORT_METADATA_FILE))
    config = run_dir.read_config(model_dir)
    assert list(config.multitask.tasks) == ["colorization", "jigsaw"]


@pytest.mark.slow  # a whole C+J run with its export (about a minute)
def test_the_run_directory_gives_back_the_trained_colorizer_and_trunk(cj_run):
    model_dir, result = cj_run
    trained = result.model.sub_models["colorization"]
    colorizer, kind = run_dir.load_model(model_dir)
    assert kind == "hue_chroma" and colorizer.input_channels == 3
    for a, b in zip(colorizer.weights, trained.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    trunk, _ = run_dir.load_shared_trunk(model_dir)
    for a, b in zip(trunk.model.weights, result.model.trunk.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(cfg.ConfigError, match="colorization run"):
        run_dir.load_shared_trunk(_single_run(model_dir))


def _single_run(model_dir):
    # A directory whose config.json says "colorization alone" (no checkpoint needed to refuse).
    other = os.path.join(os.path.dirname(model_dir), "single")
    os.makedirs(other, exist_ok=True)
    run_dir.write_config(other, _config(other, tasks=("colorization",)))
    return other


@pytest.mark.slow  # a whole C+J run with its export (about a minute)
def test_finetune_init_takes_the_shared_trunk_grey_or_colour(cj_run):
    model_dir, result = cj_run
    grey, arch = initialization.load_trunk(str(model_dir), arch="vgg_tiny")
    colour, _ = initialization.load_trunk(str(model_dir), arch="vgg_tiny", color_input=True)
    assert arch == "vgg_tiny"
    assert grey.input.shape[-1] == 1 and colour.input.shape[-1] == 3
    # The grey trunk on g is the colour trunk on (g, g, g): the trunk as pretrained on the
    # colorizer's RGB-encoded grey input.
    g = tf.random.stateless_uniform([2, 24, 24, 1], seed=[1, 2])
    a, b = grey(g)["fc7"], colour(tf.repeat(g, 3, axis=-1))["fc7"]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(tf.reduce_max(tf.abs(a))))


def test_rgb_to_gray_conv1_is_the_channel_sum_and_inverts_gray_to_rgb():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(surgery.rgb_to_gray_conv1(kernel), kernel.sum(2, keepdims=True))
    grey = rng.normal(size=(3, 3, 1, 4)).astype(np.float32)
    np.testing.assert_allclose(surgery.rgb_to_gray_conv1(surgery.gray_to_rgb_conv1(grey)), grey,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="3, out"):
        surgery.rgb_to_gray_conv1(grey)


@pytest.mark.slow  # a whole C+J run with its export (about a minute)
def test_resuming_with_another_task_set_is_refused(cj_run, tmp_path):
    model_dir, _ = cj_run
    other = _config(model_dir, steps=9, tasks=("colorization", "jigsaw", "denoising"))
    with pytest.raises(cfg.ConfigError, match="different multitask configuration"):
        train.pretrain(other)
