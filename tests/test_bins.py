"""Tests for tfcolor.bins: bin specs and window histograms (decoding: tests/test_estimates.py).

References are independent of the implementation: the paper's integer formulas, Gaussian CDF
values via math.erf, a naive NumPy loop over windows, and hand-computed histograms.
"""
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import bins

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_testing  # noqa: E402


def _phi(x, mean=0.0, stddev=25.0):
    return 0.5 * (1.0 + math.erf((x - mean) / (stddev * math.sqrt(2.0))))


# ---------------------------------------------------------------------- bin specs
def test_uniform_bins_match_paper_formula():
    spec = bins.UniformBins(32)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 1, 1000), np.arange(33) / 32, [0.0, 1.0, 0.999999]])
    values = values.astype(np.float32)
    expected = np.minimum((values.astype(np.float64) * 32).astype(int), 31)
    np.testing.assert_array_equal(spec.encode(values).numpy(), expected)
    np.testing.assert_allclose(spec.centers, (np.arange(32) + 0.5) / 32)
    assert spec.encode(values).dtype == tf.int32


def test_uniform_bins_clip_out_of_range_and_nan():
    spec = bins.UniformBins(32)
    out = spec.encode(np.array([-0.5, 1.5, np.nan, np.inf, -np.inf], np.float32)).numpy()
    np.testing.assert_array_equal(out, [0, 31, 0, 31, 0])


def test_uniform_bins_general_range():
    spec = bins.UniformBins(4, low=-2.0, high=2.0)
    np.testing.assert_array_equal(spec.encode([-2.0, -1.01, -1.0, 0.5, 1.99, 2.0]).numpy(),
                                  [0, 0, 1, 2, 3, 3])
    np.testing.assert_allclose(spec.centers, [-1.5, -0.5, 0.5, 1.5])


def test_gaussian_quantile_bins_have_equal_mass():
    spec = bins.GaussianQuantileBins(32, 0.0, 25.0)
    edges = spec.edges
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(edges) == 33
    cdf = np.array([_phi(e) for e in edges[1:-1]])
    np.testing.assert_allclose(cdf, np.arange(1, 32) / 32, atol=1e-12)
    centre_cdf = np.array([_phi(c) for c in spec.centers])
    np.testing.assert_allclose(centre_cdf, (np.arange(32) + 0.5) / 32, atol=1e-12)
    # Symmetric around the mean.
    np.testing.assert_allclose(spec.centers, -spec.centers[::-1], atol=1e-9)


def test_gaussian_quantile_encode_matches_edges():
    spec = bins.GaussianQuantileBins(32, 3.0, 20.0)
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(3, 40, 2000), [-1e6, 1e6, 3.0]]).astype(np.float32)
    edges32 = spec.edges.astype(np.float32)
    expected = np.searchsorted(edges32[1:-1], values, side="right")
    np.testing.assert_array_equal(spec.encode(values).numpy(), expected)
    np.testing.assert_array_equal(spec.encode(spec.centers.astype(np.float32)).numpy(),
                                  np.arange(32))
    # Gaussian samples spread about evenly over the bins.
    counts = np.bincount(spec.encode(rng.normal(3, 20, 64000).astype(np.float32)).numpy(),
                         minlength=32)
    assert counts.min() > 1700 and counts.max() < 2300


def test_joint_bins_are_a_major():
    spec = bins.JointBins()
    assert spec.num_bins == 256
    marginal = bins.GaussianQuantileBins(16)
    rng = np.random.default_rng(2)
    ab = rng.normal(0, 30, (50, 2)).astype(np.float32)
    ka = marginal.encode(ab[:, 0]).numpy()
    kb = marginal.encode(ab[:, 1]).numpy()
    np.testing.assert_array_equal(spec.encode(ab).numpy(), ka * 16 + kb)
    np.testing.assert_allclose(spec.centers[3 * 16 + 5], [marginal.centers[3],
                                                         marginal.centers[5]])
    assert spec.centers.shape == (256, 2)


