"""Tests of tfcolor.tasks.colorization: the pretraining objective as a Task."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_standins as si  # noqa: E402

from tfcolor import config as cfg  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402


def _task(**kw):
    return ColorizationTask(model_fn=lambda: si.StandInColorizer(batch_norm=False),
                            loss_fn=si.per_point_loss, dataset=si.make_dataset(), **kw)


def test_loss_is_the_replica_share_of_the_global_mean_per_point():
    task = _task(terms_fn=si.loss_terms)
    model = task.build_model()
    batch = next(iter(task.build_inputs()))
    b = int(batch["gray"].shape[0])
    full, terms = task.compute_loss(model, batch, training=False, global_batch_size=b)
    logits = model.sparse(batch["gray"], batch["centers"], training=False)
    per_point = si.per_point_loss(batch["targets"], logits).numpy()
    np.testing.assert_allclose(float(full), per_point.mean(), rtol=1e-6)   # one replica: the mean
    halves = [{k: v[i * b // 2:(i + 1) * b // 2] for k, v in batch.items()} for i in (0, 1)]
    shares = [task.compute_loss(model, h, training=False, global_batch_size=b)[0] for h in halves]
    np.testing.assert_allclose(float(sum(shares)), float(full), rtol=1e-6)  # shares sum to it
    assert set(terms) == set(si.loss_terms(batch["targets"], logits))


def test_targets_are_built_on_the_device_from_rgb():
    task = _task(target_builder=si.targets_from_rgb)
    batch = next(iter(si.make_dataset(on_device=True)))
    expected = si.targets_from_rgb(batch["rgb"], batch["centers"])
    np.testing.assert_array_equal(task.targets(batch).numpy(), expected.numpy())


def test_a_plain_dataset_loses_its_index_and_a_function_must_provide_it():
    with_index = si.make_dataset_fn()(0)
    assert "index" in with_index.element_spec
    task = ColorizationTask(loss_fn=si.per_point_loss, dataset=with_index)
    assert "index" not in task.build_inputs().element_spec      # the trainer checkpoints it
    task = ColorizationTask(loss_fn=si.per_point_loss, dataset=lambda start: si.make_dataset())
    with pytest.raises(ValueError, match="must yield batches with 'index'"):
        task.build_inputs(0)
    with pytest.raises(ValueError, match="no dataset"):
        ColorizationTask(loss_fn=si.per_point_loss).build_inputs()
    with pytest.raises(TypeError, match="tf.data.Dataset or a function"):
        ColorizationTask(loss_fn=si.per_point_loss, dataset=[1, 2])


def test_from_config_builds_the_pipeline_model_and_loss_of_a_pretrain_config(tmp_path):
    config = cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv3_3"), hidden=16,
                              dropout=0.0),
        data=cfg.DataConfig(data="embedded", batch_size=2, crop_size=48, points=8,
                            validation_images=1, targets_on_device=False),
        train=cfg.TrainConfig(model_dir=str(tmp_path), train_steps=10)).validate()
    task = ColorizationTask.from_config(config)
    spec = task.build_inputs(0).element_spec
    assert spec["gray"].shape == (2, 48, 48, 1) and spec["centers"].shape == (2, 8, 2)
    assert "index" in spec and "targets" in spec
    resumed = next(iter(task.build_inputs(4)))
    assert int(tf.reduce_min(resumed["index"])) == 4
    model = task.build_model()
    loss, terms = task.compute_loss(model, next(iter(task.build_inputs(0))), training=False,
                                    global_batch_size=2)
    assert np.isfinite(float(loss)) and set(terms) == {"hue", "chroma"}
    grid = task.preview(model)
    assert grid.shape[-1] == 3 and grid.shape[1] > grid.shape[0]   # grey | colorized | original
