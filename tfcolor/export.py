"""SavedModel export of a colorizer, for TF Serving and for reuse (fine-tuning) in Python.

:func:`export_saved_model` writes, with ``tf.saved_model.save`` of a :class:`ServingModule` (a
``tf.Module`` holding the Keras colorizer, with explicitly traced ``tf.function`` s):

================== ============================================ =================================
signature          inputs                                       outputs
================== ============================================ =================================
``serving_default`` ``images``: uint8 (B, H, W, C), C = 1 or 3    ``rgb``: uint8 (B, H, W, 3)
``colorize``       same as ``serving_default``                  same
``colorize_float`` ``images``: float32 (B, H, W, C) in [0, 1]   ``rgb``: float32 (B, H, W, 3)
``colorize_bytes`` ``images``: string (B,), encoded JPEG / PNG /  ``rgb``: uint8 (B, H, W, 3)
                   BMP / GIF (first frame); all of one size
``histograms``     ``images``: float32 (B, H, W, C) in [0, 1]   ``logits``: float32 (B, h, w, D);
                                                                one probability map per group
                                                                (``hue``, ``chroma`` | ``a``,
                                                                ``b`` | ``ab``): (B, h, w, K);
                                                                regression: ``ab`` (B, h, w, 2)
``features``       ``images``: float32 (B, H, W, C) in [0, 1]   every hypercolumn tap, by name
                                                                (``conv1_1``...``fc7``), at its
                                                                own stride: (B, ceil(H/s),
                                                                ceil(W/s), C_tap) (trunk
                                                                activations in inference mode)
``hypercolumn``    ``images``: float32 (B, H, W, C) in [0, 1]   ``hypercolumn``: float32
                                                                (B, h, w, sum C_tap), the dense
                                                                hypercolumn on the grid
================== ============================================ =================================

``h, w = ceil(H / g), ceil(W / g)`` with the export's grid factor ``g`` (default 4); grid cell
``(i, j)`` is input pixel ``(i g, j g)``. Every signature accepts any image size (padded inside by
mirror reflection to a multiple of the trunk's largest stride, see ``tfcolor.predictors``) and any
batch size; the B, H, W dimensions are dynamic (-1 in ``saved_model_cli``). Colour inputs are
desaturated (``(R + G + B) / 3``) first. The colour output has the input's lightness exactly.
The colour signatures compute what ``tfcolor.predictors.colorize_batch`` does (pad, predict,
read the colours off the histograms with ``tfcolor.readout``) on images up to ``max_side``, and
what ``binaries/colorize`` does on larger ones (see network size below), the full-resolution part
in strips. Readout options (hue
expectation, chroma median, chromatic fading variant, ...) are fixed at export time
(``readout_options``) and recorded in the metadata. Shapes of ``images`` are
declared fully unknown (rank too), so that a wrong rank reaches the checks below instead of a
shape error at the signature boundary.

Serving cap: every signature refuses a batch of more than ``max_pixels`` pixels (batch x height x
width; default 100,000,000, set at export: ``export_saved_model(max_pixels=...)``,
``binaries/export --max_pixels``; recorded in the metadata) with ``images above the serving cap
of N pixels``, and ``colorize_bytes`` refuses files whose header declares more.

Network size: the colour signatures (``serving_default``, ``colorize``, ``colorize_float``,
``colorize_bytes``) run the network on the grey image shrunk to ``max_side`` pixels on its longer
side when it is larger (default 512, set at export: ``export_saved_model(max_side=...)``,
``binaries/export --max_side``, 0 = never; recorded in the metadata), exactly as
``binaries/colorize --max_side`` and ``tfcolor.predictors.colorize_image`` do (antialiased area
resize, :func:`tfcolor.predictors.shrink_gray`; the colour upsampled back to the full size and
recombined with the full-resolution lightness, so no detail of the lightness is lost): the
network's memory then stays that of a ``max_side`` image, whatever the input. ``histograms``,
``features`` and ``hypercolumn`` return maps of the input itself and run the network at its full
size; the serving cap bounds them. Everything else at full resolution runs in strips of whole rows of about
:data:`STRIP_PIXELS` pixels inside the signature (a ``tf.while_loop`` writing each strip's output
into a ``TensorArray``): the validation and grey conversion of the input, and the recombination
of the upsampled colour estimates (computed once, on the grid: ``tfcolor.readout.grid_maps``)
with the input's lightness (``tfcolor.readout.recombine``). Strips are aligned to 64 pixels of
the batch, so every pixel gets the same value for any strip size; against the recombination in
one piece, floats differ by at most float32 rounding (the graph optimizer rewrites some
arithmetic of the one-piece graph) and uint8 outputs are identical in the tests
(``benchmarks/colorize_memory.py --signature`` measures the memory).

Bad input fails with ``InvalidArgumentError`` whose message names the problem (tested, also in
a fresh process and through ``saved_model_cli run``): ``images must be a rank-4 batch (batch,
height, width, channels)``, ``images must have 1 (grey) or 3 (RGB) channels``, ``images must not
be empty`` (a zero batch, height or width), ``float images must be in [0, 1] (no NaN or Inf)``
(negative, above 1, NaN, +-Inf), ``colorize_bytes: all images of a batch must have the same
size``, ``colorize_bytes: images must be a 1-D batch of encoded images`` (a scalar or a
matrix of strings), ``colorize_bytes: an image cannot be decoded; reason by batch index:
ok,too_large``
(the reasons of ``tfcolor.data.decode``: empty, unknown_format, unsupported, too_large above
``max_pixels`` = 1e8 pixels read from the header, so a decompression bomb is never decoded,
a GIF counted by all its frames; too_many_scans: a JPEG of more than 500 scans;
corrupt data that passes the header checks fails in the decoder op). A wrong dtype (float64,
int32, float for the uint8 signatures) is refused at the signature boundary (``expected to be a
float tensor but is a double tensor``). Valid input never fails: nothing inside resizes before
the range check, and ``colorize_bytes`` clips its decoded pixels. ``colorize_bytes`` decodes
with ``tfcolor.data.decode.decode_image`` (JPEG EXIF orientation applied, alpha composited over
mid-grey, the first frame of an animated GIF).

Reuse in Python (fine-tuning)
-----------------------------
``loaded = tf.saved_model.load(export_dir)`` gives, besides the signatures:

* ``loaded.variables`` / ``loaded.trainable_variables``: every / the trainable variables of the
  colorizer (trunk and head; the reusable-SavedModel convention), restored as trainable
  ``tf.Variable`` s;
* ``loaded.trunk_variables``: the trunk's trainable variables only;
* ``loaded.__call__(gray, training=False|True)``: the trunk's tap maps (dict) on a grey batch
  (B, H, W, 1) float32 -- differentiable, so ``tape.gradient(loss, loaded.trunk_variables)`` and
  an optimizer step fine-tune the trunk (``training=True`` runs batch norm in training mode,
  on the one replica the SavedModel runs on: a synchronized batch norm is traced unsynchronized);
* ``export_dir/colorizer.keras``: the Keras colorizer itself, ``load_keras_model(export_dir)``
  returns it (``model.trunk`` is the Keras trunk: a functional model grey -> {tap: map}).

``export_dir/tfcolor_export.json`` holds the metadata (kind, grid factor, padding multiple, readout
options, taps and strides, the training config if given, the signature table).

From a training directory
-------------------------
:func:`export_from_checkpoint` exports the colorizer of a run directory:
``tfcolor.run_dir.load_model`` rebuilds it from ``model_dir/config.json`` (``PretrainConfig`` as
JSON, written by pretraining; ``tfcolor.models.build_colorizer``) and restores the run's model
(the model under the key ``model``): the kept best model of a ``keep_best`` run (lowest held-out
loss), else the latest complete checkpoint (``tfcolor.run_dir.model_checkpoint``). The metadata's
``checkpoint`` says which (``{"path", "step", "selected": "best_heldout" | "latest" | "given",
"heldout_loss"}``), as does the end-of-run export of pretraining.
"""
import contextlib
import functools
import json
import logging
import os
import re
import shutil

