"""Predictors and running a colorizer on images of any size.

A **predictor** is anything that maps a grey batch to the head's output on the dense grid:
``predictor(gray)`` with ``gray`` (B, H, W, 1) float32 in [0, 1] gives (B, ceil(H/g), ceil(W/g), D)
logits (``from_logits=True``) or probabilities, and says which ``kind`` (loss kind, hence the
histogram groups of ``tfcolor.readout``) and which grid factor ``grid_factor`` (g) it predicts.
:class:`Predictor` is that contract; three implementations:

- :class:`KerasPredictor`: a Keras colorizer in memory (``tfcolor.models.Colorizer``), or rebuilt
  from a training ``model_dir`` (:meth:`KerasPredictor.from_model_dir`);
- :class:`SavedModelPredictor`: a SavedModel written by ``tfcolor.export`` (its ``histograms``
  signature; grid factor and kind are those of the export);
- :class:`PriorPredictor`: the marginal prior (``tfcolor.prior.MarginalPrior``), the same
  histogram at every grid cell, so that it is read out with exactly the model's options.

:func:`load_predictor` picks the SavedModel or the ``model_dir`` one for a path. Anything with
the attributes ``kind``, ``grid_factor``, ``from_logits`` and ``__call__(gray)`` works wherever a
predictor is taken (duck typing; subclassing :class:`Predictor` adds :meth:`Predictor.histograms`).

Any input size (:func:`predict_grid`)
-------------------------------------
The grey input is padded at the bottom and right, by mirror reflection (:func:`reflect_pad`), to
a multiple of the trunk's largest stride (:func:`model_stride`: 32 for VGG-16, 64 with +FoV), so
that every layer sees an integral size, and the prediction grid is cropped back to
``ceil(H/g) x ceil(W/g)``; the readout (``tfcolor.readout``) then works at the original size.

Colorizing (:func:`colorize_batch`, :func:`colorize_image`)
-----------------------------------------------------------
:func:`colorize_batch` is the graph-level colorizer: a Keras colorizer on a batch (grey or RGB,
desaturated first, uint8 or float), padded, predicted and read out in one call; it is what the
SavedModel's signatures run (``tfcolor.export``). :func:`colorize_image` colorizes one image with
any predictor and every option of :class:`ColorizeOptions`: images larger than ``max_side``
(default 512, as the released program's ~500) are shrunk for the network only (the colour is
upsampled back to the original resolution and recombined with the original, full-resolution
lightness, so no detail is lost); the uncertainty map; coherent samples (one quantile of every
pixel's histograms per draw); histogram transfer to a reference image
(``tfcolor.histogram_transfer``: ``"quantile"`` on the output colours, ``"bias"`` on the
predicted histograms). Files and folders: ``tfcolor.image_files``.

Memory at full resolution: the network only sees ``max_side``, but the recombination of the
upsampled colour with the full-resolution lightness touches every pixel, through a dozen float
intermediates (about 200 bytes per pixel). :func:`colorize_image` therefore reads the colours
off in strips of about ``ColorizeOptions.tile_pixels`` pixels (default
:data:`DEFAULT_TILE_PIXELS`, 65,536: whole rows, at least one), each strip the same numbers as
those rows of the whole image (``tfcolor.readout.readout(rows=...)``), written into the output
arrays; ``output_dtype=np.uint8`` gives 8-bit outputs directly (3 bytes per pixel instead of 12).
With the grey input computed strip by strip as well, the peak memory beyond the model's own
stays at a few bytes per output pixel plus one strip (``benchmarks/colorize_memory.py``).
"""
import abc
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor import estimates
from tfcolor import histogram_transfer
from tfcolor import pretrained
from tfcolor import readout as readout_lib
from tfcolor import run_dir

__all__ = ["DEFAULT_MAX_SIDE", "DEFAULT_TILE_PIXELS", "Predictor", "KerasPredictor", "SavedModelPredictor",
           "PriorPredictor", "load_predictor", "model_stride", "reflect_pad", "predict_grid",
           "to_gray", "colorize_batch", "ColorizeOptions", "colorize_image"]

DEFAULT_MAX_SIDE = 512
#: Pixels per strip of the full-resolution recombination (:func:`colorize_image`).
DEFAULT_TILE_PIXELS = 1 << 16


# ------------------------------------------------------------------------------------------------
# Running a Keras colorizer at any size.
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


