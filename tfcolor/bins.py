"""Histogram bins: bin specifications and R x R window histograms at centres.

Bin specifications
------------------
* :class:`UniformBins` -- ``K`` equal bins on ``[low, high]`` (hue and chroma: ``K = 32`` on
  ``[0, 1]``). Index ``min(floor((v - low) / (high - low) * K), K - 1)``, clipped to ``[0, K-1]``,
  which for ``low=0, high=1`` is exactly the paper's ``min(int(v * 32), 31)``. Centres
  ``low + (k + 0.5) / K * (high - low)``. ``circular=True`` marks hue (the median is then
  undefined and the expectation is the circular one).
* :class:`GaussianQuantileBins` -- Lab ``a`` or ``b`` marginal: ``K = 32`` bins of equal mass under
  ``N(mean=0, stddev=25)``. Edges ``e_k = mean + stddev * Phi^-1(k / K)`` for ``k = 0..K``
  (``e_0 = -inf``, ``e_K = +inf``); bin ``k`` is ``[e_k, e_(k+1))``. This is what the released
  Caffe code computes (Gaussian CDF of the value, then a uniform ``K``-bin histogram of the CDF).
  Centres ``mean + stddev * Phi^-1((k + 0.5) / K)``: the median of the Gaussian restricted to the
  bin (the midpoint in CDF space), which is finite also for the two unbounded end bins.
  Encoding compares values against the stored float32 edges, so ``encode`` and ``edges`` agree
  exactly.
* :class:`JointBins` -- joint ``a/b`` grid of two :class:`GaussianQuantileBins` (16 x 16 by
  default), index ``k_a * K_b + k_b`` (a-major, as in the released code). Centres ``(K_a*K_b, 2)``.

Every spec has ``num_bins``, ``centers`` (NumPy float64), ``encode(values) -> int32``,
``value_at_position`` (marginals), ``window_histogram(values, centers)`` and ``get_config()`` /
``from_config()`` (plain dicts); :func:`serialize`, :func:`deserialize` and :func:`get` turn a spec
into ``{"class_name": ..., "config": ...}`` and back, or build the presets ``"hue"``, ``"chroma"``,
``"lab_a"``, ``"lab_b"``, ``"lab_ab"``.

Window histograms
-----------------
The ground truth at a pixel is the empirical distribution of bin indices over the ``R x R`` window
``[y - R//2, y - R//2 + R) x [x - R//2, x - R//2 + R)`` (centred for odd ``R``; ``R = 1`` is the
one-hot of the centre pixel). Pixels outside the image are not counted; a window with no pixel in
the image gives the uniform histogram (as the released code does). Float centres are rounded to
the nearest pixel (``floor(c + 0.5)``).

Two TF implementations, selected with ``method``:

* ``"gather"`` (default): gather the ``P * R^2`` pixels of the windows and count their bins with
  an int32 segment sum: ``O(B * P * R^2)`` work, independent of the image size and of K.
  Callers (``tfcolor.targets``) gather the RGB windows first and convert only those pixels to
  HCL/Lab.
* ``"summed_area"``: one-hot the whole bin map, integral image, four corner look-ups per window
  (what the released Caffe layer does): ``O(B * H * W * K)`` work and memory.

For the training setting (P = 128 centres, R = 7, 352 x 352 crops) the window pixels are
128 * 49 = 6,272 per image against 123,904 pixels for the summed-area table, which moreover is
K values deep (one-hot: 32 x 124k int32 = 16 MB per image and group, 127 MB for the 256-bin joint
histogram) and needs the colour conversion of the whole crop. ``"gather"`` is therefore the
default; ``benchmarks/bench_targets.py`` measures both (batch 8: a few ms against ~0.5-4 s on a
2-core CPU). ``"summed_area"`` only becomes competitive when ``P * R^2`` approaches ``H * W``
(dense targets).

Both work with batch and image sizes unknown at trace time and under XLA (``jit_compile=True``).

Decoding predicted histograms (point estimates, the circular hue expectation, chromatic fading)
is :mod:`tfcolor.estimates`.
"""
import math
import statistics

import keras
import numpy as np
import tensorflow as tf

