"""Point estimates of predicted histograms and chromatic fading.

The decoding half of the histogram machinery: :mod:`tfcolor.bins` defines the bins (their
centres, encoding and window histograms, the targets' side); this module turns predicted
histograms over those bins back into values -- expectation, mode, median, samples, the circular
hue expectation, chromatic fading of the chroma, ``estimate_hue_chroma`` (the papers' best
read-out) and the entropy of a histogram. The point estimates take the bin spec they decode (a
:class:`tfcolor.bins.BinSpec`) and (..., K) probabilities.

Decoding
--------
:func:`estimate` ``(spec, probs, method)`` with ``method`` one of ``"expectation"``, ``"mode"``
(centre of the argmax bin), ``"median"``, ``"median_bin_centre"`` and ``"sample"`` (inverse-CDF
draw, seeded by an int, a shape-[2] seed or a ``tf.random.Generator``; returns the drawn bin's
centre). Probabilities are
used as given (not renormalised), except that the median looks for half of their total.

Median (:func:`median`). The ECCV 2016 paper: "the median is computed by taking the
cumulative sum of the predicted histogram and using linear interpolation to find the value at the
middle bin" (undefined for circular histograms). That is ``"median"`` (``interpolation="linear"``,
the default): the cumulative histogram is put at the upper bin edges (CDF 0 at the lower edge of
bin 0; the errata's reading, the exact convention is not printed), and the median is where that
piecewise-linear CDF reaches half the total mass, i.e. inside the bin ``k`` where the CDF crosses
0.5, at fraction ``(0.5 - CDF_(k-1)) / p_k`` of the bin. For :class:`UniformBins` the fraction is
linear in the value; for :class:`GaussianQuantileBins` (whose end bins are unbounded) it is linear
in the Gaussian-CDF coordinate ``u`` in which the bins are uniform (the released code bins there),
mapped back with ``mean + stddev * Phi^-1(u)``. The released code's rule, the centre of the first
bin whose cumulative sum reaches 0.5 (no interpolation), is ``"median_bin_centre"``
(``interpolation="bin_centre"``). The interpolated median is continuous in the probabilities, so
the estimated chroma does not jump by a whole bin (1/32) when the CDF crosses 0.5 at a bin boundary.
Both raise for circular (hue) and joint specs.

:func:`circular_expectation` computes ``z = (1/K) sum_k p_k exp(i theta_k)``,
``theta_k = 2 pi (k + 0.5) / K``, and returns ``(arg(z) / 2pi mod 1, |z|)``.

Chromatic fading (:func:`chromatic_fading_factor`)
--------------------------------------------------
The ECCV 2016 paper (Sec. 3, "chromatic fading") says: "downweight the chroma if the absolute
value of z is too small. We thus re-define the predicted chroma by multiplying it by a factor of
max(eta^-1 |z|, 1)", eta = 0.03. The released code (``autocolorize/extraction.py``,
``expectation-cf``) uses ``clip(|z|, 0, eta) / eta = min(|z| / eta, 1)``.

* ``variant="released"`` (**the default**) is ``min(|z| / eta, 1)``: with K = 32 it fades whenever
  ``|sum_k p_k exp(i theta_k)| < K * eta = 0.96``, e.g. a histogram split evenly between two
  opposite hues (|z| = 0) gets chroma 0, a uniform hue histogram gets chroma 0. This is the one
  that matches the paper's stated intent ("downweight the chroma"), the authors' images, and the
  paper's own table: hue/chroma *without* fading ties the grey baseline (alpha-beta error 0.342 vs
  0.343), *with* fading it is 0.299. Fading is what beats grey.
* ``variant="paper"`` implements the printed formula faithfully. It is always >= 1, so it can
  never fade; since ``|z| <= 1/K``, it is in ``[1, 1/(K eta)] = [1, 1.042]`` for K = 32: at most a
  4% chroma *boost* for very peaked hue histograms, otherwise exactly 1. The printed ``max`` is an
  evident misprint for ``min`` (METHOD_CH4 errata (f)); it is kept as an option only to reproduce
  the printed text.

The default is ``"released"`` everywhere (read-out, colorize, export, evaluate, the training
preview, reproduce): the general rule "default to the paper" yields here to the paper's own
text and numbers, which only the ``min`` form reproduces.
"""
import math

import numpy as np
import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor.bins import _check_choice, _check_last_dim, _float32

__all__ = [
        "expectation", "mode", "median", "sample_indices", "sample", "estimate",
        "circular_expectation", "chromatic_fading_factor", "apply_chromatic_fading",
        "estimate_hue_chroma", "entropy", "ESTIMATE_METHODS", "MEDIAN_INTERPOLATIONS",
        "FADING_VARIANTS", "DEFAULT_FADING", "DEFAULT_FADING_ETA",
]

ESTIMATE_METHODS = ("expectation", "mode", "median", "median_bin_centre", "sample")
MEDIAN_INTERPOLATIONS = ("linear", "bin_centre")
FADING_VARIANTS = ("paper", "released")
#: Default chromatic fading: the released min(|z|/eta, 1) (see the module docstring).
DEFAULT_FADING = "released"
DEFAULT_FADING_ETA = 0.03


