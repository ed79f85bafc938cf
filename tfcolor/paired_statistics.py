"""Paired per-image statistics: is a colorizer better than a baseline on the *same* images?

Aggregate numbers (mean error of the model, mean error of the baseline) hide how consistent a
difference is. For per-image values ``m_i`` (the model) and ``b_i`` (a baseline) of one metric on
the same images, :func:`paired_statistics` reports

- ``mean_difference``: the mean of ``d_i = m_i - b_i`` (negative is better for errors, positive
  for PSNR);
- ``fraction_improved``: the share of images where the model is strictly better
  (``d_i < 0`` for lower-is-better metrics, ``d_i > 0`` for higher-is-better ones), with
  ``fraction_tied`` the share of exact ties;
- ``ci_low``, ``ci_high``: a percentile bootstrap confidence interval of the mean difference
  (Efron & Tibshirani 1993, ch. 13): ``n_resamples`` resamples of the n images with replacement
  (NumPy ``default_rng(seed)``, so the interval is reproducible), the mean difference of each,
  and the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means
  (``confidence=0.95``: the 2.5% and 97.5% quantiles);
- ``n``, and ``excluded``: pairs dropped because a value is not finite (e.g. an infinite PSNR of
  a perfect image: infinity minus infinity has no meaning), so they are counted, not hidden.

:func:`paired_comparisons` applies it to a reference predictor against each baseline for every
metric (what ``binaries/evaluate`` writes to ``metrics.json`` under ``"paired"``).
"""
import math

import numpy as np

__all__ = ["bootstrap_mean_ci", "paired_statistics", "paired_comparisons", "student_t_cdf",
           "student_t_quantile", "t_interval", "t_test_p", "holm", "seed_image_bootstrap"]

DEFAULT_RESAMPLES = 10000
DEFAULT_CONFIDENCE = 0.95
_CHUNK = 2 ** 22  # resampled values drawn at once (bounds memory for large n)


def _check_common(n_resamples, confidence):
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) \
            or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_mean_ci(values, *, n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE,
                      seed=0):
    """Percentile bootstrap confidence interval of the mean of ``values`` (1-D, finite).

    Returns:
        ``(low, high)`` floats.
    """
    _check_common(n_resamples, confidence)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("bootstrap_mean_ci needs at least one value")
    if not np.all(np.isfinite(values)):
        raise ValueError("bootstrap_mean_ci needs finite values")
    n = values.size
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, np.float64)
    per_chunk = max(1, _CHUNK // n)
    for start in range(0, n_resamples, per_chunk):
        stop = min(n_resamples, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _betacf(a, b, x, iterations=300, eps=1e-15):
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a, b, x):
    """Regularized incomplete beta function I_x(a, b) for x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t, df):
    """CDF of Student's t distribution with ``df`` (> 0) degrees of freedom at ``t``."""
    if not df > 0:
        raise ValueError(f"df must be positive, got {df!r}")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p, df):
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on
    :func:`student_t_cdf`, to ~1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while student_t_cdf(lo, df) > p:
        lo *= 2.0
    while student_t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def t_interval(values, confidence=DEFAULT_CONFIDENCE):
    """Student-t confidence interval of the mean of ``values`` (1-D, finite, at least 2):
    ``mean -+ t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n)`` with the sample sd (ddof=1).

    Returns:
        ``(low, high)`` floats.
    """
    _check_common(1, confidence)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"t_interval needs at least two values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("t_interval needs finite values")
    n = values.size
    mean = float(values.mean())
    half = (student_t_quantile(0.5 + confidence / 2.0, n - 1)
            * float(values.std(ddof=1)) / math.sqrt(n))
    return mean - half, mean + half