import keras
import tensorflow as tf

from tfcolor import leftovers
from tfcolor import models  # noqa: F401  (registers the Keras classes load_keras_model reads)
from tfcolor import predictors
from tfcolor import readout as readout_lib
from tfcolor import run_dir
from tfcolor.data import decode as decode_lib
from tfcolor.data import decode_cost

try:  # keeps the Keras model out of the SavedModel's object graph (see ServingModule)
    from tensorflow.python.trackable.data_structures import NoDependency
except ImportError:  # pragma: no cover
    NoDependency = None

SIGNATURES = ("serving_default", "colorize", "colorize_float", "colorize_bytes", "histograms",
              "features", "hypercolumn")
_ANY = tf.TensorSpec(shape=None, dtype=tf.float32, name="images")
_ANY_U8 = tf.TensorSpec(shape=None, dtype=tf.uint8, name="images")
_BYTES = tf.TensorSpec(shape=None, dtype=tf.string, name="images")


#: Pixels per strip of the signatures' full-resolution work (grey input, recombination).
STRIP_PIXELS = predictors.DEFAULT_TILE_PIXELS
#: Strips hold a multiple of this many pixels of the batch, so that each pixel gets exactly the
#: value the computation in one piece gives it (``tfcolor.predictors``: vectorized kernels treat
#: the elements of an incomplete vector on their own).
_STRIP_ALIGN = 64


