"""Tests for tfcolor.models.video: sparse pairs, the head, config round trip, mixed precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import layers as tfcolor_layers
from tfcolor.models import video as video_model


def _net(**kwargs):
    return video_model.VideoNet(**dict(dict(arch="vgg_tiny", taps=["conv1_2", "conv3_3", "fc7"],
                                            hidden=16, dropout=0.0), **kwargs))


def test_pair_logits_are_the_head_on_dense_hypercolumns_at_the_same_points():
    keras.utils.set_random_seed(1)
    net = _net()
    frame = tf.random.stateless_uniform([2, 32, 32, 3], (1, 2))
    # Points on the dense grid (every 4th pixel) so that dense cells are exact reads.
    rng = np.random.default_rng(0)
    first = (rng.integers(0, 8, (2, 5, 2)) * 4).astype(np.float32)
    second = (rng.integers(0, 8, (2, 5, 2)) * 4).astype(np.float32)
    logits = net.pairs(frame, first, second, training=False).numpy()
    assert logits.shape == (2, 5, 32)
    dense = tfcolor_layers.DenseHypercolumn(list(net.tap_strides.values()), grid_factor=4)(
            net.features(frame), frame).numpy()
    cells = lambda p: dense[np.arange(2)[:, None], p[..., 0] // 4, p[..., 1] // 4]  # noqa: E731
    h1, h2 = cells(first.astype(int)), cells(second.astype(int))
    np.testing.assert_allclose(net.hypercolumns(frame, first), h1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.head(tf.constant(h1), tf.constant(h2)), logits, rtol=1e-4,
                               atol=1e-5)
    # The dict call is the same; the order of the pair matters to the concatenating head.
    np.testing.assert_allclose(net({"frame": frame, "first": first, "second": second}), logits,
                               rtol=1e-6)
    assert not np.allclose(net.pairs(frame, second, first), logits)


def test_released_merge_shares_the_hidden_layer_between_locations():
    net = _net(merge="hidden")
    head = net.head
    channels = sum(int(net.trunk.output[t].shape[-1]) for t in net.taps)
    assert head.fc.kernel.shape == (channels, 16) and head.classify.kernel.shape == (32, 32)
    concat = _net()
    assert concat.head.fc.kernel.shape == (2 * channels, 16)
    x = tf.random.stateless_normal([1, 3, channels], (3, 4))
    y = tf.random.stateless_normal([1, 3, channels], (5, 6))
    hidden = lambda v: tf.nn.relu(v @ head.fc.kernel + head.fc.bias)  # noqa: E731
    expected = tf.concat([hidden(x), hidden(y)], -1) @ head.classify.kernel + head.classify.bias
    np.testing.assert_allclose(head(x, y), expected, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    net = _net(input_channels=1, merge="hidden", bins=8)
    config = net.get_config()
    clone = video_model.VideoNet.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(net.get_weights())
    frame = tf.random.stateless_uniform([1, 24, 24, 1], (7, 8))
    points = tf.constant([[[3.0, 5.5], [20.0, 1.0]]])
    np.testing.assert_allclose(clone.pairs(frame, points, points[:, ::-1]),
                               net.pairs(frame, points, points[:, ::-1]), rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(net))
    assert isinstance(restored, video_model.VideoNet) and restored.head.bins == 8
    # A grey network reads colour frames as their grey, (R + G + B) / 3.
    rgb = tf.random.stateless_uniform([1, 24, 24, 3], (9, 9))
    np.testing.assert_allclose(net.pairs(rgb, points, points),
                               net.pairs(tf.reduce_mean(rgb, -1, keepdims=True), points, points),
                               rtol=1e-6)


def test_given_trunk_is_used_not_copied_and_bad_ones_are_named():
    net = _net()
    other = video_model.VideoNet(trunk=net.trunk, tap_strides={"conv1_2": 1, "fc7": 16},
                                 hidden=8)
    assert {id(v) for v in other.trunk.weights} == {id(v) for v in net.trunk.weights}
    assert other.pairs(tf.zeros([1, 16, 16, 3]), tf.zeros([1, 2, 2]), tf.ones([1, 2, 2])
                       ).shape == (1, 2, 32)
    with pytest.raises(ValueError, match="needs tap_strides"):
        video_model.VideoNet(trunk=net.trunk)
    with pytest.raises(ValueError, match=r"does not output taps \['pool5'\]"):
        video_model.VideoNet(trunk=net.trunk, tap_strides={"pool5": 32})
    with pytest.raises(ValueError, match="input_channels=1"):
        video_model.VideoNet(trunk=net.trunk, tap_strides={"fc7": 16}, input_channels=1)
    with pytest.raises(NotImplementedError, match="not serialised"):
        other.get_config()
    with pytest.raises(ValueError, match="merge"):
        _net(merge="sum")


def test_mixed_precision_logits_are_float16_and_finite():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        net = _net()
        logits = net.pairs(tf.random.stateless_uniform([1, 16, 16, 3], (1, 1)),
                           tf.constant([[[1.0, 2.0]]]), tf.constant([[[9.5, 3.0]]]))
    finally:
        keras.config.set_dtype_policy(previous)
    assert logits.dtype == tf.float16 and np.all(np.isfinite(logits.numpy()))
