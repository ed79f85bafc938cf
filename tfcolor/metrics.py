"""Colorization metrics: alpha-beta error (mean distance and RMS), PSNR in RGB, cumulative curve.

The three numbers the papers report for colorization quality (Larsson, Maire & Shakhnarovich,
ECCV 2016, Table 2 and Fig. 6; the protocol follows Deshpande, Rock & Forsyth, "Learning
Large-Scale Automatic Image Colorization", ICCV 2015):

- **Alpha-beta error**, averaged over pixels. At each pixel the error is the Euclidean distance
  between the true and predicted colour in the alpha-beta plane (``tfcolor.color.rgb_to_alphabeta``:
  the chromatic channels of the space Deshpande et al. evaluate in, lightness dropped). The papers
  call their number "RMSE", but what they report is the **mean** of that per-pixel distance over
  every pixel of the data set (large images weigh more, as in "averaged over pixels"): the ECCV
  2016 figures 0.343 (no colour) and 0.299 (hue/chroma + fading) are this mean distance. It is
  reported here under its own name, ``alphabeta_mean`` (:func:`alphabeta_mean`), and the actual
  root mean square, ``sqrt(mean of squared distances)``, under ``alphabeta_rms``
  (:func:`alphabeta_rms`). ``alphabeta_rms >= alphabeta_mean`` always (Jensen), with equality
  only when every pixel has the same error; the two must not be compared with each other. No
  key is called "rmse", so a consumer written for the old ambiguous name fails loudly.
- **PSNR (RGB)**, averaged over images: per image ``10 log10(1 / MSE)`` with the MSE over all
  pixels and the three channels of sRGB values in [0, 1]; then the mean over images. A perfect
  colorization has infinite PSNR; :meth:`ColorizationMetrics.result` reports ``inf`` (and counts
  such images) rather than hiding them behind a cap.
- **Cumulative per-pixel error curve** (Larsson et al. 2016, Fig. 6, "cumulative histogram of
  per pixel error", after Deshpande et al. 2015): for thresholds t in [0, t_max] the fraction of
  all pixels whose alpha-beta error is at most t; its **area** is the mean of the curve over
  evenly spaced thresholds (the area under the curve divided by t_max, so 1.0 means every pixel
  is exact). Zhang, Isola & Efros (ECCV 2016) report the same statistic ("AuC", thresholds 0-150
  in Lab ab units); ``t_max`` is a parameter (default 1.0 alpha-beta units, the range of the
  curve in Larsson et al.). The curve is computed from a fine histogram of per-pixel errors
  (``num_bins`` bins on [0, t_max]; errors above ``t_max`` only count in the denominator), so
  memory does not grow with the data set.

The grey baseline ("no colour" in the papers) predicts ``rgb_to_gray(rgb)`` in all three
channels; :func:`gray_baseline` builds it, and :class:`ColorizationMetrics` accumulates any
number of named predictors side by side.

All image computations are TensorFlow ops on batches (``(B, H, W, 3)`` float in [0, 1]); only
the running sums live in NumPy.
"""
import json
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from tfcolor import color

DEFAULT_T_MAX = 1.0
DEFAULT_NUM_BINS = 1000


def _check_pair(rgb_true, rgb_pred):
    rgb_true = tf.convert_to_tensor(rgb_true)
    rgb_pred = tf.convert_to_tensor(rgb_pred)
    if not rgb_true.dtype.is_floating:
        raise TypeError(f"rgb_true must be a float tensor in [0, 1], got dtype {rgb_true.dtype}")
    if not rgb_pred.dtype.is_floating:
        raise TypeError(f"rgb_pred must be a float tensor in [0, 1], got dtype {rgb_pred.dtype}")
    if rgb_true.shape.rank is not None and rgb_true.shape.rank not in (3, 4):
        raise ValueError(
                f"rgb_true must have shape (H, W, 3) or (B, H, W, 3), got {rgb_true.shape}")
    if rgb_true.shape.rank is not None and rgb_true.shape[-1] not in (None, 3):
        raise ValueError(f"rgb_true must have 3 channels (RGB), got shape {rgb_true.shape}")
    if not rgb_true.shape.is_compatible_with(rgb_pred.shape):
        raise ValueError(
                f"rgb_true and rgb_pred shapes differ: {rgb_true.shape} vs {rgb_pred.shape}")
    return tf.cast(rgb_true, tf.float32), tf.cast(rgb_pred, tf.float32)


