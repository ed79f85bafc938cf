"""Tests for tfcolor.losses: hand-computed values, KL = cross-entropy on one-hot targets, gradients,
reductions, serialization, float16 / mixed precision and distribution strategies."""
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import losses
from tfcolor.train.strategy import make_strategy  # one strategy per device set

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_testing  # noqa: E402


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_kl(y, q):
    y, q = np.asarray(y, np.float64), np.asarray(q, np.float64)
    mask = y > 0
    return np.where(mask, y * (np.log(np.where(mask, y, 1)) - np.log(q)), 0).sum(-1)


# ---------------------------------------------------------------------- HistogramKL
def test_histogram_kl_by_hand():
    # Group 1: y = (.5, .5, 0), q = (.25, .25, .5): KL = 2 * .5 log(.5/.25) = log 2.
    # Group 2: y = (1, 0), q = (.5, .5): KL = log 2.
    y = np.array([[0.5, 0.5, 0.0, 1.0, 0.0]], np.float32)
    q = np.array([[0.25, 0.25, 0.5, 0.5, 0.5]], np.float32)
    probs_loss = losses.HistogramKL((3, 2), from_logits=False)
    np.testing.assert_allclose(probs_loss(y, q).numpy(), [2 * math.log(2)], rtol=1e-6)
    logits = np.log(q) + np.array([[3.0, 3.0, 3.0, -1.0, -1.0]], np.float32)  # per-group shift
    np.testing.assert_allclose(losses.HistogramKL((3, 2))(y, logits).numpy(), [2 * math.log(2)],
                               rtol=1e-6)
    weighted = losses.HistogramKL((3, 2), group_weights=(1.0, 3.0), from_logits=False)
    np.testing.assert_allclose(weighted(y, q).numpy(), [4 * math.log(2)], rtol=1e-6)


def test_histogram_kl_matches_numpy_on_random_histograms():
    rng = np.random.default_rng(0)
    y = np.concatenate([_softmax(rng.normal(size=(4, 6, 32)) * 3),
                        _softmax(rng.normal(size=(4, 6, 32)) * 3)], -1).astype(np.float32)
    y[0, 0, :32] = np.eye(32)[5]
    logits = rng.normal(size=(4, 6, 64)).astype(np.float32) * 2
    expected = _np_kl(y[..., :32], _softmax(logits[..., :32])) + _np_kl(
            y[..., 32:], _softmax(logits[..., 32:]))
    np.testing.assert_allclose(losses.HistogramKL((32, 32))(y, logits).numpy(), expected,
                               rtol=1e-5, atol=1e-6)


def test_kl_equals_log_loss_for_one_hot_targets():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 256, (3, 5))
    y = np.eye(256, dtype=np.float32)[labels]
    logits = rng.normal(size=(3, 5, 256)).astype(np.float32)
    cce = keras.losses.categorical_crossentropy(y, logits, from_logits=True).numpy()
    np.testing.assert_allclose(losses.HistogramKL((256,))(y, logits).numpy(), cce, rtol=1e-5)
    probs = _softmax(logits).astype(np.float32)
    np.testing.assert_allclose(losses.HistogramKL((256,), from_logits=False)(y, probs).numpy(),
                               cce, rtol=1e-4)


def test_kl_is_zero_when_prediction_equals_target():
    rng = np.random.default_rng(2)
    y = _softmax(rng.normal(size=(2, 3, 32))).astype(np.float32)
    y[0, 0] = 0.0
    y[0, 0, [3, 9]] = [0.25, 0.75]  # zeros in the target are fine (0 log 0 = 0)
    loss = losses.HistogramKL((32,), from_logits=False)(y, y).numpy()
    np.testing.assert_allclose(loss, 0.0, atol=1e-6)
    logits = np.log(np.maximum(y, 1e-30)) + 7.0
    np.testing.assert_allclose(losses.HistogramKL((32,))(y, logits).numpy(), 0.0, atol=1e-5)


