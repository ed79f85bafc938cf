"""Tests of tfcolor.paired_statistics: paired per-image statistics and the percentile bootstrap."""
import itertools
import math

import numpy as np
import pytest

from tfcolor import paired_statistics as statistics


def test_hand_computed_paired_case():
    model = [1.0, 2.0, 3.0, 5.0]
    gray = [2.0, 2.0, 1.0, 7.0]           # differences -1, 0, 2, -2
    s = statistics.paired_statistics(model, gray, n_resamples=2000, seed=1)
    assert s["n"] == 4 and s["excluded"] == 0
    assert s["mean_difference"] == pytest.approx(-0.25)
    assert s["median_difference"] == pytest.approx(-0.5)
    assert s["fraction_improved"] == pytest.approx(0.5)   # -1 and -2 are improvements (errors)
    assert s["fraction_tied"] == pytest.approx(0.25)
    up = statistics.paired_statistics(model, gray, higher_is_better=True, n_resamples=2000,
                                      seed=1)
    assert up["fraction_improved"] == pytest.approx(0.25)  # only +2 is better for a PSNR
    assert up["mean_difference"] == s["mean_difference"]


def test_bootstrap_of_two_values_matches_the_enumerated_distribution():
    # Resampling [0, 1] twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5%
    # and 97.5% quantiles of that distribution are 0 and 1.
    low, high = statistics.bootstrap_mean_ci([0.0, 1.0], n_resamples=4000, seed=0)
    assert (low, high) == (0.0, 1.0)
    # A 40% interval (the 30% and 70% quantiles) falls inside the middle atom, 0.5.
    assert statistics.bootstrap_mean_ci([0.0, 1.0], confidence=0.4, n_resamples=4000,
                                        seed=0) == (0.5, 0.5)


def test_bootstrap_matches_the_exact_bootstrap_distribution_of_three_values():
    values = np.array([0.0, 1.0, 5.0])
    # All 27 equally likely resamples give the exact bootstrap distribution of the mean.
    means = np.sort([np.mean(values[list(i)]) for i in itertools.product(range(3), repeat=3)])
    low, high = statistics.bootstrap_mean_ci(values, confidence=0.8, n_resamples=20000, seed=3)
    cdf = lambda x: np.mean(means <= x + 1e-12)  # noqa: E731
    assert cdf(low) >= 0.1 - 0.01 and np.mean(means < low - 1e-12) <= 0.1 + 0.01
    assert cdf(high) >= 0.9 - 0.01 and np.mean(means < high - 1e-12) <= 0.9 + 0.01


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    diff = rng.gamma(2.0, 1.0, size=60) - 1.5
    ours = statistics.bootstrap_mean_ci(diff, n_resamples=10000, seed=0)
    ref = scipy_stats.bootstrap((diff,), np.mean, n_resamples=10000, method="percentile",
                                confidence_level=0.95, random_state=1).confidence_interval
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    # Both are Monte Carlo estimates of the same quantiles: agree to a small fraction of the SE.
    assert ours[0] == pytest.approx(ref.low, abs=0.1 * se)
    assert ours[1] == pytest.approx(ref.high, abs=0.1 * se)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_contains_the_sample_mean(seed):
    rng = np.random.default_rng(seed)
    diff = rng.standard_t(3, size=40)
    low, high = statistics.bootstrap_mean_ci(diff, seed=seed)
    assert low < diff.mean() < high


def test_interval_width_shrinks_like_one_over_sqrt_n():
    rng = np.random.default_rng(11)
    population = rng.normal(0.3, 1.0, size=6400)
    small = statistics.bootstrap_mean_ci(population[:400], seed=0)
    large = statistics.bootstrap_mean_ci(population, seed=0)
    ratio = (small[1] - small[0]) / (large[1] - large[0])
    assert ratio == pytest.approx(4.0, rel=0.2)  # sqrt(6400 / 400)


def test_zero_difference_sets_give_intervals_containing_zero():
    same = np.linspace(0.1, 0.9, 25)
    s = statistics.paired_statistics(same, same)
    assert s["mean_difference"] == 0 and s["ci_low"] == 0 == s["ci_high"]
    assert s["fraction_improved"] == 0 and s["fraction_tied"] == 1
    # Differences of mean zero (symmetric): the interval straddles 0.
    base = np.linspace(0.0, 1.0, 30)
    shifted = base + np.tile([0.2, -0.2], 15)
    s = statistics.paired_statistics(shifted, base)
    assert s["mean_difference"] == pytest.approx(0.0, abs=1e-12)
    assert s["ci_low"] < 0 < s["ci_high"]
    assert s["fraction_improved"] == pytest.approx(0.5)


