"""Tests for tfcolor.baselines.runs (build, pretrain, load)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import baselines
from tfcolor import config as config_lib
from tfcolor import run_dir
from tfcolor.downstream import initialization as init
from tfcolor.train import checkpointing


def _images():
    return (np.random.default_rng(0).uniform(0, 1, (4, 40, 40, 3)) * 255).astype(np.uint8)


def _config():
    return config_lib.DataConfig(batch_size=2, crop_size=32, points=8, edge_buffer=4,
                                 min_side=32, max_side=36)


def test_pretrain_and_transfer(tmp_path):
    result = baselines.pretrain("denoising", _images(), str(tmp_path),
                                model_kwargs=dict(arch="vgg_tiny", taps="conv1_1-conv2_2",
                                                  hidden=8),
                                data_config=_config(), train_steps=2, steps_per_loop=1)
    assert np.isfinite(result.losses["loss"])
    assert init.describe_init(str(tmp_path)) == "baseline"
    trunk, arch = init.load_trunk(str(tmp_path))
    loaded = baselines.load(str(tmp_path))
    x = tf.random.uniform([1, 16, 16, 1])
    expected = loaded.trunk(x, training=False)
    got = trunk(x, training=False)
    assert arch == "vgg_tiny"
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.build("autoencoder")


def test_pretrain_and_load(tmp_path):
    result = baselines.pretrain("split_brain", _images(), str(tmp_path),
                                model_kwargs=dict(arch="vgg_tiny", taps="conv1_1-conv2_2",
                                                  hidden=8, split="rescaled_lab"),
                                data_config=_config(), train_steps=2, steps_per_loop=1)
    # Two cross-entropies over 100 classes start near 2 ln(100).
    assert 0.5 * 2 * np.log(100) < result.losses["split_brain"] < 2 * 2 * np.log(100)
    np.testing.assert_allclose(
            result.losses["split_brain/half_a"] + result.losses["split_brain/half_b"],
            result.losses["split_brain"], rtol=1e-5)
    trunk, arch = init.load_trunk(str(tmp_path), color_input=True)
    assert trunk.inputs[0].shape[-1] == 3 and arch == "vgg_tiny"
    # The same baseline in the same model_dir resumes from its checkpoint (step 2).
    resumed = baselines.pretrain("split_brain", _images(), str(tmp_path),
                                 model_kwargs=dict(arch="vgg_tiny", taps="conv1_1-conv2_2",
                                                   hidden=8, split="rescaled_lab"),
                                 data_config=_config(), train_steps=3, steps_per_loop=1)
    assert resumed.step == 3 and [step for step, _ in resumed.history] == [3]


def test_another_run_in_the_model_dir_is_refused_and_kept(tmp_path):
    model_dir = str(tmp_path)
    meta = {"kind": "denoising", "model": {"arch": "vgg_tiny"}, "noise_rate": 0.05}
    path = os.path.join(model_dir, run_dir.BASELINE_FILE)
    with open(path, "w") as f:
        json.dump(meta, f)
    with pytest.raises(ValueError, match="another baseline run"):
        baselines.pretrain("split_brain", _images(), model_dir,
                           model_kwargs=dict(arch="vgg_tiny"), data_config=_config(),
                           train_steps=1)
    with open(path) as f:
        assert json.load(f) == meta
    colorization_dir = tmp_path / "colorization"
    colorization_dir.mkdir()
    (colorization_dir / run_dir.CONFIG_FILE).write_text("{}")
    with pytest.raises(ValueError, match="colorization run"):
        baselines.pretrain("denoising", _images(), str(colorization_dir), data_config=_config(),
                           train_steps=1)
    assert not (colorization_dir / run_dir.BASELINE_FILE).exists()
    unknown_dir = tmp_path / "unknown"
    unknown_dir.mkdir()
    state = unknown_dir / checkpointing.CHECKPOINT_STATE_FILE
    state.write_text('model_checkpoint_path: "ckpt-1"')
    with pytest.raises(ValueError, match="not a baseline run"):
        baselines.pretrain("denoising", _images(), str(unknown_dir), data_config=_config(),
                           train_steps=1)
    assert sorted(p.name for p in unknown_dir.iterdir()) == [checkpointing.CHECKPOINT_STATE_FILE]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a baseline model_dir"):
        baselines.load(str(tmp_path))
    path = tmp_path / run_dir.BASELINE_FILE
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        baselines.load(str(tmp_path))
    path.write_text(json.dumps({"kind": "autoencoder", "model": {}}))
    with pytest.raises(ValueError, match="'kind'"):
        baselines.load(str(tmp_path))
    path.write_text(json.dumps({"kind": "split_brain",
                                "model": {"arch": "vgg_tiny", "taps": "conv1_1", "hidden": 8}}))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        baselines.load(str(tmp_path))


def test_make_task_rejects_denoising_options_for_split_brain():
    with pytest.raises(ValueError, match="denoising options"):
        baselines.make_task("split_brain", noise_rate=0.1)
    assert baselines.make_task("denoising", noise_rate=0.1).noise_rate == 0.1
