"""Keras layers of the colorizer: sparse and dense hypercolumns, the histogram head, LRN, mean shift.

Hypercolumn sampling
--------------------
A hypercolumn at input pixel ``(y, x)`` concatenates, for every tapped feature map ``i`` of stride
``s_i``, the bilinear interpolation of that map at a *local* coordinate:

* ``convention="released"`` (default, the authors' Caffe and TensorFlow ops):
  ``local = pixel / stride`` (no half-pixel shift; with "same" padding a feature-map cell ``k``
  is treated as sitting on input pixel ``k * stride``);
* ``convention="half_pixel"``: ``local = (pixel + 0.5) / stride - 0.5`` (cell centres sit on the
  centres of their ``stride x stride`` pixel blocks, like ``tf.image.resize``).

The local coordinate is clamped to ``[0, size - 1 - edge_eps]`` per axis, where ``size`` is that
map's height or width. ``edge_eps`` defaults to ``1e-4``, the value of the released Caffe layer
(``Dtype(height) - Dtype(1.0001)``) in both its forward and backward passes, so a centre that
falls beyond the last cell reads ``0.9999 * last + 0.0001 * second to last``; ``edge_eps=0``
reads exactly the last cell. Indices are also clamped (``lo <= size - 2``, ``hi <= size - 1``),
so the result is well defined for any ``edge_eps >= 0`` and for maps of height or width 1.

Notes on the released TensorFlow op (``autocolorize/tensorflow/user_ops/sparse_extractor.cc``,
read for reference): its gradient kernel zeroes the input gradient with ``for x < dim_height``
instead of ``dim_width``, so with non-square maps the columns ``x >= height`` keep uninitialised
memory (``width > height``) or the loop writes past the rows (``width < height``); its forward pass
clamps with ``1.0000001f``, which in float32 equals ``size - 1`` for any size above 8, so the
upper neighbour index is ``size`` (one past the end, multiplied by a zero weight) and the forward
and backward passes use different clamps. Here the sampling is plain TensorFlow (one ``tf.gather``
of the four neighbours per map); the gradient is TensorFlow's gather gradient (a scatter-add of
the bilinear weights times the incoming gradient to the four neighbours), identical in shape
handling for any height and width. The tests check non-square maps against an independent NumPy
reference for both the values and the gradient, and that transposing the maps and swapping the
centre coordinates transposes nothing else.

No gradient flows to the centres (``tf.stop_gradient``): as in the paper, centres are sampled
positions, not parameters.

Dense hypercolumns
------------------
:class:`DenseHypercolumn` evaluates the same sampling on the grid of centres
``(i * g, j * g)``, ``0 <= i < ceil(H / g)``, ``0 <= j < ceil(W / g)`` for an ``H x W`` input and
grid factor ``g``, for either convention, so grid cell ``(i, j)`` equals the sparse hypercolumn at
centre ``(i * g, j * g)`` (tested to 1e-5). Bilinear interpolation is separable, so each map is
resampled with one gather of the two neighbouring rows per grid row, a blend, then the same along
the columns (per-axis indices and weights computed once per call): the cost is proportional to
the output grid, not to ``H * W``. :func:`grid_centers` gives the input pixel of every grid cell
(use it to upsample the colour channels back to full resolution consistently).

Mixed precision
---------------
The hypercolumn layers compute coordinates and interpolation weights in float32 and never let
Keras autocast the centres (a float16 pixel coordinate loses its fraction above 1024); feature
maps are cast to the layer's compute dtype, so under ``mixed_float16`` the output is float16.

Layers
------
* :class:`SparseHypercolumn`, :class:`DenseHypercolumn`: see above.
* :class:`HistogramHead`: hypercolumn -> ``Dense(hidden)`` named ``h_fc1`` -> ReLU -> Dropout ->
  ``Dense(sum(output_sizes))`` on the last axis; one set of weights serves the sparse
  ``(B, P, C)`` and the dense ``(B, h, w, C)`` path (Dense on the last axis is a 1x1 conv).
  The released code (Caffe ``dropout_colorize_fc1`` and TF ``selfsup`` ``h_fc1``) uses dropout
  0.5 after h_fc1; the papers do not state a rate; 0.5 is the default. The released code
  initialises h_fc1 with N(0, 1e-4) (``hidden_initializer=RandomNormal(stddev=1e-4)``) and the
  output layers with Xavier; the default here is Xavier (``glorot_uniform``) for both, as the
  paper states Xavier initialisation. The released code has one output layer per histogram
  (``hue``, ``chroma``); a single Dense with the concatenated width is the same function.
* :class:`LocalResponseNormalization`: AlexNet's cross-channel LRN.
* :class:`MeanShift`: ``(x - mean) * scale``, the input centring of the trunks.
"""
import math