@pytest.mark.parametrize("spec", [
        bins.UniformBins(32, circular=True), bins.UniformBins(8, -1.0, 3.0),
        bins.GaussianQuantileBins(16, 1.0, 10.0),
        bins.JointBins(bins.GaussianQuantileBins(8), bins.GaussianQuantileBins(4, 2.0, 5.0))])
def test_config_round_trip(spec):
    import json
    restored = bins.deserialize(json.loads(json.dumps(bins.serialize(spec))))
    assert restored == spec
    np.testing.assert_array_equal(restored.centers, spec.centers)
    assert type(spec).from_config(spec.get_config()) == spec
    for revived in layer_testing.run_serialization_test(spec):  # and keras.saving
        assert revived == spec


def test_presets_and_get():
    assert bins.get("hue") == bins.UniformBins(32, circular=True)
    assert bins.get("chroma").num_bins == 32 and not bins.get("chroma").circular
    assert bins.get("lab_a") == bins.GaussianQuantileBins(32, 0.0, 25.0)
    assert bins.get("lab_ab").num_bins == 256
    with pytest.raises(ValueError, match="unknown bin spec preset"):
        bins.get("hsv")


@pytest.mark.parametrize("make, match", [
        (lambda: bins.UniformBins(0), "num_bins"),
        (lambda: bins.UniformBins(4, 1.0, 1.0), "low < high"),
        (lambda: bins.GaussianQuantileBins(8, 0.0, -1.0), "stddev > 0"),
        (lambda: bins.JointBins("hue"), "non-circular"),
        (lambda: bins.window_offsets(0), "window"),
        (lambda: bins.deserialize({"class_name": "Nope", "config": {}}), "unknown bin spec")])
