"""Colorizing images: decoding predicted histograms into RGB, and the file-level colorizer.

Decode step (:func:`decode`, :func:`decode_rgb`)
--------------------------------------------------
The network predicts one histogram per output group (``kind`` as in ``tfcolor.targets``) on the
dense grid, ``(B, ceil(H/g), ceil(W/g), D)``. Decoding, all TensorFlow ops (eager, ``tf.function``,
inside a SavedModel):

1. softmax per group (``from_logits=True``) and, optionally, histogram transfer
   (``tfcolor.histogram_transfer``) on the probabilities;
2. a point estimate per grid cell: for ``hue_chroma`` hue = circular expectation
   (``arg z``), chroma = interpolated median, then chromatic fading
   (``tfcolor.bins.decode_hue_chroma``); for Lab kinds a and b (expectation of each marginal by
   default, the paper's best for Lab; median / median_bin_centre / mode / sample also; the joint
   16 x 16 grid has no median);
3. the colour channels are upsampled bilinearly to the full input resolution. Grid cell
   ``(i, j)`` is input pixel ``(i g, j g)`` (the ``DenseHypercolumn`` contract), so full-resolution
   pixel ``y`` reads grid coordinate ``y / g`` (clamped at the last cell). Hue is circular, so
   hue and chroma are upsampled as the chroma vector ``(C cos 2 pi H, C sin 2 pi H)`` and turned
   back into hue and chroma (no wrap-around artefacts between hue 0.98 and 0.02);
4. recombination with the **full-resolution input lightness**: ``hcl_to_rgb([H, C, gray],
   lightness="mean")`` (chroma reduced where infeasible, ``variant`` paper or released), or for
   Lab ``lab_to_rgb([L*(gray), a, b])``;
5. **lightness matching** (``lightness="exact"``, default): the output keeps the input lightness
   exactly, ``mean(R, G, B) == gray`` at every pixel. ``rgb <- gray + s (rgb - mean(rgb))`` with the
   largest ``s`` in [0, 1] that keeps every channel in [0, 1], i.e. colour is desaturated rather
   than the lightness changed where the prediction leaves the gamut. ``lightness="released"`` is
   the authors' ``match_lightness``: ``clip(rgb - mean(rgb) + gray, 0, 1)`` (lightness can drift
   where it clips); ``lightness=None`` skips the step (Lab outputs then keep L* of the grey, not
   the mean).

Defaults are the choices the ECCV 2016 paper finds best: chroma median (linearly interpolated
inside the bin where the cumulative histogram crosses 0.5, the paper's wording;
``chroma_method="median_bin_centre"`` is the released code's bin-centre rule), hue circular
expectation, Lab histograms by expectation ("in Lab, expectation gives the best results"), and
chromatic fading ``fading="released"``, ``min(|z|/eta, 1)``. The paper prints
``max(|z|/eta, 1)``, which never fades (at most a 4% boost) although its text says to
"downweight the chroma" and its table needs fading to beat grey (0.342 without vs 0.343 grey,
0.299 with); that printed form stays available as ``fading="paper"`` (see ``tfcolor.bins``).

Uncertainty map: normalised hue entropy times chroma, ``H(p_hue) / log K * C`` in [0, 1] (high
where the model is unsure of the hue of a colourful pixel); for Lab kinds the mean normalised
entropy of the a and b histograms (joint: of the joint histogram); zeros for regression.

Samples: ``hue_method="sample"`` / ``chroma_method="sample"`` draw every pixel independently
(``tfcolor.bins`` inverse CDF; noisy images). ``sample_quantile=u`` instead takes the same
quantile ``u`` of every pixel's histograms (one uniform draw per image, the released code's
"once" mode), which gives spatially coherent alternative colorizations; :func:`colorize_image`
with ``samples=n`` uses that with ``n`` draws.

Any input size (:func:`predict_grid`)
-------------------------------------
The grey input is padded at the bottom and right, by mirror reflection, to a multiple of the
trunk's largest stride (32 for VGG-16, 64 with +FoV), so that every layer sees an integral size,
and the prediction grid is cropped back to ``ceil(H/g) x ceil(W/g)``; the decode step then works
at the original size. Images larger than ``max_side`` (default 512, as the released program's
~500) are shrunk for the network only: the colour is upsampled back to the original resolution and
recombined with the original, full-resolution lightness, so no detail is lost.

Files (:func:`expand_inputs`, :func:`read_image`, :func:`colorize_files`)
------------------------------------------------------------------------
Inputs are files, folders (all images inside, sorted; ``recursive=True`` to descend) or globs.
Colour inputs are desaturated first (the network and the output only use their grey). An input
that cannot be used is skipped with one logged line ``skipped PATH: reason: detail``, the reason
being ``not_a_file``, ``empty``, ``unknown_format``, ``too_large`` (above :data:`MAX_PIXELS` =
``tfcolor.data.decode.DEFAULT_MAX_PIXELS``, read from the header: never decoded), ``corrupt``,
``unreadable`` or ``failed`` (an error while colorizing it). Outputs are PNGs named after the
input (``name.png``, ``name_uncertainty.png``, ``name_sample1.png``, ...), written atomically
(temporary name, then ``os.replace``); existing outputs are kept unless ``overwrite=True``.
"""
import dataclasses
import glob
import logging
import math
import os
import time