def _strip_rows(total_rows, width, strip_pixels):
    """Rows per strip (int32 scalar): about ``strip_pixels`` pixels, ``rows * width`` a multiple
    of :data:`_STRIP_ALIGN`, at most ``total_rows``."""
    width = tf.maximum(width, 1)
    low_bit = tf.bitwise.bitwise_and(width, -width)  # gcd(width, 2^k)
    step = _STRIP_ALIGN // tf.minimum(low_bit, _STRIP_ALIGN)
    rows = tf.maximum(step, strip_pixels // width // step * step)
    return tf.minimum(rows, tf.maximum(total_rows, 1))


def _map_strips(fn, tall, rows, dtype, channels):
    """``fn(strip, first_row)`` over strips of ``rows`` rows of ``tall`` (N, W, C), concatenated:
    (N, W, ``channels``) of ``dtype``. Only one strip's intermediates exist at a time."""
    total = tf.shape(tall)[0]
    count = (total + rows - 1) // rows
    array = tf.TensorArray(dtype, size=count, infer_shape=False,
                           element_shape=tf.TensorShape([None, None, channels]))

    def body(i, array):
        start = i * rows
        return i + 1, array.write(i, fn(tall[start:start + rows], start))

    _, array = tf.while_loop(lambda i, _: i < count, body, [tf.constant(0), array],
                             parallel_iterations=1)
    return array.concat()


def _range_check(images):
    """(all floats of ``images`` in [0, 1], min, max of them and 0), in chunks (no copy)."""
    flat = tf.reshape(images, [-1])
    chunk = 1 << 18
    count = (tf.size(flat) + chunk - 1) // chunk

    def body(i, ok, low, high):
        part = flat[i * chunk:(i + 1) * chunk]
        ok = ok & tf.reduce_all(tf.logical_and(part >= 0.0, part <= 1.0))  # False for NaN
        return (i + 1, ok, tf.minimum(low, tf.reduce_min(part)),
                tf.maximum(high, tf.reduce_max(part)))

    _, ok, low, high = tf.while_loop(
            lambda i, *_: i < count, body,
            [tf.constant(0), tf.constant(True), tf.constant(0.0), tf.constant(0.0)],
            parallel_iterations=1)
    return ok, low, high


def _validated_gray(images, max_pixels=None):
    """Checks a serving batch and returns a safe (B, H, W, 1) float32 grey batch.

    ``max_pixels``: the serving cap; a batch of more pixels (batch x height x width) is refused.

    Invalid input is replaced by a small dummy batch so that no other op fails first; the
    ``tf.debugging.Assert`` ops (stateful, so always run by ``tf.function``) then raise the
    message. Floats must be in [0, 1], uint8 are divided by 255. The check and the grey are
    computed strip by strip (no float copy of the whole input; the same values).
    """
    shape = tf.shape(images)
    rank_ok = tf.equal(tf.rank(images), 4)
    tf.debugging.Assert(rank_ok, ["images must be a rank-4 batch (batch, height, width, "
                                  "channels); got shape", shape])
    shape4 = tf.concat([shape, tf.ones([4], tf.int32)], axis=0)[:4]
    channels = shape4[3]
    channels_ok = tf.logical_or(tf.equal(channels, 1), tf.equal(channels, 3))
    tf.debugging.Assert(tf.logical_or(tf.logical_not(rank_ok), channels_ok), [
            "images must have 1 (grey) or 3 (RGB) channels in the last axis; got shape", shape])
    nonempty = tf.reduce_all(shape4[:3] > 0)
    tf.debugging.Assert(tf.logical_or(tf.logical_not(rank_ok), nonempty), [
            "images must not be empty (batch, height and width > 0); got shape", shape])
    ok = rank_ok & channels_ok & nonempty
    if max_pixels is not None:
        pixels = tf.reduce_prod(tf.cast(shape4[:3], tf.int64))
        small = pixels <= max_pixels
        tf.debugging.Assert(tf.logical_or(tf.logical_not(ok), small), [
                f"images above the serving cap of {int(max_pixels)} pixels (batch x height x "
                "width; set when exporting: max_pixels); got shape", shape])
        ok = ok & small
    uint8 = images.dtype == tf.uint8
    if not uint8:
        in_range, low, high = _range_check(images)
        tf.debugging.Assert(in_range, [
                "float images must be in [0, 1] (no NaN or Inf); got min", low, "max", high])

    def strip_gray(strip, _):
        x = tf.cast(strip, tf.float32)
        if uint8:
            x = x / 255.0
        return tf.reduce_mean(x, axis=-1, keepdims=True)

    def good():
        tall = tf.reshape(images, [shape4[0] * shape4[1], shape4[2], channels])
        rows = _strip_rows(tf.shape(tall)[0], shape4[2], STRIP_PIXELS)
        gray = _map_strips(strip_gray, tall, rows, tf.float32, 1)
        return tf.reshape(gray, [shape4[0], shape4[1], shape4[2], 1])

    gray = tf.cond(ok, good, lambda: tf.zeros([1, 8, 8, 1], tf.float32))
    gray.set_shape([None, None, None, 1])
    return gray


def _network_pixels(pixels, network, full):
    """Full-resolution pixel indices -> network-input coordinates (float32), as
    ``tfcolor.readout.upsample_grid`` maps them: ``(y + 0.5) * network / full - 0.5``, at least
    0 (exactly ``y`` when the network saw the full size)."""
    ratio = tf.cast(network, tf.float32) / tf.cast(full, tf.float32)
    return tf.maximum((tf.cast(pixels, tf.float32) + 0.5) * ratio - 0.5, 0.0)


def _upsample_rows(values, first, count, height, width, grid_factor, network_size=None):
    """Rows ``first`` ... ``first + count - 1`` of the batch ``values`` (B, h, w, C) upsampled to
    (B, ``height``, ``width``) and stacked as one tall image (batch after batch): (1, count,
    width, C), each value exactly that of ``tfcolor.readout.upsample_grid`` of the whole
    (``network_size``: the (H_net, W_net) int32 size the network saw; None: full size)."""
    grid = tf.shape(values)
    h, w = grid[1], grid[2]
    g = float(grid_factor)
    tall_rows = tf.range(first, first + count)
    image, row = tall_rows // height, tall_rows % height
    row = tf.cast(row, tf.float32) if network_size is None else _network_pixels(
            row, network_size[0], height)
    coord = tf.clip_by_value(row / g, 0.0, tf.cast(h - 1, tf.float32))
    lo = tf.cast(tf.floor(coord), tf.int32)
    hi = tf.minimum(lo + 1, h - 1)
    frac = tf.reshape(coord - tf.cast(lo, tf.float32), [-1, 1, 1])
    flat = tf.reshape(values, tf.concat([[-1], grid[2:]], 0))  # (B h, w, C)
    out = (tf.gather(flat, image * h + lo) * (1.0 - frac)
           + tf.gather(flat, image * h + hi) * frac)
    column = tf.range(width)
    column = tf.cast(column, tf.float32) if network_size is None else _network_pixels(
            column, network_size[1], width)
    coord = tf.clip_by_value(column / g, 0.0, tf.cast(w - 1, tf.float32))
    lo = tf.cast(tf.floor(coord), tf.int32)
    hi = tf.minimum(lo + 1, w - 1)
    frac = tf.reshape(coord - tf.cast(lo, tf.float32), [-1, 1])
    out = tf.gather(out, lo, axis=1) * (1.0 - frac) + tf.gather(out, hi, axis=1) * frac
    return out[None]


def _to_uint8(rgb):
    """[0, 1] floats -> uint8, clipped first (a cast of an out-of-range float is undefined)."""
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)


