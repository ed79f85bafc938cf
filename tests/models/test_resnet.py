"""Tests of the ResNet-152 trunk against keras.applications.ResNet152 (weights=None)."""
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models
from tfcolor.models import resnet

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)

TAPS = (["conv1", "res2a", "res2b", "res2c", "res3b1", "res3b4", "res3b7"]
        + [f"res4b{i}" for i in (5, 10, 15, 20, 25, 30, 35)] + ["res5c"])


@pytest.fixture(scope="module")
def resnet152():
    return models.build_trunk("resnet152")


@pytest.fixture(scope="module")
def keras_resnet152():
    return keras.applications.ResNet152(weights=None, include_top=False)


def _layers(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def test_tap_table():
    assert list(models.TAP_STRIDES["resnet152"]) == TAPS
    assert [models.TAP_STRIDES["resnet152"][t] for t in TAPS] == [2, 4, 4, 4] + [8] * 3 + [16] * 7 \
        + [32]
    assert resnet.block_names(3, 8) == ["res3a"] + [f"res3b{i}" for i in range(1, 8)]
    assert resnet.block_names(5, 3) == ["res5a", "res5b", "res5c"]


def test_taps_shapes(resnet152):
    out = resnet152(np.zeros((1, 64, 40, 1), "float32"))
    assert list(out) == TAPS
    for name, stride in models.TAP_STRIDES["resnet152"].items():
        assert out[name].shape[1:3] == (math.ceil(64 / stride), math.ceil(40 / stride)), name
    channels = models.tap_channels(resnet152)
    assert channels["conv1"] == 64 and channels["res2a"] == 256 and channels["res3b7"] == 512
    assert channels["res4b35"] == 1024 and channels["res5c"] == 2048


def test_layer_structure_matches_keras(resnet152, keras_resnet152):
    conv, bn = keras.layers.Conv2D, keras.layers.BatchNormalization
    assert len(_layers(resnet152, conv)) == len(_layers(keras_resnet152, conv)) == 155
    assert len(_layers(resnet152, bn)) == len(_layers(keras_resnet152, bn)) == 155
    assert len(_layers(resnet152, keras.layers.Add)) == 50
    ours = sorted(tuple(layer.kernel.shape) for layer in _layers(resnet152, conv))
    theirs = sorted(tuple(layer.kernel.shape) for layer in _layers(keras_resnet152, conv))
    theirs[theirs.index((7, 7, 3, 64))] = (7, 7, 1, 64)
    assert sorted(ours) == sorted(theirs)


def test_parameter_count_matches_keras(resnet152, keras_resnet152):
    # Keras' convolutions have biases, ours (followed by BN, as in Caffe) do not; Keras' conv1
    # sees 3 channels, ours 1. Both have standard BN (gamma, beta, moving mean and variance).
    keras_biases = sum(layer.filters for layer in _layers(keras_resnet152, keras.layers.Conv2D))
    expected = keras_resnet152.count_params() - keras_biases - 7 * 7 * 2 * 64
    assert resnet152.count_params() == expected
    assert expected == 58_288_960


def test_default_batch_norm_is_standard_and_options(resnet152):
    assert resnet152.get_layer("bn_conv1").scale and resnet152.get_layer("bn_conv1").center
    assert resnet152.get_layer("res2a_branch2a").bias is None
    free = models.build_trunk("resnet152", batch_norm="parameter_free", taps="res2a")
    assert not free.get_layer("bn2a_branch1").scale
    none = models.build_trunk("resnet152", batch_norm="none", taps="res2a")
    assert none.get_layer("res2a_branch2c").bias is not None
    assert not _layers(none, keras.layers.BatchNormalization)


def test_bottleneck_forward_by_hand():
    """res2a from the conv1 tap, recomputed with raw TF ops on the model's weights."""
    model = models.build_trunk("resnet152", batch_norm="none", taps=["conv1", "res2a"])
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 1)).astype("float32")
    out = model(x)
    pooled = tf.nn.max_pool2d(out["conv1"], 3, 2, "SAME")

    def conv(t, name, stride=1):
        kernel, bias = model.get_layer(name).get_weights()
        return tf.nn.conv2d(t, kernel, stride, "SAME") + bias

    y = tf.nn.relu(conv(pooled, "res2a_branch2a"))
    y = tf.nn.relu(conv(y, "res2a_branch2b"))
    y = conv(y, "res2a_branch2c")
    expected = tf.nn.relu(y + conv(pooled, "res2a_branch1")).numpy()
    np.testing.assert_allclose(out["res2a"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_fov():
    model = models.build_trunk("resnet152", fov=True, taps=["res2a", "fov1", "fov2"])
    out = model(np.zeros((1, 128, 128, 1), "float32"))
    assert [v.shape[1] for v in out.values()] == [32, 2, 1]
    assert list(models.tap_strides("resnet152", ["res2a", "fov1", "fov2"], fov=True).values()) \
        == [4, 64, 128]


def test_keras_model_contract():
    """Config and keras.saving round trips, symbolic, eager and tf.function calls, mixed float16
    and bfloat16, a training step (tests/layer_testing.py) up to res2b (bottlenecks, standard
    BN: gamma and beta trainable)."""
    x = np.random.default_rng(2).uniform(0, 1, (2, 24, 24, 1)).astype("float32")
    layer_testing.run_layer_test(
            models.build_trunk, dict(arch="resnet152", taps=["conv1", "res2b"]), x,
            expected_output_shape={"conv1": (2, 12, 12, 64), "res2b": (2, 6, 6, 256)},
            expected_num_trainable_weights=3 * 8, expected_num_non_trainable_weights=2 * 8)


@pytest.mark.slow  # a ResNet under two replicas and mixed precision (about 12-20 s); the other
# trunks' strategy tests stay in the default run
def test_mirrored_strategy_and_mixed_precision(two_replica_strategy, replica_training_step):
    strategy = two_replica_strategy
    with layer_testing.global_dtype_policy("mixed_float16"), strategy.scope():
        model = models.build_trunk("resnet152", taps=["conv1", "res2a"], sync_batch_norm=True)
        optimizer = keras.optimizers.SGD(0.01)
    x = np.random.default_rng(3).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(x).batch(4))

    step = replica_training_step(
            strategy, model, optimizer,
            lambda out: tf.reduce_mean(tf.cast(out["res2a"], tf.float32)) / 2.0)
    for batch in dataset:
        losses, outputs = step(batch)
        assert all(np.isfinite(v.numpy()) for v in strategy.experimental_local_results(losses))
        assert all(v.dtype == tf.float16
                   for v in strategy.experimental_local_results(outputs["res2a"]))
    assert model.get_layer("res2a_branch2b").kernel.dtype == "float32"
    assert model.get_layer("bn2a_branch2b").synchronized