import numpy as np
import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor import histogram_transfer
from tfcolor.data import decode as decode_lib

logger = logging.getLogger(__name__)

KINDS = ("hue_chroma", "lab_hist", "lab_joint", "lab_regression")
LIGHTNESS_MODES = ("exact", "released", None)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")
DEFAULT_MAX_SIDE = 512
#: Images with more pixels are refused unread (``tfcolor.data.decode.DEFAULT_MAX_PIXELS``).
MAX_PIXELS = decode_lib.DEFAULT_MAX_PIXELS

# kind -> ((group name, bin spec preset or None for regression values), ...)
GROUPS = {
        "hue_chroma": (("hue", "hue"), ("chroma", "chroma")),
        "lab_hist": (("a", "lab_a"), ("b", "lab_b")),
        "lab_joint": (("ab", "lab_ab"),),
        "lab_regression": (("ab", None),),
}


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def group_sizes(kind):
    """Sizes of the head's output groups for ``kind`` (the default bin specs)."""
    _check_kind(kind)
    return tuple(2 if spec is None else bins_lib.get(spec).num_bins for _, spec in GROUPS[kind])


def split_predictions(predictions, kind="hue_chroma", from_logits=True):
    """Splits the head's output into named groups; softmax if ``from_logits``.

    Args:
        predictions: (..., D) concatenated head output.
        kind: loss kind (see module docstring).
        from_logits: apply a softmax per group (ignored for ``lab_regression``).

    Returns:
        dict group name -> float32 tensor: probabilities (..., K), or (..., 2) a/b values for
        regression.
    """
    sizes = group_sizes(kind)
    predictions = tf.cast(tf.convert_to_tensor(predictions), tf.float32)
    depth = predictions.shape[-1]
    if depth is not None and depth != sum(sizes):
        raise ValueError(f"predictions have {depth} channels but kind={kind!r} needs "
                         f"{sum(sizes)} (groups {sizes}); wrong kind for this model?")
    parts = tf.split(predictions, list(sizes), axis=-1)
    out = {}
    for (name, spec), part in zip(GROUPS[kind], parts):
        if spec is not None and from_logits:
            part = tf.nn.softmax(part, axis=-1)
        out[name] = part
    return out


def upsample_grid(values, size, grid_factor=4, network_size=None):
    """Bilinear upsampling of grid maps to full resolution, under the dense-grid convention.

    Grid cell ``(i, j)`` is network-input pixel ``(i g, j g)``. When the network saw the image at
    ``network_size`` instead of ``size`` (shrunk for speed), full-resolution pixel ``y`` is
    network pixel ``(y + 0.5) * H_net / H - 0.5`` first.

    Args:
        values: (B, h, w, C) grid maps.
        size: (H, W) output size (ints or int tensor).
        grid_factor: g.
        network_size: (H_net, W_net) or None (= size).

    Returns:
        (B, H, W, C) float32.
    """
    values = tf.cast(values, tf.float32)
    size = tf.cast(tf.convert_to_tensor(size), tf.int32)
    net = size if network_size is None else tf.cast(tf.convert_to_tensor(network_size), tf.int32)
    grid_hw = tf.shape(values)[1:3]
    g = float(grid_factor)
    for axis in (1, 2):
        n_out = size[axis - 1]
        n_in = grid_hw[axis - 1]
        pix = tf.cast(tf.range(n_out), tf.float32)
        if network_size is not None:
            ratio = tf.cast(net[axis - 1], tf.float32) / tf.cast(n_out, tf.float32)
            pix = tf.maximum((pix + 0.5) * ratio - 0.5, 0.0)
        coord = tf.clip_by_value(pix / g, 0.0, tf.cast(n_in - 1, tf.float32))
        lo = tf.cast(tf.floor(coord), tf.int32)
        hi = tf.minimum(lo + 1, n_in - 1)
        frac = coord - tf.cast(lo, tf.float32)
        shape = [-1, 1, 1] if axis == 1 else [-1, 1]
        frac = tf.reshape(frac, shape)
        values = (tf.gather(values, lo, axis=axis) * (1.0 - frac)
                  + tf.gather(values, hi, axis=axis) * frac)
    return values


