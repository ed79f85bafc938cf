"""Tests for tfcolor.distill.losses: the AB divergence against a NumPy float64 and a 60-digit
reference of its definition (every case, the lines between them, tiny and large values, p close
to q), gradients against finite differences and the printed gradients, the limits and
symmetries the text states, and the Keras losses (configs, compile/fit, mixed precision).

Tolerances are multiples of float32's epsilon scaled by the condition of the inputs: exponents
of size |x| carry a rounding of eps |x|, and log q - log p loses eps |log p| / |log q - log p|
when formed from the two logs."""
import decimal
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import losses as tfcolor_losses
from tfcolor.distill import losses

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import layer_testing  # noqa: E402

EPS = float(np.finfo(np.float32).eps)

# (alpha, beta): the four special-case lines, their intersection, generic points on every side,
# the text's default, and points just off the special-case lines.
CASES = [(0.25, 0.0), (1.0, 0.0), (-0.5, 0.0), (0.0, 1.0), (0.0, -0.3), (0.5, -0.5),
         (-1.0, 1.0), (0.0, 0.0), (0.3, 0.7), (1.0, 1.0), (-0.5, 0.2), (2.0, -0.5),
         (-0.4, -0.6), (1e-4, 0.0), (0.25, 1e-4), (1e-4, 0.5), (0.5, -0.4999), (1e-4, -1e-4)]


# -- references ----------------------------------------------------------------------------------

def _ref_numpy(p, q, a, b):
    """Eq. 4.6 as printed, in float64, case by case."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if a != 0 and b != 0 and a + b != 0:
        return -(p ** a * q ** b - a / (a + b) * p ** (a + b) - b / (a + b) * q ** (a + b)) / (
                a * b)
    if a != 0 and b == 0:
        return (p ** a * np.log(p ** a / q ** a) - p ** a + q ** a) / a ** 2
    if a != 0 and a == -b:
        return (np.log(q ** a / p ** a) + (q ** a / p ** a) ** -1 - 1) / a ** 2
    if a == 0 and b != 0:
        return (q ** b * np.log(q ** b / p ** b) - q ** b + p ** b) / b ** 2
    return 0.5 * (np.log(p) - np.log(q)) ** 2


def _ref_decimal(log_p, log_q, a, b):
    """Eq. 4.6 with 60 significant digits, from the logs (exact float values): no cancellation
    near p = q or near the special-case lines reaches the float64 result."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        case = (a != 0 and b != 0 and a + b != 0, a != 0 and b == 0, a != 0 and a == -b,
                a == 0 and b != 0)                     # chosen on the floats, as the caller's
        a, b = decimal.Decimal(float(a)), decimal.Decimal(float(b))
        out = []
        for u, v in zip(np.ravel(log_p).tolist(), np.ravel(log_q).tolist()):
            u, v = decimal.Decimal(u), decimal.Decimal(v)
            if case[0]:
                d = -((a * u + b * v).exp() - a / (a + b) * ((a + b) * u).exp()
                      - b / (a + b) * ((a + b) * v).exp()) / (a * b)
            elif case[1]:
                pa = (a * u).exp()
                d = (pa * a * (u - v) - pa + (a * v).exp()) / a ** 2
            elif case[2]:
                d = (a * (v - u) + (a * (u - v)).exp() - 1) / a ** 2
            elif case[3]:
                qb = (b * v).exp()
                d = (qb * b * (v - u) - qb + (b * u).exp()) / b ** 2
            else:
                d = (u - v) ** 2 / 2
            out.append(float(d))
    return np.array(out).reshape(np.shape(log_p))


def _rtol(log_p, log_q, a, b, from_logs=True):
    """8 eps times the condition: the exponents' size |alpha+beta| |log|, the spread of the
    three exponents |log q - log p| max(0, beta, alpha+beta) - min(...), and (for p, q given as
    values) the rounding of log p and log q relative to their difference."""
    log_p, log_q = np.asarray(log_p, np.float64), np.asarray(log_q, np.float64)
    size = np.maximum(np.abs(log_p), np.abs(log_q))
    delta = np.abs(log_q - log_p)
    spread = max(0.0, b, a + b) - min(0.0, b, a + b)
    condition = 1.0 + abs(a + b) * size + spread * delta
    if not from_logs:
        condition = condition + np.where(delta > math.log(1.5) - 1e-3,
                                         size / np.maximum(delta, 1e-30), 0.0)
    return 8.0 * EPS * condition


