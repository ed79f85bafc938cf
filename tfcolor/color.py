"""Colour spaces of the colorization method, as TensorFlow ops.

Every function here is a plain composition of TensorFlow ops: it works eagerly, inside
``tf.function`` (also with ``jit_compile=True``), inside ``tf.data.Dataset.map`` and inside Keras
layers (:class:`ColorConversion` wraps them for functional models). Inputs have any leading batch
shape and the channels in the last axis. ``float16``, ``bfloat16`` and ``float32`` inputs are
computed in ``float32`` and returned in the input dtype; ``float64`` inputs are computed and
returned in ``float64``. Integer inputs are rejected (convert with
``tf.image.convert_image_dtype(image, tf.float32)`` first). All functions are differentiable with
finite gradients everywhere on the sRGB cube, including black, white, greys and the primaries
(the usual ``pow``-at-zero, ``0 / 0`` and hue-division hazards are guarded with the double
``where`` pattern).

Spaces
------
* **Grey** (:func:`rgb_to_gray`): ``(R + G + B) / 3``, the network input of both papers. (The
  released Caffe prototxt multiplies the sum by ``0.33333``; the 1e-5 relative difference is not
  exposed.)
* **CIE Lab** (:func:`rgb_to_lab`, :func:`lab_to_rgb`): sRGB primaries, D65 white
  ``(0.95047, 1.0, 1.08883)``, sRGB linearisation (threshold 0.04045, exponent 2.4) and
  ``f(t) = t^(1/3)`` above 0.008856, ``7.787 t + 16/116`` below, i.e. exactly the constants of
  ``skimage.color.rgb2lab`` / ``lab2rgb`` (and of the authors' Caffe ``BgrToLab`` layer), which
  these functions match to ~1e-4 Lab units in float32.
* **Hue / chroma / lightness** (:func:`rgb_to_hcl`, :func:`hcl_to_rgb`), channel order
  ``(H, C, L)``: ``C = max(R, G, B) - min(R, G, B)`` (= S * V of HSV) and ``H`` = the HSV hue in
  ``[0, 1)`` (exactly 0 where ``C == 0``). The third channel is a lightness, and there are two:

  - ``lightness="bicone"`` (default): ``L = (max + min) / 2``, the lightness of the HSL bicone.
    This is the lightness for which the paper's inverse, ``V = L + C/2, S = C/V``, then
    HSV -> RGB, is exact (``V = max`` and ``S = C / max``), so
    ``hcl_to_rgb(rgb_to_hcl(x)) == x`` up to rounding. The feasible set is the bicone
    ``C <= 2 min(L, 1 - L)``.
  - ``lightness="mean"``: ``L = (R + G + B) / 3``, the grey the network sees. A colorizer that
    predicts ``H`` and ``C`` and recombines them with its *input* lightness must call
    ``hcl_to_rgb(tf.concat([h, c, gray], -1), lightness="mean")``: the mean lightness is then
    turned into the bicone lightness the inverse needs, ``L_bicone = L_mean + C (1/2 - mean(p))``
    where ``p`` is the fully saturated, full-value RGB of hue ``H``, and the result has
    ``mean(RGB) == gray`` exactly. This is what the released code reaches by a second step
    (HSV -> RGB with the grey in place of ``L``, then ``match_lightness``: subtract the mean of
    the result and add the grey); without clipping the two are identical.

  Infeasible predictions: a predicted chroma can be too large for the given lightness (the
  result would leave ``[0, 1]``). With ``clip="chroma"`` (default) the chroma is reduced to the
  largest feasible value for that hue and lightness, so hue and lightness are kept exactly and the
  output lies in ``[0, 1]``; ``clip="rgb"`` clips the RGB channels instead (hue and lightness
  shift); ``clip=None`` returns the unclipped, possibly out-of-range values.

  Implementation note: HSV -> RGB with ``V = L + C/2`` and ``S = C / V`` is
  ``V (1 - S) + V S p(H) = L + C (p(H) - 1/2)``; this closed form is evaluated directly (no
  division, so no ``0/0`` at black).

  ``variant="released"`` (:func:`hcl_to_rgb`) reproduces the reconstruction of the authors'
  released code, ``autocolorize/extraction.py::calc_rgb_from_hue_chroma`` followed by
  ``autocolorize/color.py::match_lightness`` as called by ``autocolorize.colorize``
  (github.com/gustavla/autocolorize; the TensorFlow code in gustavla/self-supervision imports the
  same function). What actually differs from the paper:

  1. the lightness it is given is the grey input (mean of RGB), not the bicone lightness;
  2. ``S = 2C / (2L + C)`` (algebraically ``C / V``; at ``L = C = 0`` the released NumPy code
     yields ``0/0 = NaN``, here 0);
  3. H, S and V are each clipped to ``[0, 1]`` before HSV -> RGB (so an infeasible chroma
     saturates ``S`` at 1 and ``V`` at 1 instead of being reduced), the RGB result is clipped;
  4. with ``lightness="mean"`` (the released usage), ``match_lightness`` follows:
     ``clip(rgb - mean(rgb) + gray, 0, 1)``. With ``lightness="bicone"`` this step is skipped
     (the released code never used the bicone lightness, and the inverse is then already exact).

  On the forward side the released code computes the same H and C as the paper: the Caffe
  ``BgrToMunsell`` layer (``caffe/src/caffe/layers/bgr_to_munsell_layer.cpp``) outputs
  ``(H, S*V, V)`` with the HSV hue, 0 where ``max == min``, and silences the ``V`` channel in
  ``train/train_vgg16.prototxt``; gustavla/self-supervision uses ``tf.image.rgb_to_hsv`` hue and
  ``reduce_max - reduce_min``. :func:`rgb_to_hcl` therefore accepts ``variant`` only for symmetry
  (both values give identical H and C).
* **alpha-beta** (:func:`rgb_to_alphabeta`, :func:`alphabeta_to_rgb`): the space of the
  "RMSE in alpha-beta" colorization metric that Larsson et al. report following Deshpande, Rock
  & Forsyth, "Learning Large-Scale Automatic Image Colorization" (ICCV 2015). Source (the paper
  text itself was not available here): Deshpande et al.'s released code,
  github.com/aditya12agd5/iccv15_lscolorization,
  ``IO/util/converttobmyrmg.m`` (images read with ``im2double``, so RGB in ``[0, 1]``)::

      gray  = (R + G + B) / 3
      alpha = (B - (R + G) / 2) / (gray + eps)     # "bmy", blue minus yellow (channel 1)
      beta  = (R - G) / (gray + eps)               # "rmg", red minus green   (channel 2)
      eps   = 1e-4

  i.e. lightness-normalised opponent chromaticities. The channel order follows that file; the
  RMSE does not depend on it. :func:`alphabeta_to_rgb` is the exact inverse given the grey (the
  released ``toRGB.m`` uses the rounded coefficients 0.33 / 0.66 and ignores ``eps``; not
  reproduced).

Performance
-----------
Each function is a short chain of elementwise ops (two powers and two 3 x 3 channel mixes for
Lab; constants are folded into the mixes, selects use the non-broadcasting ``Select`` op,
channel max / min / mean use slices rather than reductions over 3 channels). In plain graph mode
every op is a separate pass over memory, so the fewest ops win: the powers are ``exp(a log x)``
and the mixes one ``MatMul`` each. Under ``tf.function(jit_compile=True)`` XLA fuses the chain
into one loop, and there the transcendental functions and the ``dot`` (a separate, single
threaded pass on CPU) are what cost. :func:`rgb_to_lab` and :func:`lab_to_rgb` therefore have
two implementations of the same formulas, chosen by ``implementation``:

* ``"pow"``: ``exp(a log x)`` powers and ``MatMul`` mixes (float32 or float64).
* ``"polynomial"`` (float32 only): the sRGB decode ``(x + 0.055)^2.4`` on [0.04045, 1] is a
  degree-12 polynomial fitted to minimise the resulting Lab error
  (``tools/fit_srgb_decode.py``; 3e-5 Lab in exact arithmetic); cube roots start from the
  float32 bit pattern and take three Newton steps (no division; ~1 ulp; exact gradient); the
  sRGB encode ``y^(1/2.4) = c sqrt(sqrt(c))`` with ``c = y^(1/3)``; mixes are multiply-adds of
  channel slices that XLA fuses.
* ``"auto"`` (default): ``"polynomial"`` while traced inside ``tf.function(jit_compile=True)``
  (or another XLA compilation) for non-float64 inputs, ``"pow"`` otherwise.

Both agree with scikit-image to ~1e-4 Lab in float32 (``"polynomial"`` 7e-5, ``"pow"`` 9e-5 on
a 64^3 grid of the cube) and with each other to ~1e-4. Under XLA on CPU, ``"polynomial"``
converts sRGB -> Lab about 2x faster than ``"pow"`` (and ~4x graph mode), at about OpenCV's
speed; hue / chroma is ~5x faster than in graph mode (see ``benchmarks/color_bench.py`` and
docs/performance.md). Put conversions inside the jit-compiled training step (``targets_on_device=True``), or
map a compiled function in ``tf.data``:
``ds.map(tf.function(rgb_to_lab, jit_compile=True))`` works on CPU and compiles once per distinct
input shape (so use it after cropping to a fixed size). XLA drops the range asserts.

Validation
----------
Wrong channel counts (known statically) and non-floating dtypes raise ``ValueError`` /
``TypeError`` naming the function, at trace time in every mode. With ``validate=True`` (default),
value ranges are checked: eagerly, a ``ValueError`` naming the function, the offending range and
the observed min / max is raised immediately; inside ``tf.function`` / ``tf.data`` a
``tf.debugging.Assert`` is added and a violation raises ``tf.errors.InvalidArgumentError`` with the
same text when the graph runs (one extra fused reduction pass over the input; min / max for the
message are computed only on failure); under
``jit_compile=True`` XLA removes ``Assert`` ops, so **no range check happens in XLA-compiled
code**. Pass ``validate=False`` to skip the checks (e.g. in a hot training step after the data
pipeline has been validated).
"""
import inspect

