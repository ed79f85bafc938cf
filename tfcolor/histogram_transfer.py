"""Histogram transfer: colorize towards the colours of a reference image.

Larsson, Maire & Shakhnarovich (ECCV 2016, Sec. 4 and the supplementary material) show that the
predicted per-pixel histograms can be steered by a global colour histogram, e.g. that of a
reference photo. Two methods are implemented:

1. **Lightness-normalised quantile matching** (:func:`quantile_transfer`), applied to a finished
   RGB colorization. Each pixel's RGB is divided by its lightness ``L = (R + G + B) / 3``, giving a
   lightness-free chromaticity ``r = RGB / L`` (whose channels average 1); each channel of ``r`` is
   mapped through the empirical CDF of the colorization onto the quantiles of the same channel of
   the reference (classic histogram specification, ties share their mean rank); the result is
   re-normalised to mean 1 and multiplied back by ``L``, so the lightness of every pixel is kept
   exactly (and brought back into the RGB gamut without changing it, see
   :func:`desaturate_into_gamut`). Pixels darker than ``min_lightness`` are left out of the
   statistics (their chromaticity is undefined). Normalising by lightness is what makes the
   transfer insensitive to the reference being darker or brighter than the target. This is our
   reading of the paper's one-line description; the authors did not release this code.

2. **Energy minimisation over a global per-bin bias** (:func:`fit_global_bias`), applied to the
   predicted histograms before decoding. With predictions ``p_i`` (one histogram per grid pixel i),
   a bias ``b`` (one value per bin, shared by all pixels) defines posteriors
   ``q_i = softmax(log p_i + b)``; ``b`` minimises::

       E(b) = mean_i KL(q_i || p_i) + lambda * chi2(q_bar, t),
       q_bar = sum_i w_i q_i / sum_i w_i,    chi2(u, v) = sum_k (u_k - v_k)^2 / (u_k + v_k + eps)

   (symmetric chi-squared distance, not halved), ``t`` the target histogram of the reference. The
   KL term keeps every pixel close to what the network predicted; the chi2 term pulls the pooled
   colour distribution towards the target. Solved by plain gradient descent on ``b`` from ``b = 0``
   (``steps`` iterations of ``b -= learning_rate * dE/db``; E is smooth and the problem has only K
   unknowns). ``w_i`` are optional pixel weights: for hue the colorizer passes the predicted
   chroma, matching the target hue histogram which weights each reference pixel's hue by its
   chroma (hue is meaningless for grey pixels, as in the hue loss).

:func:`target_histogram` builds ``t`` from a reference RGB image for a bin spec of
``tfcolor.bins`` and a colour channel (``"hue"``, ``"chroma"``, ``"a"``, ``"b"``, ``"ab"``).

Everything is TensorFlow ops on single images (``(H, W, 3)`` / ``(h, w, K)``); batch callers loop.
"""
import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor import color as color_lib

DEFAULT_LAMBDA = 10.0
DEFAULT_STEPS = 300
DEFAULT_LEARNING_RATE = 1.0


def _check_rgb(name, rgb):
    rgb = tf.convert_to_tensor(rgb)
    if not rgb.dtype.is_floating:
        raise TypeError(f"{name} must be float RGB in [0, 1], got dtype {rgb.dtype}")
    if rgb.shape.rank != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {rgb.shape}")
    return tf.cast(rgb, tf.float32)


def quantile_match(values, reference):
    """Maps ``values`` (1-D) so that their empirical distribution matches ``reference`` (1-D).

    Each value goes to the reference quantile at its mid-rank ``(rank + 0.5) / n`` (ties share the
    mean rank), linearly interpolated between reference order statistics. Monotone and
    order-preserving; ``quantile_match(x, x) == x`` for distinct values.
    """
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    reference = tf.sort(tf.reshape(tf.cast(reference, tf.float32), [-1]))
    n = tf.cast(tf.size(values), tf.float32)
    m = tf.size(reference)
    tf.debugging.assert_positive(m, message="quantile_match: the reference has no values")
    ordered = tf.sort(values)
    lo = tf.cast(tf.searchsorted(ordered, values, side="left"), tf.float32)
    hi = tf.cast(tf.searchsorted(ordered, values, side="right"), tf.float32)
    q = (lo + hi) / (2.0 * n)  # mid-rank in (0, 1)
    pos = q * tf.cast(m, tf.float32) - 0.5
    pos = tf.clip_by_value(pos, 0.0, tf.cast(m - 1, tf.float32))
    i0 = tf.cast(tf.floor(pos), tf.int32)
    i1 = tf.minimum(i0 + 1, m - 1)
    frac = pos - tf.cast(i0, tf.float32)
    return tf.gather(reference, i0) * (1.0 - frac) + tf.gather(reference, i1) * frac