def _assert_close_to(actual, expected, rtol):
    actual = np.asarray(actual, np.float64)
    assert np.all(np.isfinite(actual)), actual[~np.isfinite(actual)]
    err = np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-300)
    worst = np.argmax(err / rtol)
    assert np.all(err <= rtol), (f"relative error {err.flat[worst]:.3g} > {rtol.flat[worst]:.3g} "
                                 f"(got {actual.flat[worst]!r}, expected {expected.flat[worst]!r})")


def _random_logs(seed, n=400, scale=2.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=n) * scale).astype(np.float32), (
            rng.normal(size=n) * scale).astype(np.float32)


# -- the element-wise divergence -----------------------------------------------------------------

def test_references_agree_with_each_other():
    """The printed-formula float64 reference and the 60-digit one agree where float64 has no
    cancellation, for every case (so neither reference has a case wrong)."""
    log_p, log_q = _random_logs(0, n=200)
    keep = np.abs(log_q - log_p) > 0.1
    for a, b in [(a, b) for a, b in CASES if all(x == 0 or abs(x) > 0.1 for x in (a, b, a + b))]:
        np.testing.assert_allclose(
                _ref_numpy(np.exp(log_p[keep].astype(np.float64)),
                           np.exp(log_q[keep].astype(np.float64)), a, b),
                _ref_decimal(log_p[keep], log_q[keep], a, b), rtol=1e-9, err_msg=str((a, b)))


@pytest.mark.parametrize("a, b", [c for c in CASES if 1e-4 not in map(abs, c)
                                  and c != (0.5, -0.4999)])
def test_ab_divergence_matches_numpy_reference_on_random_inputs(a, b):
    log_p, log_q = _random_logs(1, n=2000)
    p, q = np.exp(log_p).astype(np.float32), np.exp(log_q).astype(np.float32)
    lp, lq = np.log(p.astype(np.float64)), np.log(q.astype(np.float64))
    keep = np.abs(lq - lp) > 0.01        # float64's own cancellation stays below 1e-13 there
    d = losses.ab_divergence(p, q, a, b)
    assert d.dtype == tf.float32 and d.shape == p.shape
    _assert_close_to(d.numpy()[keep], _ref_numpy(p[keep], q[keep], a, b),
                     _rtol(lp[keep], lq[keep], a, b, from_logs=False))


@pytest.mark.parametrize("a, b", CASES)
def test_ab_divergence_from_logs_matches_exact_reference(a, b):
    """Random logs, logs far apart, and logs close together (p close to q, where the printed
    formula cancels), on and near every special-case line."""
    rng = np.random.default_rng(2)
    log_p = rng.normal(size=300) * 3
    log_q = np.concatenate([rng.normal(size=100) * 3,
                            log_p[100:200] + rng.normal(size=100) * 10.0 ** rng.uniform(-7, 0, 100),
                            log_p[200:] + 2.0 ** -20 * rng.integers(-4, 5, 100)])
    log_p, log_q = log_p.astype(np.float32), log_q.astype(np.float32)
    keep = log_p != log_q
    d = losses.ab_divergence_from_logs(log_p, log_q, a, b).numpy()
    assert np.all(d[~keep] == 0)
    _assert_close_to(d[keep], _ref_decimal(log_p[keep], log_q[keep], a, b),
                     _rtol(log_p[keep], log_q[keep], a, b))


@pytest.mark.parametrize("a, b", [(0.25, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.5, -0.5),
                                  (0.25, 0.25), (-0.25, 0.0), (0.3, -0.1), (0.25, -0.2499)])