def colorize_batch(model, images, *, kind="hue_chroma", grid_factor=4, multiple=None,
                   from_logits=True, **kwargs):
    """Colorizes a batch with a Keras colorizer: any size, RGB (desaturated first) or grey input.

    The graph-level colorizer (:func:`to_gray`, :func:`predict_grid`,
    ``tfcolor.readout.readout_rgb``): works eagerly and inside ``tf.function`` (the SavedModel
    signatures of ``tfcolor.export`` call it).

    Args:
        model: a colorizer with ``dense``.
        images: (B, H, W, 3) or (B, H, W, 1), float in [0, 1] or uint8.
        kind: the model's loss kind.
        grid_factor: dense grid factor g (paper: 4).
        multiple: padding multiple (default: the model's largest stride).
        from_logits: the model's head outputs logits (True) or probabilities.
        **kwargs: readout options of ``tfcolor.readout.readout``.

    Returns:
        (B, H, W, 3) float32 RGB.
    """
    gray = to_gray(images)
    logits = predict_grid(model, gray, grid_factor, multiple)
    return readout_lib.readout_rgb(logits, gray, kind=kind, grid_factor=grid_factor,
                                   from_logits=from_logits, **kwargs)


# ------------------------------------------------------------------------------------------------
# Predictors: a Keras colorizer, an exported SavedModel, the marginal prior.
# ------------------------------------------------------------------------------------------------

def _check_grid_factor(grid_factor):
    if isinstance(grid_factor, bool) or not isinstance(grid_factor, (int, np.integer)) \
            or grid_factor < 1:
        raise ValueError(f"grid_factor must be a positive integer, got {grid_factor!r}")
    return int(grid_factor)


class Predictor(abc.ABC):
    """Grid predictions of a colorizer (module docstring).

    Attributes:
        kind: loss kind (``tfcolor.losses.LOSS_KINDS``): the histogram groups of the output
            (``tfcolor.readout.GROUPS``).
        grid_factor: g: grid cell ``(i, j)`` is input pixel ``(i g, j g)``.
        from_logits: the output is logits (True) or probabilities (False).
    """

    kind = "hue_chroma"
    grid_factor = 4
    from_logits = True

    @abc.abstractmethod
    def __call__(self, gray):
        """(B, H, W, 1) float32 grey in [0, 1] -> (B, ceil(H/g), ceil(W/g), D)."""

    def histograms(self, gray):
        """The prediction split into its groups (``tfcolor.readout.split_predictions``):
        probabilities (B, h, w, K) per group, or the (a, b) values of a regression."""
        return readout_lib.split_predictions(self(gray), self.kind, self.from_logits)


class KerasPredictor(Predictor):
    """Logits of a Keras colorizer (anything with ``dense(gray, grid_factor=...)``) at any size.

    Args:
        model: the colorizer.
        kind: its loss kind (default: ``model.kind``, else ``"hue_chroma"``).
        grid_factor: dense grid factor g (paper: 4).
        multiple: padding multiple (default: the model's largest stride).
    """

    from_logits = True

    def __init__(self, model, kind=None, grid_factor=4, multiple=None):
        kind = kind or getattr(model, "kind", None) or "hue_chroma"
        readout_lib.group_sizes(kind)  # validates the kind
        self.model = model
        self.kind = kind
        self.grid_factor = _check_grid_factor(grid_factor)
        self.multiple = multiple or model_stride(model)
        self._fn = tf.function(
                lambda g: predict_grid(self.model, g, self.grid_factor, self.multiple),
                input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])

    @classmethod
    def from_pretrained(cls, name=None, grid_factor=4):
        """A colorizer shipped with tfcolor (:func:`tfcolor.pretrained.load`; default
        :data:`tfcolor.pretrained.DEFAULT`): no training needed."""
        model, kind = pretrained.load(name)
        return cls(model, kind=kind, grid_factor=grid_factor)

    @classmethod
    def from_model_dir(cls, model_dir, checkpoint=None, grid_factor=4):
        """The colorizer of a training ``model_dir`` (its ``config.json`` and latest complete
        checkpoint, or ``checkpoint``), rebuilt and restored by ``tfcolor.run_dir.load_model``."""
        model, kind = run_dir.load_model(model_dir, checkpoint)
        return cls(model, kind=kind, grid_factor=grid_factor)

    def __call__(self, gray):
        return self._fn(tf.cast(gray, tf.float32))


class SavedModelPredictor(Predictor):
    """Logits from a SavedModel written by ``tfcolor.export.export_saved_model`` (its
    ``histograms`` signature); the grid factor and kind are those recorded in the export's
    metadata."""

    from_logits = True

    def __init__(self, export_dir):
        self.loaded = tf.saved_model.load(export_dir)
        meta = run_dir.read_export_metadata(export_dir)
        self.kind = meta["kind"]
        self.grid_factor = int(meta["grid_factor"])

    def __call__(self, gray):
        return self.loaded.histograms(tf.cast(gray, tf.float32))["logits"]