import numpy as np
import tensorflow as tf
import keras

try:  # TensorFlow's private control-flow helpers: the only way to see an XLA context (see below)
    from tensorflow.python.ops import control_flow_util
except ImportError:  # pragma: no cover - TensorFlow internals moved
    control_flow_util = None

__all__ = [
        "rgb_to_gray", "rgb_to_lab", "lab_to_rgb", "rgb_to_hcl", "hcl_to_rgb", "rgb_to_alphabeta",
        "alphabeta_to_rgb", "ColorConversion", "D65_WHITE", "XYZ_FROM_RGB", "ALPHABETA_EPS",
]

# sRGB (D65) -> XYZ, the matrix of skimage.color and of the authors' Caffe BgrToLab layer.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
ALPHABETA_EPS = 1e-4

_SRGB_THRESHOLD = 0.04045       # sRGB decode: linear below, power above
_LINEAR_THRESHOLD = 0.0031308   # sRGB encode
_LAB_EPSILON = 0.008856         # f(t): cube root above, linear below
_LAB_KAPPA = 7.787
_LAB_F_THRESHOLD = 0.2068966    # inverse f: threshold on f (= 6/29, as skimage)

# Row-vector forms: x_row @ M. White folded into the matrices.
_RGB_TO_XYZN = (XYZ_FROM_RGB / D65_WHITE[:, None]).T
_XYZN_TO_RGB = np.linalg.inv(XYZ_FROM_RGB).T * D65_WHITE[:, None]
_F_TO_LAB = np.array([[0.0, 500.0, 0.0], [116.0, -500.0, 200.0], [0.0, 0.0, -200.0]])
_DECODE_SCALE = 1.055 ** -2.4   # ((x + 0.055) / 1.055)^2.4 = (x + 0.055)^2.4 * _DECODE_SCALE
_ENCODE_SCALE = 1.055 ** 2.4    # 1.055 y^(1/2.4) = (y * _ENCODE_SCALE)^(1/2.4)