def quantile_transfer(rgb, reference_rgb, min_lightness=0.02):
    """Lightness-normalised quantile matching of ``rgb`` to ``reference_rgb`` (module docstring).

    Args:
        rgb: (H, W, 3) float colorization in [0, 1].
        reference_rgb: (H', W', 3) float reference image in [0, 1] (any size).
        min_lightness: pixels darker than this are excluded from both distributions and keep
            their colour.

    Returns:
        (H, W, 3) float32 in [0, 1] with exactly the lightness of ``rgb``.
    """
    rgb = _check_rgb("rgb", rgb)
    reference_rgb = _check_rgb("reference_rgb", reference_rgb)
    light = tf.reduce_mean(rgb, axis=-1, keepdims=True)
    ref_light = tf.reduce_mean(reference_rgb, axis=-1, keepdims=True)
    chroma_rgb = rgb / tf.maximum(light, min_lightness)
    ref_chroma = reference_rgb / tf.maximum(ref_light, min_lightness)
    mask = light[..., 0] >= min_lightness
    ref_mask = ref_light[..., 0] >= min_lightness
    if not bool(tf.reduce_any(ref_mask)):
        raise ValueError("quantile_transfer: the reference image has no pixel brighter than "
                         f"min_lightness={min_lightness}")
    flat = tf.boolean_mask(chroma_rgb, mask)
    ref_flat = tf.boolean_mask(ref_chroma, ref_mask)
    matched = tf.stack([quantile_match(flat[:, c], ref_flat[:, c]) for c in range(3)], axis=-1)
    matched = matched / tf.maximum(tf.reduce_mean(matched, axis=-1, keepdims=True), 1e-6)
    out_chroma = tf.tensor_scatter_nd_update(chroma_rgb, tf.where(mask), matched)
    out = out_chroma * light
    return desaturate_into_gamut(out, light)


def desaturate_into_gamut(rgb, gray):
    """``gray + s (rgb - mean(rgb))`` with the largest ``s`` in [0, 1] keeping [0, 1] RGB.

    The result has exactly the lightness ``gray`` (mean of R, G, B) and the hue direction of
    ``rgb``; colours outside the sRGB cube are desaturated towards the grey rather than clipped.
    This is the ``lightness="exact"`` matching of ``tfcolor.readout``.

    Args:
        rgb: (..., 3) float.
        gray: (..., 1) float in [0, 1].

    Returns:
        (..., 3) float32 in [0, 1].
    """
    rgb = tf.cast(rgb, tf.float32)
    gray = tf.clip_by_value(tf.cast(gray, tf.float32), 0.0, 1.0)
    offset = rgb - tf.reduce_mean(rgb, axis=-1, keepdims=True)
    big = tf.fill(tf.shape(offset), float("inf"))
    room_up = tf.where(offset > 0, (1.0 - gray) / tf.where(offset > 0, offset, 1.0), big)
    room_down = tf.where(offset < 0, gray / tf.where(offset < 0, -offset, 1.0), big)
    scale = tf.minimum(1.0, tf.reduce_min(tf.minimum(room_up, room_down), axis=-1, keepdims=True))
    return tf.clip_by_value(gray + scale * offset, 0.0, 1.0)


def target_histogram(reference_rgb, spec, channel, hcl_variant="paper"):
    """Global histogram ``t`` of a reference image for one predicted channel.

    Args:
        reference_rgb: (H, W, 3) float in [0, 1].
        spec: bin spec (``tfcolor.bins`` spec, preset name or serialized dict).
        channel: ``"hue"`` (weighted by chroma), ``"chroma"``, ``"a"``, ``"b"`` (Lab) or ``"ab"``
            (joint Lab bins).
        hcl_variant: passed to ``tfcolor.color.rgb_to_hcl``.

    Returns:
        (K,) float32 summing to 1 (uniform if every weight is 0).
    """
    spec = bins_lib.get(spec)
    rgb = _check_rgb("reference_rgb", reference_rgb)
    weights = None
    if channel in ("hue", "chroma"):
        hcl = _rgb_to_hcl(color_lib, rgb, hcl_variant)
        values = hcl[..., 0] if channel == "hue" else hcl[..., 1]
        if channel == "hue":
            weights = hcl[..., 1]
    elif channel in ("a", "b", "ab"):
        lab = color_lib.rgb_to_lab(rgb)
        values = {"a": lab[..., 1], "b": lab[..., 2], "ab": lab[..., 1:]}[channel]
    else:
        raise ValueError(f"unknown channel {channel!r}; expected hue, chroma, a, b or ab")
    index = tf.reshape(spec.encode(values), [-1])
    if weights is None:
        weights = tf.ones_like(index, tf.float32)
    weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
    counts = tf.math.unsorted_segment_sum(weights, index, spec.num_bins)
    total = tf.reduce_sum(counts)
    uniform = tf.fill([spec.num_bins], 1.0 / spec.num_bins)
    return tf.where(total > 0, counts / tf.maximum(total, 1e-12), uniform)


