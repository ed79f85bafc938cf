"""Colour baselines that know the training photos but never look at the image: a constant tint
and a lookup from lightness to colour.

A colorizer that paints every photo the same warm tint gains a little over grey without reading
anything. These two baselines put a number on that, in the space of the evaluation's colour
error (the alpha-beta plane of ``tfcolor.metrics.alphabeta_error``: ``alpha = (B - (R + G) / 2) /
(grey + eps)``, ``beta = (R - G) / (grey + eps)``, ``tfcolor.color.rgb_to_alphabeta``):

* :class:`ConstantTint`: one ``(alpha, beta)`` for every pixel of every image, the geometric
  median of the training pixels' pairs (the constant that minimises the mean Euclidean distance
  to them, the error the evaluation averages);
* :class:`LightnessLookup`: one ``(alpha, beta)`` per grey level, the geometric median of the
  training pixels of that level (``bins`` levels of equal width on [0, 1]; a level with fewer
  than ``min_pixels`` training pixels takes the constant tint).

Both keep each image's own grey exactly where the colour fits in the sRGB cube
(``tfcolor.color.alphabeta_to_rgb``, clipped), as the model's read-out does. They are fitted by
:func:`fit_tints` on the pixels of one deterministic pass of the pretraining pipeline over the
training source (the crops the model and the marginal prior see, ``tfcolor.prior``), every
``stride``-th pixel of each crop in both directions. ``to_dict``/``from_dict`` keep them in JSON.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfcolor import color
from tfcolor import config as config_lib
from tfcolor import data as data_lib

__all__ = ["ConstantTint", "LightnessLookup", "geometric_median", "pixel_samples", "fit_tints",
           "TINT_BASELINES"]

#: The names of the baselines :func:`fit_tints` returns, in order.
TINT_BASELINES = ("constant_tint", "lightness_lookup")


def geometric_median(points, *, iterations=1000, tol=1e-10):
    """The point minimising the sum of Euclidean distances to ``points`` (N, D) (Weiszfeld's
    iteration from the coordinate-wise median; a data point met exactly is nudged off by
    ``tol``). Float64 (D,)."""
    x = np.asarray(points, np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"points must be a non-empty (N, D) array of finite values, got shape "
                         f"{x.shape}")
    y = np.median(x, axis=0)
    for _ in range(iterations):
        d = np.maximum(np.linalg.norm(x - y, axis=1), tol)
        w = 1.0 / d
        new = (x * w[:, None]).sum(0) / w.sum()
        if np.linalg.norm(new - y) <= tol * (1.0 + np.linalg.norm(y)):
            return new
        y = new
    return y


def _gray(rgb):
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        rgb = tf.cast(rgb, tf.float32) / 255.0
    rgb = tf.cast(rgb, tf.float32)
    if rgb.shape[-1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {rgb.shape}")
    return tf.reduce_mean(rgb, axis=-1, keepdims=True)


@dataclasses.dataclass
class ConstantTint:
    """One ``(alpha, beta)`` pair for every pixel (module docstring)."""
    alphabeta: tuple = (0.0, 0.0)
    pixels: int = 0

    @classmethod
    def fit(cls, gray, alphabeta):
        """From training pixels: grey (N,) (unused) and their (alpha, beta) (N, 2)."""
        del gray
        ab = np.asarray(alphabeta, np.float64)
        return cls(tuple(float(v) for v in geometric_median(ab)), int(ab.shape[0]))

    def colorize(self, image):
        """(..., H, W, 1 or 3) image, float in [0, 1] or uint8 -> (..., H, W, 3) float32 RGB."""
        gray = _gray(image)
        ab = tf.broadcast_to(tf.constant(self.alphabeta, tf.float32),
                             tf.concat([tf.shape(gray)[:-1], [2]], 0))
        return color.alphabeta_to_rgb(ab, gray, clip=True, validate=False)

    def to_dict(self):
        return {"kind": "constant_tint", "alphabeta": list(self.alphabeta), "pixels": self.pixels}

    @classmethod
    def from_dict(cls, d):
        return cls(tuple(float(v) for v in d["alphabeta"]), int(d.get("pixels", 0)))


@dataclasses.dataclass
class LightnessLookup:
    """One ``(alpha, beta)`` pair per grey level (module docstring)."""
    table: tuple = ((0.0, 0.0),)
    pixels: int = 0

    @classmethod
    def fit(cls, gray, alphabeta, *, bins=16, min_pixels=50):
        """From training pixels: grey (N,) in [0, 1] and their (alpha, beta) (N, 2)."""
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        gray = np.asarray(gray, np.float64).ravel()
        ab = np.asarray(alphabeta, np.float64)
        if ab.shape != (gray.size, 2):
            raise ValueError(f"alphabeta must be (N, 2) for N = {gray.size} grey values, got "
                             f"{ab.shape}")
        level = np.minimum((gray * bins).astype(np.int64), bins - 1)
        everywhere = geometric_median(ab)
        table = []
        for k in range(bins):
            mine = ab[level == k]
            table.append(geometric_median(mine) if len(mine) >= min_pixels else everywhere)
        return cls(tuple(tuple(float(v) for v in row) for row in table), int(gray.size))

    @property
    def bins(self):
        return len(self.table)

    def colorize(self, image):
        """(..., H, W, 1 or 3) image, float in [0, 1] or uint8 -> (..., H, W, 3) float32 RGB."""
        gray = _gray(image)
        level = tf.minimum(tf.cast(gray[..., 0] * self.bins, tf.int32), self.bins - 1)
        ab = tf.gather(tf.constant(self.table, tf.float32), level)
        return color.alphabeta_to_rgb(ab, gray, clip=True, validate=False)

    def to_dict(self):
        return {"kind": "lightness_lookup", "table": [list(r) for r in self.table],
                "pixels": self.pixels}

    @classmethod
    def from_dict(cls, d):
        return cls(tuple(tuple(float(v) for v in r) for r in d["table"]), int(d.get("pixels", 0)))


def pixel_samples(source=None, data_config=None, *, stride=4, max_images=None, **options):
    """``(grey (N,), alpha-beta (N, 2))`` float64 of the training crops' pixels: one
    deterministic pass of :func:`tfcolor.data.pretrain_dataset` over ``source`` with
    ``data_config`` (as :func:`tfcolor.prior.marginal_prior`; ``options``: pipeline options such
    as ``seed``), every ``stride``-th pixel of each crop in both directions."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    data_config = dataclasses.replace(data_config or config_lib.DataConfig(),
                                      targets_on_device=True)
    options = dict(options, shuffle=True, repeat=False, drop_remainder=False, deterministic=True,
                   seed=options.get("seed") or 0)
    ds = data_lib.pretrain_dataset(data_config, source=source,
                                   purpose="tint baselines fitted", **options)
    grays, abs_, images = [], [], 0
    for batch in ds:
        rgb = batch["rgb"][:, ::stride, ::stride]
        if max_images is not None:
            rgb = rgb[:max_images - images]
        images += int(rgb.shape[0])
        grays.append(tf.reshape(tf.reduce_mean(rgb, -1), [-1]).numpy())
        abs_.append(tf.reshape(color.rgb_to_alphabeta(rgb, validate=False), [-1, 2]).numpy())
        if max_images is not None and images >= max_images:
            break
    if not grays:
        raise data_lib.SourceError(f"no decodable image in {source!r}: cannot fit the tint "
                                   "baselines")
    return (np.concatenate(grays).astype(np.float64),
            np.concatenate(abs_).astype(np.float64))


def fit_tints(source=None, data_config=None, *, stride=4, max_images=None, bins=16, **options):
    """``{"constant_tint": ConstantTint, "lightness_lookup": LightnessLookup}`` fitted on the
    pixels of :func:`pixel_samples` (arguments as there)."""
    gray, ab = pixel_samples(source, data_config, stride=stride, max_images=max_images, **options)
    return {"constant_tint": ConstantTint.fit(gray, ab),
            "lightness_lookup": LightnessLookup.fit(gray, ab, bins=bins)}