# Fully saturated hue ramp p(H) = clip(a * |6H - c| + d, 0, 1) for (R, G, B).
_HUE_A = np.array([1.0, -1.0, -1.0])
_HUE_C = np.array([3.0, 2.0, 4.0])
_HUE_D = np.array([-1.0, 2.0, 2.0])

# implementation="polynomial" (see "Performance" above). sRGB decode (x + 0.055)^2.4 on
# [0.04045, 1] as a degree-12 polynomial in t = x * _T_SCALE + _T_OFFSET (t in [-1, 1]), power
# basis, lowest degree first, evaluated by Estrin's scheme; fitted by tools/fit_srgb_decode.py
# (max Lab error 3e-5 in exact arithmetic).
_DECODE_POLY = (
        0.2652226213011461, 0.5309112242014791, 0.309972245117614, 0.034467133574240416,
        -0.004342886839749929, 0.0011695795964876544, -0.00027299770653175446,
        0.0001534670909878105, -0.00039076266985751745, 4.0952371512539086e-05,
        0.0002798041265121935, 3.7026599326704e-05, -0.00012853550472338127,
)
_T_SCALE = 2.0 / (1.0 - _SRGB_THRESHOLD)
_T_OFFSET = -(1.0 + _SRGB_THRESHOLD) / (1.0 - _SRGB_THRESHOLD)
# Initial estimate of t^(-1/3) from the float32 bit pattern (max relative error 3.4%).
_RCBRT_MAGIC = 1419917116.0

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
_IMPLEMENTATIONS = ("auto", "pow", "polynomial")
_LIGHTNESS = ("bicone", "mean")
_VARIANTS = ("paper", "released")
_CLIP = ("chroma", "rgb", None)


# ------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------

def _prepare(x, fn, arg, channels):
    """Converts ``x`` to its compute dtype after checking dtype and (static) channel count."""
    x = tf.convert_to_tensor(x)
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
                f"{fn}: `{arg}` must be a floating tensor (float16, bfloat16, float32 or float64), "
                f"got {x.dtype.name}. Convert integer images with "
                f"tf.image.convert_image_dtype(image, tf.float32) (scales to [0, 1]).")
    rank = x.shape.rank
    if rank == 0:
        raise ValueError(f"{fn}: `{arg}` must have shape (..., {channels}), got a scalar.")
    if rank is not None and x.shape[-1] is not None and x.shape[-1] != channels:
        raise ValueError(
                f"{fn}: `{arg}` must have {channels} channels in the last axis, shape "
                f"(..., {channels}); got shape {x.shape}.")
    compute = tf.float64 if x.dtype == tf.float64 else tf.float32
    return tf.cast(x, compute), x.dtype