class PriorPredictor(Predictor):
    """The marginal prior (``tfcolor.prior.MarginalPrior``) predicted at every grid cell.

    ``predictor(gray)`` -> ``(B, ceil(H/g), ceil(W/g), D)`` probabilities (``from_logits=False``),
    the same vector everywhere, so :func:`colorize_image` reads it out with any
    :class:`ColorizeOptions`: a constant hue/chroma (or a/b) recombined with each image's own
    lightness.
    """

    from_logits = False

    def __init__(self, prior, grid_factor=4):
        self.grid_factor = _check_grid_factor(grid_factor)
        self.kind = prior.kind
        self._vector = tf.constant(prior.probabilities(), tf.float32)

    def __call__(self, gray):
        gray = tf.convert_to_tensor(gray)
        shape = tf.shape(gray)
        g = self.grid_factor
        out_shape = tf.stack([shape[0], (shape[1] + g - 1) // g, (shape[2] + g - 1) // g,
                              tf.size(self._vector)])
        return tf.broadcast_to(self._vector, out_shape)


#: ``load_predictor`` prefix of the models shipped with tfcolor (``"pretrained"`` or
#: ``"pretrained:NAME"``).
PRETRAINED_PREFIX = "pretrained"


def load_predictor(path, grid_factor=4, checkpoint=None):
    """A :class:`SavedModelPredictor` if ``path`` holds a SavedModel (``saved_model.pb``), a
    shipped colorizer for ``"pretrained"`` / ``"pretrained:NAME"``
    (:meth:`KerasPredictor.from_pretrained`), else a :class:`KerasPredictor` rebuilt from a
    training ``model_dir`` (:meth:`KerasPredictor.from_model_dir`; ``grid_factor`` and
    ``checkpoint`` apply to Keras predictors only: an export fixes its own grid factor)."""
    if path == PRETRAINED_PREFIX or path.startswith(PRETRAINED_PREFIX + ":"):
        name = path[len(PRETRAINED_PREFIX) + 1:] or None
        return KerasPredictor.from_pretrained(name, grid_factor=grid_factor)
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return SavedModelPredictor(path)
    return KerasPredictor.from_model_dir(path, checkpoint=checkpoint, grid_factor=grid_factor)


# ------------------------------------------------------------------------------------------------
# One image with every option.
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ColorizeOptions:
    """Options of :func:`colorize_image` (``tfcolor.readout.readout`` for the readout ones).

    Attributes:
        hue_method, chroma_method, lab_method, fading, eta, hcl_variant, lightness: the readout
            (``tfcolor.readout.READOUT_OPTIONS``).
        max_side: shrink the network input so its longer side is at most this (None: never).
        samples: number of extra coherent sampled colorizations.
        seed: seed of the sampled colorizations.
        uncertainty: also return the uncertainty map.
        transfer: None, ``"quantile"`` or ``"bias"`` (``tfcolor.histogram_transfer``);
            needs ``reference``.
        transfer_lambda, transfer_steps: of the bias method.
        tile_pixels: the full-resolution recombination runs in strips of whole rows of about
            this many pixels (bounded memory; the same numbers); None: in one piece.
    """
    hue_method: str = "expectation"
    chroma_method: str = "median"
    lab_method: str = None
    fading: str = estimates.DEFAULT_FADING
    eta: float = estimates.DEFAULT_FADING_ETA
    hcl_variant: str = "paper"
    lightness: str = "exact"
    max_side: int = DEFAULT_MAX_SIDE
    samples: int = 0
    seed: int = 0
    uncertainty: bool = False
    transfer: str = None
    transfer_lambda: float = 10.0
    transfer_steps: int = 300
    tile_pixels: int = DEFAULT_TILE_PIXELS

    def validate(self):
        if self.transfer not in (None, "quantile", "bias"):
            raise ValueError(f"transfer must be None, 'quantile' or 'bias', got {self.transfer!r}")
        if self.lightness not in readout_lib.LIGHTNESS_MODES:
            raise ValueError(f"lightness must be one of {readout_lib.LIGHTNESS_MODES}, "
                             f"got {self.lightness!r}")
        if self.max_side is not None and self.max_side < 8:
            raise ValueError(f"max_side must be >= 8 or None, got {self.max_side}")
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples}")
        if self.tile_pixels is not None and (isinstance(self.tile_pixels, bool)
                                             or int(self.tile_pixels) < 1):
            raise ValueError(f"tile_pixels must be a positive integer or None, got "
                             f"{self.tile_pixels!r}")
        if self.fading not in (None, "paper", "released"):
            raise ValueError(f"fading must be 'paper', 'released' or None, got {self.fading!r}")
        return self

    def readout_kwargs(self):
        """The readout options, keywords of ``tfcolor.readout.readout``."""
        return dict(hue_method=self.hue_method, chroma_method=self.chroma_method,
                    lab_method=self.lab_method, fading=self.fading, eta=self.eta,
                    hcl_variant=self.hcl_variant, lightness=self.lightness)