def test_adversarial_inputs_are_finite_and_accurate(a, b):
    """Logs up to +-80 (p from 1.8e-35 to 5.5e34), p within a few ulps of q, tiny p (1e-30)."""
    rng = np.random.default_rng(3)
    log_p = rng.uniform(-80, 80, 400)
    log_q = np.concatenate([rng.uniform(-80, 80, 200), log_p[200:300] + rng.normal(size=100)
                            * 10.0 ** rng.uniform(-6, 0, 100), -log_p[300:]])
    log_p, log_q = log_p.astype(np.float32), log_q.astype(np.float32)
    expected = _ref_decimal(log_p, log_q, a, b)
    fits = (expected < 1e37) & (expected > 1e-37)       # the exact value is a normal float32
    assert fits.sum() > 300
    got = losses.ab_divergence_from_logs(log_p, log_q, a, b).numpy()
    _assert_close_to(got[fits], expected[fits], _rtol(log_p[fits], log_q[fits], a, b))

    p = np.concatenate([np.exp(log_p.astype(np.float64)), [1e-30] * 4]).astype(np.float32)
    q = np.concatenate([np.exp(log_q.astype(np.float64)),
                        1e-30 * (1 + EPS * np.array([1, 3, -2, 1e6]))]).astype(np.float32)
    normal = (p > 1e-37) & (q > 1e-37) & (p < 1e37) & (q < 1e37) & (p != q)
    lp, lq = np.log(p[normal].astype(np.float64)), np.log(q[normal].astype(np.float64))
    expected = _ref_decimal(lp, lq, a, b)
    fits = (expected < 1e37) & (expected > 1e-37)
    got = losses.ab_divergence(p[normal], q[normal], a, b).numpy()
    assert np.all(np.isfinite(got))
    _assert_close_to(got[fits], expected[fits], _rtol(lp[fits], lq[fits], a, b, from_logs=False))


def test_finite_when_the_powers_overflow_but_the_divergence_does_not():
    """On the scale-invariant line the divergence depends on q/p only: logs of +-200 (p^alpha
    = e^100 and more, beyond float32) still give the exact, moderate value."""
    log_p = np.array([-200.0, -150.0, 200.0, 0.0, -100.0], np.float32)
    log_q = np.array([200.0, 150.0, -100.0, 180.0, 100.0], np.float32)
    for a in (0.5, -0.25):
        expected = _ref_decimal(log_p, log_q, a, -a)
        fits = expected < 1e37
        assert fits.sum() >= 3
        got = losses.ab_divergence_from_logs(log_p, log_q, a, -a).numpy()
        _assert_close_to(got[fits], expected[fits], _rtol(log_p[fits], log_q[fits], a, -a))
    expected = _ref_decimal(log_p[:2], log_q[:2], 0.1, 0.0)          # e^(0.1 * 200), mid-way
    _assert_close_to(losses.ab_divergence_from_logs(log_p[:2], log_q[:2], 0.1, 0.0).numpy(),
                     expected, _rtol(log_p[:2], log_q[:2], 0.1, 0.0))


@pytest.mark.parametrize("line", ["alpha=0", "beta=0", "alpha=-beta", "origin"])
def test_continuous_across_the_special_case_lines(line):
    """A point 1e-4 off a special-case line gives nearly the line's value (relative change
    O(1e-4)): the cases of the definition join up."""
    log_p, log_q = _random_logs(4, n=200)
    on, off = {"alpha=0": ((0.0, 0.5), (1e-4, 0.5)), "beta=0": ((0.25, 0.0), (0.25, 1e-4)),
               "alpha=-beta": ((0.5, -0.5), (0.5, -0.4999)),
               "origin": ((0.0, 0.0), (1e-4, -2e-4))}[line]
    d_on = losses.ab_divergence_from_logs(log_p, log_q, *on).numpy()
    d_off = losses.ab_divergence_from_logs(log_p, log_q, *off).numpy()
    scale = 1e-4 * (1 + np.maximum(np.abs(log_p), np.abs(log_q))) ** 2
    assert np.all(np.abs(d_off - d_on) <= 2 * scale * np.maximum(d_on, 1e-30))
    assert np.any(d_off != d_on)