def gray_baseline(rgb):
    """The "no colour" prediction: the desaturated image L = (R + G + B) / 3 in all channels."""
    rgb = tf.convert_to_tensor(rgb)
    gray = tf.reduce_mean(tf.cast(rgb, tf.float32), axis=-1, keepdims=True)
    return tf.cast(tf.repeat(gray, 3, axis=-1), rgb.dtype)


def psnr(rgb_true, rgb_pred, max_val=1.0):
    """Per-image PSNR in dB over RGB: ``10 log10(max_val^2 / MSE)``; ``inf`` where MSE is 0.

    Args:
        rgb_true: (B, H, W, 3) or (H, W, 3) float tensor in [0, max_val].
        rgb_pred: same shape.
        max_val: the dynamic range (1.0 for images in [0, 1]).

    Returns:
        float32 tensor of shape (B,) (or a scalar for a single image).
    """
    rgb_true, rgb_pred = _check_pair(rgb_true, rgb_pred)
    mse = tf.reduce_mean(tf.math.squared_difference(rgb_true, rgb_pred), axis=[-3, -2, -1])
    log_max = tf.math.log(tf.cast(max_val, tf.float32))
    return 10.0 * (2.0 * log_max - tf.math.log(mse)) / math.log(10.0)


def alphabeta_error(rgb_true, rgb_pred):
    """Per-pixel colour error: Euclidean distance in the alpha-beta plane, shape (..., H, W)."""
    rgb_true, rgb_pred = _check_pair(rgb_true, rgb_pred)
    ab_true = color.rgb_to_alphabeta(rgb_true)
    ab_pred = color.rgb_to_alphabeta(rgb_pred)
    # rgb_to_alphabeta may return (l, alpha, beta); the metric uses the chromatic pair only.
    if ab_true.shape[-1] == 3:
        ab_true, ab_pred = ab_true[..., 1:], ab_pred[..., 1:]
    return tf.sqrt(tf.reduce_sum(tf.math.squared_difference(ab_true, ab_pred), axis=-1))


def alphabeta_mean(rgb_true, rgb_pred):
    """Per-image mean over pixels of the alpha-beta distance: what the papers report as "RMSE"
    (0.343 grey / 0.299 hue-chroma with fading in ECCV 2016)."""
    return tf.reduce_mean(alphabeta_error(rgb_true, rgb_pred), axis=[-2, -1])


def alphabeta_rms(rgb_true, rgb_pred):
    """Per-image root mean square of the alpha-beta distance, ``sqrt(mean over pixels of d^2)``
    (the textbook RMSE; >= :func:`alphabeta_mean`, equal only for a constant error)."""
    err = alphabeta_error(rgb_true, rgb_pred)
    return tf.sqrt(tf.reduce_mean(tf.square(err), axis=[-2, -1]))


def cumulative_error_curve(errors, t_max=DEFAULT_T_MAX, num_points=101):
    """Fraction of pixels with error <= t for ``num_points`` thresholds evenly spaced on [0, t_max].

    Args:
        errors: per-pixel errors, any shape (NumPy or tensor).
        t_max: largest threshold.
        num_points: number of thresholds (including 0 and t_max).

    Returns:
        (thresholds, fractions, area): NumPy arrays and the normalised area (mean of fractions).
    """
    if t_max <= 0:
        raise ValueError(f"t_max must be positive, got {t_max}")
    if num_points < 2:
        raise ValueError(f"num_points must be at least 2, got {num_points}")
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        raise ValueError("cumulative_error_curve needs at least one pixel error")
    thresholds = np.linspace(0.0, t_max, num_points)
    fractions = np.searchsorted(np.sort(errors), thresholds, side="right") / errors.size
    return thresholds, fractions, float(_area(fractions))


