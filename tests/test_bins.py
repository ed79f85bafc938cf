"""Tests for tfcolor.bins: bin specs, window histograms, decoding and chromatic fading.

References are independent of the implementation: the paper's integer formulas, Gaussian CDF
values via math.erf, a naive NumPy loop over windows, and hand-computed histograms.
"""
import math
import os
import statistics
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


# ---------------------------------------------------------------------- decoding
def test_mode_median_expectation_by_hand():
    spec = bins.UniformBins(4)  # edges 0 .25 .5 .75 1, centres 0.125 0.375 0.625 0.875
    probs = np.array([[0.1, 0.2, 0.3, 0.4],
                      [0.5, 0.0, 0.0, 0.5],
                      [0.3, 0.1, 0.5, 0.1]], np.float32)
    np.testing.assert_allclose(spec.estimate(probs, "mode").numpy(), [0.875, 0.125, 0.625])
    # Released rule, cumulative sums: .1 .3 .6 1 -> bin 2; .5 -> bin 0; .3 .4 .9 -> bin 2.
    np.testing.assert_allclose(spec.estimate(probs, "median_bin_centre").numpy(),
                               [0.625, 0.125, 0.625])
    np.testing.assert_allclose(spec.median(probs, interpolation="bin_centre").numpy(),
                               [0.625, 0.125, 0.625])
    np.testing.assert_allclose(spec.estimate(probs, "expectation").numpy(),
                               [0.0125 + 0.075 + 0.1875 + 0.35, 0.5,
                                0.0375 + 0.0375 + 0.3125 + 0.0875], rtol=1e-6)