def _check_option(fn, name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{fn}: `{name}` must be one of {allowed}, got {value!r}.")


def _validate(x, fn, arg, lo, hi, validate, channels=None, want=None):
    """Range (and unknown-static channel count) checks; see the module docstring.

    Values must lie in ``[lo, hi]`` (finite scalars, or per-channel arrays broadcast over the last
    axis; use +-1e30 for "finite"); ``want`` describes the requirement in messages.
    """
    if not validate:
        return x
    want = want or f"lie in [{lo}, {hi}]"
    # Comparisons are False for NaN and +-Inf fails finite bounds: one fused pass suffices.
    ok = tf.reduce_all((x >= tf.constant(lo, x.dtype)) & (x <= tf.constant(hi, x.dtype)))
    if tf.executing_eagerly():
        if not bool(ok):
            finite = tf.boolean_mask(x, tf.math.is_finite(x))
            n_finite = int(tf.size(finite))
            n_bad = int(tf.size(x)) - n_finite
            parts = []
            if n_finite:
                mn, mx = float(tf.reduce_min(finite)), float(tf.reduce_max(finite))
                parts.append(f"min {mn:.6g}, max {mx:.6g}")
            if n_bad:
                parts.append(f"{n_bad} NaN/Inf value(s)")
            hint = ""
            if np.all(np.equal(hi, 1.0)) and n_finite and mx > 1.5:
                hint = " (this looks like 0-255 data: divide by 255)"
            raise ValueError(f"{fn}: `{arg}` values must {want}; got {', '.join(parts)}{hint}.")
        return x

    def report():
        # Built inside the failing branch so that min / max are only computed on failure.
        message = [f"{fn}: `{arg}` values must {want}; got min", tf.reduce_min(x), "max",
                   tf.reduce_max(x)]
        with tf.control_dependencies([tf.debugging.Assert(ok, message, name="range_check")]):
            return tf.identity(ok)

    checks = [tf.cond(ok, lambda: tf.identity(ok), report)]
    if channels is not None and (x.shape.rank is None or x.shape[-1] is None):
        checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(x)[-1], channels),
                [f"{fn}: `{arg}` must have {channels} channels in the last axis; got shape",
                 tf.shape(x)], name="channel_check"))
    with tf.control_dependencies(checks):
        return tf.identity(x)


def _mix(x, matrix):
    """``x @ matrix`` over the last axis of ``x`` (..., 3)."""
    flat = tf.reshape(x, [-1, 3])
    return tf.reshape(tf.matmul(flat, tf.constant(matrix, x.dtype)), tf.shape(x))


def _select(condition, a, b):
    """Elementwise ``condition ? a : b`` for operands of identical shape.

    ``tf.raw_ops.Select`` (no broadcasting) is ~5x cheaper on CPU than ``tf.where`` (SelectV2)
    in graph mode; every call site here has identical shapes by construction.
    """
    return tf.raw_ops.Select(condition=condition, x=a, y=b)


def _pow(base, exponent):
    """``base ** exponent`` for ``base > 0`` as exp(log): vectorises well under XLA."""
    return tf.exp(exponent * tf.math.log(base))


def _mix_elementwise(x, matrix):
    """``x @ matrix`` over the last axis as multiply-adds of channel slices.

    Under XLA this fuses with its neighbours into one loop (a ``dot`` is a separate, single
    threaded pass on CPU); in plain graph mode :func:`_mix` (one kernel) is cheaper.
    """
    rows = [tf.constant(row, x.dtype) for row in np.asarray(matrix, np.float64)]
    return x[..., 0:1] * rows[0] + x[..., 1:2] * rows[1] + x[..., 2:3] * rows[2]


def _in_xla_context():
    """True while tracing inside ``tf.function(jit_compile=True)`` (or another XLA compilation).

    ``tf.function`` marks its graph with an XLA control-flow context while tracing a jit-compiled
    function; TensorFlow exposes no public query for it, so a moved private module means False
    (the ``pow`` implementation, correct everywhere).
    """
    if control_flow_util is None:  # pragma: no cover - TensorFlow internals moved
        return False
    try:
        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except AttributeError:  # pragma: no cover - TensorFlow internals moved
        return False


def _use_polynomial(fn, implementation, compute_dtype):
    """Resolves ``implementation`` ("auto", "pow", "polynomial") to True for "polynomial"."""
    _check_option(fn, "implementation", implementation, _IMPLEMENTATIONS)
    if implementation == "auto":
        return compute_dtype == tf.float32 and _in_xla_context()
    if implementation == "polynomial" and compute_dtype != tf.float32:
        raise ValueError(f"{fn}: implementation='polynomial' is float32 arithmetic; float64 "
                         f"inputs use implementation='pow' (or 'auto').")
    return implementation == "polynomial"


@tf.custom_gradient
def _cbrt_newton(t):
    """Cube root of float32 ``t > 0`` (normal) without transcendental functions, ~1 ulp.

    The bit pattern gives ``r ~ t^(-1/3)`` within 3.4%; two Newton steps for ``r^-3 = t`` (no
    division) bring it to ~1e-5 and one Newton step on ``y = t r^2`` (using ``r^2 ~ y^-2``)
    to float32 rounding. The gradient is ``t^(-2/3) / 3 = 1 / (3 y^2)``.
    """
    bits = tf.cast(tf.bitcast(t, tf.int32), tf.float32)
    r = tf.bitcast(tf.cast(_RCBRT_MAGIC - bits * (1.0 / 3.0), tf.int32), tf.float32)
    t_third = t * (1.0 / 3.0)
    for _ in range(2):
        r = r * ((4.0 / 3.0) - t_third * (r * r * r))
    r_squared = r * r
    y = t * r_squared
    y = y - (y * y * y - t) * (r_squared * (1.0 / 3.0))

    def grad(upstream):
        return upstream / (3.0 * y * y)

    return y, grad