def test_seeded_and_non_finite_pairs_are_counted_not_used():
    model = [1.0, np.inf, 3.0, 2.0]
    base = [2.0, np.inf, 1.0, np.nan]
    a = statistics.paired_statistics(model, base, seed=5)
    b = statistics.paired_statistics(model, base, seed=5)
    assert a == b
    assert a["n"] == 2 and a["excluded"] == 2
    assert a["mean_difference"] == pytest.approx(0.5)
    empty = statistics.paired_statistics([np.inf], [np.inf])
    assert empty["n"] == 0 and np.isnan(empty["ci_low"])


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="pair up"):
        statistics.paired_statistics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        statistics.bootstrap_mean_ci([1.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        statistics.bootstrap_mean_ci([1.0], n_resamples=0)
    with pytest.raises(ValueError, match="at least one"):
        statistics.bootstrap_mean_ci([])


def test_paired_comparisons_against_each_baseline():
    per_image = {"model": {"err": [1.0, 1.0, 1.0], "psnr": [30.0, 31.0, 29.0]},
                 "gray": {"err": [2.0, 2.0, 0.5], "psnr": [20.0, 20.0, 35.0]},
                 "prior": {"err": [1.5, 1.5, 1.5], "psnr": [25.0, 25.0, 25.0]}}
    out = statistics.paired_comparisons(per_image, n_resamples=500)
    assert sorted(out) == ["model-gray", "model-prior"]
    assert out["model-gray"]["err"]["fraction_improved"] == pytest.approx(2 / 3)
    assert out["model-gray"]["psnr"]["fraction_improved"] == pytest.approx(2 / 3)
    assert out["model-prior"]["psnr"]["mean_difference"] == pytest.approx(5.0)
    assert out["model-prior"]["err"]["ci_high"] == pytest.approx(-0.5)
    with pytest.raises(KeyError, match="model"):
        statistics.paired_comparisons({"gray": per_image["gray"]})


# ----------------------------------------------------------------------------------------------
# Student t (the intervals of tfcolor.downstream.comparison), against scipy.


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 250])
def test_student_t_cdf_and_quantile_match_scipy(df):
    from scipy import stats
    for t in (-6.0, -1.3, -0.2, 0.0, 0.7, 2.5, 12.0):
        assert statistics.student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df),
                                                                       abs=1e-11)
    for p in (0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.9995):
        assert statistics.student_t_quantile(p, df) == pytest.approx(
                stats.t.ppf(p, df), rel=1e-9, abs=1e-10)


def test_t_interval_matches_scipy_and_checks_input():
    from scipy import stats
    x = np.random.default_rng(3).normal(1.0, 2.0, size=6)
    for confidence in (0.95, 0.8):
        want = stats.t.interval(confidence, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert statistics.t_interval(x, confidence) == pytest.approx(want)
    with pytest.raises(ValueError, match="at least two"):
        statistics.t_interval([1.0])
    with pytest.raises(ValueError, match="finite"):
        statistics.t_interval([1.0, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        statistics.t_interval([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="df"):
        statistics.student_t_cdf(0.0, 0)


def test_t_test_p_against_hand_values():
    # [1, 2, 3]: mean 2, sd 1, t = 2 sqrt(3) = 3.4641 on 2 degrees of freedom; the t(2) CDF is
    # 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14).
    assert statistics.t_test_p([1.0, 2.0, 3.0]) == pytest.approx(
        1.0 - math.sqrt(12.0 / 14.0), rel=1e-9)
    assert statistics.t_test_p([-1.0, 1.0]) == pytest.approx(1.0)
    assert statistics.t_test_p([0.5, 0.5, 0.5]) == 0.0
    with pytest.raises(ValueError):
        statistics.t_test_p([1.0])


def test_holm_against_hand_values():
    # sorted 0.01, 0.03, 0.04 (m = 3): 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04)
    assert statistics.holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert statistics.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert statistics.holm([]) == []
    with pytest.raises(ValueError):
        statistics.holm([1.5])


def test_seed_image_bootstrap_with_identical_runs_is_the_image_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(1, 50)), rng.uniform(size=(1, 50))
    one = statistics.seed_image_bootstrap(a, b, n_resamples=2000)
    many = statistics.seed_image_bootstrap(np.repeat(a, 5, 0), np.repeat(b, 3, 0),
                                                  n_resamples=2000)
    assert (one["ci_low"], one["ci_high"]) == (many["ci_low"], many["ci_high"])
    assert one["covers"] == "images" and many["covers"] == "runs and images"
    assert one["difference"] == pytest.approx(float(a.mean() - b.mean()))
    # the image part is the paired bootstrap of the per-image difference (Monte Carlo error)
    paired = statistics.paired_statistics(a[0], b[0], n_resamples=20000)
    assert one["ci_low"] == pytest.approx(paired["ci_low"], abs=0.02)
    assert one["ci_high"] == pytest.approx(paired["ci_high"], abs=0.02)
    with pytest.raises(ValueError, match="same images"):
        statistics.seed_image_bootstrap(a, b[:, :10])


def test_seed_image_bootstrap_covers_run_variance_that_the_image_bootstrap_misses():
    """Simulated recipes whose runs differ (run sd 0.1) on 100 shared images: the interval over
    runs and images holds the true difference about 95% of the time; the image bootstrap of the
    run means, which ignores run variance, far less often."""
    rng = np.random.default_rng(1)
    truth, hits, image_only_hits, trials = 0.03, 0, 0, 150
    for _ in range(trials):
        image = rng.normal(size=100)                               # shared image difficulty
        a = 0.5 + truth + image + rng.normal(scale=0.1, size=(8, 1)) \
            + rng.normal(scale=0.3, size=(8, 100))
        b = 0.5 + image + rng.normal(scale=0.1, size=(8, 1)) + rng.normal(scale=0.3,
                                                                           size=(8, 100))
        r = statistics.seed_image_bootstrap(a, b, n_resamples=1000,
                                                   seed=int(rng.integers(1 << 30)))
        hits += r["ci_low"] <= truth <= r["ci_high"]
        p = statistics.paired_statistics(a.mean(0), b.mean(0), n_resamples=1000)
        image_only_hits += p["ci_low"] <= truth <= p["ci_high"]
    assert 0.85 <= hits / trials <= 0.99, hits / trials
    assert image_only_hits / trials < 0.75, image_only_hits / trials