def _area(fractions):
    # Trapezoid rule over evenly spaced thresholds, normalised by the threshold range.
    fractions = np.asarray(fractions, dtype=np.float64)
    return (fractions[:-1] + fractions[1:]).sum() / (2.0 * (len(fractions) - 1))


class ColorizationMetrics:
    """Running colorization metrics for one or more named predictors on the same images.

    Example::

        m = ColorizationMetrics(["model", "gray"])
        for rgb in dataset:
            m.update("model", rgb, colorize(rgb))
            m.update("gray", rgb, gray_baseline(rgb))
        print(m.result())

    Args:
        names: predictor names (reported in this order).
        t_max: largest threshold of the cumulative error curve (alpha-beta units).
        num_bins: resolution of the error histogram behind the curve.
    """

    def __init__(self, names=("model", "gray"), t_max=DEFAULT_T_MAX, num_bins=DEFAULT_NUM_BINS):
        if not names:
            raise ValueError("ColorizationMetrics needs at least one predictor name")
        if t_max <= 0:
            raise ValueError(f"t_max must be positive, got {t_max}")
        if num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        self.names = list(names)
        self.t_max = float(t_max)
        self.num_bins = int(num_bins)
        self._state = {n: self._empty() for n in self.names}

    def _empty(self):
        return {"images": 0, "pixels": 0, "err_sum": 0.0, "err_sq_sum": 0.0, "psnr_sum": 0.0,
                "perfect": 0, "zeros": 0, "hist": np.zeros(self.num_bins, np.int64)}

    def update(self, name, rgb_true, rgb_pred):
        """Adds a batch (B, H, W, 3) (or one image (H, W, 3)) of ``name``'s predictions."""
        if name not in self._state:
            raise KeyError(f"unknown predictor {name!r}; known: {self.names}")
        rgb_true, rgb_pred = _check_pair(rgb_true, rgb_pred)
        if rgb_true.shape.rank == 3:
            rgb_true, rgb_pred = rgb_true[None], rgb_pred[None]
        err, img_psnr = _batch_errors(rgb_true, rgb_pred)
        err = err.numpy().astype(np.float64)
        img_psnr = img_psnr.numpy().astype(np.float64)
        s = self._state[name]
        s["images"] += err.shape[0]
        s["pixels"] += err.size
        s["err_sum"] += float(err.sum())
        s["err_sq_sum"] += float((err * err).sum())
        finite = np.isfinite(img_psnr)
        s["psnr_sum"] += float(img_psnr[finite].sum())
        s["perfect"] += int((~finite).sum())
        idx = np.floor(err.ravel() / self.t_max * self.num_bins).astype(np.int64)
        idx = idx[idx < self.num_bins]
        s["hist"] += np.bincount(idx, minlength=self.num_bins)
        s["zeros"] += int((err == 0).sum())

    def curve(self, name):
        """(thresholds, fractions) of the cumulative per-pixel error curve of ``name``."""
        s = self._state[name]
        if s["pixels"] == 0:
            raise ValueError(f"no images were added for {name!r}")
        thresholds = np.linspace(0.0, self.t_max, self.num_bins + 1)
        # fractions[j] = share of pixels with error below thresholds[j] (<= for the exact zeros).
        fractions = np.concatenate([[s["zeros"]], np.cumsum(s["hist"])]) / s["pixels"]
        return thresholds, fractions

    def result(self):
        """Dict name -> {images, pixels, alphabeta_mean, alphabeta_rms, psnr, auc, ...}."""
        out = {}
        for name in self.names:
            s = self._state[name]
            if s["images"] == 0:
                continue
            _, fractions = self.curve(name)
            n = s["images"]
            psnr_mean = math.inf if s["perfect"] else s["psnr_sum"] / n
            out[name] = {
                "images": n,
                "pixels": s["pixels"],
                "alphabeta_mean": s["err_sum"] / s["pixels"],
                "alphabeta_rms": math.sqrt(s["err_sq_sum"] / s["pixels"]),
                "psnr": psnr_mean,
                "images_with_infinite_psnr": s["perfect"],
                "psnr_finite_images": (s["psnr_sum"] / (n - s["perfect"])
                                       if n > s["perfect"] else math.inf),
                "auc": float(_area(fractions)),
                "t_max": self.t_max,
            }
        return out