# ------------------------------------------------------------------------------------------------
# Grey
# ------------------------------------------------------------------------------------------------

def rgb_to_gray(rgb, *, validate=True, name=None):
    """Desaturates to the network input: the mean of R, G and B.

    Args:
        rgb: float tensor (..., 3), sRGB in [0, 1].
        validate: check the value range (see the module docstring).
        name: optional name scope.

    Returns:
        (..., 1) tensor of the input dtype, in [0, 1].
    """
    fn = "rgb_to_gray"
    with tf.name_scope(name or fn):
        x, dtype = _prepare(rgb, fn, "rgb", 3)
        x = _validate(x, fn, "rgb", 0.0, 1.0, validate, channels=3)
        # Sum of channel slices: cheaper than reduce_mean over a last axis of 3, same value.
        return tf.cast((x[..., 0:1] + x[..., 1:2] + x[..., 2:3]) * (1.0 / 3.0), dtype)


# ------------------------------------------------------------------------------------------------
# CIE Lab
# ------------------------------------------------------------------------------------------------

def _srgb_to_linear_scaled(x, polynomial=False):
    """sRGB decode divided by ``_DECODE_SCALE`` (folded into the next matrix; one op fewer)."""
    base = tf.maximum(x, _SRGB_THRESHOLD)
    if polynomial:
        power = _estrin(base * _T_SCALE + _T_OFFSET, _DECODE_POLY)
    else:
        power = _pow(base + 0.055, 2.4)                               # = decode * 1.055^2.4
    return _select(x > _SRGB_THRESHOLD, power, x * (_DECODE_SCALE ** -1 / 12.92))


def _estrin(t, coefficients):
    """``sum_k coefficients[k] t^k`` by Estrin's scheme: pairs ``c_k + c_(k+1) t`` combined with
    ``t^2, t^4, t^8``. As many operations as Horner's rule but a dependency chain of depth
    ~log2(degree) instead of ~degree, so the vectorised XLA loop is not latency bound."""
    terms = [coefficients[k] + coefficients[k + 1] * t for k in range(0, len(coefficients) - 1, 2)]
    if len(coefficients) % 2:
        terms.append(coefficients[-1])
    power = t * t
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] * power if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
        power = power * power
    return terms[0]


def _scaled_linear_to_srgb(x, polynomial=False):
    """sRGB encode of ``x / _ENCODE_SCALE`` (the scale is folded into the previous matrix)."""
    base = tf.maximum(x, _LINEAR_THRESHOLD * _ENCODE_SCALE)
    if polynomial:
        root = _cbrt_newton(base)                       # y^(5/12) = y^(1/3) * (y^(1/3))^(1/4)
        power = root * tf.sqrt(tf.sqrt(root)) - 0.055
    else:
        power = _pow(base, 1.0 / 2.4) - 0.055
    return _select(x > _LINEAR_THRESHOLD * _ENCODE_SCALE, power, x * (12.92 / _ENCODE_SCALE))


def rgb_to_lab(rgb, *, validate=True, implementation="auto", name=None):
    """sRGB -> CIE Lab (D65, 2 degree observer), as ``skimage.color.rgb2lab``.

    Args:
        rgb: float tensor (..., 3), sRGB in [0, 1].
        validate: check the value range (see the module docstring).
        implementation: ``"auto"`` (default), ``"pow"`` or ``"polynomial"``: how the two powers
            are computed, see "Performance" in the module docstring. ``"auto"`` picks
            ``"polynomial"`` when traced inside ``tf.function(jit_compile=True)`` and the
            input is not float64, ``"pow"`` otherwise. Both are within 1e-4 Lab of
            scikit-image in float32 on [0, 1]. The polynomial is fitted on [0, 1]: values
            above 1 (possible with ``validate=False``) are extrapolated, to ~1e-3 Lab up to
            1.05 and ~0.05 at 1.2; use ``"pow"`` (or clip) for such inputs.
        name: optional name scope.

    Returns:
        (..., 3) tensor (L in [0, 100], a, b roughly in [-128, 128]) of the input dtype.
    """
    fn = "rgb_to_lab"
    with tf.name_scope(name or fn):
        x, dtype = _prepare(rgb, fn, "rgb", 3)
        polynomial = _use_polynomial(fn, implementation, x.dtype)
        x = _validate(x, fn, "rgb", 0.0, 1.0, validate, channels=3)
        mix = _mix_elementwise if polynomial else _mix
        xyz = mix(_srgb_to_linear_scaled(x, polynomial), _RGB_TO_XYZN * _DECODE_SCALE)  # XYZ/white
        # f(t) - 16/116: a and b are differences of f, and L = 116 (f_y - 16/116), so the shift
        # removes the final offset (one op fewer in graph mode).
        base = tf.maximum(xyz, _LAB_EPSILON)
        cube_root = (_cbrt_newton(base) if polynomial else _pow(base, 1.0 / 3.0)) - 16.0 / 116.0
        f = _select(xyz > _LAB_EPSILON, cube_root, _LAB_KAPPA * xyz)
        return tf.cast(mix(f, _F_TO_LAB), dtype)


