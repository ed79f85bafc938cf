"""Tests of the AlexNet trunk: tap table, parameter count, forward pass against raw TF ops."""
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)

# bvlc_alexnet (Caffe, grouped, RGB, with the 1000-way fc8) has 60,965,224 parameters.
BVLC_ALEXNET_PARAMS = 60_965_224
FC8_PARAMS = 4096 * 1000 + 1000
CONV1_RGB_EXTRA = 11 * 11 * 2 * 96  # our conv1 sees 1 channel instead of 3


@pytest.fixture(scope="module")
def alexnet():
    return models.build_trunk("alexnet")


def test_taps_strides_and_shapes(alexnet):
    assert list(models.TAP_STRIDES["alexnet"].items()) == [
            ("data", 1), ("conv1", 4), ("conv2", 8), ("conv3", 16), ("conv4", 16),
            ("conv5", 16), ("fc6", 32), ("fc7", 32)]
    out = alexnet(np.zeros((1, 70, 64, 1), "float32"))
    assert list(out) == list(models.TAP_STRIDES["alexnet"])
    for name, stride in models.TAP_STRIDES["alexnet"].items():
        assert out[name].shape[1:3] == (math.ceil(70 / stride), math.ceil(64 / stride)), name
    assert sum(models.tap_channels(alexnet).values()) == 9569


def test_parameter_count_matches_bvlc_alexnet(alexnet):
    trainable = sum(int(np.prod(w.shape)) for w in alexnet.trainable_weights)
    assert trainable == BVLC_ALEXNET_PARAMS - FC8_PARAMS - CONV1_RGB_EXTRA
    ungrouped = models.build_trunk("alexnet", groups=1, taps="conv1-conv5")
    # groups=1 doubles the kernels of conv2, conv4 and conv5.
    assert ungrouped.get_layer("conv2").kernel.shape == (5, 5, 96, 256)
    assert alexnet.get_layer("conv2").kernel.shape == (5, 5, 48, 256)


def _reference_forward(model, gray, mean):
    """AlexNet from raw tf.nn ops with the model's weights (BN in inference mode)."""
    def conv(x, name, stride, groups):
        kernel, bias = model.get_layer(name).get_weights()[:2]
        xs = tf.split(x, groups, axis=-1)
        ks = np.split(kernel, groups, axis=-1)
        y = tf.concat([tf.nn.conv2d(a, k, stride, "SAME") for a, k in zip(xs, ks)], -1) + bias
        mean_, var = model.get_layer(name + "_bn").get_weights()
        return tf.nn.relu((y - mean_) / np.sqrt(var + 1e-5))

    def lrn(x):  # Caffe: local_size 5, alpha 1e-4 / 5, beta 0.75, k 1
        return tf.nn.local_response_normalization(x, 2, 1.0, 1e-4 / 5, 0.75)

    def pool(x):
        return tf.nn.max_pool2d(x, 3, 2, "SAME")

    out = {"data": gray - mean}
    out["conv1"] = conv(out["data"], "conv1", 4, 1)
    out["conv2"] = conv(pool(lrn(out["conv1"])), "conv2", 1, 2)
    out["conv3"] = conv(pool(lrn(out["conv2"])), "conv3", 1, 1)
    out["conv4"] = conv(out["conv3"], "conv4", 1, 2)
    out["conv5"] = conv(out["conv4"], "conv5", 1, 2)
    out["fc6"] = conv(pool(out["conv5"]), "fc6", 1, 1)
    out["fc7"] = conv(out["fc6"], "fc7", 1, 1)
    return out


def test_forward_matches_raw_tf_reference(alexnet):
    rng = np.random.default_rng(0)
    for layer in alexnet.layers:  # non-trivial moving statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.normal(0, 0.1, n), rng.uniform(0.5, 2, n)])
    gray = rng.uniform(0, 1, (2, 67, 64, 1)).astype("float32")
    got = alexnet(gray)
    expected = _reference_forward(alexnet, gray, 0.4488)
    for name in models.TAP_STRIDES["alexnet"]:
        ref = np.asarray(expected[name])
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=1e-4,
                                   atol=1e-4 * np.abs(ref).max(), err_msg=name)


def test_bad_groups():
    with pytest.raises(ValueError, match="groups must be 1 or 2"):
        models.build_trunk("alexnet", groups=3)


def test_keras_model_contract():
    """Config and keras.saving round trips, symbolic, eager and tf.function calls, mixed float16
    and bfloat16, a training step (tests/layer_testing.py) on conv1-conv2 (LRN, pooling, grouped
    conv2; conv3-fc7 are plain convolutions, left out for time)."""
    x = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    layer_testing.run_layer_test(
            models.build_trunk, dict(arch="alexnet", taps="conv1-conv2", fov=False), x,
            expected_output_shape={"conv1": (2, 8, 8, 96), "conv2": (2, 4, 4, 256)},
            expected_num_trainable_weights=4, expected_num_non_trainable_weights=4)


def test_fov_on_alexnet():
    model = models.build_trunk("alexnet", fov=True, taps="fc7-fov2")
    assert list(models.tap_strides("alexnet", "fc7-fov2", fov=True).values()) == [32, 64, 128]
    out = model(np.zeros((1, 128, 128, 1), "float32"))
    assert [v.shape[1] for v in out.values()] == [4, 2, 1]


def test_mirrored_strategy_training_step(two_replica_strategy, replica_training_step):
    strategy = two_replica_strategy
    with strategy.scope():
        model = models.build_trunk("alexnet", taps="conv1-conv2", sync_batch_norm=True)
        optimizer = keras.optimizers.SGD(0.01)
    x = np.random.default_rng(3).uniform(0, 1, (4, 64, 64, 1)).astype("float32")
    dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(x).batch(4))
    before = model.get_layer("conv2").kernel.numpy().copy()

    step = replica_training_step(strategy, model, optimizer,
                                 lambda out: tf.reduce_mean(tf.square(out["conv2"])) / 2.0)
    for batch in dataset:
        loss, _ = step(batch)
        assert np.isfinite(strategy.reduce("SUM", loss, axis=None).numpy())
    assert not np.allclose(model.get_layer("conv2").kernel.numpy(), before)  # grouped conv learns