def shrink_gray(gray, size):
    """(B, H, W, 1) grey in [0, 1] -> (B, ``size``, 1): the network input of an image larger than
    ``max_side`` (antialiased area resize; the program and the SavedModel's colour signatures)."""
    shrunk = tf.image.resize(gray, size, method="area", antialias=True)
    # The antialiased area resize overshoots by float rounding (an all-white image gives
    # 1.0000075): clip, so valid input never trips a range check (the SavedModel signatures').
    return tf.clip_by_value(shrunk, 0.0, 1.0)


def _network_input(gray, max_side):
    h, w = int(gray.shape[1]), int(gray.shape[2])
    if max_side is None or max(h, w) <= max_side:
        return gray, None
    s = max_side / max(h, w)
    net_hw = (max(1, round(h * s)), max(1, round(w * s)))
    return shrink_gray(gray, net_hw), net_hw


def _bias_transfer(histograms, kind, reference, options):
    transfer = histogram_transfer
    if kind == "lab_regression":
        raise ValueError("bias histogram transfer needs a histogram model, not lab_regression")
    channels = {"hue": "hue", "chroma": "chroma", "a": "a", "b": "b", "ab": "ab"}
    out = dict(histograms)
    weights = None
    if kind == "hue_chroma":
        weights = estimates.estimate(bins_lib.get("chroma"), histograms["chroma"][0], "median")
    for name, preset in readout_lib.GROUPS[kind]:
        target = transfer.target_histogram(reference, preset, channels[name],
                                           hcl_variant=options.hcl_variant)
        w = weights if name == "hue" else None
        _, post = transfer.fit_global_bias(histograms[name][0], target,
                                           lam=options.transfer_lambda,
                                           steps=options.transfer_steps, weights=w)
        out[name] = post[None]
    return out