def lab_to_rgb(lab, *, clip=True, validate=True, implementation="auto", name=None):
    """CIE Lab (D65) -> sRGB, the inverse of :func:`rgb_to_lab` (as ``skimage.color.lab2rgb``).

    Lab colours outside the sRGB gamut map to values outside [0, 1]; ``clip=True`` (default, as
    scikit-image) clips them to [0, 1], ``clip=False`` returns them unclipped (e.g. to measure or
    penalise out-of-gamut predictions).

    Args:
        lab: float tensor (..., 3), L in [0, 100].
        clip: clip the result to [0, 1].
        validate: check that L is in [0, 100] (with 1e-3 slack for rounding) and that a and b are
            finite (see the module docstring).
        implementation: ``"auto"``, ``"pow"`` or ``"polynomial"``, as in :func:`rgb_to_lab`
            (here the sRGB encode ``y^(1/2.4)`` is ``c * sqrt(sqrt(c))`` with ``c`` a Newton
            cube root).
        name: optional name scope.

    Returns:
        (..., 3) sRGB tensor of the input dtype.
    """
    fn = "lab_to_rgb"
    with tf.name_scope(name or fn):
        x, dtype = _prepare(lab, fn, "lab", 3)
        polynomial = _use_polynomial(fn, implementation, x.dtype)
        x = _validate(x, fn, "lab", [-1e-3, -1e30, -1e30], [100.0 + 1e-3, 1e30, 1e30], validate,
                      channels=3, want="have L in [0, 100] and finite a, b")
        mix = _mix_elementwise if polynomial else _mix
        shifted = mix(x, np.linalg.inv(_F_TO_LAB))                    # f - 16/116 (no offset)
        f = shifted + 16.0 / 116.0
        xyz = _select(f > _LAB_F_THRESHOLD, f * f * f, shifted * (1.0 / _LAB_KAPPA))
        rgb = _scaled_linear_to_srgb(mix(xyz, _XYZN_TO_RGB * _ENCODE_SCALE), polynomial)
        if clip:
            rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        return tf.cast(rgb, dtype)


# ------------------------------------------------------------------------------------------------
# Hue / chroma / lightness
# ------------------------------------------------------------------------------------------------

def _hue_ramp(h):
    """Fully saturated, full-value RGB of hue ``h`` (...,) in [0, 1): (..., 3) in [0, 1]."""
    h6 = 6.0 * h[..., None]
    a, c, d = (tf.constant(v, h.dtype) for v in (_HUE_A, _HUE_C, _HUE_D))
    return tf.clip_by_value(a * tf.abs(h6 - c) + d, 0.0, 1.0)


def rgb_to_hcl(rgb, *, lightness="bicone", variant="paper", validate=True, name=None):
    """sRGB -> (hue, chroma, lightness), the hue/chroma targets of the papers.

    Args:
        rgb: float tensor (..., 3), sRGB in [0, 1].
        lightness: third output channel: ``"bicone"`` = (max + min) / 2 (default; exact inverse
            with :func:`hcl_to_rgb`'s default) or ``"mean"`` = (R + G + B) / 3 (the network's
            grey input).
        variant: ``"paper"`` or ``"released"``; both compute identical hue and chroma (see the
            module docstring), accepted for symmetry with :func:`hcl_to_rgb`.
        validate: check the value range (see the module docstring).
        name: optional name scope.

    Returns:
        (..., 3) tensor of the input dtype: hue in [0, 1) (0 where chroma is 0), chroma in
        [0, 1], lightness in [0, 1].
    """
    fn = "rgb_to_hcl"
    _check_option(fn, "lightness", lightness, _LIGHTNESS)
    _check_option(fn, "variant", variant, _VARIANTS)
    with tf.name_scope(name or fn):
        x, dtype = _prepare(rgb, fn, "rgb", 3)
        x = _validate(x, fn, "rgb", 0.0, 1.0, validate, channels=3)
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        hi = tf.maximum(tf.maximum(r, g), b)          # cheaper than reduce_max over 3 channels
        lo = tf.minimum(tf.minimum(r, g), b)
        chroma = hi - lo
        # HSV hue sector numerator: (g - b), (b - r) + 2C or (r - g) + 4C, divided once by C.
        numerator = _select(r >= hi, g - b, _select(g >= hi, b - r + 2.0 * chroma,
                                                    r - g + 4.0 * chroma))
        has_chroma = chroma > 0.0
        hue = numerator / (6.0 * _select(has_chroma, chroma, tf.ones_like(chroma)))
        hue = hue - tf.floor(hue)                              # [0, 1], wraps the red sector
        hue = _select(has_chroma & (hue < 1.0), hue, tf.zeros_like(hue))
        if lightness == "bicone":
            light = 0.5 * (hi + lo)
        else:
            light = (r + g + b) * (1.0 / 3.0)
        return tf.cast(tf.stack([hue, chroma, light], axis=-1), dtype)