def test_per_position_shapes_sparse_and_dense():
    loss = losses.HistogramKL((4, 4))
    assert loss(np.full((2, 5, 8), 0.25, np.float32), np.zeros((2, 5, 8))).shape == (2, 5)
    assert loss(np.full((2, 3, 4, 8), 0.25, np.float32), np.zeros((2, 3, 4, 8))).shape == (
            2, 3, 4)
    hue = losses.HueChromaLoss(num_bins=4)
    assert hue(np.zeros((2, 3, 4, 10), np.float32), np.zeros((2, 3, 4, 8))).shape == (2, 3, 4)
    assert losses.LabRegressionLoss()(np.zeros((7, 2)), np.zeros((7, 2))).shape == (7,)


def test_reductions():
    rng = np.random.default_rng(3)
    y = _softmax(rng.normal(size=(2, 5, 8))).astype(np.float32)
    logits = rng.normal(size=(2, 5, 8)).astype(np.float32)
    per = losses.HistogramKL((8,))(y, logits).numpy()
    np.testing.assert_allclose(losses.HistogramKL((8,), reduction="sum")(y, logits).numpy(),
                               per.sum(), rtol=1e-6)
    np.testing.assert_allclose(
            losses.HistogramKL((8,), reduction="sum_over_batch_size")(y, logits).numpy(),
            per.mean(), rtol=1e-6)
    weights = rng.uniform(size=(2, 5)).astype(np.float32)
    np.testing.assert_allclose(
            losses.HistogramKL((8,), reduction="sum")(y, logits, sample_weight=weights).numpy(),
            (per * weights).sum(), rtol=1e-5)
    assert losses.HistogramKL((8,)).reduction is None


def test_gradient_of_kl_wrt_logits():
    rng = np.random.default_rng(4)
    y = np.concatenate([_softmax(rng.normal(size=(2, 3, 5))), np.eye(4)[[[0, 1, 2], [3, 3, 0]]]],
                       -1).astype(np.float64)
    logits = rng.normal(size=(2, 3, 9))
    loss = losses.HistogramKL((5, 4), dtype="float64")
    # Analytic: d KL / d logits = softmax(logits) - y per group (y sums to 1).
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(loss(y, x))
    grad = tape.gradient(value, x).numpy()
    analytic = np.concatenate([_softmax(logits[..., :5]) - y[..., :5],
                               _softmax(logits[..., 5:]) - y[..., 5:]], -1)
    np.testing.assert_allclose(grad, analytic, atol=1e-5)
    # Numerical (finite differences) on a float32 copy.
    x32 = tf.constant(logits[0, 0].astype(np.float32))
    y32 = y[0, 0].astype(np.float32)
    theoretical, numerical = tf.test.compute_gradient(
            lambda t: losses.HistogramKL((5, 4))(y32, t), [x32], delta=1e-3)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)


def test_float16_inputs_compute_in_float32():
    rng = np.random.default_rng(5)
    y = _softmax(rng.normal(size=(2, 4, 64))).astype(np.float32)
    logits = (rng.normal(size=(2, 4, 64)) * 30).astype(np.float16)  # large logits
    out = losses.HistogramKL((32, 32))(y.astype(np.float16), logits)
    assert out.dtype == tf.float32
    expected = losses.HistogramKL((32, 32))(y.astype(np.float16).astype(np.float32),
                                            logits.astype(np.float32))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)
    assert np.all(np.isfinite(out.numpy()))
    hue = losses.HueChromaLoss(32)(np.zeros((2, 4, 66), np.float16), logits)
    assert hue.dtype == tf.float32