def t_test_p(values):
    """Two-sided p-value of the one-sample t-test of mean 0 on ``values`` (1-D, finite, at
    least 2; e.g. paired differences): ``2 * (1 - F_{n-1}(|mean| / (sd / sqrt(n))))``. A zero
    spread gives 0 for a non-zero mean and 1 for a zero mean."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"t_test_p needs at least two values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("t_test_p needs finite values")
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0.0:
        return 0.0 if mean != 0.0 else 1.0
    t = abs(mean) / (sd / math.sqrt(values.size))
    return min(1.0, 2.0 * (1.0 - student_t_cdf(t, values.size - 1)))


def holm(p_values):
    """Holm's step-down adjusted p-values (Holm 1979), in the order given: with the m p-values
    sorted ascending, ``adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``. A comparison
    is significant at level a, the family-wise error kept at a, when its adjusted value is
    <= a."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return []
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("holm needs p-values in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return [float(a) for a in adjusted]


def seed_image_bootstrap(a, b, *, n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE,
                         seed=0):
    """Interval of the difference of two training recipes over both things that vary
    independently: the runs (pretraining seeds) and the test images.

    ``a`` (S_a, N) and ``b`` (S_b, N) hold a per-image score (e.g. 1 for a correct prediction)
    of each run of recipe A and of recipe B on the same N test images (runs of a recipe are
    rows; several fine-tuning seeds of one run are averaged into its row first). The statistic
    is ``mean(a) - mean(b)``. Each resample draws the N images with replacement, once, for both
    recipes (the images pair the recipes), and the rows of each recipe with replacement,
    independently (their seeds do not pair); the percentile interval of the resampled
    differences then covers the variance of new runs of both recipes and of a new test set of
    the same size. With one run per recipe it is the paired image bootstrap of that pair (it
    covers the images only, and a recipe with one run contributes no run variance: the result
    says what it covers under ``covers``).

    Returns:
        dict ``difference``, ``ci_low``, ``ci_high``, ``runs`` ([S_a, S_b]), ``images`` (N),
        ``covers`` (``"runs and images"`` or ``"images"``), ``confidence``, ``n_resamples``.
    """
    _check_common(n_resamples, confidence)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0 \
            or not a.shape[0] or not b.shape[0]:
        raise ValueError(f"a and b must be (runs, images) arrays on the same images, got shapes "
                         f"{a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("seed_image_bootstrap needs finite values")
    (sa, n), sb = a.shape, b.shape[0]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples, np.float64)
    per_chunk = max(1, _CHUNK // max(1, (sa + sb) * n))
    for start in range(0, n_resamples, per_chunk):
        stop = min(n_resamples, start + per_chunk)
        k = stop - start
        images = rng.integers(0, n, size=(k, n))
        rows_a = rng.integers(0, sa, size=(k, sa))
        rows_b = rng.integers(0, sb, size=(k, sb))
        # mean over resampled rows and images = mean over images of the resampled rows' mean
        mean_a = a[rows_a].mean(axis=1)                      # (k, N): each image's run mean
        mean_b = b[rows_b].mean(axis=1)
        diffs[start:stop] = (np.take_along_axis(mean_a, images, 1).mean(1)
                             - np.take_along_axis(mean_b, images, 1).mean(1))
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2.0, 1.0 - alpha / 2.0])
    return {"difference": float(a.mean() - b.mean()), "ci_low": float(low),
            "ci_high": float(high), "runs": [int(sa), int(sb)], "images": int(n),
            "covers": ("runs and images" if min(sa, sb) > 1 else
                       "the runs of one recipe and images" if max(sa, sb) > 1 else "images"),
            "confidence": float(confidence), "n_resamples": int(n_resamples)}


def paired_statistics(values, baseline, *, higher_is_better=False,
                      n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE, seed=0):
    """Paired comparison of per-image ``values`` with ``baseline`` (module docstring).

    Args:
        values: the model's per-image metric, shape (n,).
        baseline: the baseline's per-image metric on the same images, shape (n,).
        higher_is_better: True for PSNR-like metrics, False for errors.
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        dict with ``n``, ``excluded``, ``mean_difference``, ``median_difference``,
        ``fraction_improved``, ``fraction_tied``, ``ci_low``, ``ci_high``, ``confidence``,
        ``n_resamples``, ``higher_is_better``. With no finite pair the numbers are NaN.
    """
    _check_common(n_resamples, confidence)
    values = np.asarray(values, dtype=np.float64).ravel()
    baseline = np.asarray(baseline, dtype=np.float64).ravel()
    if values.shape != baseline.shape:
        raise ValueError(f"values and baseline must pair up image by image, got {values.size} "
                         f"and {baseline.size} values")
    finite = np.isfinite(values) & np.isfinite(baseline)
    diff = values[finite] - baseline[finite]
    out = {"n": int(diff.size), "excluded": int((~finite).sum()),
           "higher_is_better": bool(higher_is_better), "confidence": float(confidence),
           "n_resamples": int(n_resamples)}
    if diff.size == 0:
        nan = math.nan
        out.update(mean_difference=nan, median_difference=nan, fraction_improved=nan,
                   fraction_tied=nan, ci_low=nan, ci_high=nan)
        return out
    better = diff > 0 if higher_is_better else diff < 0
    low, high = bootstrap_mean_ci(diff, n_resamples=n_resamples, confidence=confidence,
                                  seed=seed)
    out.update(mean_difference=float(diff.mean()), median_difference=float(np.median(diff)),
               fraction_improved=float(better.mean()), fraction_tied=float((diff == 0).mean()),
               ci_low=low, ci_high=high)
    return out


def paired_comparisons(per_image, reference="model", baselines=("gray", "prior"),
                       higher_is_better=None, **kwargs):
    """:func:`paired_statistics` of ``reference`` against each baseline, for every metric.

    Args:
        per_image: dict predictor name -> dict metric name -> per-image values (same images,
            same order for every predictor).
        reference: the predictor compared (``"model"``).
        baselines: the predictors it is compared with (absent ones are skipped).
        higher_is_better: dict metric name -> bool (default: only ``"psnr"`` is True).
        **kwargs: ``n_resamples``, ``confidence``, ``seed``.

    Returns:
        dict ``"{reference}-{baseline}"`` -> metric name -> statistics.
    """
    if reference not in per_image:
        raise KeyError(f"no per-image values for {reference!r}; have {sorted(per_image)}")
    higher_is_better = dict(higher_is_better or {})
    out = {}
    for base in baselines:
        if base not in per_image or base == reference:
            continue
        out[f"{reference}-{base}"] = {
                metric: paired_statistics(per_image[reference][metric], per_image[base][metric],
                                          higher_is_better=higher_is_better.get(
                                                  metric, metric == "psnr"), **kwargs)
                for metric in per_image[reference] if metric in per_image[base]}
    return out
