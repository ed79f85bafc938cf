"""Tests of tfcolor.train.heldout: the held-out loss curve of pretraining."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as cfg
from tfcolor import data as data_lib
from tfcolor import losses, run_dir, targets
from tfcolor.tasks.colorization import ColorizationTask
from tfcolor.train import heldout, pretraining


def _task(loss_fn):
    return ColorizationTask(loss_fn=loss_fn)


def _batches(images=5, **kw):
    data = cfg.DataConfig(**dict(dict(batch_size=3, crop_size=48, points=6), **kw))
    return data_lib.heldout_batches("embedded:validation", data,
                                    cfg.LossConfig(kind="lab_joint", window=3),
                                    targets.TargetBuilder("lab_joint", window=3), images=images)


class _UniformModel:
    """Predicts the uniform histogram (all logits zero) at every point."""

    def sparse(self, gray, centers, training=False):  # pylint: disable=unused-argument
        return tf.zeros(tf.concat([tf.shape(centers)[:2], [256]], 0))


class _Trainer:
    """What the hook reads of a Trainer."""

    def __init__(self, model, train_steps, writer):
        self.model, self.train_steps, self.writer, self.is_chief = model, train_steps, writer, True


def test_uniform_predictor_scores_log_k_minus_the_target_entropy(tmp_path):
    # KL(t || uniform over 256 bins) = log 256 - H(t), averaged over every point of the uneven
    # batches (3 + 2 images): a hand formula independent of the loss and hook code.
    batches = _batches()
    t = np.concatenate([b["targets"].reshape(-1, 256) for b in batches]).astype(np.float64)
    entropy = -np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0), axis=1)
    expected = float(np.mean(np.log(256.0) - entropy))
    hook = heldout.HeldOutLoss(batches, _task(losses.HistogramKL((256,))), every=10)
    loss, terms = hook.evaluate(_UniformModel())
    assert loss == pytest.approx(expected, rel=1e-5) and terms == {}
    assert hook.images == 5


def test_hook_evaluates_every_n_steps_and_at_the_end_and_writes_the_curve(tmp_path):
    path = str(tmp_path / run_dir.HELDOUT_CURVE_FILE)
    task = _task(lambda y, p: {"a": losses.HistogramKL((256,))(y, p)})   # one part: the loss
    hook = heldout.HeldOutLoss(_batches(), task, every=100, path=path)
    trainer = _Trainer(_UniformModel(), 230, tf.summary.create_noop_writer())
    for step in (30, 60, 90, 120, 150, 180, 210, 230):
        hook(trainer, step, {})
    assert [s for s, _, _ in hook.curve] == [30, 120, 210, 230]
    with open(path, "a") as f:
        f.write('{"step": 120, "loss": 1.5, "terms": {}}\n{"step": 240, "lo')  # killed mid-write
    curve = heldout.read_curve(str(tmp_path))
    assert [s for s, _, _ in curve] == [30, 120, 210, 230]
    assert curve[1][1] == 1.5                                      # the last line of a step wins
    first = json.loads(open(path).readline())
    assert first["images"] == 5 and first["points"] == 30
    assert first["terms"]["a"] == pytest.approx(first["loss"], rel=1e-6)
    assert heldout.read_curve(str(tmp_path / "nothing")) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        heldout.HeldOutLoss(_batches(images=1), _task(losses.HistogramKL((256,))), every=0)
    with pytest.raises(cfg.ConfigError, match="heldout_data='/no/such/dir'"):
        cfg.DataConfig(heldout_data="/no/such/dir").validate()
    with pytest.raises(cfg.ConfigError, match="eval_every must be a positive integer"):
        cfg.TrainConfig(eval_every=0).validate()


def test_pretraining_writes_a_falling_heldout_curve(tmp_path):
    """A tiny run on the shipped photos: the held-out loss is logged at every eval_every steps
    and at the end, and the trained model's held-out loss is below the untrained one's."""
    model_dir = str(tmp_path / "run")
    config = cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv2_2", "conv3_3"), hidden=32,
                              dropout=0.0),
        data=cfg.DataConfig(data="embedded", batch_size=4, crop_size=64, points=16,
                            validation_images=0, targets_on_device=False,
                            heldout_data="embedded:validation", heldout_images=8),
        loss=cfg.LossConfig(kind="hue_chroma"),
        optimizer=cfg.OptimizerConfig(learning_rate=0.01, lr_drops=[]),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=60, steps_per_loop=10,
                              checkpoint_every=60, summary_every=30, image_every=0, export=False,
                              deterministic=True, eval_every=30)).validate()
    result = pretraining.pretrain(config)
    curve = heldout.read_curve(model_dir)
    assert [s for s, _, _ in curve] == [10, 30, 60]
    assert [s for s, _, _ in result.heldout_curve] == [10, 30, 60]
    assert set(curve[0][2]) == {"hue", "chroma"}
    for _, loss, terms in curve:
        assert loss == pytest.approx(terms["hue"] + terms["chroma"], rel=1e-5)
    assert curve[-1][1] < curve[0][1]
