"""Distillation losses: the temperature KL on logits, the loss on unnormalised exponentials and
the AB divergence family, with the teacher statistics that pre-normalise them.

Conventions: ``y_true`` holds the teacher's activations y, ``y_pred`` the student's z, both of
shape (B, ..., C) with C features on the last axis. ``call(y_true, y_pred)`` returns one float32
value per example, shape (B,): the loss of each feature vector (a mean over the C features, a
sum over classes for the KL), averaged over any axes between the batch and the features
(spatial positions). Calling the loss object applies the Keras ``reduction`` (default
``"sum_over_batch_size"``: the batch mean; ``reduction=None`` keeps the (B,) values). Inputs of
any float dtype are cast to float32 (mixed-precision safe); the teacher gets no gradient.

* :func:`ab_divergence` / :func:`ab_divergence_from_logs` -- the element-wise AB divergence
  d_AB^(alpha, beta)(p, q) of Cichocki, Cruces and Amari (2011), every special case of its
  definition included, finite and accurate for tiny and large values and for p close to q.
* :class:`TemperatureKL` -- ``T^2 KL(softmax(y/T) || softmax(z/T))`` (classic distillation).
* :class:`ABDivergence` -- ``(1/C) D_AB^(alpha, beta)(exp(y/s) || exp(z/s))``; default
  (alpha, beta) = (1/4, 0). With beta = 0 and alpha = 1/T this is the loss on unnormalised
  exponentials at temperature T; (0, 0) is ``(1/(2C)) sum (y/s - z/s)^2``.
* :class:`ExpDistillation` -- that loss written out with a temperature,
  ``(T^2/C) sum [e^a (a - b) - e^a + e^b]``, a = y/(sT), b = z/(sT) (an independent
  implementation of ``ABDivergence(1/T, 0)``).
* :func:`make_loss` -- a loss by kind name (``LOSS_KINDS``); :func:`teacher_scale` -- the
  teacher's root mean square s, per feature or one scalar, over the training data.
"""
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

__all__ = ["LOSS_KINDS", "ABDivergence", "ExpDistillation", "TemperatureKL",
           "ab_divergence", "ab_divergence_from_logs", "make_loss", "teacher_scale"]

#: The loss kinds of :func:`make_loss`: temperature KL on logits, the AB divergence on
#: exponentials, the loss on unnormalised exponentials with a temperature, and squared L2
#: (the AB divergence at (0, 0)).
LOSS_KINDS = ("kl", "ab", "exp", "l2")

# The second divided difference of exp at three points whose spread is below this (in units of
# the exponent) is summed as a Taylor series of _TAYLOR_TERMS + 1 terms around the points' mean
# (truncation error below 1e-10 relative for float32, 1e-16 for float64); wider spreads use the
# difference of two first divided differences, which then loses at most ~4/spread ulps.
_TAYLOR_SPREAD = {tf.float32: 0.5, tf.float64: 0.1}
_TAYLOR_TERMS = 8
_SINHC_SMALL = 1e-4    # sinh(t)/t = 1 + t^2/6 below this (next term t^4/120 < 1e-17)
_SINHC_LARGE = 10.0    # above this, (e^(m+t) - e^(m-t))/(2t) in log form (no overflow of e^t)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _positive(name, value):
    value = _real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _compute_dtype(*tensors):
    """float64 when every input is float64 (for gradient checks), else float32."""
    return tf.float64 if all(t.dtype == tf.float64 for t in tensors) else tf.float32


def _as_float(x, dtype=None):
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"expected a real tensor, got dtype {x.dtype.name}")
    return x if dtype is None else tf.cast(x, dtype)


def _broadcast(a, b):
    shape = tf.broadcast_dynamic_shape(tf.shape(a), tf.shape(b))
    return tf.broadcast_to(a, shape), tf.broadcast_to(b, shape)


def _exp_dd1(mid, half):
    """``(e^(mid + half) - e^(mid - half)) / (2 half)``, the first divided difference of exp at
    mid -+ half, as ``e^mid sinh(t)/t`` (t = |half|) without cancellation or overflow of e^t."""
    t = tf.abs(half)
    small = t < _SINHC_SMALL
    large = t > _SINHC_LARGE
    one = tf.ones_like(t)
    t_mid = tf.where(small | large, one, t)
    sinhc = (tf.math.expm1(t_mid) - tf.math.expm1(-t_mid)) / (2.0 * t_mid)
    t_small = tf.where(small, t, 0.0 * one)
    sinhc = tf.where(small, 1.0 + t_small * t_small / 6.0, sinhc)
    moderate = tf.exp(tf.where(large, 0.0 * one, mid)) * sinhc
    t_large = tf.where(large, t, 2.0 * _SINHC_LARGE * one)
    m_large = tf.where(large, mid, 0.0 * one)
    wide = tf.exp(m_large + t_large - tf.math.log(2.0 * t_large)
                  + tf.math.log1p(-tf.exp(-2.0 * t_large)))
    return tf.where(large, wide, moderate)