def match_lightness(rgb, gray, mode="exact"):
    """Gives ``rgb`` the lightness ``gray`` (mean of R, G, B); see the module docstring.

    Args:
        rgb: (..., 3) float.
        gray: (..., 1) float in [0, 1].
        mode: ``"exact"`` (keep the lightness exactly, desaturate to stay in gamut) or
            ``"released"`` (the authors' ``clip(rgb - mean + gray, 0, 1)``).

    Returns:
        (..., 3) float32 in [0, 1].
    """
    if mode not in ("exact", "released"):
        raise ValueError(f"lightness matching mode must be 'exact' or 'released', got {mode!r}")
    rgb = tf.cast(rgb, tf.float32)
    gray = tf.cast(gray, tf.float32)
    if mode == "released":
        return tf.clip_by_value(rgb - tf.reduce_mean(rgb, axis=-1, keepdims=True) + gray, 0.0, 1.0)
    return histogram_transfer.desaturate_into_gamut(rgb, gray)


def _quantile_decode(spec, probs, u):
    """Centre of the first bin whose cumulative probability reaches ``u`` (per-image scalar)."""
    cum = tf.math.cumsum(probs, axis=-1)
    u = tf.reshape(tf.cast(u, tf.float32), [-1] + [1] * (probs.shape.rank - 1))
    index = tf.reduce_sum(tf.cast(cum < u * cum[..., -1:], tf.int32), axis=-1)
    index = tf.minimum(index, spec.num_bins - 1)
    return tf.gather(spec.centers_tensor(), index)


def _normalised_entropy(probs):
    k = probs.shape[-1]
    return bins_lib.entropy(probs) / math.log(k)


def decode(histograms, gray, *, kind="hue_chroma", grid_factor=4, network_size=None,
           hue_method="expectation", chroma_method="median", lab_method=None,
           fading=bins_lib.DEFAULT_FADING,
           eta=bins_lib.DEFAULT_FADING_ETA, hcl_variant="paper", lightness="exact",
           sample_quantile=None, seed=None):
    """Grid histograms -> full-resolution RGB and uncertainty (module docstring, steps 2-5).

    Args:
        histograms: dict from :func:`split_predictions` (probabilities at grid resolution).
        gray: (B, H, W, 1) full-resolution grey in [0, 1].
        kind: loss kind of the model.
        grid_factor: g of the prediction grid.
        network_size: (H_net, W_net) the network saw, if the image was shrunk; None = (H, W).
        hue_method: ``"expectation"`` (circular), ``"mode"`` or ``"sample"``.
        chroma_method: ``"median"`` (interpolated, the paper), ``"median_bin_centre"`` (the
            released code), ``"expectation"``, ``"mode"`` or ``"sample"``.
        lab_method: decoding of Lab histograms; default ``"expectation"`` (the paper's best for
            Lab; ``lab_hist`` also takes the medians).
        fading: chromatic fading, ``"released"`` (default, ``min(|z|/eta, 1)``), ``"paper"``
            (the printed ``max(|z|/eta, 1)``, never fades) or None.
        eta: fading threshold (0.03).
        hcl_variant: ``"paper"`` or ``"released"`` reconstruction (``tfcolor.color.hcl_to_rgb``).
        lightness: ``"exact"``, ``"released"`` or None (module docstring, step 5).
        sample_quantile: None, or a per-image quantile in [0, 1] (scalar or (B,)) replacing every
            decoding method by that quantile of the histograms (coherent samples).
        seed: seed of ``"sample"`` methods (int, shape-[2] seed or ``tf.random.Generator``).

    Returns:
        dict ``rgb`` (B, H, W, 3) float32 in [0, 1] and ``uncertainty`` (B, H, W, 1) in [0, 1].
    """
    from tfcolor import color  # pylint: disable=import-outside-toplevel
    _check_kind(kind)
    if lightness not in LIGHTNESS_MODES:
        raise ValueError(f"lightness must be one of {LIGHTNESS_MODES}, got {lightness!r}")
    gray = tf.cast(tf.convert_to_tensor(gray), tf.float32)
    if gray.shape.rank != 4 or gray.shape[-1] not in (1, None):
        raise ValueError(f"gray must have shape (B, H, W, 1), got {gray.shape}")
    size = tf.shape(gray)[1:3]
    up = lambda t: upsample_grid(t, size, grid_factor, network_size)  # noqa: E731
    if kind == "hue_chroma":
        hue_p, chroma_p = histograms["hue"], histograms["chroma"]
        hue_spec, chroma_spec = bins_lib.get("hue"), bins_lib.get("chroma")
        if sample_quantile is not None:
            hue = _quantile_decode(hue_spec, hue_p, sample_quantile)
            chroma = _quantile_decode(chroma_spec, chroma_p, sample_quantile)
            if fading is not None:
                chroma = bins_lib.apply_chromatic_fading(chroma, hue_p, eta=eta, variant=fading)
        else:
            hue, chroma = bins_lib.decode_hue_chroma(
                    hue_p, chroma_p, hue_method=hue_method, chroma_method=chroma_method,
                    fading=fading, eta=eta, seed=seed)
        chroma = tf.clip_by_value(chroma, 0.0, 1.0)
        angle = 2.0 * math.pi * hue
        vec = up(tf.stack([chroma * tf.cos(angle), chroma * tf.sin(angle)], axis=-1))
        chroma_full = tf.clip_by_value(tf.norm(vec, axis=-1, keepdims=True), 0.0, 1.0)
        hue_full = tf.math.atan2(vec[..., 1:], vec[..., :1]) / (2.0 * math.pi)
        hue_full = hue_full - tf.floor(hue_full)
        rgb = color.hcl_to_rgb(tf.concat([hue_full, chroma_full, gray], axis=-1),
                               lightness="mean", variant=hcl_variant, validate=False)
        plain_chroma = chroma_spec.decode(chroma_p, "median")
        uncertainty = up((_normalised_entropy(hue_p) * plain_chroma)[..., None])
    else:
        if kind == "lab_regression":
            ab = histograms["ab"]
            uncertainty = tf.zeros_like(gray)
        else:
            if kind == "lab_hist":
                method = lab_method or "expectation"
                parts, ents = [], []
                for name, preset in GROUPS[kind]:
                    spec, p = bins_lib.get(preset), histograms[name]
                    if sample_quantile is not None:
                        parts.append(_quantile_decode(spec, p, sample_quantile))
                    else:
                        parts.append(spec.decode(p, method, seed=seed))
                    ents.append(_normalised_entropy(p))
                ab = tf.stack(parts, axis=-1)
                ent = 0.5 * (ents[0] + ents[1])
            else:
                method = lab_method or "expectation"
                spec, p = bins_lib.get("lab_ab"), histograms["ab"]
                if sample_quantile is not None:
                    index = tf.cast(_quantile_decode(
                            bins_lib.UniformBins(spec.num_bins, 0.0, float(spec.num_bins)), p,
                            sample_quantile), tf.int32)
                    ab = tf.gather(spec.centers_tensor(), index)
                else:
                    ab = spec.decode(p, method, seed=seed)
                ent = _normalised_entropy(p)
            uncertainty = up(ent[..., None])
        ab_full = up(ab)
        l_star = color.rgb_to_lab(tf.repeat(gray, 3, axis=-1), validate=False)[..., :1]
        rgb = color.lab_to_rgb(tf.concat([l_star, ab_full], axis=-1), validate=False)
    if lightness is not None:
        rgb = match_lightness(rgb, gray, lightness)
    return {"rgb": tf.cast(rgb, tf.float32), "uncertainty": tf.clip_by_value(uncertainty, 0.0, 1.0)}


