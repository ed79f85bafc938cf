"""Tests of the VGG-16 trunk against keras.applications.VGG16 and the paper's tap table."""
import math
import os
import sys

import keras
import numpy as np
import pytest

from tfcolor import models
from tfcolor.models import vgg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)


@pytest.fixture(scope="module")
def vgg16():
    return models.build_trunk("vgg16")


@pytest.fixture(scope="module")
def keras_vgg16():
    return keras.applications.VGG16(weights=None, include_top=True)


def test_hypercolumn_has_12417_channels(vgg16):
    channels = models.tap_channels(vgg16)
    assert list(channels) == list(models.TAP_STRIDES["vgg16"])
    assert sum(channels.values()) == 12417  # METHOD.md section 3


def test_tap_shapes_match_strides(vgg16):
    out = vgg16(np.zeros((1, 64, 96, 1), "float32"))
    for name, stride in models.TAP_STRIDES["vgg16"].items():
        assert out[name].shape[1:3] == (math.ceil(64 / stride), math.ceil(96 / stride)), name


def test_kernel_shapes_match_keras_vgg16(vgg16, keras_vgg16):
    for ours, theirs in vgg.KERAS_VGG16_NAMES.items():
        kernel = vgg16.get_layer(ours).kernel.shape
        bias = vgg16.get_layer(ours).bias.shape
        ref_kernel = tuple(keras_vgg16.get_layer(theirs).kernel.shape)
        assert bias == keras_vgg16.get_layer(theirs).bias.shape, ours
        if ours == "conv1_1":
            assert kernel == ref_kernel[:2] + (1,) + ref_kernel[3:]
        elif ours in ("fc6", "fc7"):  # dense (in, out) -> conv (k, k, in / k^2, out)
            assert int(np.prod(kernel[:3])) == ref_kernel[0] and kernel[3] == ref_kernel[1]
        else:
            assert kernel == ref_kernel, ours


def test_parameter_count_relative_to_keras(vgg16, keras_vgg16):
    # Keras' trainable weights minus: conv1_1's two missing input channels (3*3*2*64) and the
    # classifier (fc8 = "predictions"). Parameter-free BN adds no trainable weights.
    predictions = keras_vgg16.get_layer("predictions").count_params()
    expected = keras_vgg16.count_params() - 3 * 3 * 2 * 64 - predictions
    trainable = sum(int(np.prod(w.shape)) for w in vgg16.trainable_weights)
    assert trainable == expected
    # The BN moving mean and variance add 2 values per channel of every tap but "data".
    assert vgg16.count_params() - trainable == 2 * (12417 - 1)


def test_forward_matches_keras_vgg16_with_copied_weights():
    """Without BN, our trunk = keras VGG16 on (grey - mean) replicated to RGB, conv1 / 3."""
    ours = models.build_trunk("vgg16", batch_norm="none", taps="conv5_3", input_mean=0.4488)
    ref = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 48, 3))
    rng = np.random.default_rng(0)
    for name in vgg.CONV_NAMES:
        kernel, bias = ref.get_layer(vgg.KERAS_VGG16_NAMES[name]).get_weights()
        if name == "conv1_1":
            # Our grey input x feeds a 1-channel conv; the same result from RGB (x, x, x) needs
            # the grey kernel spread evenly over the three channels.
            grey_kernel = rng.normal(0, 0.1, kernel[:, :, :1].shape).astype("float32")
            ours.get_layer(name).set_weights([grey_kernel, bias])
            kernel = np.repeat(grey_kernel / 3.0, 3, axis=2)
            ref.get_layer(vgg.KERAS_VGG16_NAMES[name]).set_weights([kernel, bias])
        else:
            ours.get_layer(name).set_weights([kernel, bias])
    gray = rng.uniform(0, 1, (2, 32, 48, 1)).astype("float32")
    ref_features = keras.Model(ref.input, ref.get_layer("block5_conv3").output)
    expected = ref_features(np.repeat(gray - 0.4488, 3, axis=-1)).numpy()
    got = ours(gray)["conv5_3"].numpy()
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_vgg_tiny_same_structure():
    tiny = models.build_trunk("vgg_tiny")
    assert list(models.tap_channels(tiny)) == list(models.TAP_STRIDES["vgg16"])
    assert sum(models.tap_channels(tiny).values()) == 785
    assert tiny.get_layer("fc6").kernel.shape == (7, 7, 64, 128)


def test_fov_taps():
    model = models.build_trunk("vgg_tiny", fov=True, taps="fc7-fov2")
    out = model(np.zeros((1, 256, 256, 1), "float32"))
    assert {k: v.shape[1] for k, v in out.items()} == {"fc7": 8, "fov1": 4, "fov2": 2}
    assert model.get_layer("fov1").kernel.shape == (3, 3, 128, 1024)
    assert model.get_layer("fov2").kernel.shape == (3, 3, 1024, 1024)


def test_keras_model_contract():
    """Config and keras.saving round trips, symbolic, eager and tf.function calls, mixed float16
    and bfloat16, a training step (tests/layer_testing.py) on the full-width first block (the
    rest of VGG-16 is vgg_tiny's structure at 8x the width, tested in test_trunk.py)."""
    x = np.random.default_rng(1).uniform(0, 1, (1, 8, 8, 1)).astype("float32")
    layer_testing.run_layer_test(
            models.build_trunk, dict(arch="vgg16", taps="data-conv1_2"), x,
            expected_output_shape={"data": (1, 8, 8, 1), "conv1_1": (1, 8, 8, 64),
                                   "conv1_2": (1, 8, 8, 64)},
            expected_num_trainable_weights=4, expected_num_non_trainable_weights=4)