def test_mixed_precision_model_and_strategy():
    with layer_testing.global_dtype_policy("mixed_float16"):
        inputs = keras.Input((None, 6))
        logits = keras.layers.Dense(64)(inputs)
        model = keras.Model(inputs, logits)
        assert model.output.dtype == "float16"
        x = np.random.default_rng(6).normal(size=(2, 3, 6)).astype(np.float32)
        y = np.concatenate([np.full((2, 3, 64), 1 / 32)], -1).astype(np.float32)
        with tf.GradientTape() as tape:
            loss = losses.HistogramKL((32, 32))(y, model(x))
        grads = tape.gradient(loss, model.trainable_variables)
        assert loss.dtype == tf.float32 and loss.shape == (2, 3)
        assert all(np.all(np.isfinite(g.numpy())) for g in grads)

    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPUs (tests/conftest.py)")
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    y = _softmax(np.random.default_rng(7).normal(size=(4, 3, 8))).astype(np.float32)
    logits = np.random.default_rng(8).normal(size=(4, 3, 8)).astype(np.float32)
    ds = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((y, logits)).batch(4))
    loss_fn = losses.HistogramKL((8,))

    @tf.function
    def step(batch):
        def replica(yt, yp):
            return tf.reduce_sum(loss_fn(yt, yp)) / 12.0  # global number of points
        return strategy.reduce("SUM", strategy.run(replica, args=batch), axis=None)

    total = step(next(iter(ds))).numpy()
    np.testing.assert_allclose(total, loss_fn(y, logits).numpy().mean(), rtol=1e-5)


# ---------------------------------------------------------------------- HueChromaLoss
def test_hue_chroma_loss_by_hand():
    k = 4
    # hue target (.5, .5, 0, 0), predicted uniform: KL_H = log 2.
    # chroma target one-hot bin 1, predicted (.1, .4, .25, .25): KL_C = -log .4.
    y = np.array([[0.5, 0.5, 0, 0, 0, 1, 0, 0, 0.6, 0.1],
                  [0.5, 0.5, 0, 0, 0, 1, 0, 0, 0.0, 0.5],
                  [0.5, 0.5, 0, 0, 0, 1, 0, 0, 0.2, 0.9]], np.float32)
    q = np.tile(np.array([[0.25, 0.25, 0.25, 0.25, 0.1, 0.4, 0.25, 0.25]], np.float32), (3, 1))
    kl_h, kl_c = math.log(2), -math.log(0.4)
    paper = losses.HueChromaLoss(k, from_logits=False)(y, q).numpy()
    np.testing.assert_allclose(paper, [kl_c + 5 * 0.6 * kl_h, kl_c, kl_c + 5 * 0.2 * kl_h],
                               rtol=1e-6)
    released = losses.HueChromaLoss(k, lightness_weight=True, from_logits=False)(y, q).numpy()
    # min(3L, 1, 3(1 - L)) for L = .1, .5, .9: .3, 1, .3
    np.testing.assert_allclose(released, [0.3 * kl_c + 3 * kl_h, kl_c, 0.3 * kl_c + kl_h],
                               rtol=1e-5)
    custom = losses.HueChromaLoss(k, hue_weight=1.0)(y, np.log(q)).numpy()
    np.testing.assert_allclose(custom, [kl_c + 0.6 * kl_h, kl_c, kl_c + 0.2 * kl_h], rtol=1e-5)


def test_parts_are_the_hand_terms_and_sum_to_the_loss():
    # The same hand values as above, split: chroma = w_L KL_C, hue = 5 y_C KL_H (NumPy inputs).
    k = 4
    y = np.array([[0.5, 0.5, 0, 0, 0, 1, 0, 0, 0.6, 0.1],
                  [0.5, 0.5, 0, 0, 0, 1, 0, 0, 0.2, 0.9]], np.float32)
    q = np.tile(np.array([[0.25, 0.25, 0.25, 0.25, 0.1, 0.4, 0.25, 0.25]], np.float32), (2, 1))
    kl_h, kl_c = math.log(2), -math.log(0.4)
    loss = losses.HueChromaLoss(k, lightness_weight=True, from_logits=False)
    parts = loss.parts(y, q)
    assert list(parts) == ["chroma", "hue"]
    np.testing.assert_allclose(parts["chroma"].numpy(), [0.3 * kl_c, 0.3 * kl_c], rtol=1e-5)
    np.testing.assert_allclose(parts["hue"].numpy(), [3 * kl_h, kl_h], rtol=1e-5)
    np.testing.assert_allclose((parts["chroma"] + parts["hue"]).numpy(), loss(y, q).numpy(),
                               rtol=1e-7)
    # HistogramKL: one weighted KL per group, in group order.
    rng = np.random.default_rng(3)
    t = _softmax(rng.normal(size=(5, 6))).astype(np.float32)
    logits = rng.normal(size=(5, 6)).astype(np.float32)
    kl = losses.HistogramKL((2, 4), group_weights=[2.0, 0.5])
    a, b = kl.parts(t, logits)
    np.testing.assert_allclose(a.numpy(), 2.0 * _np_kl(t[:, :2], _softmax(logits[:, :2])),
                               rtol=1e-5)
    np.testing.assert_allclose(b.numpy(), 0.5 * _np_kl(t[:, 2:], _softmax(logits[:, 2:])),
                               rtol=1e-5)
    np.testing.assert_allclose((a + b).numpy(), kl(t, logits).numpy(), rtol=1e-7)