def _tf_variables(variables):
    """The tf.Variables behind Keras variables (or the tf.Variables themselves)."""
    return [getattr(v, "value", v) if not isinstance(v, tf.Variable) else v for v in variables]


def _capture_names(variables):
    """A valid, unique function input name per variable (its path, lower case, ``[a-z0-9_]``)."""
    names = []
    for i, v in enumerate(variables):
        path = getattr(v, "path", None) or v.name.split(":")[0]
        names.append(f"var{i}_" + re.sub(r"[^a-z0-9_]", "_", path.lower()))
    return names


def _capture_variables(variables, names):
    """Captures each variable's handle into the function being traced under its name.

    A variable read inside a ``tf.function`` is otherwise captured by its first read op under
    the name ``resource`` (the op's argument), which is not a valid, unique input name of a
    signature: ``tf.saved_model.save`` renames every such input and logs that it did. Captured
    here first, every later read reuses the named capture.
    """
    graph = tf.compat.v1.get_default_graph()
    if not hasattr(graph, "capture"):  # not inside a tf.function (nothing to name)
        return
    for v, name in zip(variables, names):
        graph.capture(v.handle, name=name)


def _batch_norm_layers(layer):
    """Every ``keras.layers.BatchNormalization`` inside ``layer`` (nested models included)."""
    found, stack, seen = [], [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, keras.layers.BatchNormalization):
            found.append(current)
        stack.extend(getattr(current, "layers", None) or [])
        trunk = getattr(current, "trunk", None)
        if trunk is not None:
            stack.append(trunk)
    return found


@contextlib.contextmanager
def _one_replica_batch_norm(model):
    """Traces synchronized batch normalization as plain (one-replica) batch normalization.

    A SavedModel function runs on one replica: synchronizing the batch statistics across
    replicas means nothing there. Traced as is, the statistics go through the default
    replica context's ``all_reduce`` (an identity with a custom gradient whose own gradient is
    one again): the SavedModel cannot keep that second-order custom gradient, so every load
    warns and a second-order gradient in training mode fails. Plain batch normalization
    computes the same statistics and first-order gradients (up to float rounding); its second
    order is that of ``tf.nn.moments``, which stops the gradient through the batch mean.
    """
    layers = [layer for layer in _batch_norm_layers(model) if layer.synchronized]
    for layer in layers:
        layer.synchronized = False
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = True