def _check_probs(spec, probs):
    probs = _float32(probs)
    _check_last_dim("probs", probs, spec.num_bins)
    return probs


# ------------------------------------------------------------------ point estimates
def expectation(spec, probs):
    """sum_k p_k c_k: (...) for marginals, (..., 2) for joint specs; for a circular spec (hue)
    the circular expectation (:func:`circular_expectation`)."""
    if spec.circular:
        return circular_expectation(probs, spec)[0]
    probs = _check_probs(spec, probs)
    return tf.tensordot(probs, spec.centers_tensor(), axes=[[-1], [0]])


def mode(spec, probs):
    """Centre of the most probable bin."""
    probs = _check_probs(spec, probs)
    return tf.gather(spec.centers_tensor(), tf.argmax(probs, axis=-1, output_type=tf.int32))


def median(spec, probs, interpolation="linear"):
    """Median of each histogram (see the module docstring, "Median").

    Args:
        spec: a non-circular marginal :class:`tfcolor.bins.BinSpec`.
        probs: (..., K) probabilities (their total need not be 1: the median is where the
            cumulative sum reaches half of it).
        interpolation: ``"linear"`` (the paper: linear interpolation of the cumulative
            histogram inside the bin where it crosses 0.5; the default) or ``"bin_centre"``
            (the released code: centre of the first bin whose cumulative sum reaches 0.5).
    """
    _check_choice("interpolation", interpolation, MEDIAN_INTERPOLATIONS)
    if spec.circular:
        raise ValueError(
                f"the median is undefined for a circular bin spec ({spec!r}, e.g. hue); use "
                "circular_expectation / method='expectation' instead")
    if spec.value_dims != 1:
        raise ValueError(f"the median is undefined for joint bins ({spec!r})")
    probs = _check_probs(spec, probs)
    cum = tf.math.cumsum(probs, axis=-1)
    half = 0.5 * cum[..., -1:]
    if interpolation == "bin_centre":
        below = tf.cast(cum < 0.5, tf.int32)
        index = tf.minimum(tf.reduce_sum(below, axis=-1), spec.num_bins - 1)
        return tf.gather(spec.centers_tensor(), index)
    index = tf.minimum(tf.reduce_sum(tf.cast(cum < half, tf.int32), axis=-1),
                       spec.num_bins - 1)
    pick = tf.one_hot(index, spec.num_bins, dtype=probs.dtype)
    before = tf.reduce_sum((cum - probs) * pick, axis=-1)  # CDF at the bin's lower edge
    mass = tf.reduce_sum(probs * pick, axis=-1)
    fraction = tf.clip_by_value(tf.math.divide_no_nan(half[..., 0] - before, mass), 0.0, 1.0)
    return spec.value_at_position(tf.cast(index, tf.float32) + fraction)


def sample_indices(spec, probs, seed=None):
    """Draws one bin index per histogram (inverse CDF), int32 of shape probs.shape[:-1].

    Args:
        spec: the :class:`tfcolor.bins.BinSpec` of ``probs``.
        probs: (..., K) probabilities.
        seed: None (global generator), a ``tf.random.Generator``, a Python int or a shape-[2]
            integer seed for the stateless op (same seed, same draws).
    """
    probs = _check_probs(spec, probs)
    cum = tf.math.cumsum(probs, axis=-1)
    shape = tf.shape(probs)[:-1]
    if seed is None:
        seed = tf.random.get_global_generator()
    if isinstance(seed, tf.random.Generator):
        u = seed.uniform(shape, dtype=tf.float32)
    else:
        if isinstance(seed, (int, np.integer)):
            seed = [int(seed), 0]
        u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    u = u * cum[..., -1]
    index = tf.reduce_sum(tf.cast(cum <= u[..., None], tf.int32), axis=-1)
    return tf.minimum(index, spec.num_bins - 1)


def sample(spec, probs, seed=None):
    """Centre of a bin drawn from each histogram (see :func:`sample_indices`)."""
    return tf.gather(spec.centers_tensor(), sample_indices(spec, probs, seed=seed))


def estimate(spec, probs, method="expectation", seed=None):
    """Point estimate from predicted histograms ``probs`` (..., K) over ``spec``'s bins.

    ``method`` is one of ``ESTIMATE_METHODS``. For a circular spec ``"expectation"`` is the
    circular expectation (hue = arg z); ``"median"`` raises ``ValueError``. ``"median"`` is
    the interpolated median (the paper), ``"median_bin_centre"`` the released code's.
    """
    _check_choice("method", method, ESTIMATE_METHODS)
    if method == "expectation":
        return expectation(spec, probs)
    if method == "mode":
        return mode(spec, probs)
    if method == "median":
        return median(spec, probs)
    if method == "median_bin_centre":
        return median(spec, probs, interpolation="bin_centre")
    return sample(spec, probs, seed=seed)


