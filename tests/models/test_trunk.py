"""Tests of build_trunk and the tap tables (on the small vgg_tiny architecture)."""
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models
from tfcolor.models import trunk as trunk_lib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)

VGG_ORDER = ["data", "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"]


def _gray(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


def test_tap_table_order_and_strides():
    assert list(models.TAP_STRIDES["vgg16"]) == VGG_ORDER
    assert list(models.TAP_STRIDES["vgg16"].values()) == [1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16,
                                                          16, 32, 32]
    assert models.TAP_STRIDES["vgg_tiny"] == models.TAP_STRIDES["vgg16"]
    assert dict(models.FOV_TAP_STRIDES["vgg16"]) == {"fov1": 64, "fov2": 128}
    assert set(models.architectures()) >= {"vgg16", "vgg_tiny"}


@pytest.mark.parametrize("taps, expected", [
        (None, VGG_ORDER),
        ("all", VGG_ORDER),
        ("hypercolumn", VGG_ORDER),
        ("fc6-fc7", ["fc6", "fc7"]),
        ("conv4_1-fc7", VGG_ORDER[8:]),
        ("no_data", VGG_ORDER[1:]),
        ("released", VGG_ORDER[1:]),
        (["fc7", "conv1_1", "fc7"], ["conv1_1", "fc7"]),  # hypercolumn order, no duplicates
        (["data", "conv5_1-conv5_3"], ["data", "conv5_1", "conv5_2", "conv5_3"]),
])
def test_resolve_taps(taps, expected):
    assert models.resolve_taps("vgg16", taps) == expected


def test_resolve_taps_fov():
    assert models.resolve_taps("vgg16", None, fov=True) == VGG_ORDER + ["fov1", "fov2"]
    assert models.resolve_taps("vgg16", "fc7-fov2", fov=True) == ["fc7", "fov1", "fov2"]
    assert list(models.tap_strides("vgg16", "fc7-fov2", fov=True).items()) == [
            ("fc7", 32), ("fov1", 64), ("fov2", 128)]


@pytest.mark.parametrize("taps, message", [
        ("conv9_9", "Unknown tap 'conv9_9'"),
        ("fc7-conv1_1", "reversed"),
        ([], "at least one"),
        ("fov1", "fov=True"),
        ([3], "strings"),
])
def test_resolve_taps_errors(taps, message):
    with pytest.raises(ValueError, match=message):
        models.resolve_taps("vgg16", taps)


@pytest.mark.parametrize("kwargs, message", [
        ({"arch": "vgg19"}, "Unknown trunk architecture"),
        ({"arch": "vgg_tiny", "batch_norm": "yes"}, "batch_norm must be one of"),
        ({"arch": "vgg_tiny", "batch_norm": "none", "sync_batch_norm": True}, "sync_batch_norm"),
        ({"arch": "vgg_tiny", "input_mean": "grey"}, "input_mean"),
])
def test_build_trunk_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build_trunk(**kwargs)


def test_output_shapes_follow_strides_on_odd_sizes():
    model = models.build_trunk("vgg_tiny", fov=True)
    out = model(_gray((2, 37, 45, 1)))
    strides = models.tap_strides("vgg_tiny", fov=True)
    assert list(out) == list(strides)
    for name, stride in strides.items():
        assert out[name].shape[:3] == (2, math.ceil(37 / stride), math.ceil(45 / stride)), name
    assert out["fov1"].shape[-1] == out["fov2"].shape[-1] == 1024
    assert sum(models.tap_channels(model).values()) == 785 + 2048


def test_data_tap_is_mean_shifted_input():
    model = models.build_trunk("vgg_tiny", taps="data", input_mean=0.25)
    x = _gray((1, 8, 8, 1))
    np.testing.assert_allclose(model(x)["data"].numpy(), x - 0.25, atol=1e-7)


def test_unselected_deep_layers_are_not_built():
    model = models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2")
    names = {layer.name for layer in model.layers}
    assert "conv2_2" in names and "conv3_1" not in names and "fc7" not in names


def test_batch_norm_variants():
    def bn_layers(m):
        return [layer for layer in m.layers if isinstance(layer, keras.layers.BatchNormalization)]

    free = models.build_trunk("vgg_tiny")
    assert len(bn_layers(free)) == 15
    assert all(not layer.trainable_weights for layer in bn_layers(free))
    standard = models.build_trunk("vgg_tiny", batch_norm="standard")
    assert all(len(layer.trainable_weights) == 2 for layer in bn_layers(standard))
    assert not bn_layers(models.build_trunk("vgg_tiny", batch_norm="none"))
    synced = models.build_trunk("vgg_tiny", sync_batch_norm=True)
    assert all(layer.synchronized for layer in bn_layers(synced))


def test_parameter_free_bn_normalizes_in_training_mode():
    model = models.build_trunk("vgg_tiny", taps="conv1_1")
    pre_relu = keras.Model(model.input, model.get_layer("conv1_1_bn").output)
    z = pre_relu(_gray((4, 16, 16, 1)), training=True).numpy().reshape(-1, 8)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.var(0), 1, atol=1e-2)


