"""Tests for tfcolor.estimates: point estimates of histograms and chromatic fading.

References are independent of the implementation: hand-computed medians, expectations and
fading factors, Gaussian quantiles from the statistics module, and sample frequencies.
"""
import math
import statistics

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import bins, estimates


def test_mode_median_expectation_by_hand():
    spec = bins.UniformBins(4)  # edges 0 .25 .5 .75 1, centres 0.125 0.375 0.625 0.875
    probs = np.array([[0.1, 0.2, 0.3, 0.4],
                      [0.5, 0.0, 0.0, 0.5],
                      [0.3, 0.1, 0.5, 0.1]], np.float32)
    np.testing.assert_allclose(estimates.estimate(spec, probs, "mode").numpy(),
                               [0.875, 0.125, 0.625])
    # Released rule, cumulative sums: .1 .3 .6 1 -> bin 2; .5 -> bin 0; .3 .4 .9 -> bin 2.
    np.testing.assert_allclose(estimates.estimate(spec, probs, "median_bin_centre").numpy(),
                               [0.625, 0.125, 0.625])
    np.testing.assert_allclose(estimates.median(spec, probs, interpolation="bin_centre").numpy(),
                               [0.625, 0.125, 0.625])
    np.testing.assert_allclose(estimates.estimate(spec, probs, "expectation").numpy(),
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
    np.testing.assert_allclose(estimates.estimate(spec, probs, "median").numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(estimates.median(spec, probs).numpy(), want, rtol=1e-6)
    # Chroma preset (K = 32 on [0, 1]): 0.7 in bin 12, 0.3 in bin 20 -> (12 + 0.5/0.7) / 32.
    chroma = np.zeros(32, np.float32)
    chroma[12], chroma[20] = 0.7, 0.3
    np.testing.assert_allclose(estimates.estimate(bins.get("chroma"), chroma, "median").numpy(),
                               (12 + 0.5 / 0.7) / 32, rtol=1e-6)
    with pytest.raises(ValueError, match="interpolation"):
        estimates.median(spec, probs, interpolation="nearest")


def test_interpolated_median_is_continuous_where_the_bin_centre_rule_jumps():
    # Moving mass from bin 1 to bin 2 moves the 0.5-crossing across the edge at 0.5: the
    # interpolated median passes through it continuously (steps <= the mass step / density),
    # the released rule jumps by a whole bin (0.375 -> 0.625).
    spec = bins.UniformBins(4)
    t = np.linspace(0.0, 0.4, 81, dtype=np.float32)
    probs = np.stack([np.full_like(t, 0.1), 0.5 - t, 0.1 + t, np.full_like(t, 0.3)], axis=-1)
    linear = estimates.estimate(spec, probs, "median").numpy()
    centre = estimates.estimate(spec, probs, "median_bin_centre").numpy()
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
    np.testing.assert_allclose(estimates.estimate(spec, probs, "median_bin_centre").numpy(),
                               [spec.centers[2], spec.centers[5], spec.centers[0]], rtol=1e-6)
    # Bins are uniform in u = Phi((v - 0)/25): bin 2 spans u in [2/8, 3/8]; the crossing is at
    # 0.5/0.6 of it. A delta gives the bin's midpoint in u, which is the stored centre.
    dist = statistics.NormalDist(0.0, 25.0)
    want = [dist.inv_cdf((2 + 0.5 / 0.6) / 8), spec.centers[5], spec.centers[0]]
    np.testing.assert_allclose(estimates.estimate(spec, probs, "median").numpy(), want, rtol=1e-5)
    joint = bins.JointBins(bins.GaussianQuantileBins(4), bins.GaussianQuantileBins(4))
    p = np.zeros(16, np.float32)
    p[1 * 4 + 2], p[3 * 4 + 0] = 0.25, 0.75
    expected = 0.25 * joint.centers[6] + 0.75 * joint.centers[12]
    np.testing.assert_allclose(estimates.estimate(joint, p, "expectation").numpy(), expected,
                               rtol=1e-5)
    np.testing.assert_allclose(estimates.estimate(joint, p, "mode").numpy(), joint.centers[12],
                               rtol=1e-6)


def test_median_undefined_for_hue_and_joint():
    with pytest.raises(ValueError, match="circular"):
        estimates.estimate(bins.get("hue"), np.full(32, 1 / 32, np.float32), "median")
    with pytest.raises(ValueError, match="joint"):
        estimates.estimate(bins.get("lab_ab"), np.full(256, 1 / 256, np.float32), "median")
    with pytest.raises(ValueError, match="circular"):
        estimates.estimate(bins.get("hue"), np.full(32, 1 / 32, np.float32), "median_bin_centre")
    with pytest.raises(ValueError, match="method"):
        estimates.estimate(bins.get("chroma"), np.full(32, 1 / 32, np.float32), "mean")
    with pytest.raises(ValueError, match="last axis of size 32"):
        estimates.estimate(bins.get("chroma"), np.full(16, 1 / 16, np.float32), "mode")


def test_circular_expectation_wraps_around():
    probs = np.zeros((3, 32), np.float32)
    probs[0, 0], probs[0, 31] = 0.5, 0.5  # symmetric around hue 0
    probs[1, 0], probs[1, 31] = 0.3, 0.7  # just below 1
    probs[2, 8] = 1.0  # one bin: its centre, |z| = 1/K
    hue, mag = estimates.circular_expectation(probs)
    hue, mag = hue.numpy(), mag.numpy()
    assert min(hue[0], 1 - hue[0]) < 1e-6
    assert 0 <= hue[0] < 1
    assert 1 - 1 / 32 < hue[1] < 1  # the linear expectation would give ~0.7
    assert abs(hue[2] - 8.5 / 32) < 1e-6
    # By hand: |z| = (1/K) |0.5 e^{i pi/32} + 0.5 e^{-i pi/32}| = cos(pi/32) / 32.
    np.testing.assert_allclose(mag[0], math.cos(math.pi / 32) / 32, rtol=1e-6)
    np.testing.assert_allclose(mag[2], 1 / 32, rtol=1e-6)
    linear = estimates.estimate(bins.UniformBins(32), probs[0], "expectation").numpy()
    assert abs(linear - 0.5) < 1e-6  # what a non-circular expectation would (wrongly) say
    np.testing.assert_allclose(
            estimates.estimate(bins.get("hue"), probs, "expectation").numpy(), hue)


def test_chromatic_fading_factors_by_hand():
    k = 32
    probs = np.zeros((4, k), np.float32)
    probs[0, 3] = 1.0  # |z| = 1/32 = 0.03125
    probs[1, 0], probs[1, 16] = 0.5, 0.5  # opposite hues: |z| = 0
    probs[2, 5:11] = 1.0 / 6  # six adjacent bins
    probs[3] = 1.0 / k  # uniform: |z| = 0
    six = abs(sum(np.exp(1j * 2 * np.pi * (j + 0.5) / k) for j in range(5, 11))) / 6 / k
    mags = np.array([1 / 32, 0.0, six, 0.0])
    _, mag = estimates.circular_expectation(probs)
    np.testing.assert_allclose(mag.numpy(), mags, atol=1e-7)
    paper = estimates.chromatic_fading_factor(mag, 0.03, "paper").numpy()
    released = estimates.chromatic_fading_factor(mag, 0.03, "released").numpy()
    np.testing.assert_allclose(paper, [0.03125 / 0.03, 1.0, max(six / 0.03, 1.0), 1.0],
                               rtol=1e-5)
    np.testing.assert_allclose(released, [1.0, 0.0, min(six / 0.03, 1.0), 0.0], atol=1e-5)
    assert 0.95 < released[2] < 1.0  # six adjacent bins fade slightly: |z| = 0.02952
    chroma = estimates.apply_chromatic_fading(np.full(4, 0.5, np.float32), probs,
                                              variant="released")
    np.testing.assert_allclose(chroma.numpy(), 0.5 * released, atol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        estimates.chromatic_fading_factor(mag, 0.03, "min")
    with pytest.raises(ValueError, match="eta"):
        estimates.chromatic_fading_factor(mag, 0.0)


def test_default_fading_reduces_the_chroma_of_a_flat_hue_histogram():
    # A flat hue histogram has z = 0: the default (released, min) fading sends chroma to 0, the
    # printed max form leaves it unchanged; a peaked one (|z| = 1/32 > eta) keeps its chroma.
    hue_probs = np.zeros((3, 32), np.float32)
    hue_probs[0] = 1.0 / 32
    hue_probs[1, 7] = 1.0
    hue_probs[2, 4:12] = 1.0 / 8  # 8 adjacent bins: 0 < |z| < eta
    chroma = np.full(3, 0.6, np.float32)
    faded = estimates.apply_chromatic_fading(chroma, hue_probs).numpy()
    mag = abs(sum(np.exp(1j * 2 * np.pi * (j + 0.5) / 32) for j in range(4, 12))) / 8 / 32
    np.testing.assert_allclose(faded, [0.0, 0.6, 0.6 * mag / 0.03], atol=1e-6)
    assert faded[2] < 0.6
    printed = estimates.apply_chromatic_fading(chroma, hue_probs, variant="paper").numpy()
    assert np.all(printed >= chroma - 1e-7)  # max(|z|/eta, 1) never fades
    assert estimates.DEFAULT_FADING == "released"


def test_sampling_is_seeded_and_follows_the_histogram():
    spec = bins.UniformBins(4)
    probs = np.tile(np.array([[0.1, 0.0, 0.6, 0.3]], np.float32), (20000, 1))
    a = estimates.sample_indices(spec, probs, seed=7).numpy()
    b = estimates.sample_indices(spec, probs, seed=7).numpy()
    np.testing.assert_array_equal(a, b)
    freq = np.bincount(a, minlength=4) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    gen = tf.random.Generator.from_seed(3)
    draws = estimates.sample(spec, probs[:100], seed=gen).numpy()
    assert set(np.unique(draws)) <= {0.125, 0.625, 0.875}
    gen2 = tf.random.Generator.from_seed(3)
    np.testing.assert_array_equal(estimates.sample(spec, probs[:100], seed=gen2).numpy(), draws)


def test_estimate_hue_chroma_and_entropy():
    hue_probs = np.zeros((2, 32), np.float32)
    hue_probs[0, 10] = 1.0
    hue_probs[1, 0], hue_probs[1, 16] = 0.5, 0.5
    chroma_probs = np.zeros((2, 32), np.float32)
    chroma_probs[:, 12] = 0.7
    chroma_probs[:, 20] = 0.3
    median = (12 + 0.5 / 0.7) / 32  # interpolated chroma median (bin 12 holds 0.7)
    hue, chroma = estimates.estimate_hue_chroma(hue_probs, chroma_probs, fading="released")
    np.testing.assert_allclose(hue.numpy()[0], 10.5 / 32, atol=1e-6)
    np.testing.assert_allclose(chroma.numpy(), [median, 0.0], atol=1e-6)
    _, chroma_default = estimates.estimate_hue_chroma(hue_probs, chroma_probs)  # default: released
    np.testing.assert_allclose(chroma_default.numpy(), chroma.numpy(), atol=1e-7)
    _, chroma_paper = estimates.estimate_hue_chroma(hue_probs, chroma_probs, fading="paper")
    np.testing.assert_allclose(chroma_paper.numpy(), [median * 0.03125 / 0.03, median],
                               rtol=1e-5)
    _, chroma_centre = estimates.estimate_hue_chroma(hue_probs, chroma_probs, fading=None,
                                              chroma_method="median_bin_centre")
    np.testing.assert_allclose(chroma_centre.numpy(), [12.5 / 32, 12.5 / 32], atol=1e-6)
    np.testing.assert_allclose(estimates.entropy(hue_probs).numpy(), [0.0, math.log(2)], atol=1e-6)