def to_uint8(values):
    """Float values in [0, 1] -> uint8, rounded (NaN -> 0), as every PNG tfcolor writes."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


#: Strips hold a multiple of this many pixels: vectorized float kernels treat the elements of
#: an incomplete vector on their own (another rounding), so every strip starts where the whole
#: image's vectors do and each pixel gets exactly the value it has in the whole.
_STRIP_ALIGN = 64


def _strip_rows(height, width, tile_pixels):
    """Rows per strip: about ``tile_pixels`` pixels, ``rows * width`` a multiple of
    :data:`_STRIP_ALIGN`."""
    if tile_pixels is None:
        return height
    step = _STRIP_ALIGN // math.gcd(max(1, width), _STRIP_ALIGN)
    rows = int(tile_pixels) // max(1, width) // step * step
    return min(height, max(step, rows))


def _gray_of(image, rows):
    """(1, H, W, 1) float32 grey of an (H, W, C) array or tensor, computed ``rows`` rows at a
    time (the same values as :func:`to_gray` of the whole: each pixel is its own mean)."""
    height = int(image.shape[0])
    if rows >= height:
        return to_gray(tf.convert_to_tensor(image)[None])
    gray = np.empty((1, height, int(image.shape[1]), 1), np.float32)
    for start in range(0, height, rows):
        gray[:, start:start + rows] = to_gray(tf.convert_to_tensor(image[start:start + rows])[None])
    return tf.convert_to_tensor(gray)


def _readout_strips(histograms, gray, rows, output_dtype, uncertainty, quantiles, seed, common):
    """The readout of ``gray`` (1, H, W, 1) in strips of ``rows`` rows, into numpy arrays."""
    height, width = int(gray.shape[1]), int(gray.shape[2])
    dtype = np.uint8 if output_dtype == np.uint8 else np.float32
    rgb = np.empty((height, width, 3), dtype)
    unc = np.empty((height, width), dtype) if uncertainty else None
    samples = [np.empty((height, width, 3), dtype) for _ in quantiles]
    convert = to_uint8 if dtype == np.uint8 else (lambda t: np.asarray(t, np.float32))
    for start in range(0, height, rows):
        strip = gray[:, start:start + rows]
        region = (start, height) if rows < height else None
        colours = readout_lib.readout(histograms, strip, seed=seed, rows=region, **common)
        rgb[start:start + rows] = convert(colours["rgb"][0])
        if unc is not None:
            unc[start:start + rows] = convert(colours["uncertainty"][0, ..., 0])
        for out, u in zip(samples, quantiles):
            out[start:start + rows] = convert(readout_lib.readout(
                    histograms, strip, sample_quantile=u, rows=region, **common)["rgb"][0])
    return rgb, unc, samples


def colorize_image(predictor, image, options=None, reference=None, output_dtype=None):
    """Colorizes one image (H, W, 3) RGB / (H, W) or (H, W, 1) grey, float in [0, 1] or uint8.

    Args:
        predictor: a :class:`Predictor` (:class:`KerasPredictor`, :class:`SavedModelPredictor`,
            :class:`PriorPredictor`), or anything with ``kind``, ``grid_factor``,
            ``from_logits`` and ``__call__(gray) -> grid predictions``.
        image: the input; colour is discarded (desaturated).
        options: :class:`ColorizeOptions`.
        reference: (H', W', 3) float RGB for histogram transfer.
        output_dtype: None: float32 tensors; ``np.uint8``: uint8 NumPy arrays (:func:`to_uint8`
            of the floats, as the PNGs; a quarter of the memory); ``np.float32``: float32 NumPy
            arrays.

    Returns:
        dict ``rgb`` (H, W, 3), optionally ``uncertainty`` (H, W) and ``samples`` (list).
    """
    options = (options or ColorizeOptions()).validate()
    if not isinstance(image, (np.ndarray, tf.Tensor)):
        image = np.asarray(image)
    if len(image.shape) == 2:
        image = image[..., None]
    if len(image.shape) != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if options.transfer is not None and reference is None:
        raise ValueError(f"transfer={options.transfer!r} needs a reference image")
    rows = _strip_rows(int(image.shape[0]), int(image.shape[1]), options.tile_pixels)
    if options.transfer == "quantile":
        rows = int(image.shape[0])  # the transfer needs the whole output at once
    gray = _gray_of(image, rows)
    del image
    net_gray, net_hw = _network_input(gray, options.max_side)
    predictions = predictor(net_gray)
    histograms = readout_lib.split_predictions(predictions, predictor.kind,
                                               predictor.from_logits)
    if options.transfer == "bias":
        reference = tf.convert_to_tensor(reference, tf.float32)
        histograms = _bias_transfer(histograms, predictor.kind, reference, options)
    common = dict(kind=predictor.kind, grid_factor=predictor.grid_factor, network_size=net_hw,
                  **options.readout_kwargs())
    if output_dtype is not None or rows < int(gray.shape[1]):
        rng = np.random.default_rng(options.seed)
        quantiles = [float(rng.uniform()) for _ in range(options.samples)]
        quantile = options.transfer == "quantile"  # transferred as floats, then converted
        rgb, unc, samples = _readout_strips(histograms, gray, rows,
                                            np.float32 if quantile else output_dtype,
                                            options.uncertainty, quantiles, options.seed, common)
        if quantile and output_dtype == np.uint8:
            unc = None if unc is None else to_uint8(unc)
            samples = [to_uint8(a) for a in samples]
        if options.transfer == "quantile":
            rgb = histogram_transfer.quantile_transfer(
                    rgb, tf.convert_to_tensor(reference, tf.float32)).numpy()
            rgb = to_uint8(rgb) if output_dtype == np.uint8 else rgb
        wrap = tf.convert_to_tensor if output_dtype is None else (lambda a: a)
        out = {"rgb": wrap(rgb)}
        if unc is not None:
            out["uncertainty"] = wrap(unc)
        if samples:
            out["samples"] = [wrap(a) for a in samples]
        return out
    colours = readout_lib.readout(histograms, gray, seed=options.seed, **common)
    rgb = colours["rgb"][0]
    if options.transfer == "quantile":
        rgb = histogram_transfer.quantile_transfer(rgb, tf.convert_to_tensor(reference, tf.float32))
    out = {"rgb": rgb}
    if options.uncertainty:
        out["uncertainty"] = colours["uncertainty"][0, ..., 0]
    if options.samples:
        rng = np.random.default_rng(options.seed)
        out["samples"] = [
                readout_lib.readout(histograms, gray, sample_quantile=float(rng.uniform()),
                                    **common)["rgb"][0] for _ in range(options.samples)]
    return out
