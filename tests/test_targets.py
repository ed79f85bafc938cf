"""Tests for tfcolor.targets.TargetBuilder.

The reference is independent NumPy: scikit-image for HSV hue and Lab, chroma = max - min, the
paper's bin formulas (int(v * K); Gaussian CDF via math.erf then int(u * K), as in the released
Caffe layers) and a naive loop over the windows.
"""
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from tfcolor.targets import KINDS, TargetBuilder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_testing  # noqa: E402

_erf = np.vectorize(math.erf)


def _uniform_bin(v, k=32):
    return np.minimum((v * k).astype(int), k - 1)


def _gauss_bin(v, k, mean=0.0, stddev=25.0):
    u = 0.5 * (1 + _erf((v - mean) / (stddev * math.sqrt(2))))
    return np.minimum((u * k).astype(int), k - 1)


def _window_hist(bin_map, centers, k, window):
    batch, height, width = bin_map.shape
    out = np.zeros(centers.shape[:2] + (k,))
    for b in range(batch):
        for p, (y, x) in enumerate(centers[b]):
            ys = np.arange(y - window // 2, y - window // 2 + window)
            xs = np.arange(x - window // 2, x - window // 2 + window)
            ys, xs = ys[(ys >= 0) & (ys < height)], xs[(xs >= 0) & (xs < width)]
            counts = np.bincount(bin_map[b][np.ix_(ys, xs)].ravel(), minlength=k)
            out[b, p] = counts / counts.sum() if counts.sum() else 1.0 / k
    return out


def _reference(kind, rgb, centers, window=7):
    rgb64 = rgb.astype(np.float64)
    b_idx = np.arange(rgb.shape[0])[:, None]
    cy, cx = centers[..., 0], centers[..., 1]
    if kind == "hue_chroma":
        hue = np.stack([skcolor.rgb2hsv(im)[..., 0] for im in rgb64])
        chroma = rgb64.max(-1) - rgb64.min(-1)
        hue = np.where(chroma == 0, 0.0, hue)
        return np.concatenate([
                _window_hist(_uniform_bin(hue), centers, 32, window),
                _window_hist(_uniform_bin(chroma), centers, 32, window),
                chroma[b_idx, cy, cx][..., None], rgb64.mean(-1)[b_idx, cy, cx][..., None]], -1)
    lab = np.stack([skcolor.rgb2lab(im) for im in rgb64])
    if kind == "lab_hist":
        return np.concatenate([_window_hist(_gauss_bin(lab[..., c], 32), centers, 32, window)
                               for c in (1, 2)], -1)
    if kind == "lab_joint":
        joint = _gauss_bin(lab[..., 1], 16) * 16 + _gauss_bin(lab[..., 2], 16)
        return _window_hist(joint, centers, 256, window)
    return lab[b_idx, cy, cx][..., 1:3]


def _case(seed=0, batch=2, height=14, width=17, points=9):
    rng = np.random.default_rng(seed)
    # Smooth-ish random colours plus some exact greys (hue undefined, chroma 0).
    rgb = rng.uniform(0, 1, (batch, height, width, 3))
    rgb[:, :3, :3] = rng.uniform(0, 1, (batch, 3, 3, 1))
    centers = np.stack([rng.integers(0, height, (batch, points)),
                        rng.integers(0, width, (batch, points))], -1)
    centers[:, :4] = [[0, 0], [height - 1, width - 1], [1, width - 2], [height // 2, 0]]
    return rgb.astype(np.float32), centers.astype(np.int32)


@pytest.mark.parametrize("method", ["gather", "summed_area"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_numpy_reference(kind, method):
    rgb, centers = _case()
    builder = TargetBuilder(kind, window=7, histogram_method=method)
    got = builder(rgb, centers).numpy()
    expected = _reference(kind, rgb, centers)
    assert got.shape == (2, 9, builder.target_dim) and got.dtype == np.float32
    atol = 2e-3 if kind == "lab_regression" else 1e-5
    np.testing.assert_allclose(got, expected, atol=atol)


def test_window_one_gives_one_hot_targets():
    rgb, centers = _case(1)
    got = TargetBuilder("lab_hist", window=1)(rgb, centers).numpy()
    np.testing.assert_allclose(got, _reference("lab_hist", rgb, centers, window=1), atol=1e-6)
    assert set(np.unique(got)) == {0.0, 1.0}
    np.testing.assert_array_equal(got.reshape(-1, 32).sum(-1), 1.0)


def test_constant_colour_by_hand():
    # Pure red: hue 0 -> bin 0, chroma 1 -> bin 31, lightness 1/3.
    rgb = np.zeros((1, 8, 8, 3), np.float32)
    rgb[..., 0] = 1.0
    y = TargetBuilder("hue_chroma")(rgb, [[[0, 0], [4, 4]]]).numpy()[0]
    np.testing.assert_array_equal(y[:, :32], np.eye(32)[[0, 0]])
    np.testing.assert_array_equal(y[:, 32:64], np.eye(32)[[31, 31]])
    np.testing.assert_allclose(y[:, 64:], [[1.0, 1 / 3], [1.0, 1 / 3]], rtol=1e-6)
    # Half blue (hue 2/3 -> bin 21), half grey (hue 0 -> bin 0, chroma 0) in a 3x3 window.
    rgb = np.full((1, 3, 4, 3), 0.5, np.float32)
    rgb[:, :, 2:] = [0.0, 0.0, 0.6]
    y = TargetBuilder("hue_chroma", window=3)(rgb, [[[1, 2]]]).numpy()[0, 0]
    expected_hue = np.zeros(32)
    expected_hue[[0, 21]] = [3 / 9, 6 / 9]
    expected_chroma = np.zeros(32)
    expected_chroma[[0, int(0.6 * 32)]] = [3 / 9, 6 / 9]
    np.testing.assert_allclose(y[:32], expected_hue, atol=1e-6)
    np.testing.assert_allclose(y[32:64], expected_chroma, atol=1e-6)
    np.testing.assert_allclose(y[64:], [0.6, 0.2], rtol=1e-6)


def test_sizes_follow_the_design_table():
    assert TargetBuilder().kind == "hue_chroma"
    expected = {"hue_chroma": ((32, 32), 66), "lab_hist": ((32, 32), 64),
                "lab_joint": ((256,), 256), "lab_regression": ((2,), 2)}
    for kind, (sizes, dim) in expected.items():
        builder = TargetBuilder(kind)
        assert builder.output_sizes == sizes and builder.target_dim == dim
    assert TargetBuilder("lab_joint", joint_bins=8).output_sizes == (64,)
    assert TargetBuilder("hue_chroma", num_bins=16).target_dim == 34


def test_split_names_the_parts():
    rgb, centers = _case(2)
    builder = TargetBuilder("hue_chroma")
    y = builder(rgb, centers)
    parts = builder.split(y)
    np.testing.assert_allclose(tf.reduce_sum(parts["hue"], -1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_array_equal(parts["lightness_center"].numpy(), y.numpy()[..., 65])


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind):
    builder = TargetBuilder(kind, window=5, num_bins=16, joint_bins=8, lab_mean=1.0,
                            lab_stddev=20.0, histogram_method="summed_area")
    rgb, centers = _case(3)
    layer_testing.run_serialization_test(builder, call_args=(rgb, centers), atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["hue_chroma", "lab_joint"])
def test_unknown_shapes_tf_data_and_xla(kind):
    rgb, centers = _case(4)
    builder = TargetBuilder(kind)
    expected = builder(rgb, centers).numpy()
    signature = [tf.TensorSpec([None, None, None, 3], tf.float32),
                 tf.TensorSpec([None, None, 2], tf.int32)]
    for jit in (False, True):
        fn = tf.function(builder, input_signature=signature, jit_compile=jit)
        np.testing.assert_allclose(fn(rgb, centers).numpy(), expected, atol=1e-6)
        out = fn.get_concrete_function().structured_outputs
        assert out.shape.as_list() == [None, None, builder.target_dim]
    ds = tf.data.Dataset.from_generator(
            lambda: iter([(rgb[0], centers[0]), (rgb[1], centers[1])]),
            output_signature=(tf.TensorSpec([None, None, 3], tf.float32),
                              tf.TensorSpec([None, 2], tf.int32)))
    ds = ds.batch(2).map(builder)
    assert ds.element_spec.shape.as_list() == [None, None, builder.target_dim]
    np.testing.assert_allclose(next(iter(ds)).numpy(), expected, atol=1e-6)


def test_float16_and_float_centers():
    rgb, centers = _case(5)
    rgb16 = rgb.astype(np.float16)
    builder = TargetBuilder("hue_chroma")
    got = builder(rgb16, centers.astype(np.float32)).numpy()
    expected = builder(rgb16.astype(np.float32), centers).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="kind"):
        TargetBuilder("lab")
    with pytest.raises(ValueError, match="window"):
        TargetBuilder(window=0)
    with pytest.raises(ValueError, match="histogram_method"):
        TargetBuilder(histogram_method="sat")
    builder = TargetBuilder()
    with pytest.raises(ValueError, match="3 channels"):
        builder(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 2, 2), np.int32))
    with pytest.raises(ValueError, match="batch, height, width, 3"):
        builder(np.zeros((4, 4, 3), np.float32), np.zeros((1, 2, 2), np.int32))
    with pytest.raises(ValueError, match="centers"):
        builder(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 2), np.int32))
    with pytest.raises(TypeError, match="float"):
        builder(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 2, 2), np.int32))
    with pytest.raises(ValueError, match=r"\[0(\.0)?, 1(\.0)?\]"):  # from tfcolor.color
        builder(np.full((1, 4, 4, 3), 255.0, np.float32), np.zeros((1, 2, 2), np.int32))