def test_divergence_is_zero_only_on_the_diagonal():
    rng = np.random.default_rng(5)
    log_p = (rng.normal(size=50) * 5).astype(np.float32)
    for a, b in CASES:
        assert np.all(losses.ab_divergence_from_logs(log_p, log_p, a, b).numpy() == 0), (a, b)
        d = losses.ab_divergence_from_logs(log_p, log_p + 1e-3, a, b).numpy()
        assert np.all(d > 0), (a, b)


def test_symmetric_on_the_alpha_equals_beta_line():
    log_p, log_q = _random_logs(6)
    for t in (0.3, 1.0, -0.5):
        forward = losses.ab_divergence_from_logs(log_p, log_q, t, t).numpy()
        backward = losses.ab_divergence_from_logs(log_q, log_p, t, t).numpy()
        _assert_close_to(forward, backward.astype(np.float64),
                         2 * _rtol(log_p, log_q, t, t))
    # reflection about alpha = beta swaps the arguments
    _assert_close_to(losses.ab_divergence_from_logs(log_p, log_q, 0.25, 0.0).numpy(),
                     losses.ab_divergence_from_logs(log_q, log_p, 0.0, 0.25).numpy()
                     .astype(np.float64), 2 * _rtol(log_p, log_q, 0.25, 0.0))
    off_line = losses.ab_divergence_from_logs(log_q, log_p, 0.25, 0.0).numpy()
    assert np.max(np.abs(off_line / forward - 1)) > 0.1     # not symmetric off the line


def test_scale_invariant_on_the_alpha_equals_minus_beta_line():
    """D(cp || cq) = D(p || q): with exponential activations, a shift of both logs. Dyadic logs
    and c = 2^k keep every input exact, so the values must agree to the last bit's rounding."""
    rng = np.random.default_rng(7)
    log_p = (rng.integers(-4096, 4096, 300) / 1024).astype(np.float32)
    log_q = (rng.integers(-4096, 4096, 300) / 1024).astype(np.float32)
    p, q = np.exp2(log_p).astype(np.float32), np.exp2(log_q).astype(np.float32)
    for a in (0.5, -1.0, 2.0):
        base = losses.ab_divergence(p, q, a, -a).numpy()
        for k in (-60, 60):
            c = np.float32(2.0 ** k)
            scaled = losses.ab_divergence(c * p, c * q, a, -a).numpy()
            _assert_close_to(scaled, base.astype(np.float64),
                             _rtol(log_p, log_q, a, -a, from_logs=False) * (1 + abs(k)))
        shifted = losses.ab_divergence_from_logs(log_p + 32, log_q + 32, a, -a).numpy()
        np.testing.assert_allclose(shifted, losses.ab_divergence_from_logs(
                log_p, log_q, a, -a).numpy(), rtol=8 * EPS)
    # off the line the scale matters: d(cp, cq) = c^(alpha+beta) d(p, q)
    scaled = losses.ab_divergence(4 * p, 4 * q, 0.25, 0.0).numpy()
    np.testing.assert_allclose(scaled, math.sqrt(2) * losses.ab_divergence(p, q, 0.25, 0.0),
                               rtol=1e-5)


def test_float16_inputs_compute_in_float32():
    log_p, log_q = _random_logs(8, n=50, scale=1.0)
    half_p, half_q = log_p.astype(np.float16), log_q.astype(np.float16)
    d = losses.ab_divergence_from_logs(tf.constant(half_p), tf.constant(half_q))
    assert d.dtype == tf.float32
    np.testing.assert_array_equal(d.numpy(), losses.ab_divergence_from_logs(
            half_p.astype(np.float32), half_q.astype(np.float32)).numpy())
    p = tf.constant(np.exp(half_p.astype(np.float32)).astype(np.float16))
    assert losses.ab_divergence(p, p).dtype == tf.float32


def test_bad_parameters_are_one_line_errors():
    for bad in (float("nan"), float("inf"), True, "0.5", None):
        with pytest.raises(ValueError, match="alpha"):
            losses.ab_divergence(1.0, 2.0, bad, 0.0)
        with pytest.raises(ValueError, match="beta"):
            losses.ab_divergence_from_logs(1.0, 2.0, 0.5, bad)
    with pytest.raises(ValueError, match="real"):
        losses.ab_divergence(tf.constant(["a"]), tf.constant(["b"]))