def decode_rgb(predictions, gray, *, kind="hue_chroma", grid_factor=4, from_logits=True,
               **kwargs):
    """The core decode step as one call: head output on the grid -> full-resolution RGB.

    Args:
        predictions: (B, ceil(H/g), ceil(W/g), D), e.g. ``model.dense(gray, grid_factor=g)``.
        gray: (B, H, W, 1) full-resolution grey in [0, 1].
        kind, grid_factor: as in :func:`decode`.
        from_logits: ``predictions`` are logits (True) or probabilities.
        **kwargs: decoding options of :func:`decode`.

    Returns:
        (B, H, W, 3) float32 RGB in [0, 1].
    """
    histograms = split_predictions(predictions, kind, from_logits)
    return decode(histograms, gray, kind=kind, grid_factor=grid_factor, **kwargs)["rgb"]


# ------------------------------------------------------------------------------------------------
# Running a model at any size.
# ------------------------------------------------------------------------------------------------

def model_stride(model, default=32):
    """Largest stride among the model's hypercolumn taps (the padding multiple)."""
    for attr in ("max_stride", "stride"):
        value = getattr(model, attr, None)
        if isinstance(value, (int, np.integer)) and value > 0:
            return int(value)
    for attr in ("strides", "tap_strides"):
        value = getattr(model, attr, None)
        if isinstance(value, dict):
            value = list(value.values())
        if value:
            try:
                return int(max(value))
            except (TypeError, ValueError):
                pass
    return default


def reflect_pad(images, multiple):
    """Pads (B, H, W, C) at the bottom/right by mirror reflection to multiples of ``multiple``.

    Works for any size (the reflection repeats for images smaller than the padding).
    """
    shape = tf.shape(images)
    out = images
    for axis in (1, 2):
        n = shape[axis]
        target = (n + multiple - 1) // multiple * multiple
        idx = tf.range(target) % (2 * n)
        idx = tf.where(idx >= n, 2 * n - 1 - idx, idx)
        out = tf.gather(out, idx, axis=axis)
    return out