def test_bad_configs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------- window histograms
def _naive_histograms(bin_map, centers, num_bins, window):
    batch, height, width = bin_map.shape
    out = np.zeros(centers.shape[:2] + (num_bins,))
    for b in range(batch):
        for p in range(centers.shape[1]):
            y, x = centers[b, p]
            counts = np.zeros(num_bins)
            for yy in range(y - window // 2, y - window // 2 + window):
                for xx in range(x - window // 2, x - window // 2 + window):
                    if 0 <= yy < height and 0 <= xx < width:
                        counts[bin_map[b, yy, xx]] += 1
            out[b, p] = counts / counts.sum() if counts.sum() else 1.0 / num_bins
    return out


def _random_case(seed, batch=2, height=9, width=11, points=12, num_bins=6):
    rng = np.random.default_rng(seed)
    bin_map = rng.integers(0, num_bins, (batch, height, width)).astype(np.int32)
    centers = np.stack([rng.integers(-4, height + 4, (batch, points)),
                        rng.integers(-4, width + 4, (batch, points))], -1).astype(np.int32)
    # Always include the six corners, the border and one far outside.
    centers[:, :6] = [[0, 0], [0, width - 1], [height - 1, 0], [height - 1, width - 1],
                      [height // 2, 0], [-20, -20]]
    return bin_map, centers


@pytest.mark.parametrize("method", bins.HISTOGRAM_METHODS)
@pytest.mark.parametrize("window", [1, 2, 3, 4, 7])
def test_window_histogram_matches_naive_loop(method, window):
    bin_map, centers = _random_case(window)
    got = bins.window_histogram(bin_map, centers, 6, window=window, method=method).numpy()
    expected = _naive_histograms(bin_map, centers, 6, window)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got[:, 5], 1.0 / 6)  # window entirely outside: uniform
    assert got.dtype == np.float32


def test_window_one_is_one_hot_of_centre():
    bin_map, centers = _random_case(5)
    centers = np.clip(centers, 0, [8, 10])
    got = bins.window_histogram(bin_map, centers, 6, window=1).numpy()
    expected = np.eye(6)[bin_map[np.arange(2)[:, None], centers[..., 0], centers[..., 1]]]
    np.testing.assert_array_equal(got, expected)


def test_float_centers_round_to_nearest_pixel():
    bin_map, centers = _random_case(6)
    jitter = np.random.default_rng(6).uniform(-0.49, 0.49, centers.shape)
    got = bins.window_histogram(bin_map, centers + jitter.astype(np.float32), 6, 3).numpy()
    np.testing.assert_allclose(got, _naive_histograms(bin_map, centers, 6, 3), atol=1e-6)


@pytest.mark.parametrize("method", bins.HISTOGRAM_METHODS)
def test_window_histogram_unknown_shapes_and_xla(method):
    bin_map, centers = _random_case(7)
    expected = _naive_histograms(bin_map, centers, 6, 7)
    signature = [tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None, 2],
                                                                            tf.int32)]
    for jit in (False, True):
        fn = tf.function(lambda m, c: bins.window_histogram(m, c, 6, 7, method),
                         input_signature=signature, jit_compile=jit)
        np.testing.assert_allclose(fn(bin_map, centers).numpy(), expected, atol=1e-6)
        out_spec = fn.get_concrete_function().structured_outputs
        assert out_spec.shape.as_list() == [None, None, 6]


def test_window_histogram_in_tf_data():
    bin_map, centers = _random_case(8)
    ds = tf.data.Dataset.from_tensor_slices((bin_map, centers)).batch(2).map(
            lambda m, c: bins.window_histogram(m, c, 6, 5))
    got = next(iter(ds)).numpy()
    np.testing.assert_allclose(got, _naive_histograms(bin_map, centers, 6, 5), atol=1e-6)


def test_spec_window_histogram_encodes_values():
    spec = bins.UniformBins(4)
    values = np.array([[[0.1, 0.3, 0.6], [0.9, 0.1, 0.1]]], np.float32)  # bins 0 1 2 / 3 0 0
    got = spec.window_histogram(values, [[[0, 1]]], window=3).numpy()
    np.testing.assert_allclose(got, [[[3 / 6, 1 / 6, 1 / 6, 1 / 6]]])


def test_histogram_from_indices_by_hand():
    indices = np.array([[[0, 1, 1, 3], [2, 2, 2, 2]], [[5, -1, 0, 0], [1, 1, 1, 1]]], np.int32)
    valid = np.array([[[1, 1, 1, 1], [1, 0, 0, 0]], [[1, 1, 1, 0], [0, 0, 0, 0]]], bool)
    got = bins.histogram_from_indices(indices, 4, valid).numpy()
    np.testing.assert_allclose(got, [[[0.25, 0.5, 0, 0.25], [0, 0, 1, 0]],
                                     [[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]]])
    np.testing.assert_allclose(bins.histogram_from_indices(indices[0, 0], 4).numpy(),
                               [0.25, 0.5, 0, 0.25])


def test_gather_windows_layout():
    image = np.arange(2 * 4 * 5 * 1, dtype=np.float32).reshape(2, 4, 5, 1)
    values, valid = bins.gather_windows(image, [[[0, 0]], [[3, 4]]], window=3)
    assert values.shape == (2, 1, 9, 1)
    np.testing.assert_array_equal(valid.numpy()[0, 0], [0, 0, 0, 0, 1, 1, 0, 1, 1])
    assert values.numpy()[0, 0, 4, 0] == image[0, 0, 0, 0]  # the centre index R//2*R + R//2
    assert values.numpy()[1, 0, 0, 0] == image[1, 2, 3, 0]


def test_window_histogram_bad_inputs():
    with pytest.raises(ValueError, match="centers"):
        bins.window_histogram(np.zeros((1, 4, 4), np.int32), np.zeros((1, 3), np.int32), 4)
    with pytest.raises(TypeError, match="integer bin indices"):
        bins.window_histogram(np.zeros((1, 4, 4), np.float32), np.zeros((1, 3, 2), np.int32), 4)
    with pytest.raises(ValueError, match="method"):
        bins.window_histogram(np.zeros((1, 4, 4), np.int32), np.zeros((1, 3, 2), np.int32), 4,
                              method="sat")