def _taylor_coefficients(coefs, terms):
    """c_n with ``exp[x0 + k0 d, x0 + k1 d, x0 + k2 d] = e^(x0 + kbar d) sum_n c_n d^n``.

    The divided difference of exp at points m + e_i is ``e^m sum_n h_n(e) / (n + 2)!`` with h_n
    the complete homogeneous symmetric polynomials (Newton: ``n h_n = sum_i p_i h_(n-i)``, p_i
    the power sums); here e_i = (k_i - kbar) d, so h_n(e) = d^n h_n(k - kbar)."""
    kbar = sum(coefs) / 3.0
    e = [k - kbar for k in coefs]
    power = [sum(x ** i for x in e) for i in range(terms + 1)]
    h = [1.0]
    for n in range(1, terms + 1):
        h.append(sum(power[i] * h[n - i] for i in range(1, n + 1)) / n)
    return [h[n] / math.factorial(n + 2) for n in range(terms + 1)]


def _ab_value(log_p, delta, alpha, beta):
    """d_AB^(alpha, beta) from log p and delta = log q - log p (same dtype and shape).

    With lam = alpha + beta, u = log p and v = log q, the five cases of the definition are one
    expression: ``d = delta^2 * exp[lam u, alpha u + beta v, lam v]``, the second divided
    difference of exp at three points (whose confluent limits are the special cases). The points
    are x0 + k delta with x0 = lam u and k in (0, beta, lam); the ordering of the k (a Python
    choice) makes the middle point the shared one, so the only cancellation left is the Taylor
    range's."""
    lam = alpha + beta
    coefs = (0.0, beta, lam)
    spread = max(coefs) - min(coefs)
    x0 = lam * log_p
    zero = tf.zeros_like(delta)
    if spread == 0.0:                 # alpha = beta = 0: d = delta^2 / 2 exactly
        return 0.5 * delta * delta
    small = tf.abs(delta) * spread < _TAYLOR_SPREAD[delta.dtype]
    d_s = tf.where(small, delta, zero)
    x0_s = tf.where(small, x0, zero)
    poly = zero
    for c in reversed(_taylor_coefficients(coefs, _TAYLOR_TERMS)):
        poly = poly * d_s + c
    taylor = d_s * d_s * tf.exp(x0_s + (sum(coefs) / 3.0) * d_s) * poly

    ki, km, kj = sorted(coefs)
    d_b = tf.where(small, zero + 2.0 * _TAYLOR_SPREAD[delta.dtype] / spread, delta)
    x0_b = tf.where(small, zero, x0)
    upper = _exp_dd1_of(x0_b, d_b, km, kj)
    lower = _exp_dd1_of(x0_b, d_b, ki, km)
    direct = d_b * (upper - lower) / (kj - ki)
    return tf.where(small, taylor, direct)


def _exp_dd1_of(x0, delta, k1, k2):
    """exp[x0 + k1 delta, x0 + k2 delta] for Python numbers k1, k2 (just an exp when they are
    equal, as on the special-case lines)."""
    if k1 == k2:
        return tf.exp(x0 + k1 * delta)
    return _exp_dd1(x0 + 0.5 * (k1 + k2) * delta, 0.5 * (k2 - k1) * delta)


def _ab_from_delta(log_p, delta, alpha, beta):
    """:func:`_ab_value` with its gradient in closed form (cheaper than differentiating the
    branches, and as continuous in (alpha, beta)): with u = log p, v = log q = u + delta,
    ``dd/dv = delta exp[alpha u + beta v, (alpha+beta) v]`` and, at fixed delta,
    ``dd/du = (alpha + beta) d`` (shifting both logs by c multiplies d by e^((alpha+beta) c))."""
    lam = alpha + beta

    @tf.custom_gradient
    def divergence(lp, dl):
        value = _ab_value(lp, dl, alpha, beta)

        def grad(upstream):
            slope = _exp_dd1_of(lam * lp, dl, beta, lam)
            return upstream * lam * value, upstream * dl * slope

        return value, grad

    return divergence(log_p, delta)