# --------------------------------------------------------------- hue estimates and fading
def circular_expectation(probs, spec=None):
    """Circular (complex) expectation of hue histograms.

    ``z = (1/K) sum_k p_k exp(i theta_k)``, ``theta_k = 2 pi (k + 0.5) / K``.

    Args:
        probs: (..., K) probabilities.
        spec: the hue :class:`UniformBins` (default ``UniformBins(K, circular=True)``).

    Returns:
        ``(hue, magnitude)``: ``arg(z) / (2 pi)`` mapped to [0, 1) (0 where z = 0) and ``|z|``
        (which is at most 1/K), both float32 of shape ``probs.shape[:-1]``.
    """
    probs = _float32(probs)
    if spec is None:
        if probs.shape[-1] is None:
            raise ValueError("circular_expectation needs a static number of bins or a spec")
        spec = bins_lib.UniformBins(probs.shape[-1], circular=True)
    if not isinstance(spec, bins_lib.UniformBins):
        raise ValueError(f"circular_expectation needs UniformBins, got {spec!r}")
    _check_last_dim("probs", probs, spec.num_bins)
    theta = spec.angles()
    k = float(spec.num_bins)
    re = tf.tensordot(probs, tf.constant(np.cos(theta) / k, tf.float32), axes=[[-1], [0]])
    im = tf.tensordot(probs, tf.constant(np.sin(theta) / k, tf.float32), axes=[[-1], [0]])
    turns = tf.math.atan2(im, re) / (2.0 * math.pi)
    turns = turns - tf.floor(turns)
    turns = tf.where(turns >= 1.0, tf.zeros_like(turns), turns)  # float rounding of -tiny + 1
    hue = spec.low + turns * (spec.high - spec.low)
    return hue, tf.sqrt(re * re + im * im)


def chromatic_fading_factor(magnitude, eta=DEFAULT_FADING_ETA, variant=DEFAULT_FADING):
    """Chroma multiplier from ``|z|`` of the hue histogram.

    ``"released"`` (default): ``clip(|z|, 0, eta) / eta = min(|z| / eta, 1)`` (the authors' code
    and the paper's intent: fades uncertain hues; what makes hue/chroma beat grey, 0.299 vs 0.343).
    ``"paper"``: ``max(|z| / eta, 1)`` (as printed in ECCV 2016, a misprint; >= 1, never fades).
    See the module docstring.
    """
    _check_choice("variant", variant, FADING_VARIANTS)
    eta = float(eta)
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    magnitude = _float32(magnitude)
    if variant == "paper":
        return tf.maximum(magnitude / eta, 1.0)
    return tf.clip_by_value(magnitude, 0.0, eta) / eta


def apply_chromatic_fading(chroma, hue_probs, eta=DEFAULT_FADING_ETA, variant=DEFAULT_FADING,
                           spec=None):
    """``chroma * chromatic_fading_factor(|z(hue_probs)|)``."""
    _, magnitude = circular_expectation(hue_probs, spec)
    return _float32(chroma) * chromatic_fading_factor(magnitude, eta=eta, variant=variant)


def estimate_hue_chroma(hue_probs, chroma_probs, hue_method="expectation", chroma_method="median",
                      fading=DEFAULT_FADING, eta=DEFAULT_FADING_ETA, hue_spec=None,
                      chroma_spec=None, seed=None):
    """Hue and chroma point estimates from predicted histograms (the papers' best: circular
    expectation for hue, median for chroma, with chromatic fading).

    Args:
        hue_probs, chroma_probs: (..., K) probabilities.
        hue_method: ``"expectation"`` (circular), ``"mode"`` or ``"sample"``.
        chroma_method: one of ``ESTIMATE_METHODS`` (default ``"median"``: interpolated, the
            paper's best for chroma; ``"median_bin_centre"`` is the released code's).
        fading: ``"released"`` (default, ``min(|z|/eta, 1)``), ``"paper"`` (the printed
            ``max``, never fades) or None (no fading).
        eta: fading threshold.
        hue_spec, chroma_spec: bin specs (default: the ``"hue"`` / ``"chroma"`` presets).
        seed: for ``"sample"`` (int, shape-[2] seed or ``tf.random.Generator``).

    Returns:
        ``(hue, chroma)`` float32 of shape ``probs.shape[:-1]``.
    """
    hue_spec = bins_lib.get(hue_spec if hue_spec is not None else "hue")
    chroma_spec = bins_lib.get(chroma_spec if chroma_spec is not None else "chroma")
    if fading is not None:
        _check_choice("fading", fading, FADING_VARIANTS)
    hue = estimate(hue_spec, hue_probs, hue_method, seed=seed)
    chroma = estimate(chroma_spec, chroma_probs, chroma_method, seed=seed)
    if fading is not None:
        chroma = apply_chromatic_fading(chroma, hue_probs, eta=eta, variant=fading, spec=hue_spec)
    return hue, chroma


def entropy(probs):
    """Shannon entropy (nats) of histograms over the last axis; 0 log 0 = 0."""
    probs = _float32(probs)
    return -tf.reduce_sum(tf.math.xlogy(probs, probs), axis=-1)