# -- gradients -----------------------------------------------------------------------------------

def _grads(fn, *args):
    args = [tf.constant(x) for x in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        value = tf.reduce_sum(fn(*args))
    return [None if g is None else g.numpy() for g in tape.gradient(value, args)]


@pytest.mark.parametrize("a, b", CASES)
def test_gradients_match_central_differences_in_float64(a, b):
    rng = np.random.default_rng(9)
    log_p = rng.normal(size=60) * 2
    log_q = np.concatenate([rng.normal(size=30) * 2, log_p[30:] + rng.normal(size=30) * 1e-2])
    grad_p, grad_q = _grads(lambda u, v: losses.ab_divergence_from_logs(u, v, a, b),
                            log_p, log_q)
    h = 1e-6
    f = lambda u, v: losses.ab_divergence_from_logs(u, v, a, b).numpy()  # noqa: E731
    fd_p = (f(log_p + h, log_q) - f(log_p - h, log_q)) / (2 * h)
    fd_q = (f(log_p, log_q + h) - f(log_p, log_q - h)) / (2 * h)
    # central differences: truncation ~h^2 f''' and rounding ~1e-16 f / h
    value = f(log_p, log_q)
    atol = 1e-7 * (1 + value + np.abs(fd_p) + np.abs(fd_q))
    np.testing.assert_array_less(np.abs(grad_p - fd_p), atol, err_msg=str((a, b)))
    np.testing.assert_array_less(np.abs(grad_q - fd_q), atol)
    # d(p, q) as a function of the values: chain rule through log, checked the same way
    p, q = np.exp(log_p), np.exp(log_q)
    g_p, _ = _grads(lambda x, y: losses.ab_divergence(x, y, a, b), p, q)
    np.testing.assert_allclose(g_p * p, grad_p, rtol=1e-9, atol=1e-12)


def test_gradients_are_finite_on_the_diagonal_and_for_extreme_inputs():
    log_p = np.array([0.0, 3.0, -80.0, 80.0, 80.0, -80.0, 1.0], np.float32)
    log_q = np.array([0.0, 3.0, -80.0, 80.0, -80.0, 80.0, 1.0 + 1e-7], np.float32)
    for a, b in [(0.25, 0.0), (0.0, 0.0), (0.5, -0.5), (0.0, 1.0), (0.25, 0.25)]:
        grad_p, grad_q = _grads(lambda u, v: losses.ab_divergence_from_logs(u, v, a, b),
                                log_p, log_q)
        assert np.all(np.isfinite(grad_p)) and np.all(np.isfinite(grad_q)), (a, b)
        assert np.all(grad_p[:4] == 0) and np.all(grad_q[:4] == 0), (a, b)
        p = np.exp(log_p[:4].astype(np.float64)).astype(np.float32)
        g, h = _grads(lambda x, y: losses.ab_divergence(x, y, a, b), p, p)
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(h)), (a, b)


def test_new_loss_gradient_is_the_printed_one():
    """d L_new / d z_c = T (e^(z_c/(sT)) - e^(y_c/(sT))) / (C s_c): the text's gradient with
    respect to z/s, times 1/s for the raw student activations."""
    rng = np.random.default_rng(10)
    y = rng.normal(size=(3, 8)).astype(np.float32) * 2
    z = rng.normal(size=(3, 8)).astype(np.float32) * 2
    s = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    t = 4.0
    expected = t * (np.exp(z / s / t) - np.exp(y / s / t)) / (8 * s)
    for loss in (losses.ABDivergence(alpha=1 / t, beta=0.0, scale=s),
                 losses.ExpDistillation(temperature=t, scale=s)):
        teacher_grad, grad = _grads(loss.call, y, z)
        assert teacher_grad is None                          # the teacher is not trained
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_temperature_kl_value_and_printed_gradient():
    rng = np.random.default_rng(11)
    y = rng.normal(size=(4, 10)).astype(np.float32) * 3
    z = rng.normal(size=(4, 10)).astype(np.float32) * 3
    t = 4.0

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(y.astype(np.float64) / t), softmax(z.astype(np.float64) / t)
    loss = losses.TemperatureKL(temperature=t)
    np.testing.assert_allclose(loss.call(y, z).numpy(), t * t * np.sum(p * np.log(p / q), -1),
                               rtol=1e-5, atol=1e-6)
    _, grad = _grads(loss.call, y, z)
    np.testing.assert_allclose(grad, t * (q - p), rtol=1e-5, atol=1e-6)
    assert np.all(loss.call(y, y + 5.0).numpy() == pytest.approx(0.0, abs=1e-5))  # shift