def hcl_to_rgb(hcl, *, lightness="bicone", variant="paper", clip="chroma", validate=True,
               name=None):
    """(hue, chroma, lightness) -> sRGB; see the module docstring for the two variants.

    Args:
        hcl: float tensor (..., 3): hue (any real; taken modulo 1), chroma in [0, 1], lightness in
            [0, 1].
        lightness: what the third channel is: ``"bicone"`` ((max + min) / 2, default) or
            ``"mean"`` ((R + G + B) / 3; use this to recombine predicted hue and chroma with the
            grey input, the output then has exactly that mean).
        variant: ``"paper"`` (V = L + C/2, S = C/V, HSV -> RGB, default) or ``"released"`` (the
            authors' released reconstruction, with its clipping and lightness matching).
        clip: for ``variant="paper"`` only: ``"chroma"`` (default) reduces an infeasible chroma to
            the largest one that keeps hue and lightness inside the sRGB cube; ``"rgb"`` clips the
            RGB result; ``None`` does not clip. ``variant="released"`` always applies the
            released clipping and requires the default.
        validate: check that chroma and lightness are in [0, 1] and hue is finite.
        name: optional name scope.

    Returns:
        (..., 3) sRGB tensor of the input dtype, in [0, 1] unless ``clip=None``.
    """
    fn = "hcl_to_rgb"
    _check_option(fn, "lightness", lightness, _LIGHTNESS)
    _check_option(fn, "variant", variant, _VARIANTS)
    _check_option(fn, "clip", clip, _CLIP)
    if variant == "released" and clip != "chroma":
        raise ValueError(f"{fn}: `clip` applies to variant='paper' only; variant='released' always "
                         f"uses the released clipping (got clip={clip!r}).")
    with tf.name_scope(name or fn):
        x, dtype = _prepare(hcl, fn, "hcl", 3)
        x = _validate(x, fn, "hcl", [-1e30, 0.0, 0.0], [1e30, 1.0, 1.0], validate, channels=3,
                      want="have finite hue and chroma, lightness in [0, 1]")
        hue, chroma, light = x[..., 0], x[..., 1], x[..., 2]
        if variant == "released":
            rgb = _released_hcl_to_rgb(hue, chroma, light, lightness)
        else:
            hue = hue - tf.floor(hue)
            ramp = _hue_ramp(hue)                                         # (..., 3)
            if lightness == "bicone":
                centre = tf.fill(tf.shape(chroma), tf.constant(0.5, x.dtype))
            else:
                centre = (ramp[..., 0] + ramp[..., 1] + ramp[..., 2]) * (1.0 / 3.0)   # [1/3, 2/3]
            if clip == "chroma":
                # rgb = L + C (p - centre) lies in [0, 1] iff C*centre <= L, C(1-centre) <= 1-L.
                chroma = tf.minimum(chroma, tf.minimum(light / centre, (1.0 - light) / (1.0 - centre)))
            rgb = light[..., None] + chroma[..., None] * (ramp - centre[..., None])
            if clip is not None:                                          # rounding only for "chroma"
                rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        return tf.cast(rgb, dtype)


def _released_hcl_to_rgb(hue, chroma, light, lightness):
    """autocolorize.extraction.calc_rgb_from_hue_chroma (+ match_lightness for the mean)."""
    value = light + 0.5 * chroma
    denominator = 2.0 * light + chroma
    positive = denominator > 0.0
    safe = _select(positive, denominator, tf.ones_like(denominator))
    saturation = _select(positive, 2.0 * chroma / safe, tf.zeros_like(denominator))
    hue = tf.clip_by_value(hue, 0.0, 1.0)
    saturation = tf.clip_by_value(saturation, 0.0, 1.0)
    value = tf.clip_by_value(value, 0.0, 1.0)
    ramp = _hue_ramp(hue - tf.floor(hue))                                 # hue 1.0 == hue 0.0
    vs = (value * saturation)[..., None]
    rgb = tf.clip_by_value(value[..., None] - vs + vs * ramp, 0.0, 1.0)
    if lightness == "mean":
        rgb = tf.clip_by_value(rgb - tf.reduce_mean(rgb, axis=-1, keepdims=True) + light[..., None],
                               0.0, 1.0)
    return rgb


# ------------------------------------------------------------------------------------------------
# alpha-beta (Deshpande et al. 2015)
# ------------------------------------------------------------------------------------------------

def rgb_to_alphabeta(rgb, *, eps=ALPHABETA_EPS, validate=True, name=None):
    """sRGB -> (alpha, beta) of the colorization RMSE metric (Deshpande et al. 2015).

    ``alpha = (B - (R + G)/2) / (gray + eps)``, ``beta = (R - G) / (gray + eps)``,
    ``gray = (R + G + B)/3``, ``eps = 1e-4`` (source and channel order: module docstring).

    Args:
        rgb: float tensor (..., 3), sRGB in [0, 1].
        eps: the stabiliser added to the grey (1e-4 in the released code).
        validate: check the value range (see the module docstring).
        name: optional name scope.

    Returns:
        (..., 2) tensor of the input dtype.
    """
    fn = "rgb_to_alphabeta"
    if not eps > 0:
        raise ValueError(f"{fn}: `eps` must be > 0, got {eps!r}.")
    with tf.name_scope(name or fn):
        x, dtype = _prepare(rgb, fn, "rgb", 3)
        x = _validate(x, fn, "rgb", 0.0, 1.0, validate, channels=3)
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        scale = 1.0 / ((r + g + b) / 3.0 + eps)
        out = tf.stack([(b - 0.5 * (r + g)) * scale, (r - g) * scale], axis=-1)
        return tf.cast(out, dtype)