def predict_grid(model, gray, grid_factor=4, multiple=None, training=False):
    """Runs ``model.dense`` on a grey batch of any size; returns (B, ceil(H/g), ceil(W/g), D).

    Args:
        model: a colorizer with ``dense(gray, grid_factor=..., training=...)``.
        gray: (B, H, W, 1) float in [0, 1].
        grid_factor: g.
        multiple: padding multiple (default: the model's largest stride, see :func:`model_stride`).
        training: passed to the model.
    """
    multiple = multiple or model_stride(model)
    gray = tf.convert_to_tensor(gray)
    hw = tf.shape(gray)[1:3]
    padded = reflect_pad(gray, multiple)
    try:
        out = model.dense(padded, grid_factor=grid_factor, training=training)
    except TypeError:
        out = model.dense(padded, grid_factor=grid_factor)
    h = (hw[0] + grid_factor - 1) // grid_factor
    w = (hw[1] + grid_factor - 1) // grid_factor
    return out[:, :h, :w]


def to_gray(images):
    """(B, H, W, 3) RGB or (B, H, W, 1) grey, uint8 or float in [0, 1] -> (B, H, W, 1) float32."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    images = tf.cast(images, tf.float32)
    channels = images.shape[-1]
    if channels == 3:
        return tf.reduce_mean(images, axis=-1, keepdims=True)
    if channels == 1:
        return images
    raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels, got shape {images.shape}")


def colorize_batch(model, images, *, kind="hue_chroma", grid_factor=4, multiple=None, **kwargs):
    """Colorizes a batch with a Keras colorizer: any size, RGB (desaturated first) or grey input.

    Args:
        model: a colorizer with ``dense``.
        images: (B, H, W, 3) or (B, H, W, 1), float in [0, 1] or uint8.
        kind: the model's loss kind.
        grid_factor: dense grid factor g (paper: 4).
        multiple: padding multiple (default: the model's largest stride).
        **kwargs: decoding options of :func:`decode`.

    Returns:
        (B, H, W, 3) float32 RGB.
    """
    gray = to_gray(images)
    logits = predict_grid(model, gray, grid_factor, multiple)
    return decode_rgb(logits, gray, kind=kind, grid_factor=grid_factor, **kwargs)


# ------------------------------------------------------------------------------------------------
# Histogram sources: a Keras model or an exported SavedModel.
# ------------------------------------------------------------------------------------------------

class KerasSource:
    """Grid predictions (logits) from a Keras colorizer (``tfcolor.export.SavedModelSource``
    is the same for an exported SavedModel; ``tfcolor.export.load_source`` picks either)."""

    from_logits = True

    def __init__(self, model, kind="hue_chroma", grid_factor=4, multiple=None):
        _check_kind(kind)
        self.model = model
        self.kind = kind
        self.grid_factor = int(grid_factor)
        self.multiple = multiple or model_stride(model)
        self._fn = tf.function(
                lambda g: predict_grid(self.model, g, self.grid_factor, self.multiple),
                input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])

    def __call__(self, gray):
        return self._fn(tf.cast(gray, tf.float32))


# ------------------------------------------------------------------------------------------------
# One image with every option.
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ColorizeOptions:
    """Options of :func:`colorize_image` (see :func:`decode` for the decoding ones).

    Attributes:
        hue_method, chroma_method, lab_method, fading, eta, hcl_variant, lightness: decoding.
        max_side: shrink the network input so its longer side is at most this (None: never).
        samples: number of extra coherent sampled colorizations.
        seed: seed of the sampled colorizations.
        uncertainty: also return the uncertainty map.
        transfer: None, ``"quantile"`` or ``"bias"`` (``tfcolor.histogram_transfer``);
            needs ``reference``.
        transfer_lambda, transfer_steps: of the bias method.
    """
    hue_method: str = "expectation"
    chroma_method: str = "median"
    lab_method: str = None
    fading: str = bins_lib.DEFAULT_FADING
    eta: float = bins_lib.DEFAULT_FADING_ETA
    hcl_variant: str = "paper"
    lightness: str = "exact"
    max_side: int = DEFAULT_MAX_SIDE
    samples: int = 0
    seed: int = 0
    uncertainty: bool = False
    transfer: str = None
    transfer_lambda: float = 10.0
    transfer_steps: int = 300

    def validate(self):
        if self.transfer not in (None, "quantile", "bias"):
            raise ValueError(f"transfer must be None, 'quantile' or 'bias', got {self.transfer!r}")
        if self.lightness not in LIGHTNESS_MODES:
            raise ValueError(f"lightness must be one of {LIGHTNESS_MODES}, got {self.lightness!r}")
        if self.max_side is not None and self.max_side < 8:
            raise ValueError(f"max_side must be >= 8 or None, got {self.max_side}")
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples}")
        if self.fading not in (None, "paper", "released"):
            raise ValueError(f"fading must be 'paper', 'released' or None, got {self.fading!r}")
        return self

    def decode_kwargs(self):
        return dict(hue_method=self.hue_method, chroma_method=self.chroma_method,
                    lab_method=self.lab_method, fading=self.fading, eta=self.eta,
                    hcl_variant=self.hcl_variant, lightness=self.lightness)


def _network_input(gray, max_side):
    h, w = int(gray.shape[1]), int(gray.shape[2])
    if max_side is None or max(h, w) <= max_side:
        return gray, None
    s = max_side / max(h, w)
    net_hw = (max(1, round(h * s)), max(1, round(w * s)))
    shrunk = tf.image.resize(gray, net_hw, method="area", antialias=True)
    # The antialiased area resize overshoots by float rounding (an all-white image gives
    # 1.0000075): clip, so valid input never trips a range check (the SavedModel signatures').
    return tf.clip_by_value(shrunk, 0.0, 1.0), net_hw


def _bias_transfer(histograms, kind, reference, options):
    transfer = histogram_transfer
    if kind == "lab_regression":
        raise ValueError("bias histogram transfer needs a histogram model, not lab_regression")
    channels = {"hue": "hue", "chroma": "chroma", "a": "a", "b": "b", "ab": "ab"}
    out = dict(histograms)
    weights = None
    if kind == "hue_chroma":
        weights = bins_lib.get("chroma").decode(histograms["chroma"][0], "median")
    for name, preset in GROUPS[kind]:
        target = transfer.target_histogram(reference, preset, channels[name],
                                           hcl_variant=options.hcl_variant)
        w = weights if name == "hue" else None
        _, post = transfer.fit_global_bias(histograms[name][0], target,
                                           lam=options.transfer_lambda,
                                           steps=options.transfer_steps, weights=w)
        out[name] = post[None]
    return out


def colorize_image(source, image, options=None, reference=None):
    """Colorizes one image (H, W, 3) RGB / (H, W) or (H, W, 1) grey, float in [0, 1] or uint8.

    Args:
        source: a :class:`KerasSource` / ``tfcolor.export.SavedModelSource`` (or anything with
            ``kind``, ``grid_factor``, ``from_logits`` and ``__call__(gray) -> grid
            predictions``).
        image: the input; colour is discarded (desaturated).
        options: :class:`ColorizeOptions`.
        reference: (H', W', 3) float RGB for histogram transfer.

    Returns:
        dict ``rgb`` (H, W, 3) float32, optionally ``uncertainty`` (H, W) and ``samples`` (list).
    """
    options = (options or ColorizeOptions()).validate()
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape.rank != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if options.transfer is not None and reference is None:
        raise ValueError(f"transfer={options.transfer!r} needs a reference image")
    gray = to_gray(image[None])
    net_gray, net_hw = _network_input(gray, options.max_side)
    predictions = source(net_gray)
    histograms = split_predictions(predictions, source.kind, source.from_logits)
    if options.transfer == "bias":
        reference = tf.convert_to_tensor(reference, tf.float32)
        histograms = _bias_transfer(histograms, source.kind, reference, options)
    common = dict(kind=source.kind, grid_factor=source.grid_factor, network_size=net_hw)
    decoded = decode(histograms, gray, seed=options.seed, **common, **options.decode_kwargs())
    rgb = decoded["rgb"][0]
    if options.transfer == "quantile":
        rgb = histogram_transfer.quantile_transfer(rgb, tf.convert_to_tensor(reference, tf.float32))
    out = {"rgb": rgb}
    if options.uncertainty:
        out["uncertainty"] = decoded["uncertainty"][0, ..., 0]
    if options.samples:
        rng = np.random.default_rng(options.seed)
        kwargs = options.decode_kwargs()
        out["samples"] = [
                decode(histograms, gray, sample_quantile=float(rng.uniform()), **common,
                       **kwargs)["rgb"][0] for _ in range(options.samples)]
    return out


# ------------------------------------------------------------------------------------------------
# Files.
# ------------------------------------------------------------------------------------------------

class ImageReadError(IOError):
    """An input cannot be used: missing, not a regular file, not an image, corrupt or too large.

    Attributes:
        path: the input.
        reason: ``"not_a_file"``, ``"empty"``, ``"unknown_format"``, ``"too_large"``,
            ``"corrupt"`` or ``"unreadable"`` (the names of ``tfcolor.data.decode.REASONS`` where
            they mean the same).
    """

    def __init__(self, message, path=None, reason="corrupt"):
        super().__init__(message)
        self.path = path
        self.reason = reason


def _is_image(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _listed(path):
    """A folder entry or glob match worth reporting: a regular file, or anything named like an
    image (a folder ``x.jpg`` or a dangling link is then skipped with reason ``not_a_file``)."""
    return _is_image(path) and (os.path.isfile(path) or os.path.lexists(path))


def expand_inputs(inputs, recursive=False):
    """Files, folders and globs -> sorted list of ``(path, output stem)``.

    Folders contribute the entries named like images they contain (by extension; recursively with
    ``recursive``), named by their path relative to the folder; globs and files contribute
    themselves, named by their base name. Entries named like images that are not regular files
    (a folder ``x.jpg``, a dangling symbolic link) are listed too, so that :func:`read_image`
    reports them (``not_a_file``) instead of their silently vanishing. Duplicate stems get
    ``_2``, ``_3``... A path that does not exist at all (not even as a dangling link) raises
    ``FileNotFoundError``.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    found = []
    for entry in inputs:
        if os.path.isdir(entry):
            if recursive:
                paths = [os.path.join(d, f) for d, _, fs in os.walk(entry) for f in fs]
            else:
                paths = [os.path.join(entry, f) for f in os.listdir(entry)]
            paths = sorted(p for p in paths if _listed(p))
            found += [(p, os.path.splitext(os.path.relpath(p, entry))[0]) for p in paths]
        elif os.path.isfile(entry) or os.path.lexists(entry):
            found.append((entry, os.path.splitext(os.path.basename(entry))[0]))
        elif glob.has_magic(entry):
            paths = sorted(p for p in glob.glob(entry, recursive=recursive)
                           if os.path.isfile(p) or _listed(p))
            found += [(p, os.path.splitext(os.path.basename(p))[0]) for p in paths]
        else:
            raise FileNotFoundError(f"input {entry!r} is neither a file, a folder nor a glob "
                                    "that matches something")
    seen = {}
    out = []
    for path, stem in found:
        stem = stem.replace(os.sep, "__")
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append((path, stem if n == 1 else f"{stem}_{n}"))
    return out


def _one_line(error):
    """``Type: first line of the message`` (TensorFlow errors span many lines)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def read_image(path, max_pixels=MAX_PIXELS):
    """Reads an image file as float32 (H, W, 3) in [0, 1] (EXIF orientation applied; grey, palette,
    CMYK, 16-bit and alpha images converted to RGB; the first frame of an animation).

    Args:
        path: the file.
        max_pixels: images with more pixels (read from the header) are refused without being
            decoded (a decompression bomb never reaches memory); default
            ``tfcolor.data.decode.DEFAULT_MAX_PIXELS`` (1e8 = 10000 x 10000); None: no limit
            but Pillow's own (about 1.8e8 pixels).

    Raises:
        ImageReadError: with ``reason`` ``not_a_file`` (a folder, a dangling link, missing),
            ``empty`` (zero bytes), ``unknown_format`` (not an image Pillow knows), ``too_large``
            (above ``max_pixels``), ``corrupt`` (truncated or damaged data) or ``unreadable``
            (the file system refused it, e.g. permissions).
    """
    import warnings  # pylint: disable=import-outside-toplevel
    from PIL import Image, ImageOps, UnidentifiedImageError  # pylint: disable=import-outside-toplevel

    def fail(reason, detail):
        raise ImageReadError(f"{reason}: {detail}", path=path, reason=reason)

    if not os.path.isfile(path):
        fail("not_a_file", "a folder" if os.path.isdir(path) else
             ("a broken symbolic link" if os.path.islink(path) else "no such file"))
    try:
        if os.path.getsize(path) == 0:
            fail("empty", "zero-byte file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                img_file = Image.open(path)
            except UnidentifiedImageError:
                fail("unknown_format", "not an image Pillow can identify")
            except Image.DecompressionBombError as e:
                fail("too_large", f"above the limit of {max_pixels} pixels ({_one_line(e)})")
            except OSError as e:
                if e.errno is not None:  # the file system, not the data
                    raise
                fail("corrupt", _one_line(e))
            except Exception as e:  # PIL raises many types  pylint: disable=broad-except
                fail("corrupt", _one_line(e))
            with img_file as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    fail("too_large", f"{width} x {height} = {width * height} pixels, above the "
                         f"limit of {max_pixels}")
                if width * height == 0:
                    fail("corrupt", f"the header declares an empty image ({width} x {height})")
                try:
                    img.load()
                    img = ImageOps.exif_transpose(img)
                    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                        arr = np.asarray(img, dtype=np.float32)
                        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                        arr = np.repeat(arr[..., None], 3, axis=-1)
                    else:
                        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
                except MemoryError:
                    raise
                except Exception as e:  # PIL raises many types  pylint: disable=broad-except
                    fail("corrupt", _one_line(e))
    except ImageReadError:
        raise
    except OSError as e:  # permissions, I/O errors
        fail("unreadable", _one_line(e))
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        fail("corrupt", f"decoded to an empty array (shape {arr.shape})")
    return np.clip(arr, 0.0, 1.0)


def save_png(image, path):
    """Writes (H, W, 3) / (H, W) float in [0, 1] as an 8-bit PNG (rounded), atomically.

    The PNG is written to a hidden temporary name in the same folder and renamed over ``path``
    (``os.replace``), so a killed run never leaves a truncated file under the final name.
    """
    from PIL import Image  # pylint: disable=import-outside-toplevel
    arr = np.asarray(image, dtype=np.float32)
    arr = np.clip(np.round(np.nan_to_num(arr) * 255.0), 0, 255).astype(np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        Image.fromarray(arr).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return path


def output_paths(stem, output_dir, options):
    """Every file :func:`colorize_files` writes for one input, the main ``stem.png`` last."""
    base = os.path.join(output_dir, stem)
    paths = [f"{base}_uncertainty.png"] if options.uncertainty else []
    paths += [f"{base}_sample{k}.png" for k in range(1, options.samples + 1)]
    return paths + [base + ".png"]


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def colorize_files(source, inputs, output_dir, options=None, reference=None, recursive=False,
                   progress=None, overwrite=False, max_pixels=MAX_PIXELS):
    """Colorizes files / folders / globs into PNGs in ``output_dir``.

    Every input is handled on its own: one that cannot be read (:func:`read_image`'s reasons) or
    whose colorization fails (reason ``failed``) is logged as one line ``skipped PATH: reason:
    detail`` and the others go on. Outputs are written atomically (:func:`save_png`), the main
    ``NAME.png`` last. Existing outputs are never replaced unless ``overwrite``: an input with
    any existing output is left alone (logged ``kept``; re-running a killed run therefore
    finishes it), and an output that would be the input file itself is never written.

    Args:
        source: histogram source (see :func:`colorize_image`).
        inputs: list of files, folders or globs.
        output_dir: where PNGs go (created).
        options: :class:`ColorizeOptions`.
        reference: reference RGB (float (H, W, 3)) or path, for histogram transfer.
        recursive: descend into folders / ``**`` globs.
        progress: callable ``progress(i, n, path, seconds)`` after each image (default: log).
        overwrite: replace existing outputs.
        max_pixels: larger images are skipped (``too_large``) without being decoded.

    Returns:
        dict with ``written`` (list of output paths), ``skipped`` (list of (path, "reason:
        detail")) and ``kept`` (list of (path, an existing output)).
    """
    options = (options or ColorizeOptions()).validate()
    if isinstance(reference, str):
        reference = read_image(reference, max_pixels)
    items = expand_inputs(inputs, recursive=recursive)
    os.makedirs(output_dir, exist_ok=True)
    written, skipped, kept = [], [], []

    def skip(path, message):
        message = " ".join(str(message).split("\n"))
        logger.warning("skipped %s: %s", path, message)
        skipped.append((path, message))

    for i, (path, stem) in enumerate(items):
        start = time.perf_counter()
        targets = output_paths(stem, output_dir, options)
        if any(_same_file(t, path) for t in targets):
            skip(path, "output_is_input: the output would replace the input file")
            continue
        existing = [t for t in targets if os.path.lexists(t)]
        if existing and not overwrite:
            logger.warning("kept %s: %s exists (overwrite replaces it)", path, existing[0])
            kept.append((path, existing[0]))
            continue
        try:
            image = read_image(path, max_pixels)
            result = colorize_image(source, image, options, reference=reference)
            arrays = ([result["uncertainty"].numpy()] if "uncertainty" in result else [])
            arrays += [s.numpy() for s in result.get("samples", [])]
            arrays.append(result["rgb"].numpy())
        except ImageReadError as e:
            skip(path, str(e))
            continue
        except Exception as e:  # one input must not end the run  pylint: disable=broad-except
            skip(path, f"failed: {_one_line(e)}")
            continue
        try:
            for array, target in zip(arrays, targets):
                written.append(save_png(array, target))
        except OSError as e:
            skip(path, f"write_failed: {_one_line(e)}")
            continue
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(i + 1, len(items), path, seconds)
        else:
            logger.info("[%d/%d] %s -> %s (%.2fs)", i + 1, len(items), path, targets[-1],
                        seconds)
    return {"written": written, "skipped": skipped, "kept": kept}