def ab_divergence_from_logs(log_p, log_q, alpha=0.25, beta=0.0):
    """The element-wise AB divergence ``d_AB^(alpha, beta)(p, q)`` from ``log p`` and ``log q``.

    This is what the losses use (with exponential activations the logs are the activations
    themselves, so ``exp`` of a large activation is never formed). See :func:`ab_divergence`
    for the definition. ``log_p`` and ``log_q`` broadcast against each other; the result is
    float32 (float64 when both inputs are float64).
    """
    alpha, beta = _real("alpha", alpha), _real("beta", beta)
    log_p, log_q = _as_float(log_p), _as_float(log_q)
    dtype = _compute_dtype(log_p, log_q)
    log_p, log_q = _broadcast(tf.cast(log_p, dtype), tf.cast(log_q, dtype))
    return _ab_from_delta(log_p, log_q - log_p, alpha, beta)


def ab_divergence(p, q, alpha=0.25, beta=0.0):
    """The element-wise AB divergence ``d_AB^(alpha, beta)(p, q)`` (Cichocki, Cruces and Amari
    2011) of positive p and q (same shape), as float32 (float64 when both are float64)::

        alpha, beta, alpha+beta != 0:  -(1/(alpha beta)) (p^a q^b - a/(a+b) p^(a+b) - b/(a+b) q^(a+b))
        beta = 0, alpha != 0:          (1/alpha^2) (p^alpha log(p^alpha / q^alpha) - p^alpha + q^alpha)
        alpha = -beta != 0:            (1/alpha^2) (log(q^alpha / p^alpha) + (q^alpha / p^alpha)^-1 - 1)
        alpha = 0, beta != 0:          (1/beta^2) (q^beta log(q^beta / p^beta) - q^beta + p^beta)
        alpha = beta = 0:              (1/2) (log p - log q)^2

    (a = alpha, b = beta in the first line). The sum over elements is D_AB(p || q); it is >= 0
    and zero iff p = q. All five cases are computed as one expression that is continuous in
    (alpha, beta) -- ``(log q - log p)^2`` times the second divided difference of exp at
    ``(alpha+beta) log p``, ``alpha log p + beta log q`` and ``(alpha+beta) log q`` -- in log
    space (no power of p is formed, so the result is finite whenever the exact value fits) and
    without cancellation for p close to q. ``alpha`` and ``beta`` are Python numbers.
    """
    alpha, beta = _real("alpha", alpha), _real("beta", beta)
    p, q = _as_float(p), _as_float(q)
    dtype = _compute_dtype(p, q)
    p, q = _broadcast(tf.cast(p, dtype), tf.cast(q, dtype))
    log_p = tf.math.log(p)
    # log(q/p) = log1p((q - p)/p) when q is within a factor 1.5 of p: q - p is exact there,
    # log q - log p would lose the digits of delta to the rounding of the two logs. Tiny p and q
    # are scaled by 2^64 (exactly) first, so that q - p is never a subnormal that the CPU
    # flushes to zero.
    close = tf.abs(q - p) <= 0.5 * p
    lift = tf.where(p < 2.0 ** -60, 2.0 ** 64 * tf.ones_like(p), tf.ones_like(p))
    p_safe = tf.where(close, p, tf.ones_like(p)) * lift
    q_safe = tf.where(close, q, tf.ones_like(q)) * lift
    delta = tf.where(close, tf.math.log1p((q_safe - p_safe) / p_safe), tf.math.log(q) - log_p)
    return _ab_from_delta(log_p, delta, alpha, beta)


# -- Keras losses ------------------------------------------------------------------------------

def _scale_value(scale):
    """None, a positive float, or a tuple of positive floats (one per feature)."""
    if scale is None:
        return None
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        return _positive("scale", scale)
    try:
        values = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be None, a positive number or a 1-D sequence of positive "
                         f"numbers (one per feature), got {scale!r}") from None
    if values.ndim == 0:
        return _positive("scale", float(values))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scale must be a 1-D sequence of per-feature values, got shape "
                         f"{values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("scale must hold finite values > 0 (teacher_scale replaces dead "
                         "features' 0 by 1)")
    return tuple(float(v) for v in values)


def _pair(y_true, y_pred):
    """Teacher (no gradient) and student activations as float32, checked for (B, ..., C)."""
    y = tf.stop_gradient(tf.cast(_as_float(y_true), tf.float32))
    z = tf.cast(_as_float(y_pred), tf.float32)
    if y.shape.rank is not None and y.shape.rank < 2:
        raise ValueError(f"distillation losses need (batch, ..., features) activations, got "
                         f"shape {y.shape}")
    if not y.shape.is_compatible_with(z.shape):
        raise ValueError(f"teacher (y_true) and student (y_pred) shapes differ: {y.shape} vs "
                         f"{z.shape}")
    return y, z