def alphabeta_to_rgb(alphabeta, gray, *, eps=ALPHABETA_EPS, clip=True, validate=True, name=None):
    """Exact inverse of :func:`rgb_to_alphabeta` given the grey (mean of RGB).

    Args:
        alphabeta: float tensor (..., 2).
        gray: float tensor (..., 1) in [0, 1], the mean of R, G and B.
        eps: the same stabiliser as in :func:`rgb_to_alphabeta`.
        clip: clip the result to [0, 1] (alpha-beta pairs can be outside the sRGB cube).
        validate: check the grey's range and that alpha and beta are finite.
        name: optional name scope.

    Returns:
        (..., 3) sRGB tensor of ``alphabeta``'s dtype.
    """
    fn = "alphabeta_to_rgb"
    if not eps > 0:
        raise ValueError(f"{fn}: `eps` must be > 0, got {eps!r}.")
    with tf.name_scope(name or fn):
        ab, dtype = _prepare(alphabeta, fn, "alphabeta", 2)
        y, _ = _prepare(gray, fn, "gray", 1)
        y = tf.cast(y, ab.dtype)
        ab = _validate(ab, fn, "alphabeta", -1e30, 1e30, validate, channels=2, want="be finite")
        y = _validate(y, fn, "gray", 0.0, 1.0, validate, channels=1)
        alpha, beta = ab[..., :1], ab[..., 1:]
        scale = y + eps
        blue = y + (2.0 / 3.0) * alpha * scale
        red = y - (1.0 / 3.0) * alpha * scale + 0.5 * beta * scale
        green = y - (1.0 / 3.0) * alpha * scale - 0.5 * beta * scale
        rgb = tf.concat([red, green, blue], axis=-1)
        if clip:
            rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        return tf.cast(rgb, dtype)


# ------------------------------------------------------------------------------------------------
# Keras layer
# ------------------------------------------------------------------------------------------------

_CONVERSIONS = {
        "rgb_to_gray": rgb_to_gray,
        "rgb_to_lab": rgb_to_lab,
        "lab_to_rgb": lab_to_rgb,
        "rgb_to_hcl": rgb_to_hcl,
        "hcl_to_rgb": hcl_to_rgb,
        "rgb_to_alphabeta": rgb_to_alphabeta,
}


@keras.saving.register_keras_serializable(package="tfcolor")
class ColorConversion(keras.layers.Layer):
    """One of the conversions of this module as a Keras layer (for functional models).

    ``ColorConversion("rgb_to_lab")(rgb)``; keyword options of the function are passed as
    ``options``, e.g. ``ColorConversion("hcl_to_rgb", options={"lightness": "mean"})``. The layer
    has no weights. Under a mixed-precision policy the input is cast to the compute dtype
    (e.g. float16) and the conversion still runs in float32 internally. ``validate`` defaults to
    False here (a model's inputs are usually checked by the data pipeline; set it in ``options``).

    Args:
        conversion: one of ``rgb_to_gray``, ``rgb_to_lab``, ``lab_to_rgb``, ``rgb_to_hcl``,
            ``hcl_to_rgb``, ``rgb_to_alphabeta``.
        options: dict of keyword arguments of that function.
        **kwargs: base layer arguments (name, dtype, ...).
    """

    def __init__(self, conversion, options=None, **kwargs):
        super().__init__(**kwargs)
        if conversion not in _CONVERSIONS:
            raise ValueError(f"ColorConversion: `conversion` must be one of "
                             f"{sorted(_CONVERSIONS)}, got {conversion!r}.")
        options = dict(options or {})
        allowed = set(inspect.signature(_CONVERSIONS[conversion]).parameters) - {"name"}
        bad = sorted(k for k in options if k not in allowed)
        if bad:
            raise ValueError(f"ColorConversion: unknown option(s) {bad} for {conversion}.")
        self.conversion = conversion
        self.options = options

    def build(self, input_shape):
        channels = 3
        if input_shape[-1] is not None and input_shape[-1] != channels:
            raise ValueError(f"ColorConversion({self.conversion}): expected inputs with "
                             f"{channels} channels in the last axis, got shape {input_shape}.")
        self.built = True

    def call(self, inputs):
        options = {"validate": False, **self.options}
        return _CONVERSIONS[self.conversion](inputs, **options)

    def compute_output_shape(self, input_shape):
        channels = {"rgb_to_gray": 1, "rgb_to_alphabeta": 2}.get(self.conversion, 3)
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"conversion": self.conversion, "options": dict(self.options)})
        return config