def test_interpolated_median_by_hand():
    # The paper's median: the CDF (0 at the lower edge, cumulative sums at the upper edges) is
    # interpolated linearly; the median is where it reaches 0.5.
    spec = bins.UniformBins(4)
    probs = np.array([[0.1, 0.2, 0.3, 0.4],   # CDF .1 .3 .6: bin 2 at (.5-.3)/.3 = 2/3
                      [0.5, 0.0, 0.0, 0.5],   # reaches .5 exactly at the upper edge of bin 0
                      [0.3, 0.1, 0.5, 0.1],   # CDF .3 .4 .9: bin 2 at (.5-.4)/.5 = 1/5
                      [0.0, 1.0, 0.0, 0.0],   # a delta: the middle of its bin
                      [0.2, 0.4, 0.6, 0.8]],  # total 2: half the total mass, 1.0 -> 2/3 of bin 2
                     np.float32)
    want = [0.5 + (2 / 3) * 0.25, 0.25, 0.5 + 0.2 * 0.25, 0.375, 0.5 + (0.4 / 0.6) * 0.25]
    np.testing.assert_allclose(spec.estimate(probs, "median").numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(spec.median(probs).numpy(), want, rtol=1e-6)
    # Chroma preset (K = 32 on [0, 1]): 0.7 in bin 12, 0.3 in bin 20 -> (12 + 0.5/0.7) / 32.
    chroma = np.zeros(32, np.float32)
    chroma[12], chroma[20] = 0.7, 0.3
    np.testing.assert_allclose(bins.get("chroma").estimate(chroma, "median").numpy(),
                               (12 + 0.5 / 0.7) / 32, rtol=1e-6)
    with pytest.raises(ValueError, match="interpolation"):
        spec.median(probs, interpolation="nearest")


def test_interpolated_median_is_continuous_where_the_bin_centre_rule_jumps():
    # Moving mass from bin 1 to bin 2 moves the 0.5-crossing across the edge at 0.5: the
    # interpolated median passes through it continuously (steps <= the mass step / density),
    # the released rule jumps by a whole bin (0.375 -> 0.625).
    spec = bins.UniformBins(4)
    t = np.linspace(0.0, 0.4, 81, dtype=np.float32)
    probs = np.stack([np.full_like(t, 0.1), 0.5 - t, 0.1 + t, np.full_like(t, 0.3)], axis=-1)
    linear = spec.estimate(probs, "median").numpy()
    centre = spec.estimate(probs, "median_bin_centre").numpy()
    assert np.all(np.diff(linear) >= -1e-6)  # monotone as mass moves up
    assert np.max(np.abs(np.diff(linear))) < 0.02
    assert set(np.round(centre, 6)) == {0.375, 0.625}
    np.testing.assert_allclose(linear[0], 0.25 + (0.4 / 0.5) * 0.25, rtol=1e-6)


def test_gaussian_median_interpolates_in_quantile_space_and_joint_expectation():
    spec = bins.GaussianQuantileBins(8)
    probs = np.zeros((3, 8), np.float32)
    probs[0, 2], probs[0, 6] = 0.6, 0.4
    probs[1, 5] = 1.0
    probs[2, 0] = 1.0  # unbounded end bin: still finite
    np.testing.assert_allclose(spec.estimate(probs, "median_bin_centre").numpy(),
                               [spec.centers[2], spec.centers[5], spec.centers[0]], rtol=1e-6)
    # Bins are uniform in u = Phi((v - 0)/25): bin 2 spans u in [2/8, 3/8]; the crossing is at
    # 0.5/0.6 of it. A delta gives the bin's midpoint in u, which is the stored centre.
    dist = statistics.NormalDist(0.0, 25.0)
    want = [dist.inv_cdf((2 + 0.5 / 0.6) / 8), spec.centers[5], spec.centers[0]]
    np.testing.assert_allclose(spec.estimate(probs, "median").numpy(), want, rtol=1e-5)
    joint = bins.JointBins(bins.GaussianQuantileBins(4), bins.GaussianQuantileBins(4))
    p = np.zeros(16, np.float32)
    p[1 * 4 + 2], p[3 * 4 + 0] = 0.25, 0.75
    expected = 0.25 * joint.centers[6] + 0.75 * joint.centers[12]
    np.testing.assert_allclose(joint.estimate(p, "expectation").numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(joint.estimate(p, "mode").numpy(), joint.centers[12], rtol=1e-6)


def test_median_undefined_for_hue_and_joint():
    with pytest.raises(ValueError, match="circular"):
        bins.get("hue").estimate(np.full(32, 1 / 32, np.float32), "median")
    with pytest.raises(ValueError, match="joint"):
        bins.get("lab_ab").estimate(np.full(256, 1 / 256, np.float32), "median")
    with pytest.raises(ValueError, match="circular"):
        bins.get("hue").estimate(np.full(32, 1 / 32, np.float32), "median_bin_centre")
    with pytest.raises(ValueError, match="method"):
        bins.get("chroma").estimate(np.full(32, 1 / 32, np.float32), "mean")
    with pytest.raises(ValueError, match="last axis of size 32"):
        bins.get("chroma").estimate(np.full(16, 1 / 16, np.float32), "mode")


def test_circular_expectation_wraps_around():
    probs = np.zeros((3, 32), np.float32)
    probs[0, 0], probs[0, 31] = 0.5, 0.5  # symmetric around hue 0
    probs[1, 0], probs[1, 31] = 0.3, 0.7  # just below 1
    probs[2, 8] = 1.0  # one bin: its centre, |z| = 1/K
    hue, mag = bins.circular_expectation(probs)
    hue, mag = hue.numpy(), mag.numpy()
    assert min(hue[0], 1 - hue[0]) < 1e-6
    assert 0 <= hue[0] < 1
    assert 1 - 1 / 32 < hue[1] < 1  # the linear expectation would give ~0.7
    assert abs(hue[2] - 8.5 / 32) < 1e-6
    # By hand: |z| = (1/K) |0.5 e^{i pi/32} + 0.5 e^{-i pi/32}| = cos(pi/32) / 32.
    np.testing.assert_allclose(mag[0], math.cos(math.pi / 32) / 32, rtol=1e-6)
    np.testing.assert_allclose(mag[2], 1 / 32, rtol=1e-6)
    linear = bins.UniformBins(32).estimate(probs[0], "expectation").numpy()
    assert abs(linear - 0.5) < 1e-6  # what a non-circular expectation would (wrongly) say
    np.testing.assert_allclose(bins.get("hue").estimate(probs, "expectation").numpy(), hue)


def test_chromatic_fading_factors_by_hand():
    k = 32
    probs = np.zeros((4, k), np.float32)
    probs[0, 3] = 1.0  # |z| = 1/32 = 0.03125
    probs[1, 0], probs[1, 16] = 0.5, 0.5  # opposite hues: |z| = 0
    probs[2, 5:11] = 1.0 / 6  # six adjacent bins
    probs[3] = 1.0 / k  # uniform: |z| = 0
    six = abs(sum(np.exp(1j * 2 * np.pi * (j + 0.5) / k) for j in range(5, 11))) / 6 / k
    mags = np.array([1 / 32, 0.0, six, 0.0])
    _, mag = bins.circular_expectation(probs)
    np.testing.assert_allclose(mag.numpy(), mags, atol=1e-7)
    paper = bins.chromatic_fading_factor(mag, 0.03, "paper").numpy()
    released = bins.chromatic_fading_factor(mag, 0.03, "released").numpy()
    np.testing.assert_allclose(paper, [0.03125 / 0.03, 1.0, max(six / 0.03, 1.0), 1.0],
                               rtol=1e-5)
    np.testing.assert_allclose(released, [1.0, 0.0, min(six / 0.03, 1.0), 0.0], atol=1e-5)
    assert 0.95 < released[2] < 1.0  # six adjacent bins fade slightly: |z| = 0.02952
    chroma = bins.apply_chromatic_fading(np.full(4, 0.5, np.float32), probs, variant="released")
    np.testing.assert_allclose(chroma.numpy(), 0.5 * released, atol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        bins.chromatic_fading_factor(mag, 0.03, "min")
    with pytest.raises(ValueError, match="eta"):
        bins.chromatic_fading_factor(mag, 0.0)


def test_default_fading_reduces_the_chroma_of_a_flat_hue_histogram():
    # A flat hue histogram has z = 0: the default (released, min) fading sends chroma to 0, the
    # printed max form leaves it unchanged; a peaked one (|z| = 1/32 > eta) keeps its chroma.
    hue_probs = np.zeros((3, 32), np.float32)
    hue_probs[0] = 1.0 / 32
    hue_probs[1, 7] = 1.0
    hue_probs[2, 4:12] = 1.0 / 8  # 8 adjacent bins: 0 < |z| < eta
    chroma = np.full(3, 0.6, np.float32)
    faded = bins.apply_chromatic_fading(chroma, hue_probs).numpy()
    mag = abs(sum(np.exp(1j * 2 * np.pi * (j + 0.5) / 32) for j in range(4, 12))) / 8 / 32
    np.testing.assert_allclose(faded, [0.0, 0.6, 0.6 * mag / 0.03], atol=1e-6)
    assert faded[2] < 0.6
    printed = bins.apply_chromatic_fading(chroma, hue_probs, variant="paper").numpy()
    assert np.all(printed >= chroma - 1e-7)  # max(|z|/eta, 1) never fades
    assert bins.DEFAULT_FADING == "released"


def test_sampling_is_seeded_and_follows_the_histogram():
    spec = bins.UniformBins(4)
    probs = np.tile(np.array([[0.1, 0.0, 0.6, 0.3]], np.float32), (20000, 1))
    a = spec.sample_indices(probs, seed=7).numpy()
    b = spec.sample_indices(probs, seed=7).numpy()
    np.testing.assert_array_equal(a, b)
    freq = np.bincount(a, minlength=4) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    gen = tf.random.Generator.from_seed(3)
    draws = spec.sample(probs[:100], seed=gen).numpy()
    assert set(np.unique(draws)) <= {0.125, 0.625, 0.875}
    gen2 = tf.random.Generator.from_seed(3)
    np.testing.assert_array_equal(spec.sample(probs[:100], seed=gen2).numpy(), draws)


def test_estimate_hue_chroma_and_entropy():
    hue_probs = np.zeros((2, 32), np.float32)
    hue_probs[0, 10] = 1.0
    hue_probs[1, 0], hue_probs[1, 16] = 0.5, 0.5
    chroma_probs = np.zeros((2, 32), np.float32)
    chroma_probs[:, 12] = 0.7
    chroma_probs[:, 20] = 0.3
    median = (12 + 0.5 / 0.7) / 32  # interpolated chroma median (bin 12 holds 0.7)
    hue, chroma = bins.estimate_hue_chroma(hue_probs, chroma_probs, fading="released")
    np.testing.assert_allclose(hue.numpy()[0], 10.5 / 32, atol=1e-6)
    np.testing.assert_allclose(chroma.numpy(), [median, 0.0], atol=1e-6)
    _, chroma_default = bins.estimate_hue_chroma(hue_probs, chroma_probs)  # default: released
    np.testing.assert_allclose(chroma_default.numpy(), chroma.numpy(), atol=1e-7)
    _, chroma_paper = bins.estimate_hue_chroma(hue_probs, chroma_probs, fading="paper")
    np.testing.assert_allclose(chroma_paper.numpy(), [median * 0.03125 / 0.03, median],
                               rtol=1e-5)
    _, chroma_centre = bins.estimate_hue_chroma(hue_probs, chroma_probs, fading=None,
                                              chroma_method="median_bin_centre")
    np.testing.assert_allclose(chroma_centre.numpy(), [12.5 / 32, 12.5 / 32], atol=1e-6)
    np.testing.assert_allclose(bins.entropy(hue_probs).numpy(), [0.0, math.log(2)], atol=1e-6)