class ServingModule(tf.Module):
    """``tf.Module`` with the serving functions of a Keras colorizer (module docstring).

    Args:
        model: a ``tfcolor.models.Colorizer`` (or any model with ``dense``, ``features``,
            ``taps``, ``tap_strides``, ``trunk``, ``dense_hypercolumn``).
        kind: loss kind (default: ``model.kind``).
        grid_factor: dense grid factor g (4).
        multiple: padding multiple (default: the model's largest stride).
        readout_options: keyword arguments of ``tfcolor.readout.readout``
            (``tfcolor.readout.READOUT_OPTIONS``: hue_method, chroma_method, fading,
            hcl_variant, lightness, ...).
    """

    # Plain attributes (not tf.Module's properties), so that they are saved and restored: the
    # reusable-SavedModel convention.
    variables = None
    trainable_variables = None

    def __init__(self, model, kind=None, grid_factor=4, multiple=None, readout_options=None,
                 name="tfcolor_colorizer", max_pixels=decode_lib.DEFAULT_MAX_PIXELS,
                 max_side=predictors.DEFAULT_MAX_SIDE):
        super().__init__(name=name)
        # Keras 3 variables are saved through their underlying tf.Variable, never through the
        # Keras objects: a SavedModel that tracks Keras variables/models directly loads fine with
        # tf.saved_model.load but fails in TF1-style loaders (saved_model_cli run, TF Serving)
        # with "Could not find variable ..." (keras-team/keras#20095, #19274). The Keras model
        # is therefore held without tracking; the variables are tracked as tf.Variables.
        self.model = NoDependency(model) if NoDependency is not None else model
        self.kind = kind or getattr(model, "kind", "hue_chroma")
        readout_lib.group_sizes(self.kind)  # validates
        self.grid_factor = int(grid_factor)
        if self.grid_factor < 1:
            raise ValueError(f"grid_factor must be a positive integer, got {grid_factor}")
        self.multiple = int(multiple or predictors.model_stride(model))
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        if max_side is not None and (isinstance(max_side, bool) or int(max_side) != max_side
                                     or max_side < 8):
            raise ValueError(f"max_side must be an integer >= 8 or None, got {max_side!r}")
        self.max_side = None if max_side is None else int(max_side)
        self.readout_options = dict(readout_options or {})
        for key in ("sample_quantile", "seed", "network_size"):
            if key in self.readout_options:
                raise ValueError(f"readout option {key!r} cannot be fixed in a SavedModel")
        self.from_logits = getattr(model, "head_activation", None) is None
        self.variables = _tf_variables(model.variables)
        self.trainable_variables = _tf_variables(model.trainable_variables)
        trunk = getattr(model, "trunk", None)
        self.trunk_variables = _tf_variables(trunk.trainable_variables) if trunk is not None else []
        self.taps = list(getattr(model, "taps", []))
        self._capture_names = tuple(_capture_names(self.variables))
        self._build_functions()

    # -- graph pieces -------------------------------------------------------------------------

    def _grid(self, gray):
        return predictors.predict_grid(self.model, gray, self.grid_factor, self.multiple)

    def _padded_features(self, images):
        """Validated grey input reflect-padded to the trunk's multiple: (input size, padded,
        tap maps of the padded input in inference mode)."""
        gray = _validated_gray(images, self.max_pixels)
        padded = predictors.reflect_pad(gray, self.multiple)
        return tf.shape(gray)[1:3], padded, self.model.features(padded, training=False)

    def _network_input(self, gray):
        """The colour signatures' network input: ``gray`` shrunk to ``max_side`` on its longer
        side when larger (as ``tfcolor.predictors.colorize_image``), and its size (int32 (2,);
        None without ``max_side``)."""
        if self.max_side is None:
            return gray, None
        height, width = tf.shape(gray)[1], tf.shape(gray)[2]
        longest = tf.maximum(height, width)
        scale = float(self.max_side) / tf.cast(longest, tf.float64)

        def side(n):  # max(1, round(n * s)): round half to even, in float64, as Python's round
            return tf.maximum(1, tf.cast(tf.round(tf.cast(n, tf.float64) * scale), tf.int32))

        shrink = longest > self.max_side
        size = tf.where(shrink, tf.stack([side(height), side(width)]),
                        tf.stack([height, width]))
        net_gray = tf.cond(shrink, lambda: predictors.shrink_gray(gray, size), lambda: gray)
        return net_gray, size

    def _colorize_gray(self, gray, dtype=tf.float32):
        """(B, H, W, 1) grey -> (B, H, W, 3) RGB of ``dtype`` (uint8: :func:`_to_uint8`): the
        numbers of ``tfcolor.predictors.colorize_batch``, recombined at full resolution in
        strips of about :data:`STRIP_PIXELS` pixels (the colour estimates once, on the grid)."""
        net_gray, net_hw = self._network_input(gray)
        logits = self._grid(net_gray)
        del net_gray
        histograms = readout_lib.split_predictions(logits, self.kind, self.from_logits)
        options = dict(self.readout_options)
        recombine_options = {k: options.pop(k) for k in ("hcl_variant", "lightness")
                             if k in options}
        maps = readout_lib.grid_maps(histograms, kind=self.kind, uncertainty=False, **options)
        shape = tf.shape(gray)
        height, width = shape[1], shape[2]

        def strip(gray_strip, first):
            def upsample(values):
                return _upsample_rows(values, first, tf.shape(gray_strip)[0], height, width,
                                      self.grid_factor, net_hw)
            rgb = readout_lib.recombine(maps, gray_strip[None], upsample, kind=self.kind,
                                        **recombine_options)["rgb"][0]
            return _to_uint8(rgb) if dtype == tf.uint8 else rgb

        tall = tf.reshape(gray, [shape[0] * height, width, 1])
        rows = _strip_rows(tf.shape(tall)[0], width, STRIP_PIXELS)
        rgb = _map_strips(strip, tall, rows, dtype, 3)
        return tf.reshape(rgb, [shape[0], height, width, 3])

    def _traced(self, fn):
        """``fn`` with the model's variables captured under valid names and synchronized batch
        normalization traced for one replica (:func:`_capture_variables`,
        :func:`_one_replica_batch_norm`)."""
        @functools.wraps(fn)
        def body(*args, **kwargs):
            _capture_variables(self.variables, self._capture_names)
            with _one_replica_batch_norm(self.model):
                return fn(*args, **kwargs)
        return body

    def _build_functions(self):
        @tf.function(input_signature=[_ANY_U8])
        @self._traced
        def colorize(images):
            """uint8 (B, H, W, 1|3) -> {"rgb": uint8 (B, H, W, 3)}."""
            return {"rgb": self._colorize_gray(_validated_gray(images, self.max_pixels),
                                               tf.uint8)}

        @tf.function(input_signature=[_ANY])
        @self._traced
        def colorize_float(images):
            """float32 (B, H, W, 1|3) in [0, 1] -> {"rgb": float32 (B, H, W, 3)}."""
            return {"rgb": self._colorize_gray(_validated_gray(images, self.max_pixels))}

        @tf.function(input_signature=[_BYTES])
        @self._traced
        def colorize_bytes(images):
            """string (B,) encoded images of one size -> {"rgb": uint8 (B, H, W, 3)}."""
            is_vector = tf.equal(tf.rank(images), 1)
            tf.debugging.Assert(is_vector, [
                    "colorize_bytes: images must be a 1-D batch of encoded images (shape [batch],"
                    " one string per image); got shape", tf.shape(images)])
            images = tf.cond(is_vector, lambda: tf.reshape(images, [-1]),
                             lambda: tf.constant([""]))
            tf.debugging.Assert(tf.size(images) > 0, ["colorize_bytes: empty batch"])

            def decode_one(contents):
                # tfcolor's decoder: format and pixel count from the header first (a
                # decompression bomb is refused unread), EXIF orientation, alpha over grey.
                image, reason = decode_lib.decode_image(contents, max_pixels=self.max_pixels)
                u8 = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
                return tf.RaggedTensor.from_tensor(u8), reason

            decoded, reasons = tf.map_fn(decode_one, images, fn_output_signature=(
                    tf.RaggedTensorSpec(shape=[None, None, 3], dtype=tf.uint8, ragged_rank=1),
                    tf.TensorSpec([], tf.int32)))
            decodable = tf.reduce_all(tf.equal(reasons, decode_lib.OK))
            tf.debugging.Assert(decodable, [
                    "colorize_bytes: an image cannot be decoded; reason by batch index:",
                    tf.strings.reduce_join(tf.gather(tf.constant(decode_lib.REASONS), reasons),
                                           separator=","),
                    f"(too_large means above {self.max_pixels} pixels; too_many_scans: a JPEG "
                    f"of more than {decode_cost.MAX_JPEG_SCANS} scans)"])
            sizes = decoded.row_lengths(axis=1)
            widths = tf.reshape(decoded.values.row_lengths(), [-1])
            same = tf.logical_and(tf.reduce_all(tf.equal(sizes, sizes[0])),
                                  tf.reduce_all(tf.equal(widths, widths[0])))
            tf.debugging.Assert(tf.logical_or(tf.logical_not(decodable), same), [
                    "colorize_bytes: all images of a batch must have the same size (send one "
                    "image per request or resize first)"])
            dense = tf.cond(decodable & same, lambda: decoded.to_tensor(),
                            lambda: tf.zeros([1, 8, 8, 3], tf.uint8))
            return {"rgb": self._colorize_gray(_validated_gray(dense, self.max_pixels),
                                               tf.uint8)}

        @tf.function(input_signature=[_ANY])
        @self._traced
        def histograms(images):
            """float32 images -> {"logits": (B, h, w, D), <group>: probabilities (B, h, w, K)}."""
            logits = tf.cast(self._grid(_validated_gray(images, self.max_pixels)), tf.float32)
            out = readout_lib.split_predictions(logits, self.kind, self.from_logits)
            out["logits"] = logits
            return out

        @tf.function(input_signature=[_ANY])
        @self._traced
        def features(images):
            """float32 images -> {tap: (B, ceil(H/s), ceil(W/s), C)} (inference mode)."""
            hw, _, maps = self._padded_features(images)
            out = {}
            for name, fmap in zip(self.taps, maps):
                s = int(self.model.tap_strides[name])
                out[name] = tf.cast(fmap[:, :(hw[0] + s - 1) // s, :(hw[1] + s - 1) // s],
                                    tf.float32)
            return out

        @tf.function(input_signature=[_ANY])
        @self._traced
        def hypercolumn(images):
            """float32 images -> {"hypercolumn": (B, h, w, sum of tap channels)}."""
            hw, padded, maps = self._padded_features(images)
            hc = self.model.dense_hypercolumn(maps, padded, grid_factor=self.grid_factor)
            g = self.grid_factor
            return {"hypercolumn": tf.cast(
                    hc[:, :(hw[0] + g - 1) // g, :(hw[1] + g - 1) // g], tf.float32)}

        @tf.function
        @self._traced
        def call(gray, training=False):
            """Grey (B, H, W, 1) float32 -> {tap: map}; differentiable (fine-tuning)."""
            return dict(zip(self.taps, self.model.features(gray, training=training)))

        self.colorize = colorize
        self.colorize_float = colorize_float
        self.colorize_bytes = colorize_bytes
        self.histograms = histograms
        self.features = features
        self.hypercolumn = hypercolumn
        self.__call__ = call
        spec = tf.TensorSpec([None, None, None, 1], tf.float32, name="gray")
        for training in (False, True):  # saved with the module: callable after loading
            call.get_concrete_function(spec, training=training)

    def signatures(self):
        """Concrete functions of every signature (module docstring), by name."""
        colorize = self.colorize.get_concrete_function()
        return {
                "serving_default": colorize,
                "colorize": colorize,
                "colorize_float": self.colorize_float.get_concrete_function(),
                "colorize_bytes": self.colorize_bytes.get_concrete_function(),
                "histograms": self.histograms.get_concrete_function(),
                "features": self.features.get_concrete_function(),
                "hypercolumn": self.hypercolumn.get_concrete_function(),
        }

    def metadata(self, config=None, checkpoint=None):
        return {
                "format": "tfcolor-savedmodel-2",
                "kind": self.kind,
                "grid_factor": self.grid_factor,
                "padding_multiple": self.multiple,
                "max_pixels": self.max_pixels,
                "max_side": self.max_side,
                "from_logits": self.from_logits,
                "group_sizes": list(readout_lib.group_sizes(self.kind)),
                "readout_options": self.readout_options,
                "taps": self.taps,
                "tap_strides": {k: int(v) for k, v in
                                dict(getattr(self.model, "tap_strides", {})).items()},
                "signatures": list(SIGNATURES),
                "keras_model": run_dir.EXPORT_KERAS_FILE,
                "config": config,
                "checkpoint": checkpoint,
        }


def _local(path):
    return "://" not in str(path)


def clean_leftovers(export_dir):
    """Removes what killed exports left next to ``export_dir`` (``tfcolor.leftovers``): their
    ``EXPORT_DIR.tmp-PID/`` staging folders and ``EXPORT_DIR.old-PID/`` earlier exports, once
    their process is dead. An earlier export moved aside whose replacement never arrived
    (``EXPORT_DIR`` missing) is renamed back instead. Returns the removed paths."""
    if not _local(export_dir):
        return []
    target = str(export_dir).rstrip("/") or str(export_dir)
    parent, base = os.path.split(os.path.abspath(target))
    olds = leftovers.dead_leftovers(parent, re.escape(base) + r"\.old-(?P<pid>\d+)")
    if olds and not os.path.lexists(target):
        os.rename(os.path.join(parent, olds[-1]), target)
        logging.getLogger(__name__).warning(
                "restored the export %s from %s (an export was killed while replacing it)",
                target, olds[-1])
    return leftovers.remove_dead(parent, re.escape(base) + r"\.(tmp|old)-(?P<pid>\d+)",
                                 "partial export")


def checkpoint_metadata(path, best=None, *, given=False):
    """The export metadata's ``checkpoint``: which checkpoint of a run the export holds.

    Args:
        path: the checkpoint prefix (None: unknown).
        best: the kept best model's record (``tfcolor.run_dir.read_best``) when ``path`` is it.
        given: the caller chose ``path`` explicitly.
    """
    if path is None:
        return None
    selected = "given" if given else ("best_heldout" if best is not None else "latest")
    out = {"path": os.path.basename(str(path)), "step": _checkpoint_step(path),
           "selected": selected}
    if best is not None:
        out["heldout_loss"] = float(best["loss"])
        out["step"] = int(best["step"])
    return out


def _checkpoint_step(path):
    name = os.path.basename(str(path))
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def export_saved_model(model, export_dir, *, kind=None, grid_factor=4, multiple=None,
                       readout_options=None, config=None, save_keras=True, overwrite=True,
                       checkpoint=None, max_pixels=decode_lib.DEFAULT_MAX_PIXELS,
                       max_side=predictors.DEFAULT_MAX_SIDE):
    """Writes a SavedModel of ``model`` with the signatures of the module docstring.

    On a local disk the export is written to a temporary sibling folder
    (``export_dir.tmp-PID``) and renamed to ``export_dir`` only when complete, so a failed or
    killed export never leaves a partial SavedModel under the final name, and an earlier
    export is replaced only once the new one is whole (it is moved aside, the new one renamed
    in, then the old one deleted). What killed exports left there is cleaned first
    (:func:`clean_leftovers`).

    Args:
        model: a ``tfcolor.models.Colorizer``.
        export_dir: output directory (created).
        overwrite: replace an existing, non-empty ``export_dir`` (default, as pretraining's
            end-of-run export needs); ``False`` raises ``FileExistsError`` instead.
        kind: loss kind (default ``model.kind``).
        grid_factor: dense grid factor g of every signature (paper: 4).
        multiple: padding multiple (default: the model's largest stride).
        readout_options: fixed readout options (``tfcolor.readout.readout`` keywords).
        config: JSON-able training config stored in the metadata (e.g.
            ``PretrainConfig.to_dict()``).
        save_keras: also write ``colorizer.keras`` next to it.
        checkpoint: JSON-able description of the checkpoint the model comes from, stored in the
            metadata (:func:`checkpoint_metadata`).
        max_pixels: the serving cap (module docstring); None: no cap (the decoder's header
            check of ``colorize_bytes`` included).
        max_side: the colour signatures run the network on the image shrunk to this longer
            side (module docstring; 512, as ``binaries/colorize``); None: at full size.

    Returns:
        ``export_dir``.
    """
    export_dir = str(export_dir)
    clean_leftovers(export_dir)
    exists = tf.io.gfile.isdir(export_dir) and bool(tf.io.gfile.listdir(export_dir))
    if exists and not overwrite:
        raise FileExistsError(f"{export_dir} already exists and is not empty: not replacing an "
                              "earlier export (choose another directory or allow overwriting)")
    if not exists and tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
        raise FileExistsError(f"{export_dir} exists and is not a directory")
    module = ServingModule(model, kind=kind, grid_factor=grid_factor, multiple=multiple,
                           readout_options=readout_options, max_pixels=max_pixels,
                           max_side=max_side)
    target = export_dir.rstrip("/") or export_dir
    staging = f"{target}.tmp-{os.getpid()}" if _local(export_dir) else export_dir
    if staging != export_dir and os.path.lexists(staging):
        shutil.rmtree(staging)
    try:
        tf.io.gfile.makedirs(staging)
        tf.saved_model.save(module, staging, signatures=module.signatures())
        if save_keras:
            model.save(os.path.join(staging, run_dir.EXPORT_KERAS_FILE))
        with tf.io.gfile.GFile(os.path.join(staging, run_dir.EXPORT_METADATA_FILE), "w") as f:
            json.dump(module.metadata(config, checkpoint), f, indent=2, default=str)
    except BaseException:
        if staging != export_dir:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if staging != export_dir:
        old = f"{target}.old-{os.getpid()}"
        if os.path.lexists(target):
            os.rename(target, old)  # the earlier export stays whole until the new one is in
        os.rename(staging, target)
        if os.path.lexists(old):
            shutil.rmtree(old)
    return export_dir


def load_keras_model(export_dir):
    """The Keras colorizer saved beside the SavedModel (trainable; ``.trunk`` is the trunk)."""
    path = os.path.join(export_dir, run_dir.EXPORT_KERAS_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} does not exist (exported with save_keras=False?)")
    return keras.saving.load_model(path)


def export_from_checkpoint(model_dir, export_dir, checkpoint=None, model=None, **kwargs):
    """``tfcolor.run_dir.load_model`` (unless ``model`` is its result already, loaded from the
    same ``checkpoint``) then :func:`export_saved_model` (the run's ``config.json`` and which
    checkpoint it is, :func:`checkpoint_metadata`, stored in the metadata). ``checkpoint=None``
    exports the run's model (``tfcolor.run_dir.model_checkpoint``: the kept best model of a
    ``keep_best`` run, else the latest checkpoint)."""
    given, best = checkpoint is not None, None
    if not given:
        checkpoint, best = run_dir.model_checkpoint(model_dir, validate=model is None)
    model, kind = model or run_dir.load_model(model_dir, checkpoint)
    config = run_dir.read_config(model_dir, as_dict=True)
    return export_saved_model(model, export_dir, kind=kind, config=config,
                              checkpoint=checkpoint_metadata(checkpoint, best, given=given),
                              **kwargs)