def test_hue_chroma_gradient_is_zero_for_hue_of_grey_pixels():
    y = np.zeros((1, 66), np.float32)
    y[0, 3] = y[0, 40] = 1.0  # chroma at centre y[64] = 0
    x = tf.Variable(np.random.default_rng(9).normal(size=(1, 64)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = losses.HueChromaLoss()(y, x)
    grad = tape.gradient(value, x).numpy()
    np.testing.assert_array_equal(grad[0, :32], 0.0)
    assert np.abs(grad[0, 32:]).sum() > 0


# ---------------------------------------------------------------------- LabRegressionLoss
def test_lab_regression_by_hand():
    y = np.array([[10.0, -20.0], [0.0, 0.0]], np.float32)
    p = np.array([[13.0, -16.0], [1.0, -1.0]], np.float16)
    out = losses.LabRegressionLoss()(y, p)
    np.testing.assert_allclose(out.numpy(), [25.0, 2.0])
    assert out.dtype == tf.float32
    assert losses.LabRegressionLoss(reduction="sum")(y, p).numpy() == 27.0


# ---------------------------------------------------------------------- config and errors
@pytest.mark.parametrize("loss", [
        losses.HistogramKL((16, 8), group_weights=(1.0, 2.0), from_logits=False,
                           reduction="sum", name="kl"),
        losses.HueChromaLoss(16, hue_weight=2.5, lightness_weight=True),
        losses.LabRegressionLoss(reduction="sum_over_batch_size")])
def test_config_round_trip(loss):
    """from_config and keras.saving (through JSON) copies: same class, config and values."""
    dim = {losses.HistogramKL: (24, 24), losses.HueChromaLoss: (34, 32),
           losses.LabRegressionLoss: (2, 2)}[type(loss)]
    rng = np.random.default_rng(10)
    y = rng.uniform(size=(3, dim[0])).astype(np.float32)
    p = rng.uniform(0.1, 1, size=(3, dim[1])).astype(np.float32)
    layer_testing.run_serialization_test(loss, call_args=(y, p), atol=0, rtol=1e-7)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="output_sizes"):
        losses.HistogramKL(())
    with pytest.raises(ValueError, match="output_sizes"):
        losses.HistogramKL((32, 0))
    with pytest.raises(ValueError, match="group_weights"):
        losses.HistogramKL((32, 32), group_weights=(1.0,))
    with pytest.raises(ValueError, match="hue_weight"):
        losses.HueChromaLoss(hue_weight=-1.0)
    with pytest.raises(ValueError, match=r"expected 64 \(sum of output_sizes"):
        losses.HistogramKL((32, 32))(np.zeros((2, 64), np.float32), np.zeros((2, 60)))
    with pytest.raises(ValueError, match="2K \\+ 2"):
        losses.HueChromaLoss()(np.zeros((2, 64), np.float32), np.zeros((2, 64)))
    with pytest.raises(ValueError, match="a and b"):
        losses.LabRegressionLoss()(np.zeros((2, 3), np.float32), np.zeros((2, 3)))