def test_keras_model_contract():
    """Config and keras.saving round trips, symbolic, eager and tf.function calls, mixed float16
    and bfloat16 (float16 outputs, float32 kernels), a training step (tests/layer_testing.py).
    Batch 2: training-mode BN over one 1x1 map would zero the gradients of fc6 and fc7."""
    result = layer_testing.run_layer_test(
            models.build_trunk, dict(arch="vgg_tiny", taps=["data", "conv3_1", "fc7"]),
            _gray((2, 32, 32, 1)),
            expected_output_shape={"data": (2, 32, 32, 1), "conv3_1": (2, 8, 8, 32),
                                   "fc7": (2, 1, 1, 128)},
            expected_num_trainable_weights=2 * 15, expected_num_non_trainable_weights=2 * 15)
    assert list(result.output) == ["data", "conv3_1", "fc7"]
    # The +FoV blocks (1024 channels, left out above for time): config round trips only.
    layer_testing.run_serialization_test(models.build_trunk("vgg_tiny", fov=True, taps="fov2"))


def test_tf_function_and_gradients():
    model = models.build_trunk("vgg_tiny")

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 1))])
    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.add_n([tf.reduce_mean(v) for v in out.values()])
        return loss, tape.gradient(loss, model.trainable_weights)

    loss, grads = loss_and_grads(tf.constant(_gray((2, 32, 32, 1))))
    assert np.isfinite(loss.numpy())
    assert all(g is not None for g in grads)
    loss, _ = loss_and_grads(tf.constant(_gray((1, 40, 24, 1))))  # other size, same graph
    assert np.isfinite(loss.numpy())


def test_mirrored_strategy_with_sync_batch_norm(two_replica_strategy, replica_training_step):
    strategy = two_replica_strategy
    with strategy.scope():
        model = models.build_trunk("vgg_tiny", taps="conv2_1", sync_batch_norm=True)
        optimizer = keras.optimizers.SGD(0.1)

    # Two dark images on replica 0, two bright ones on replica 1: per-replica statistics differ
    # a lot from the global ones.
    x = np.concatenate([0.1 * _gray((2, 16, 16, 1)), 0.9 + 0.1 * _gray((2, 16, 16, 1), 1)])
    pre_bn = keras.Model(model.input, model.get_layer("conv1_1").output)
    global_var = pre_bn(x).numpy().reshape(-1, 8).var(0)  # statistics of the global batch
    dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(x).batch(4))

    step = replica_training_step(strategy, model, optimizer,
                                 lambda out: tf.reduce_mean(out["conv2_1"]) / 2.0)
    for batch in dataset:
        loss, _ = step(batch)
        assert np.isfinite(strategy.reduce("SUM", loss, axis=None).numpy())
    # Synchronised BN: each replica saw half the batch, yet the moving variance moved towards
    # the variance of the whole batch (per-replica variances would be smaller on average).
    bn = model.get_layer("conv1_1_bn")
    momentum = bn.momentum
    batch_var = (bn.moving_variance.numpy() - momentum) / (1 - momentum)
    np.testing.assert_allclose(batch_var, global_var, rtol=1e-2)


def test_register_arch_fov_strides_follow_last_tap():
    assert dict(trunk_lib.FOV_TAP_STRIDES["vgg_tiny"]) == {"fov1": 64, "fov2": 128}


def test_colour_input_channels():
    trunk = models.build_trunk("vgg_tiny", taps=["data", "conv1_1"], input_channels=3,
                               batch_norm="none", input_mean=0.25)
    assert tuple(trunk.input.shape) == (None, None, None, 3)
    assert tuple(trunk.get_layer("conv1_1").kernel.shape) == (3, 3, 3, 8)
    x = _gray((2, 8, 8, 3))
    np.testing.assert_allclose(trunk(x)["data"], x - 0.25, rtol=1e-6)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="input_channels"):
            models.build_trunk("vgg_tiny", taps="conv1_1", input_channels=bad)
