"""Tests for tfcolor.downstream.model: the per-point losses and DownstreamModel."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models
from tfcolor.downstream import model as model_lib
from tfcolor.train.strategy import make_strategy  # one strategy per device set


# -- losses -----------------------------------------------------------------------------------

def test_softmax_loss_matches_keras_and_zero_rows_cost_nothing():
    logits = tf.constant([[[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]])
    y = tf.constant([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    loss = model_lib.task_loss("segmentation")(y, logits).numpy()
    expected = keras.losses.categorical_crossentropy(y[0, :1], logits[0, :1],
                                                     from_logits=True).numpy()
    np.testing.assert_allclose(loss[0, 0], expected[0], rtol=1e-6)
    assert loss[0, 1] == 0.0


def test_multilabel_loss_masks_ignored_classes():
    logits = tf.constant([[[2.0, -1.0, 3.0]]])
    y = tf.constant([[[1.0, 0.0, -1.0]]])
    loss = model_lib.task_loss("multilabel")(y, logits).numpy()[0, 0]
    expected = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))
    assert loss == pytest.approx(expected, rel=1e-6)


# -- the model --------------------------------------------------------------------------------

def _tiny_trunk(channels=1):
    trunk = models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2", batch_norm="none")
    if channels == 3:
        from tfcolor import surgery
        trunk = surgery.gray_to_rgb_conv1(trunk)
    return trunk


def test_classification_model_shapes_and_sparse_repeats_logits():
    model = model_lib.DownstreamModel(_tiny_trunk(), "classification", 4, dropout=0.0)
    x = tf.random.uniform([2, 16, 16, 1])
    logits = model.logits(x)
    assert logits.shape == (2, 4)
    sparse = model.sparse(x, tf.zeros([2, 3, 2], tf.int32))
    np.testing.assert_allclose(sparse[:, 1], logits, rtol=1e-5, atol=1e-6)
    probs = model.predict_scores(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_segmentation_dense_equals_sparse_on_the_grid():
    trunk = _tiny_trunk()
    strides = dict(models.tap_strides("vgg_tiny", list(trunk.output)))
    model = model_lib.DownstreamModel(trunk, "segmentation", 3, tap_strides=strides, hidden=8,
                                dropout=0.0, grid_factor=4)
    x = tf.random.uniform([1, 16, 16, 1])
    dense = model.dense_logits(x).numpy()
    assert dense.shape == (1, 16, 16, 3)
    centers = tf.constant([[[0, 0], [4, 8], [12, 12]]], tf.int32)
    sparse = model.sparse(x, centers).numpy()
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