# -- the limits and identities of the text -------------------------------------------------------

def test_origin_is_half_squared_l2_of_the_exponential_activations():
    rng = np.random.default_rng(12)
    y = rng.normal(size=(5, 6, 7)).astype(np.float32) * 3
    z = rng.normal(size=(5, 6, 7)).astype(np.float32) * 3
    s = rng.uniform(0.5, 2.0, 7).astype(np.float32)
    expected = np.mean(0.5 * ((y / s).astype(np.float64) - z / s) ** 2, axis=(1, 2))
    for loss in (losses.ABDivergence(alpha=0.0, beta=0.0, scale=s),
                 losses.make_loss("l2", scale=s)):
        np.testing.assert_allclose(loss.call(y, z).numpy(), expected, rtol=16 * EPS)


def test_new_loss_tends_to_half_squared_l2_at_rate_one_over_t():
    """L_T - L_inf = c / T + O(1/T^2) with c = mean(y delta^2/2 + delta^3/6), delta = z - y
    (the next term of T^2 e^a (expm1(b - a) - (b - a)) in 1/T)."""
    rng = np.random.default_rng(13)
    y = rng.normal(size=(4, 16))
    z = rng.normal(size=(4, 16))
    delta = z - y
    l_inf = np.mean(0.5 * delta ** 2, -1)
    c = np.mean(y * delta ** 2 / 2 + delta ** 3 / 6, -1)
    gaps = []
    for t in (10.0, 100.0, 1000.0, 10000.0):
        l_t = np.mean(losses.ab_divergence_from_logs(y, z, 1 / t, 0.0).numpy(), -1)
        gaps.append(t * (l_t - l_inf) - c)
    gaps = np.abs(np.array(gaps))
    assert np.all(gaps[1:] < gaps[:-1] / 5), gaps      # T (L_T - L_inf) -> c, error O(1/T)
    assert np.all(gaps[-1] < 1e-3 * (np.abs(c) + l_inf)), gaps
    float32_loss = losses.ABDivergence(alpha=1e-3).call(y.astype(np.float32),
                                                        z.astype(np.float32)).numpy()
    np.testing.assert_allclose(float32_loss, l_inf + c / 1000, rtol=1e-4)


@pytest.mark.parametrize("scale", [None, 1.7, "per_feature"])
@pytest.mark.parametrize("normalize_student", [True, False])
@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_exp_distillation_equals_ab_divergence_at_one_over_t(scale, normalize_student,
                                                             temperature):
    rng = np.random.default_rng(14)
    y = rng.normal(size=(6, 9)).astype(np.float32) * 3
    z = rng.normal(size=(6, 9)).astype(np.float32) * 3
    if scale == "per_feature":
        scale = rng.uniform(0.5, 3.0, 9)
    exp_loss = losses.ExpDistillation(temperature, scale=scale,
                                      normalize_student=normalize_student)
    ab_loss = losses.ABDivergence(1 / temperature, 0.0, scale=scale,
                                  normalize_student=normalize_student)
    got, expected = exp_loss.call(y, z).numpy(), ab_loss.call(y, z).numpy()
    # ExpDistillation: e^a (expm1(x) - x) loses eps (|expm1 x| + |x|) e^a absolutely per feature
    s = 1.0 if scale is None else np.asarray(scale, np.float32)
    a = y / s / temperature
    b = (z / s if normalize_student else z) / temperature
    slack = 8 * EPS * temperature ** 2 * np.mean(np.exp(a) * (np.abs(np.expm1(b - a)) + np.abs(
            b - a) + 1), -1)
    assert np.all(np.abs(got - expected) <= slack + 16 * EPS * expected), (got, expected)