__all__ = [
        "BinSpec", "UniformBins", "GaussianQuantileBins", "JointBins", "serialize", "deserialize",
        "get", "window_offsets", "gather_windows", "histogram_from_indices", "window_histogram",
        "HISTOGRAM_METHODS",
]

HISTOGRAM_METHODS = ("gather", "summed_area")


def _check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _float32(x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(f"expected a floating-point tensor, got dtype {x.dtype.name}")
    return tf.cast(x, tf.float32)


def _check_last_dim(name, x, expected):
    last = x.shape[-1] if x.shape.rank else None
    if x.shape.rank == 0:
        raise ValueError(f"{name} must have a last axis of size {expected}, got a scalar")
    if last is not None and last != expected:
        raise ValueError(f"{name} must have a last axis of size {expected}, got shape {x.shape}")


class BinSpec:
    """Base class of bin specifications. Subclasses set ``num_bins`` and ``centers``."""

    circular = False
    #: Number of value components per bin: 1 for marginals, 2 for joint a/b bins.
    value_dims = 1

    @property
    def num_bins(self):
        raise NotImplementedError

    @property
    def centers(self):
        """Bin centres as a float64 NumPy array, (K,) or (K, value_dims)."""
        raise NotImplementedError

    def centers_tensor(self, dtype=tf.float32):
        """Bin centres as a constant tensor."""
        return tf.constant(self.centers, dtype=dtype)

    def encode(self, values):
        """Bin indices (int32) of ``values`` (float, any shape; joint specs: last axis 2)."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ window histograms
    def window_histogram(self, values, centers, window=7, method="gather"):
        """Normalised histograms of ``values`` over R x R windows around ``centers``.

        Args:
            values: (B, H, W) float map (joint specs: (B, H, W, 2)).
            centers: (B, P, 2) int32 or float (y, x) pixel coordinates.
            window: R, the window side.
            method: ``"gather"`` or ``"summed_area"`` (see the module docstring).

        Returns:
            (B, P, K) float32.
        """
        bin_map = self.encode(values)
        return window_histogram(bin_map, centers, self.num_bins, window=window, method=method)

    # ------------------------------------------------------------- decoding
    def value_at_position(self, position):
        """Value at fractional bin coordinate ``position`` in [0, K] (bin k spans [k, k + 1]),
        float32 tensor: the inverse of the binning, used by the interpolated median
        (:func:`tfcolor.estimates.median`). Marginal specs only."""
        raise NotImplementedError


class _MarginalBins(BinSpec):
    """Bins of one value whose subclass stores ``_num_bins`` and the float64 ``_centers``."""

    @property
    def num_bins(self):
        return self._num_bins

    @property
    def centers(self):
        return self._centers.copy()


@keras.saving.register_keras_serializable(package="tfcolor")
class UniformBins(_MarginalBins):
    """``num_bins`` equal bins on ``[low, high]`` (hue, chroma).

    Args:
        num_bins: K (32 in the papers).
        low, high: value range; values outside are put in the end bins.
        circular: True for hue (wrap-around; enables the circular expectation, forbids median).
    """

    def __init__(self, num_bins=32, low=0.0, high=1.0, circular=False):
        self._num_bins = _check_positive_int("num_bins", num_bins)
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"UniformBins needs finite low < high, got low={low}, high={high}")
        self.low, self.high, self.circular = low, high, bool(circular)
        k = np.arange(self._num_bins, dtype=np.float64)
        self._centers = low + (k + 0.5) / self._num_bins * (high - low)

    @property
    def edges(self):
        """The K + 1 bin edges (float64)."""
        return self.low + np.arange(self._num_bins + 1) / self._num_bins * (self.high - self.low)

    def encode(self, values):
        values = _float32(values)
        if self.low == 0.0 and self.high == 1.0:
            scaled = values * float(self._num_bins)  # exact: the paper's int(v * K)
        else:
            scaled = (values - self.low) * (self._num_bins / (self.high - self.low))
        scaled = tf.where(tf.math.is_nan(scaled), tf.zeros_like(scaled), scaled)
        scaled = tf.clip_by_value(scaled, 0.0, float(self._num_bins - 1))
        return tf.cast(tf.floor(scaled), tf.int32)

    def value_at_position(self, position):
        return self.low + position * ((self.high - self.low) / self._num_bins)

    def angles(self):
        """theta_k = 2 pi (c_k - low) / (high - low): the bin centres on the unit circle."""
        return 2.0 * np.pi * (self._centers - self.low) / (self.high - self.low)

    def get_config(self):
        return {"num_bins": self._num_bins, "low": self.low, "high": self.high,
                "circular": self.circular}


@keras.saving.register_keras_serializable(package="tfcolor")
class GaussianQuantileBins(_MarginalBins):
    """``num_bins`` bins of equal probability under N(mean, stddev) (Lab a or b marginal).

    Edges ``mean + stddev * Phi^-1(k / K)``, centres ``mean + stddev * Phi^-1((k + 0.5) / K)``.
    """

    def __init__(self, num_bins=32, mean=0.0, stddev=25.0):
        self._num_bins = _check_positive_int("num_bins", num_bins)
        mean, stddev = float(mean), float(stddev)
        if not (math.isfinite(mean) and math.isfinite(stddev) and stddev > 0):
            raise ValueError(f"GaussianQuantileBins needs a finite mean and stddev > 0, got "
                             f"mean={mean}, stddev={stddev}")
        self.mean, self.stddev = mean, stddev
        dist = statistics.NormalDist(mean, stddev)
        k = self._num_bins
        self._inner_edges = np.array([dist.inv_cdf(i / k) for i in range(1, k)], np.float64)
        self._centers = np.array([dist.inv_cdf((i + 0.5) / k) for i in range(k)], np.float64)

    @property
    def edges(self):
        """The K + 1 bin edges, starting with -inf and ending with +inf (float64)."""
        return np.concatenate([[-np.inf], self._inner_edges, [np.inf]])

    def encode(self, values):
        values = _float32(values)
        if self._num_bins == 1:
            return tf.zeros_like(values, dtype=tf.int32)
        edges = tf.constant(self._inner_edges, tf.float32)
        return tf.reduce_sum(tf.cast(values[..., None] >= edges, tf.int32), axis=-1)

    def value_at_position(self, position):
        # Linear in the Gaussian-CDF coordinate u = position / K, where the bins are uniform;
        # u stays inside (0, 1) (a median never sits on the outer edge of an end bin).
        u = tf.clip_by_value(position / self._num_bins, 1e-7, 1.0 - 1e-7)
        return self.mean + self.stddev * tf.math.ndtri(u)

    def get_config(self):
        return {"num_bins": self._num_bins, "mean": self.mean, "stddev": self.stddev}


@keras.saving.register_keras_serializable(package="tfcolor")
class JointBins(BinSpec):
    """Joint a/b grid: index ``k_a * K_b + k_b`` (a-major); values have a last axis of 2 (a, b).

    Args:
        a, b: the marginal specs (``BinSpec``, config dict or preset name); default
            ``GaussianQuantileBins(16)`` each, the papers' 16 x 16 grid.
    """

    value_dims = 2

    def __init__(self, a=None, b=None):
        self.a = get(a) if a is not None else GaussianQuantileBins(16)
        self.b = get(b) if b is not None else GaussianQuantileBins(16)
        for name, spec in (("a", self.a), ("b", self.b)):
            if spec.value_dims != 1 or spec.circular:
                raise ValueError(f"JointBins.{name} must be a non-circular marginal spec, got "
                                 f"{spec!r}")
        ca, cb = np.meshgrid(self.a.centers, self.b.centers, indexing="ij")
        self._centers = np.stack([ca.ravel(), cb.ravel()], axis=-1)

    @property
    def num_bins(self):
        return self.a.num_bins * self.b.num_bins

    @property
    def centers(self):
        return self._centers.copy()

    def encode(self, values):
        values = _float32(values)
        _check_last_dim("JointBins values", values, 2)
        return self.a.encode(values[..., 0]) * self.b.num_bins + self.b.encode(values[..., 1])

    def get_config(self):
        return {"a": serialize(self.a), "b": serialize(self.b)}


_CLASSES = {c.__name__: c for c in (UniformBins, GaussianQuantileBins, JointBins)}
_PRESETS = {
        "hue": lambda: UniformBins(32, circular=True),
        "chroma": lambda: UniformBins(32),
        "lab_a": lambda: GaussianQuantileBins(32),
        "lab_b": lambda: GaussianQuantileBins(32),
        "lab_ab": lambda: JointBins(),
}


def serialize(spec):
    """``{"class_name": ..., "config": ...}`` of a bin spec (plain, JSON-able)."""
    if not isinstance(spec, BinSpec):
        raise TypeError(f"expected a BinSpec, got {type(spec).__name__}")
    return {"class_name": type(spec).__name__, "config": spec.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected {{'class_name': ..., 'config': ...}}, got {config!r}")
    name = config["class_name"]
    if name not in _CLASSES:
        raise ValueError(f"unknown bin spec class {name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[name].from_config(dict(config.get("config", {})))


def get(identifier):
    """A bin spec from a spec, a serialized dict or a preset name (``"hue"``, ``"chroma"``,
    ``"lab_a"``, ``"lab_b"``, ``"lab_ab"``)."""
    if isinstance(identifier, BinSpec):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in _PRESETS:
            raise ValueError(f"unknown bin spec preset {identifier!r}; known: {sorted(_PRESETS)}")
        return _PRESETS[identifier]()
    raise TypeError(f"cannot interpret {identifier!r} as a bin spec")


# ---------------------------------------------------------------------- window histograms
def window_offsets(window):
    """(R*R, 2) int32 (dy, dx) offsets of the window, row-major, from -(R//2) to R - 1 - R//2."""
    window = _check_positive_int("window", window)
    r = np.arange(window) - window // 2
    dy, dx = np.meshgrid(r, r, indexing="ij")
    return np.stack([dy.ravel(), dx.ravel()], axis=-1).astype(np.int32)


def _check_centers(centers):
    centers = tf.convert_to_tensor(centers)
    if centers.shape.rank is not None and centers.shape.rank != 3:
        raise ValueError(f"centers must be (batch, points, 2), got shape {centers.shape}")
    _check_last_dim("centers", centers, 2)
    if centers.dtype.is_floating:
        centers = tf.cast(tf.floor(tf.cast(centers, tf.float32) + 0.5), tf.int32)
    elif centers.dtype.is_integer:
        centers = tf.cast(centers, tf.int32)
    else:
        raise TypeError(f"centers must be integer or float, got dtype {centers.dtype.name}")
    return centers


def gather_windows(image, centers, window=7):
    """Pixels of the R x R windows around ``centers``.

    Args:
        image: (B, H, W, C) tensor of any dtype.
        centers: (B, P, 2) int or float (y, x).
        window: R.

    Returns:
        ``(values, valid)``: values (B, P, R*R, C) (pixels outside the image are replaced by the
        nearest border pixel), valid (B, P, R*R) bool, True for pixels inside the image. The
        window centre is at index ``(R // 2) * R + R // 2``.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank is not None and image.shape.rank != 4:
        raise ValueError(f"image must be (batch, height, width, channels), got {image.shape}")
    centers = _check_centers(centers)
    offsets = tf.constant(window_offsets(window))
    num_offsets = window * window
    image_shape = tf.shape(image)
    height, width = image_shape[1], image_shape[2]
    coords = centers[:, :, None, :] + offsets  # (B, P, R*R, 2)
    y, x = coords[..., 0], coords[..., 1]
    valid = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    y = tf.clip_by_value(y, 0, height - 1)
    x = tf.clip_by_value(x, 0, width - 1)
    batch, points = tf.shape(centers)[0], tf.shape(centers)[1]
    channels = image.shape[-1] if image.shape[-1] is not None else image_shape[3]
    flat_image = tf.reshape(image, [image_shape[0], -1, channels])
    flat_index = tf.reshape(y * width + x, [batch, -1])
    values = tf.gather(flat_image, flat_index, axis=1, batch_dims=1)
    values = tf.reshape(values, [batch, points, num_offsets, channels])
    return values, valid


def histogram_from_indices(indices, num_bins, valid=None):
    """Normalised histogram of bin ``indices`` (..., N) over the last axis -> (..., K) float32.

    Entries with ``valid`` False or an index outside ``[0, K)`` are not counted; histograms with
    no counted entry are uniform.
    """
    num_bins = _check_positive_int("num_bins", num_bins)
    indices = tf.cast(tf.convert_to_tensor(indices), tf.int32)
    if indices.shape.rank == 0:
        raise ValueError("indices must have at least one axis (the entries to count)")
    # A segment sum of int32 ones: O(N) instead of the O(N K) of one-hot + sum (6x faster for
    # K = 256), exact and order-independent (so deterministic on GPUs too).
    shape = tf.shape(indices)
    lead_shape = shape[:-1]
    num_hists = tf.reduce_prod(lead_shape)
    in_range = (indices >= 0) & (indices < num_bins)  # out-of-range indices are not counted
    if valid is not None:
        in_range = in_range & tf.cast(valid, tf.bool)
    weights = tf.reshape(tf.cast(in_range, tf.int32), [num_hists, -1])
    indices = tf.clip_by_value(indices, 0, num_bins - 1)
    ids = tf.reshape(indices, [num_hists, -1]) + tf.range(num_hists)[:, None] * num_bins
    counts = tf.math.unsorted_segment_sum(tf.reshape(weights, [-1]), tf.reshape(ids, [-1]),
                                          num_hists * num_bins)
    counts = tf.cast(tf.reshape(counts, tf.concat([lead_shape, [num_bins]], 0)), tf.float32)
    total = tf.reduce_sum(counts, axis=-1, keepdims=True)
    uniform = tf.fill(tf.shape(counts), 1.0 / num_bins)
    return tf.where(total > 0, counts / tf.maximum(total, 1.0), uniform)


def window_histogram(bin_map, centers, num_bins, window=7, method="gather"):
    """Normalised R x R window histograms of a bin-index map at ``centers``.

    Args:
        bin_map: (B, H, W) int bin indices in ``[0, num_bins)``.
        centers: (B, P, 2) int or float (y, x).
        num_bins: K.
        window: R >= 1 (R = 1 is the one-hot of the centre pixel).
        method: ``"gather"`` (default) or ``"summed_area"``; same result.

    Returns:
        (B, P, K) float32; pixels outside the image are not counted, empty windows are uniform.
    """
    _check_choice("method", method, HISTOGRAM_METHODS)
    window = _check_positive_int("window", window)
    num_bins = _check_positive_int("num_bins", num_bins)
    bin_map = tf.convert_to_tensor(bin_map)
    if not bin_map.dtype.is_integer:
        raise TypeError(f"bin_map must hold integer bin indices, got dtype {bin_map.dtype.name}")
    if bin_map.shape.rank is not None and bin_map.shape.rank != 3:
        raise ValueError(f"bin_map must be (batch, height, width), got shape {bin_map.shape}")
    bin_map = tf.cast(bin_map, tf.int32)
    if method == "gather":
        indices, valid = gather_windows(bin_map[..., None], centers, window)
        return histogram_from_indices(indices[..., 0], num_bins, valid)
    return _summed_area_histogram(bin_map, _check_centers(centers), num_bins, window)


def _summed_area_histogram(bin_map, centers, num_bins, window):
    shape = tf.shape(bin_map)
    height, width = shape[1], shape[2]
    one_hot = tf.one_hot(bin_map, num_bins, dtype=tf.int32)  # exact counts in int32
    table = tf.math.cumsum(tf.math.cumsum(one_hot, axis=1), axis=2)
    table = tf.pad(table, [[0, 0], [1, 0], [1, 0], [0, 0]])  # table[y, x] = sum over [0,y)x[0,x)
    half = window // 2
    y0 = tf.clip_by_value(centers[..., 0] - half, 0, height)
    y1 = tf.clip_by_value(centers[..., 0] - half + window, 0, height)
    x0 = tf.clip_by_value(centers[..., 1] - half, 0, width)
    x1 = tf.clip_by_value(centers[..., 1] - half + window, 0, width)

    def corner(y, x):
        return tf.gather_nd(table, tf.stack([y, x], axis=-1), batch_dims=1)

    counts = corner(y1, x1) - corner(y0, x1) - corner(y1, x0) + corner(y0, x0)
    counts = tf.cast(counts, tf.float32)
    total = tf.reduce_sum(counts, axis=-1, keepdims=True)
    uniform = tf.fill(tf.shape(counts), 1.0 / num_bins)
    return tf.where(total > 0, counts / tf.maximum(total, 1.0), uniform)