def _per_example(values):
    """Mean over every axis but the batch axis: shape (B,)."""
    rank = values.shape.rank
    return tf.reduce_mean(values, axis=list(range(1, rank))) if rank > 1 else values


class _Distillation(keras.losses.Loss):
    def __init__(self, scale=None, normalize_student=True, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.scale = _scale_value(scale)
        self.normalize_student = bool(normalize_student)

    def _normalised(self, y_true, y_pred):
        """(y/s, z/s) -- or (y/s, z) without student normalisation -- as float32."""
        y, z = _pair(y_true, y_pred)
        if self.scale is None:
            return y, z
        if isinstance(self.scale, tuple):
            features = y.shape[-1]
            if features is not None and features != len(self.scale):
                raise ValueError(f"scale has {len(self.scale)} per-feature values for "
                                 f"activations with {features} features (shape {y.shape})")
        s = tf.constant(self.scale, tf.float32)
        return y / s, (z / s if self.normalize_student else z)

    def get_config(self):
        config = super().get_config()
        config.update(scale=list(self.scale) if isinstance(self.scale, tuple) else self.scale,
                      normalize_student=self.normalize_student)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class ABDivergence(_Distillation):
    """``(1/C) D_AB^(alpha, beta)(exp(y/s) || exp(z/s))``: the AB divergence on exponential
    activations, per feature, pre-normalised by the teacher statistics s.

    Args:
        alpha, beta: the divergence's parameters (Python numbers). Default (1/4, 0): the
            generalised KL at temperature T = 1/alpha = 4, the choice for every distillation
            problem of the thesis. alpha + beta is an inverse temperature; (0, 0) is squared L2,
            ``(y/s - z/s)^2 / 2`` per feature; alpha = beta is symmetric; alpha = -beta is
            shift invariant.
        scale: s -- None (no pre-normalisation), a positive number (one s for all features) or
            C per-feature values (:func:`teacher_scale`).
        normalize_student: divide the student's activations by s too (default); False leaves
            z as it is, so that the student learns normalised activations.
        reduction: Keras reduction of :meth:`__call__`; ``call`` returns shape (B,).
    """

    def __init__(self, alpha=0.25, beta=0.0, scale=None, normalize_student=True,
                 reduction="sum_over_batch_size", name="ab_divergence", dtype=None):
        super().__init__(scale=scale, normalize_student=normalize_student, reduction=reduction,
                         name=name, dtype=dtype)
        self.alpha, self.beta = _real("alpha", alpha), _real("beta", beta)

    def call(self, y_true, y_pred):
        y, z = self._normalised(y_true, y_pred)
        return _per_example(ab_divergence_from_logs(y, z, self.alpha, self.beta))

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, beta=self.beta)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class ExpDistillation(_Distillation):
    """``(T^2/C) sum_c [e^a (a - b) - e^a + e^b]`` with a = y/(s T), b = z/(s T): the
    generalised KL of the unnormalised exponentials ``exp(y/(sT))`` and ``exp(z/(sT))`` times
    T^2, per feature. Equal to ``ABDivergence(alpha=1/T, beta=0)``; computed independently, as
    ``e^a (expm1(b - a) - (b - a))`` (the same sum, without the loss of digits of e^a - e^a).
    Its gradient with respect to z/s is ``T (e^b - e^a) / C``.

    Args:
        temperature: T > 0 (default 4). As T grows the loss tends to
            ``(1/(2C)) sum (y/s - z/s)^2``.
        scale, normalize_student, reduction: as in :class:`ABDivergence`.
    """

    def __init__(self, temperature=4.0, scale=None, normalize_student=True,
                 reduction="sum_over_batch_size", name="exp_distillation", dtype=None):
        super().__init__(scale=scale, normalize_student=normalize_student, reduction=reduction,
                         name=name, dtype=dtype)
        self.temperature = _positive("temperature", temperature)

    def call(self, y_true, y_pred):
        y, z = self._normalised(y_true, y_pred)
        t = self.temperature
        a, b = y / t, z / t
        x = b - a
        return t * t * _per_example(tf.exp(a) * (tf.math.expm1(x) - x))

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class TemperatureKL(keras.losses.Loss):
    """``T^2 KL(softmax(y/T) || softmax(z/T))`` over the last axis (classes): classic
    distillation of the teacher's logits y into the student's logits z. Its gradient with
    respect to z is ``T (softmax(z/T) - softmax(y/T))``.

    Args:
        temperature: T > 0 (default 4).
        reduction: Keras reduction of :meth:`__call__`; ``call`` returns shape (B,) (the KL of
            each logit vector, averaged over any axes between batch and classes).
    """

    def __init__(self, temperature=4.0, reduction="sum_over_batch_size", name="temperature_kl",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.temperature = _positive("temperature", temperature)

    def call(self, y_true, y_pred):
        y, z = _pair(y_true, y_pred)
        t = self.temperature
        log_p = tf.nn.log_softmax(y / t, axis=-1)
        log_q = tf.nn.log_softmax(z / t, axis=-1)
        kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
        return t * t * _per_example(kl)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config


def make_loss(kind, **options):
    """A distillation loss by kind: ``"kl"`` (:class:`TemperatureKL`), ``"ab"``
    (:class:`ABDivergence`), ``"exp"`` (:class:`ExpDistillation`) or ``"l2"``
    (``ABDivergence(alpha=0, beta=0)``: ``(1/(2C)) sum (y/s - z/s)^2``); ``options`` go to the
    class (``temperature``, ``alpha``, ``beta``, ``scale``, ``normalize_student``, ...)."""
    if kind == "kl":
        return TemperatureKL(**options)
    if kind == "ab":
        return ABDivergence(**options)
    if kind == "exp":
        return ExpDistillation(**options)
    if kind == "l2":
        fixed = sorted({"alpha", "beta"} & set(options))
        if fixed:
            raise ValueError(f"the l2 loss is the AB divergence at (0, 0); it takes no "
                             f"{', '.join(fixed)}")
        return ABDivergence(alpha=0.0, beta=0.0, name="l2_distillation", **options)
    raise ValueError(f"unknown distillation loss {kind!r}; known: {', '.join(LOSS_KINDS)}")


# -- teacher statistics ------------------------------------------------------------------------

def _batches(features):
    if isinstance(features, (np.ndarray, np.generic, tf.Tensor, tf.Variable)):
        return [features]
    if isinstance(features, (str, bytes)) or not hasattr(features, "__iter__"):
        raise ValueError(f"features must be an array of activations (N, ..., C) or an iterable "
                         f"of such batches, got {type(features).__name__}")
    return features


def teacher_scale(features, per_feature=True):
    """The teacher statistics s of the pre-normalisation: ``s = sqrt(E[y^2])``.

    Args:
        features: the teacher's activations y, one array (N, ..., C) or an iterable of such
            batches (NumPy arrays, tensors, a ``tf.data.Dataset`` of activation batches); the
            expectation runs over every row and position (every axis but the last).
        per_feature: one s per feature, shape (C,) (default; preferred when the teacher is a
            concatenation of networks whose scales differ), or one scalar over all features.

    Returns:
        a float32 NumPy array (C,), or a Python float. A feature that is zero on all the data
        (a dead unit, s = 0) gets s = 1.0 instead, so that dividing by s stays finite (its
        activations are 0 either way); likewise a scalar s of 0 becomes 1.0.
    """
    total, count, features_c = None, 0, None
    for batch in _batches(features):
        values = np.asarray(batch, dtype=np.float64)
        if values.ndim == 0:
            raise ValueError("each batch of activations needs a feature axis (..., C), got a "
                             "scalar")
        if features_c is not None and values.shape[-1] != features_c:
            raise ValueError(f"batches have different feature counts: {features_c} and "
                             f"{values.shape[-1]}")
        features_c = values.shape[-1]
        values = values.reshape(-1, features_c)
        if not np.all(np.isfinite(values)):
            raise ValueError("the teacher's activations hold non-finite values")
        squares = np.sum(values * values, axis=0)
        total = squares if total is None else total + squares
        count += values.shape[0]
    if not count or not features_c:
        raise ValueError("teacher_scale needs at least one row of activations")
    if per_feature:
        s = np.sqrt(total / count).astype(np.float32)
        if not np.all(np.isfinite(s)):
            raise ValueError("the teacher's root mean square exceeds the float32 range")
        return np.where(s > 0, s, np.float32(1.0)).astype(np.float32)
    s = float(np.float32(math.sqrt(float(np.sum(total)) / (count * features_c))))
    if not math.isfinite(s):
        raise ValueError("the teacher's root mean square exceeds the float32 range")
    return s if s > 0 else 1.0