@tf.function(reduce_retracing=True)
def _batch_errors(rgb_true, rgb_pred):
    return alphabeta_error(rgb_true, rgb_pred), psnr(rgb_true, rgb_pred)


def plot_curves(curves, path, title="Cumulative per-pixel error (alpha-beta)", size=(640, 480)):
    """Draws cumulative error curves to a PNG with Pillow (matplotlib is not a dependency).

    Args:
        curves: dict name -> (thresholds, fractions).
        path: output PNG path.
        title: text on top.
        size: (width, height) in pixels.
    """
    width, height = size
    left, right, top, bottom = 60, 20, 40, 50
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = left, top, width - right, height - bottom
    draw.rectangle([x0, y0, x1, y1], outline="black")
    t_max = max(float(t[-1]) for t, _ in curves.values()) if curves else 1.0
    for i in range(6):  # grid and tick labels
        fy = i / 5
        y = y1 - fy * (y1 - y0)
        draw.line([x0, y, x1, y], fill=(225, 225, 225))
        draw.text((8, y - 6), f"{fy:.1f}", fill="black")
        x = x0 + fy * (x1 - x0)
        draw.line([x, y0, x, y1], fill=(225, 225, 225))
        draw.text((x - 10, y1 + 6), f"{fy * t_max:.2f}", fill="black")
    draw.text((x0, 10), title, fill="black")
    draw.text(((x0 + x1) // 2 - 60, height - 22), "error threshold (alpha-beta)", fill="black")
    palette = [(31, 119, 180), (127, 127, 127), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for k, (name, (t, f)) in enumerate(curves.items()):
        colour = palette[k % len(palette)]
        pts = [(x0 + float(a) / t_max * (x1 - x0), y1 - float(b) * (y1 - y0)) for a, b in zip(t, f)]
        draw.line(pts, fill=colour, width=2)
        draw.line([x1 - 150, y1 - 20 - 16 * k, x1 - 130, y1 - 20 - 16 * k], fill=colour, width=2)
        draw.text((x1 - 125, y1 - 26 - 16 * k), name, fill="black")
    img.save(path)
    return path


def write_report(acc, output_dir, extra=None):
    """Writes ``metrics.json`` and ``cumulative_error.png`` for a :class:`ColorizationMetrics`.

    Infinite PSNRs are written as the string ``"inf"`` (JSON has no infinity).

    Returns:
        ``(json_path, png_path)``.
    """
    os.makedirs(output_dir, exist_ok=True)
    result = acc.result()
    curves = {name: acc.curve(name) for name in result}
    report = {"metrics": result, "curves": {
            name: {"thresholds": t[::10].tolist(), "fraction": f[::10].tolist()}
            for name, (t, f) in curves.items()}, "definitions": {
            "alphabeta_mean": "mean over all pixels of the Euclidean alpha-beta distance (what "
                              "the papers call 'RMSE': their 0.343 grey / 0.299 are this)",
            "alphabeta_rms": "root mean square: sqrt of the pixel-mean squared alpha-beta "
                             "distance (>= alphabeta_mean)",
            "psnr": "mean over images of 10 log10(1 / MSE_RGB), RGB in [0, 1]",
            "auc": "area under the cumulative per-pixel error curve on [0, t_max], / t_max"}}
    if extra:
        report.update(extra)

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    json_path = os.path.join(output_dir, "metrics.json")
    with open(json_path, "w") as f:
        json.dump(clean(report), f, indent=2)
    png_path = plot_curves(curves, os.path.join(output_dir, "cumulative_error.png"))
    return json_path, png_path