def _rgb_to_hcl(color, rgb, variant):
    try:
        return color.rgb_to_hcl(rgb, variant=variant)
    except TypeError:  # a colour module without the variant argument
        return color.rgb_to_hcl(rgb)


def chi2_distance(u, v, eps=1e-10):
    """Symmetric chi-squared distance ``sum_k (u_k - v_k)^2 / (u_k + v_k + eps)`` (last axis)."""
    return tf.reduce_sum(tf.math.squared_difference(u, v) / (u + v + eps), axis=-1)


def transfer_energy(bias, log_probs, target, lam=DEFAULT_LAMBDA, weights=None):
    """``E(b)`` of the module docstring for log-probabilities ``log_probs`` (N, K)."""
    log_q = tf.nn.log_softmax(log_probs + bias, axis=-1)
    q = tf.exp(log_q)
    kl = tf.reduce_mean(tf.reduce_sum(q * (log_q - log_probs), axis=-1))
    if weights is None:
        pooled = tf.reduce_mean(q, axis=0)
    else:
        pooled = tf.reduce_sum(q * weights[:, None], axis=0) / tf.maximum(tf.reduce_sum(weights),
                                                                          1e-12)
    return kl + lam * chi2_distance(pooled, target)


def fit_global_bias(probs, target, lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS,
                    learning_rate=DEFAULT_LEARNING_RATE, weights=None, eps=1e-8):
    """Global per-bin bias ``b`` pulling the pooled posterior towards ``target`` (module docstring).

    Args:
        probs: (..., K) predicted histograms (probabilities), e.g. one image's (h, w, K) map.
        target: (K,) target histogram.
        lam: weight lambda of the chi-squared term (>= 0; 0 gives b = 0).
        steps: gradient descent iterations.
        learning_rate: gradient descent step size.
        weights: optional (...) per-pixel weights of the pooled posterior.
        eps: floor on probabilities before taking logs.

    Returns:
        ``(bias, posterior)``: (K,) and ``softmax(log probs + bias)`` with the shape of ``probs``.
    """
    probs = tf.cast(tf.convert_to_tensor(probs), tf.float32)
    target = tf.cast(tf.convert_to_tensor(target), tf.float32)
    k = probs.shape[-1]
    if k is None or target.shape.rank != 1 or target.shape[0] != k:
        raise ValueError(f"target must have shape ({k},) to match probs {probs.shape}, got "
                         f"{target.shape}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if steps < 0 or learning_rate <= 0:
        raise ValueError(f"steps must be >= 0 and learning_rate > 0, got {steps}, {learning_rate}")
    target = target / tf.reduce_sum(target)
    log_p = tf.math.log(tf.maximum(tf.reshape(probs, [-1, k]), eps))
    w = None if weights is None else tf.reshape(tf.cast(weights, tf.float32), [-1])
    bias = _descend(log_p, target, w, tf.constant(float(lam)), tf.constant(int(steps)),
                    tf.constant(float(learning_rate)))
    posterior = tf.nn.softmax(tf.math.log(tf.maximum(probs, eps)) + bias, axis=-1)
    return bias, posterior


@tf.function(reduce_retracing=True)
def _descend(log_p, target, weights, lam, steps, learning_rate):
    def body(i, b):
        with tf.GradientTape() as tape:
            tape.watch(b)
            energy = transfer_energy(b, log_p, target, lam, weights)
        return i + 1, b - learning_rate * tape.gradient(energy, b)

    b0 = tf.zeros_like(target)
    _, b = tf.while_loop(lambda i, b: i < steps, body, [tf.constant(0), b0])
    return b