def test_student_normalisation_option():
    rng = np.random.default_rng(15)
    y = rng.normal(size=(3, 4)).astype(np.float32)
    z = rng.normal(size=(3, 4)).astype(np.float32)
    s = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    kept = losses.ABDivergence(scale=s, normalize_student=False).call(y, z).numpy()
    np.testing.assert_allclose(kept, np.mean(losses.ab_divergence_from_logs(y / s, z), -1),
                               rtol=1e-6)
    both = losses.ABDivergence(scale=s).call(y, z).numpy()
    np.testing.assert_allclose(both, np.mean(losses.ab_divergence_from_logs(y / s, z / s), -1),
                               rtol=1e-6)
    assert np.all(kept != both)
    scalar = losses.ABDivergence(scale=2.0).call(y, z).numpy()
    np.testing.assert_allclose(scalar, np.mean(losses.ab_divergence_from_logs(y / 2, z / 2), -1),
                               rtol=1e-6)


def test_losses_are_zero_only_when_student_equals_teacher():
    rng = np.random.default_rng(16)
    y = rng.normal(size=(4, 2, 5)).astype(np.float32) * 2
    z = y.copy()
    z[1, 0, 3] += 0.01
    for loss in (losses.ABDivergence(), losses.ABDivergence(0.0, 0.0, scale=2.0),
                 losses.ABDivergence(0.5, -0.5), losses.ExpDistillation(),
                 losses.make_loss("ab", alpha=1.0, beta=1.0)):
        assert np.all(loss.call(y, y).numpy() == 0), loss.name
        values = loss.call(y, z).numpy()
        assert values.shape == (4,)
        assert values[1] > 0 and np.all(values[[0, 2, 3]] == 0), (loss.name, values)


def test_per_example_values_average_the_features_and_positions():
    rng = np.random.default_rng(17)
    y = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    z = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    loss = losses.ABDivergence()
    d = losses.ab_divergence_from_logs(y, z).numpy()
    np.testing.assert_allclose(loss.call(y, z).numpy(), d.mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(loss(y, z).numpy(), d.mean(), rtol=1e-6)      # batch mean
    assert losses.ABDivergence(reduction=None)(y, z).shape == (2,)


# -- Keras -------------------------------------------------------------------------------------

def _all_losses():
    return [losses.TemperatureKL(temperature=2.5), losses.ABDivergence(),
            losses.ABDivergence(0.5, -0.5, scale=[1.0, 2.0, 3.0], normalize_student=False),
            losses.ExpDistillation(temperature=8.0, scale=1.5),
            losses.make_loss("l2", reduction="sum")]


@pytest.mark.parametrize("loss", _all_losses(), ids=lambda l: l.name)
def test_config_round_trip(loss):
    config = loss.get_config()
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    rng = np.random.default_rng(18)
    y, z = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored(y, z).numpy(), loss(y, z).numpy())


def test_make_loss_kinds_and_errors():
    assert isinstance(losses.make_loss("kl", temperature=3.0), losses.TemperatureKL)
    ab = losses.make_loss("ab")
    assert isinstance(ab, losses.ABDivergence) and (ab.alpha, ab.beta) == (0.25, 0.0)
    assert losses.make_loss("exp").temperature == 4.0
    l2 = losses.make_loss("l2", scale=2.0)
    assert (l2.alpha, l2.beta, l2.scale) == (0.0, 0.0, 2.0)
    assert set(losses.LOSS_KINDS) == {"kl", "ab", "exp", "l2"}
    with pytest.raises(ValueError, match="known: kl, ab, exp, l2"):
        losses.make_loss("kld")
    with pytest.raises(ValueError, match="alpha"):
        losses.make_loss("l2", alpha=0.5)


def test_bad_loss_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="temperature"):
        losses.TemperatureKL(temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        losses.ExpDistillation(temperature=float("inf"))
    for scale in (0.0, -1.0, [1.0, -2.0], [[1.0]], [], "x"):
        with pytest.raises(ValueError, match="scale"):
            losses.ABDivergence(scale=scale)
    y = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="3 per-feature values for activations with 4"):
        losses.ABDivergence(scale=[1.0, 2.0, 3.0]).call(y, y)
    with pytest.raises(ValueError, match="shapes differ"):
        losses.ExpDistillation().call(y, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="batch, ..., features"):
        losses.TemperatureKL().call(np.zeros(4, np.float32), np.zeros(4, np.float32))


