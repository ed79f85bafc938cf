"""Tests for tfcolor.downstream.model: DownstreamModel."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models
from tfcolor.downstream import model as model_lib
from tfcolor.train.strategy import make_strategy  # one strategy per device set


# -- the model --------------------------------------------------------------------------------

def _tiny_trunk(channels=1):
    trunk = models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2", batch_norm="none")
    if channels == 3:
        from tfcolor import surgery
        trunk = surgery.gray_to_rgb_conv1(trunk)
    return trunk


def test_classification_model_shapes_and_scores():
    model = model_lib.DownstreamModel(_tiny_trunk(), "classification", 4, dropout=0.0)
    x = tf.random.uniform([2, 16, 16, 1])
    logits = model.logits(x)
    assert logits.shape == (2, 4)
    probs = model.predict_scores(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6)
    # No per-point path for a whole-image task (the old loop's tiled "sparse" logits are gone).
    with pytest.raises(ValueError, match="point_logits"):
        model.point_logits(x, tf.zeros([2, 3, 2], tf.int32))


def test_segmentation_dense_equals_sparse_on_the_grid():
    trunk = _tiny_trunk()
    strides = dict(models.tap_strides("vgg_tiny", list(trunk.output)))
    model = model_lib.DownstreamModel(trunk, "segmentation", 3, tap_strides=strides, hidden=8,
                                      dropout=0.0, grid_factor=4)
    x = tf.random.uniform([1, 16, 16, 1])
    dense = model.dense_logits(x).numpy()
    assert dense.shape == (1, 16, 16, 3)
    centers = tf.constant([[[0, 0], [4, 8], [12, 12]]], tf.int32)
    sparse = model.point_logits(x, centers).numpy()
    np.testing.assert_allclose(dense[0, [0, 4, 12], [0, 8, 12]], sparse[0], rtol=1e-4,
                               atol=1e-5)


def test_model_rejects_bad_input():
    model = model_lib.DownstreamModel(_tiny_trunk(), "classification", 2)
    with pytest.raises(ValueError, match="1-channel"):
        model.logits(tf.zeros([1, 8, 8, 3]))
    with pytest.raises(ValueError, match="task must be"):
        model_lib.DownstreamModel(_tiny_trunk(), "detection", 2)
    with pytest.raises(ValueError, match="tap_strides"):
        model_lib.DownstreamModel(_tiny_trunk(), "segmentation", 2)


def test_model_under_mirrored_strategy_and_mixed_precision():
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = model_lib.DownstreamModel(_tiny_trunk(), "classification", 3, dropout=0.0)

    @tf.function
    def step(x):
        return strategy.run(lambda v: model.logits(v), args=(x,))

    out = step(tf.random.uniform([2, 8, 8, 1]))
    assert all(t.shape[-1] == 3 for t in strategy.experimental_local_results(out))
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model16 = model_lib.DownstreamModel(_tiny_trunk(), "classification", 3)
        assert model16.logits(tf.random.uniform([1, 8, 8, 1])).dtype == tf.float16
    finally:
        keras.config.set_dtype_policy("float32")


def test_config_round_trip():
    trunk = _tiny_trunk()
    strides = dict(models.tap_strides("vgg_tiny", list(trunk.output)))
    model = model_lib.DownstreamModel(trunk, "segmentation", 3, tap_strides=strides, hidden=8)
    clone = model_lib.DownstreamModel.from_config(model.get_config())
    assert clone.taps == model.taps and clone.num_classes == 3 and clone.hidden == 8
