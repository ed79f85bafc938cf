"""Tests of tfcolor.tasks.colorization: the pretraining objective as a Task."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_standins as si  # noqa: E402

from tfcolor import config as cfg  # noqa: E402
from tfcolor import losses  # noqa: E402
from tfcolor.tasks import colorization  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402


def _task(loss_fn=si.per_point_loss, **kw):
    return ColorizationTask(model_fn=lambda: si.StandInColorizer(batch_norm=False),
                            loss_fn=loss_fn, dataset=si.make_dataset(), **kw)


def test_loss_is_the_replica_share_of_the_global_mean_per_point():
    task = _task(loss_fn=si.per_point_parts)
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
    assert list(terms) == ["low", "high"]
    np.testing.assert_allclose(float(terms["low"] + terms["high"]), float(full), rtol=1e-6)


class _FixedLogits:
    """A model whose sparse logits are given."""

    def __init__(self, logits):
        self.logits = tf.constant(logits, tf.float32)

    def sparse(self, gray, centers, training=False):  # pylint: disable=unused-argument
        return self.logits


def _histograms(rng, shape, bins):
    h = rng.dirichlet(np.full(bins, 0.3), size=shape)
    h[rng.uniform(size=h.shape) < 0.3] = 0.0             # empty bins: 0 log 0 = 0
    h[..., 0] += 1e-3
    return h / h.sum(-1, keepdims=True)


def _kl(t, logits):
    log_q = logits - logits.max(-1, keepdims=True)
    log_q = log_q - np.log(np.exp(log_q).sum(-1, keepdims=True))
    return np.sum(np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - log_q), 0.0), -1)


def _step_terms(loss_config, y_true, logits):
    b, p = logits.shape[:2]
    task = ColorizationTask(loss_fn=colorization.build_loss(loss_config))
    batch = {"gray": tf.zeros([b, 4, 4, 1]), "centers": tf.zeros([b, p, 2], tf.int32),
             "targets": tf.constant(y_true, tf.float32)}
    loss, terms = task.compute_loss(_FixedLogits(logits), batch, training=True,
                                    global_batch_size=b)
    return float(loss), {k: float(v) for k, v in terms.items()}


@pytest.mark.parametrize("lightness_weight", [False, True])
def test_hue_chroma_terms_match_numpy_and_sum_to_the_loss(lightness_weight):
    # Hand formula in float64: chroma = w_L KL(y_C || q_C), hue = 5 y_c KL(y_H || q_H), means
    # over the 3 x 7 points; w_L = min(3L, 1, 3(1 - L)) with the released weighting.
    rng = np.random.default_rng(0)
    k, shape = 32, (3, 7)
    hue, chroma = _histograms(rng, shape, k), _histograms(rng, shape, k)
    c, lightness = rng.uniform(0, 1, shape), rng.uniform(0, 1, shape)
    y_true = np.concatenate([hue, chroma, c[..., None], lightness[..., None]], -1)
    logits = rng.normal(0, 2, shape + (2 * k,))
    w = np.minimum(np.minimum(3 * lightness, 1.0), 3 * (1 - lightness)) if lightness_weight \
        else 1.0
    expected_chroma = np.mean(w * _kl(chroma, logits[..., k:]))
    expected_hue = np.mean(5.0 * c * _kl(hue, logits[..., :k]))
    loss, terms = _step_terms(cfg.LossConfig(kind="hue_chroma", lightness_weight=lightness_weight),
                              y_true, logits)
    assert list(terms) == ["chroma", "hue"]
    assert terms["chroma"] == pytest.approx(expected_chroma, rel=1e-5)
    assert terms["hue"] == pytest.approx(expected_hue, rel=1e-5)
    assert loss == pytest.approx(terms["hue"] + terms["chroma"], rel=1e-6)


def test_lab_hist_terms_match_numpy_and_joint_and_regression_have_none():
    rng = np.random.default_rng(1)
    a, b = _histograms(rng, (2, 5), 32), _histograms(rng, (2, 5), 32)
    logits = rng.normal(0, 2, (2, 5, 64))
    loss, terms = _step_terms(cfg.LossConfig(kind="lab_hist"), np.concatenate([a, b], -1),
                              logits)
    assert terms["a"] == pytest.approx(np.mean(_kl(a, logits[..., :32])), rel=1e-5)
    assert terms["b"] == pytest.approx(np.mean(_kl(b, logits[..., 32:])), rel=1e-5)
    assert loss == pytest.approx(terms["a"] + terms["b"], rel=1e-6)
    joint = _histograms(rng, (2, 5), 256)
    logits = rng.normal(0, 2, (2, 5, 256))
    loss, terms = _step_terms(cfg.LossConfig(kind="lab_joint"), joint, logits)
    assert terms == {} and loss == pytest.approx(np.mean(_kl(joint, logits)), rel=1e-5)
    ab, pred = rng.normal(0, 20, (2, 5, 2)), rng.normal(0, 20, (2, 5, 2))
    loss, terms = _step_terms(cfg.LossConfig(kind="lab_regression"), ab, pred)
    assert terms == {} and loss == pytest.approx(np.mean(np.sum((ab - pred) ** 2, -1)),
                                                 rel=1e-5)


@pytest.mark.parametrize("kind,groups", [("hue_chroma", 2), ("lab_hist", 2), ("lab_joint", 1)])
def test_a_step_evaluates_each_kl_once(monkeypatch, kind, groups):
    calls = []
    kl_divergence = losses.kl_divergence

    def counting(*args, **kw):
        calls.append(1)
        return kl_divergence(*args, **kw)
    monkeypatch.setattr(losses, "kl_divergence", counting)
    d = {"hue_chroma": 66, "lab_hist": 64, "lab_joint": 256}[kind]
    rng = np.random.default_rng(2)
    y_true = rng.uniform(0, 1, (2, 3, d))
    logits = rng.normal(0, 1, (2, 3, 2 * 32 if kind == "hue_chroma" else d))
    _, terms = _step_terms(cfg.LossConfig(kind=kind), y_true, logits)
    assert len(calls) == groups and len(terms) == (0 if kind == "lab_joint" else 2)


def test_a_loss_part_or_loss_of_the_wrong_shape_is_refused():
    model = _FixedLogits(np.zeros([2, 3, 4]))
    batch = {"gray": tf.zeros([2, 4, 4, 1]), "centers": tf.zeros([2, 3, 2], tf.int32),
             "targets": tf.zeros([2, 3, 4])}
    for loss_fn, match in [(lambda y, p: {"x": tf.reduce_sum(p, [1, 2])}, "part 'x' has shape"),
                           (lambda y, p: tf.reduce_sum(p, -1, keepdims=True), "the loss has"),
                           (lambda y, p: {}, "no parts")]:
        with pytest.raises(ValueError, match=match):
            ColorizationTask(loss_fn=loss_fn).compute_loss(model, batch, training=False,
                                                           global_batch_size=2)


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