import keras
import numpy as np
import tensorflow as tf

CONVENTIONS = ("released", "half_pixel")
DEFAULT_EDGE_EPS = 1e-4
#: Empty prior bins are floored at this probability when the head starts at a prior
#: (:meth:`HistogramHead.start_at_prior`), so that every initial logit is finite.
PRIOR_BIAS_FLOOR = 1e-4


def _check_strides(strides):
    if isinstance(strides, (str, bytes)) or not hasattr(strides, "__iter__"):
        raise ValueError(f"strides must be a list of positive numbers; got {strides!r}.")
    out = []
    for s in strides:
        try:
            v = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"strides must be positive numbers; got {s!r} in {strides!r}.") from None
        if not v > 0 or not math.isfinite(v):
            raise ValueError(f"strides must be positive numbers; got {s!r} in {strides!r}.")
        out.append(int(v) if v == int(v) else v)
    if not out:
        raise ValueError("strides must name at least one feature map; got an empty list.")
    return out


def _check_convention(convention):
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}.")
    return convention


def _check_edge_eps(edge_eps):
    try:
        v = float(edge_eps)
    except (TypeError, ValueError):
        raise ValueError(f"edge_eps must be a number in [0, 1); got {edge_eps!r}.") from None
    if not 0.0 <= v < 1.0:
        raise ValueError(f"edge_eps must be in [0, 1); got {edge_eps!r}.")
    return v


def _as_map_list(feature_maps, strides, layer_name):
    if isinstance(feature_maps, dict):
        raise ValueError(f"{layer_name} takes a list of feature maps in the order of `strides`, "
                         "not a dict (order the dict's values by the tap table first).")
    if not isinstance(feature_maps, (list, tuple)):
        feature_maps = [feature_maps]
    if len(feature_maps) != len(strides):
        raise ValueError(f"{layer_name} got {len(feature_maps)} feature maps but "
                         f"{len(strides)} strides {strides}.")
    feature_maps = [tf.convert_to_tensor(m) for m in feature_maps]
    for i, m in enumerate(feature_maps):
        if m.shape.rank is not None and m.shape.rank != 4:
            raise ValueError(f"{layer_name}: feature map {i} must be NHWC (rank 4); got shape "
                             f"{m.shape}.")
        if m.shape[-1] is None:
            raise ValueError(f"{layer_name}: feature map {i} needs a static channel count; got "
                             f"shape {m.shape}.")
    return list(feature_maps)


def axis_sampling(pixel, stride, size, convention="released", edge_eps=DEFAULT_EDGE_EPS):
    """Neighbour indices and weight along one axis for sampling a map of ``size`` cells.

    Args:
        pixel: float32 tensor of input-pixel coordinates (any shape).
        stride: the map's stride (Python number).
        size: int32 scalar tensor (or int), the map's extent along this axis.
        convention: ``"released"`` or ``"half_pixel"``.
        edge_eps: the local coordinate is clamped to ``[0, size - 1 - edge_eps]``.

    Returns:
        ``(lo, hi, frac)``: int32 indices of the two neighbours and the float32 weight of ``hi``
        (the value is ``(1 - frac) * map[lo] + frac * map[hi]``).
    """
    size = tf.cast(size, tf.int32)
    size_f = tf.cast(size, tf.float32)
    stride = float(stride)
    if convention == "released":
        local = pixel / stride
    else:
        local = (pixel + 0.5) / stride - 0.5
    local = tf.clip_by_value(local, 0.0, tf.maximum(size_f - 1.0 - edge_eps, 0.0))
    lo_f = tf.clip_by_value(tf.floor(local), 0.0, tf.maximum(size_f - 2.0, 0.0))
    frac = local - lo_f
    lo = tf.cast(lo_f, tf.int32)
    hi = tf.minimum(lo + 1, size - 1)
    return lo, hi, frac