def test_reexported_from_tfcolor_losses():
    for name in ("ab_divergence", "ab_divergence_from_logs", "ABDivergence", "ExpDistillation",
                 "TemperatureKL", "teacher_scale"):
        assert getattr(tfcolor_losses, name) is getattr(losses, name)
        assert name in tfcolor_losses.__all__


def _student(features):
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"),
                             keras.layers.Dense(features)])


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_fits_a_compiled_model(policy):
    rng = np.random.default_rng(19)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    teacher = (rng.normal(size=(16, 5)) * 3).astype(np.float32)
    s = losses.teacher_scale(teacher)
    with layer_testing.global_dtype_policy(policy):
        keras.utils.set_random_seed(0)
        model = _student(5)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=losses.ABDivergence(scale=s))
        before = [w.numpy().copy() for w in model.trainable_weights]
        history = model.fit(x, teacher, batch_size=16, epochs=2, verbose=0)
        prediction = model(x)
    values = history.history["loss"]
    assert len(values) == 2 and all(np.isfinite(values))
    assert values[1] < values[0]
    assert any(np.any(w.numpy() != b) for w, b in zip(model.trainable_weights, before))
    per_example = losses.ABDivergence(scale=s).call(teacher, prediction)
    assert prediction.dtype == (tf.float16 if policy == "mixed_float16" else tf.float32)
    assert per_example.dtype == tf.float32 and np.all(np.isfinite(per_example.numpy()))


def test_large_activations_stay_finite_under_float16():
    """Float16 student activations of 60000 (e^60000 overflows anything) give finite float32
    losses: the losses never form exp of an unscaled activation."""
    y = np.full((2, 4), 60000.0, np.float16)
    z = np.full((2, 4), -60000.0, np.float16)
    s = 60000.0 / 20     # y/s = 20, the exponent the temperature then divides
    for loss in (losses.ABDivergence(scale=s), losses.ABDivergence(0.0, 0.0, scale=s),
                 losses.ExpDistillation(scale=s), losses.TemperatureKL()):
        values = loss.call(tf.constant(y), tf.constant(z))
        assert values.dtype == tf.float32 and np.all(np.isfinite(values.numpy())), loss.name


# -- teacher statistics -------------------------------------------------------------------------

def test_teacher_scale_matches_numpy():
    rng = np.random.default_rng(20)
    features = (rng.normal(size=(50, 3, 3, 6)) * rng.uniform(0.1, 10, 6)).astype(np.float32)
    features[..., 2] = 0.0                                   # a dead unit
    flat = features.reshape(-1, 6).astype(np.float64)
    expected = np.sqrt(np.mean(flat ** 2, 0))
    expected[2] = 1.0
    per_feature = losses.teacher_scale(features)
    assert per_feature.dtype == np.float32 and per_feature.shape == (6,)
    np.testing.assert_allclose(per_feature, expected, rtol=4 * EPS)
    batches = [features[:20], tf.constant(features[20:45]), features[45:]]
    np.testing.assert_allclose(losses.teacher_scale(batches), expected, rtol=4 * EPS)
    dataset = tf.data.Dataset.from_tensor_slices(features).batch(7)
    np.testing.assert_allclose(losses.teacher_scale(dataset), expected, rtol=4 * EPS)
    scalar = losses.teacher_scale(tf.constant(features), per_feature=False)
    assert isinstance(scalar, float)
    assert scalar == pytest.approx(math.sqrt(np.mean(flat ** 2)), rel=4 * EPS)
    assert losses.teacher_scale(np.zeros((3, 2)), per_feature=False) == 1.0


def test_teacher_scale_errors():
    with pytest.raises(ValueError, match="at least one row"):
        losses.teacher_scale([])
    with pytest.raises(ValueError, match="different feature counts"):
        losses.teacher_scale([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="non-finite"):
        losses.teacher_scale(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="iterable"):
        losses.teacher_scale(3.0)