def grid_centers(image_shape, grid_factor=4):
    """Input-pixel coordinates ``(ys, xs)`` of the dense-hypercolumn grid rows and columns.

    Args:
        image_shape: ``(H, W)`` (ints or an int tensor of 2 elements).
        grid_factor: the grid factor ``g``.

    Returns:
        Two float32 vectors: ``ys = g * arange(ceil(H / g))`` and ``xs = g * arange(ceil(W / g))``.
    """
    g = int(grid_factor)
    hw = tf.cast(tf.convert_to_tensor(image_shape), tf.int32)
    h = (hw[0] + g - 1) // g
    w = (hw[1] + g - 1) // g
    ys = tf.cast(tf.range(h) * g, tf.float32)
    xs = tf.cast(tf.range(w) * g, tf.float32)
    return ys, xs


def _sample_points(fmap, ys, xs, stride, convention, edge_eps):
    """Bilinear samples of ``fmap`` (B, H, W, C) at pixels ``ys``, ``xs`` (B, P) -> (B, P, C)."""
    shape = tf.shape(fmap)
    batch, height, width = shape[0], shape[1], shape[2]
    channels = fmap.shape[-1]
    ylo, yhi, fy = axis_sampling(ys, stride, height, convention, edge_eps)
    xlo, xhi, fx = axis_sampling(xs, stride, width, convention, edge_eps)
    base = (tf.range(batch) * (height * width))[:, None]
    index = tf.stack([ylo * width + xlo, ylo * width + xhi,
                      yhi * width + xlo, yhi * width + xhi], axis=-1) + base[..., None]
    weight = tf.stack([(1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx,
                       fy * (1.0 - fx), fy * fx], axis=-1)
    flat = tf.reshape(fmap, [-1, channels])
    corners = tf.gather(flat, index)  # (B, P, 4, C): one gather per map
    weight = tf.cast(weight, fmap.dtype)
    return tf.reduce_sum(corners * weight[..., None], axis=2)


def _resample_axis(fmap, coords, stride, axis, convention, edge_eps):
    """Separable bilinear resampling of ``fmap`` along ``axis`` (1 or 2) at pixels ``coords``."""
    size = tf.shape(fmap)[axis]
    lo, hi, frac = axis_sampling(coords, stride, size, convention, edge_eps)
    n = tf.shape(coords)[0]
    both = tf.gather(fmap, tf.concat([lo, hi], axis=0), axis=axis)
    if axis == 1:
        low, high = both[:, :n], both[:, n:]
        frac = frac[None, :, None, None]
    else:
        low, high = both[:, :, :n], both[:, :, n:]
        frac = frac[None, None, :, None]
    frac = tf.cast(frac, fmap.dtype)
    return low * (1.0 - frac) + high * frac


def _is_tensor_like(x):
    return tf.is_tensor(x) or isinstance(x, keras.KerasTensor)


class _HypercolumnBase(keras.layers.Layer):
    def __init__(self, strides, convention="released", edge_eps=DEFAULT_EDGE_EPS, **kwargs):
        super().__init__(**kwargs)
        self.strides = _check_strides(strides)
        self.convention = _check_convention(convention)
        self.edge_eps = _check_edge_eps(edge_eps)
        # Centres and image shapes must not be autocast to float16 under mixed precision.
        # Arrays are converted in call() instead (so numpy inputs still work).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_masking = False
        self.built = True  # no weights

    def __call__(self, feature_maps, *args, **kwargs):
        # Keras refuses lists mixing tensors and arrays: convert arrays up front.
        if isinstance(feature_maps, (list, tuple)):
            feature_maps = [m if _is_tensor_like(m) else tf.convert_to_tensor(m)
                            for m in feature_maps]
        return super().__call__(feature_maps, *args, **kwargs)

    def build(self, *args, **kwargs):
        self.built = True

    def _cast_maps(self, feature_maps):
        maps = _as_map_list(feature_maps, self.strides, type(self).__name__)
        dtype = self.compute_dtype
        return [tf.cast(m, dtype) if m.dtype != dtype else m for m in maps]

    def get_config(self):
        config = super().get_config()
        config.update(strides=list(self.strides), convention=self.convention,
                      edge_eps=self.edge_eps)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class SparseHypercolumn(_HypercolumnBase):
    """Bilinearly samples feature maps of different strides at sparse input-pixel centres.

    Called as ``layer([map_1, ..., map_n], centers)`` with ``map_i`` of shape
    ``(B, H_i, W_i, C_i)`` and stride ``strides[i]``, and ``centers`` ``(B, P, 2)`` holding
    ``(y, x)`` in input-pixel coordinates (int or float). Returns ``(B, P, C_1 + ... + C_n)``
    in the layer's compute dtype. Gradients flow to the maps, none to the centres.

    Args:
        strides: stride of each feature map (input pixels per cell), in call order.
        convention: ``"released"`` (``local = pixel / stride``, default) or ``"half_pixel"``
            (``local = (pixel + 0.5) / stride - 0.5``).
        edge_eps: local coordinates are clamped to ``[0, size - 1 - edge_eps]``; default 1e-4
            as in the released Caffe layer.
        **kwargs: standard ``keras.layers.Layer`` arguments.
    """

    def call(self, feature_maps, centers):
        maps = self._cast_maps(feature_maps)
        centers = tf.convert_to_tensor(centers)
        if centers.shape.rank is not None and (centers.shape.rank != 3 or
                                               centers.shape[-1] not in (None, 2)):
            raise ValueError("SparseHypercolumn: centers must have shape (batch, points, 2) "
                             f"holding (y, x); got shape {centers.shape}.")
        if not (centers.dtype.is_floating or centers.dtype.is_integer):
            raise ValueError(f"SparseHypercolumn: centers must be int or float; got {centers.dtype}.")
        centers = tf.stop_gradient(tf.cast(centers, tf.float32))
        for i, m in enumerate(maps):
            nb, cb = m.shape[0], centers.shape[0]
            if nb is not None and cb is not None and nb != cb:
                raise ValueError(f"SparseHypercolumn: feature map {i} has batch {nb} but centers "
                                 f"have batch {cb}.")
        ys, xs = centers[..., 0], centers[..., 1]
        tf.debugging.assert_equal(
                tf.shape(maps[0])[0], tf.shape(centers)[0],
                message="SparseHypercolumn: feature maps and centers differ in batch size")
        columns = [_sample_points(m, ys, xs, s, self.convention, self.edge_eps)
                   for m, s in zip(maps, self.strides)]
        return columns[0] if len(columns) == 1 else tf.concat(columns, axis=-1)



@keras.saving.register_keras_serializable(package="tfcolor")
class DenseHypercolumn(_HypercolumnBase):
    """Resamples feature maps of different strides to one grid and concatenates them.

    Called as ``layer([map_1, ..., map_n], image_or_shape, grid_factor=None)``, where the second
    argument is the input image ``(B, H, W, ch)`` (only its shape is used) or its size ``(H, W)``
    (ints or an int tensor). Returns ``(B, ceil(H / g), ceil(W / g), C_1 + ... + C_n)``; grid
    cell ``(i, j)`` equals ``SparseHypercolumn`` (same strides, convention, edge_eps) at centre
    ``(i * g, j * g)``.

    Args:
        strides: stride of each feature map, in call order.
        grid_factor: default grid factor ``g`` (input pixels per grid cell); 4 as in the paper.
        convention: ``"released"`` (default) or ``"half_pixel"``, see the module docstring.
        edge_eps: clamp margin, as in :class:`SparseHypercolumn`.
        **kwargs: standard ``keras.layers.Layer`` arguments.
    """

    def __init__(self, strides, grid_factor=4, convention="released",
                 edge_eps=DEFAULT_EDGE_EPS, **kwargs):
        super().__init__(strides, convention=convention, edge_eps=edge_eps, **kwargs)
        self.grid_factor = _check_grid_factor(grid_factor)

    def _image_hw(self, image_or_shape):
        if isinstance(image_or_shape, (list, tuple)) and len(image_or_shape) == 2 and all(
                isinstance(v, int) for v in image_or_shape):
            return tf.constant(image_or_shape, tf.int32)
        t = tf.convert_to_tensor(image_or_shape)
        if t.shape.rank == 4:
            return tf.shape(t)[1:3]
        if t.shape.rank == 1 and t.shape[0] in (2, None):
            if not t.dtype.is_integer:
                raise ValueError(f"DenseHypercolumn: image_shape must be integers; got {t.dtype}.")
            return tf.cast(t, tf.int32)
        raise ValueError("DenseHypercolumn: the second argument must be the input image "
                         f"(B, H, W, C) or its size (H, W); got shape {t.shape}.")

    def call(self, feature_maps, image_or_shape, grid_factor=None):
        maps = self._cast_maps(feature_maps)
        ys, xs = self.grid(image_or_shape, grid_factor)
        columns = [self.resample(m, s, ys, xs) for m, s in zip(maps, self.strides)]
        return columns[0] if len(columns) == 1 else tf.concat(columns, axis=-1)

    def grid(self, image_or_shape, grid_factor=None):
        """Pixel coordinates ``(ys, xs)`` of the grid rows/columns (see :func:`grid_centers`)."""
        g = self.grid_factor if grid_factor is None else _check_grid_factor(grid_factor)
        return grid_centers(self._image_hw(image_or_shape), g)

    def resample(self, fmap, stride, ys, xs):
        """One map of stride ``stride`` bilinearly resampled at the grid ``ys`` x ``xs``.

        Linear in the map, so it commutes with a linear map on the channels: the colorizer's
        factored dense path projects coarse maps to the head's hidden width first.
        """
        r = _resample_axis(fmap, ys, stride, 1, self.convention, self.edge_eps)
        return _resample_axis(r, xs, stride, 2, self.convention, self.edge_eps)


    def get_config(self):
        config = super().get_config()
        config.update(grid_factor=self.grid_factor)
        return config


def _check_grid_factor(grid_factor):
    if isinstance(grid_factor, bool) or not isinstance(grid_factor, int) or grid_factor < 1:
        raise ValueError(f"grid_factor must be a positive int; got {grid_factor!r}.")
    return grid_factor


@keras.saving.register_keras_serializable(package="tfcolor")
class HistogramHead(keras.layers.Layer):
    """Hypercolumn -> Dense ``hidden`` (``h_fc1``) -> ReLU -> Dropout -> Dense(sum(output_sizes)).

    The Dense layers act on the last axis, so the same weights map a sparse hypercolumn
    ``(B, P, C)`` and a dense one ``(B, h, w, C)`` (where they are 1x1 convolutions).

    Args:
        output_sizes: sizes of the output groups, e.g. ``(32, 32)`` (hue, chroma or a, b),
            ``(256,)`` (joint a/b) or ``(2,)`` (Lab regression; use ``activation=None``).
        hidden: width of ``h_fc1`` (1024 in the paper).
        dropout: dropout rate after ``h_fc1`` (0.5 in the released code).
        activation: ``None`` (default: logits, for losses with ``from_logits=True``) or
            ``"softmax"`` (a separate softmax per group, computed in float32).
        hidden_initializer: initializer of the ``h_fc1`` kernel.
        output_initializer: initializer of the output kernel.
        **kwargs: standard ``keras.layers.Layer`` arguments.
    """

    def __init__(self, output_sizes=(32, 32), hidden=1024, dropout=0.5, activation=None,
                 hidden_initializer="glorot_uniform", output_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(output_sizes, int):
            output_sizes = (output_sizes,)
        try:
            sizes = tuple(int(s) for s in output_sizes)
        except (TypeError, ValueError):
            raise ValueError("output_sizes must be a tuple of positive ints; got "
                             f"{output_sizes!r}.") from None
        if not sizes or any(s < 1 for s in sizes) or any(
                float(a) != b for a, b in zip(output_sizes, sizes)):
            raise ValueError(f"output_sizes must be a non-empty tuple of positive ints; got "
                             f"{output_sizes!r}.")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive int; got {hidden!r}.")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a rate in [0, 1); got {dropout!r}.")
        if activation not in (None, "softmax"):
            raise ValueError(f"activation must be None (logits) or 'softmax'; got {activation!r}.")
        self.output_sizes = sizes
        self.hidden = hidden
        self.dropout = float(dropout)
        self.activation = activation
        self.hidden_initializer = keras.initializers.get(hidden_initializer)
        self.output_initializer = keras.initializers.get(output_initializer)
        self.h_fc1 = keras.layers.Dense(hidden, kernel_initializer=self.hidden_initializer,
                                        name="h_fc1", dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="h_fc1_dropout",
                                                  dtype=self.dtype_policy)
        self.output_dense = keras.layers.Dense(sum(sizes),
                                               kernel_initializer=self.output_initializer,
                                               name="output", dtype=self.dtype_policy)

    @property
    def output_dim(self):
        """Total width of the output (sum of ``output_sizes``)."""
        return sum(self.output_sizes)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"HistogramHead needs a static channel count; got {input_shape}.")
        self.h_fc1.build(input_shape)
        self.dropout_layer.build(tuple(input_shape[:-1]) + (self.hidden,))
        self.output_dense.build(tuple(input_shape[:-1]) + (self.hidden,))
        self.built = True

    def call(self, hypercolumn, training=None):
        return self.from_hidden(self.h_fc1(hypercolumn), training=training)

    def from_hidden(self, pre_activation, training=None):
        """The head after ``h_fc1``'s affine map: ReLU -> Dropout -> output (-> softmax).

        ``head(x) == head.from_hidden(h_fc1(x))``; used by the colorizer's factored dense path,
        which computes ``h_fc1`` tap by tap.
        """
        h = tf.nn.relu(pre_activation)
        h = self.dropout_layer(h, training=training)
        y = self.output_dense(h)
        if self.activation == "softmax":
            dtype = y.dtype
            groups = [tf.cast(tf.nn.softmax(tf.cast(t, tf.float32), axis=-1), dtype)
                      for t in self.split(y)]
            y = groups[0] if len(groups) == 1 else tf.concat(groups, axis=-1)
        return y

    def start_at_prior(self, prior, regression=False, floor=PRIOR_BIAS_FLOOR):
        """Sets the output bias so that a head whose other weights are zero predicts ``prior``.

        Histogram groups: the bias of each group is ``log p`` of its probabilities (each group
        renormalized after flooring empty bins at ``floor``, so the logits stay finite), whence
        ``softmax`` of the bias is the prior. Regression (``regression=True``): the bias is the
        prior's mean values themselves. The output kernel is kept, so at initialization the
        prediction is the prior plus the (small) random part of the kernel.

        Args:
            prior: the head's layout of probabilities (groups concatenated, ``(sum(
                output_sizes),)``), e.g. ``tfcolor.prior.MarginalPrior.probabilities()``.
            regression: the outputs are values, not histograms.
            floor: smallest probability of a bin before the logarithm.
        """
        values = np.asarray(prior, np.float64).reshape(-1)
        if values.shape != (self.output_dim,) or not np.all(np.isfinite(values)):
            raise ValueError(f"start_at_prior: the prior must be {self.output_dim} finite numbers "
                             f"(output_sizes {self.output_sizes}); got shape {values.shape}.")
        if not self.built:
            raise ValueError("start_at_prior: build the head first")
        if not regression:
            if np.any(values < 0):
                raise ValueError("start_at_prior: histogram probabilities must be >= 0")
            parts = []
            for group in np.split(values, np.cumsum(self.output_sizes)[:-1]):
                group = np.maximum(group, floor)
                parts.append(np.log(group / group.sum()))
            values = np.concatenate(parts)
        self.output_dense.bias.assign(values.astype(self.output_dense.bias.dtype))

    def split(self, t):
        """Splits a head output (or anything with the same last axis) into its groups."""
        if t.shape[-1] is not None and t.shape[-1] != self.output_dim:
            raise ValueError(f"HistogramHead.split: last axis must be {self.output_dim} "
                             f"(output_sizes {self.output_sizes}); got shape {t.shape}.")
        if len(self.output_sizes) == 1:
            return [t]
        return tf.split(t, list(self.output_sizes), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
                output_sizes=list(self.output_sizes), hidden=self.hidden, dropout=self.dropout,
                activation=self.activation,
                hidden_initializer=keras.initializers.serialize(self.hidden_initializer),
                output_initializer=keras.initializers.serialize(self.output_initializer))
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalization (AlexNet) on NHWC inputs.

    ``y_c = x_c / (bias + a * sum_{|d - c| <= depth_radius} x_d^2) ** beta``, where
    ``a = alpha / (2 * depth_radius + 1)`` with ``alpha_convention="caffe"`` (default; Caffe's
    ``LRN`` layer and ``bvlc_alexnet``: ``local_size=5, alpha=1e-4, beta=0.75, k=1`` divides alpha by
    the window size) and ``a = alpha`` with ``alpha_convention="tf"``
    (``tf.nn.local_response_normalization`` and the AlexNet paper's formula). The defaults give
    ``tf.nn.local_response_normalization(x, 2, 1.0, 2e-5, 0.75)``, the call of the authors'
    TensorFlow AlexNet (``lrn(2, 2e-05, 0.75)``). Computed in float32 (LRN of float16 squares
    overflows easily), returned in the compute dtype.

    Args:
        depth_radius: half-width of the channel window (window size ``2 * r + 1``).
        bias: the additive constant ``k``.
        alpha: the scale, in the convention given by ``alpha_convention``.
        beta: the exponent.
        alpha_convention: ``"caffe"`` or ``"tf"``.
        **kwargs: standard ``keras.layers.Layer`` arguments.
    """

    def __init__(self, depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75,
                 alpha_convention="caffe", **kwargs):
        super().__init__(**kwargs)
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, int) or depth_radius < 0:
            raise ValueError(f"depth_radius must be a non-negative int; got {depth_radius!r}.")
        if alpha_convention not in ("caffe", "tf"):
            raise ValueError(f"alpha_convention must be 'caffe' or 'tf'; got {alpha_convention!r}.")
        for name, value in (("bias", bias), ("alpha", alpha), ("beta", beta)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number; got {value!r}.")
        if bias <= 0 and alpha <= 0:
            raise ValueError(f"bias must be positive (got {bias!r}) so the denominator is > 0.")
        self.depth_radius = depth_radius
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_convention = alpha_convention

    @property
    def tf_alpha(self):
        """The ``alpha`` argument of ``tf.nn.local_response_normalization``."""
        if self.alpha_convention == "caffe":
            return self.alpha / (2 * self.depth_radius + 1)
        return self.alpha

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"LocalResponseNormalization needs NHWC input; got {input_shape}.")
        self.built = True

    def call(self, x):
        y = tf.nn.local_response_normalization(
                tf.cast(x, tf.float32), depth_radius=self.depth_radius, bias=self.bias,
                alpha=self.tf_alpha, beta=self.beta)
        return tf.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha,
                      beta=self.beta, alpha_convention=self.alpha_convention)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class MeanShift(keras.layers.Layer):
    """Input centring: ``(x - mean) * scale`` (the trunks' ``data`` layer; mean 0.4488).

    Args:
        mean: subtracted from the input (the mean intensity of the training images).
        scale: multiplies the centred input.
        **kwargs: standard ``keras.layers.Layer`` arguments.
    """

    def __init__(self, mean=0.4488, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("mean", mean), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                    value):
                raise ValueError(f"{name} must be a finite number; got {value!r}.")
        self.mean = float(mean)
        self.scale = float(scale)

    def build(self, input_shape):
        self.built = True

    def call(self, x):
        x = tf.cast(x, self.compute_dtype)
        return (x - tf.cast(self.mean, x.dtype)) * tf.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mean=self.mean, scale=self.scale)
        return config
