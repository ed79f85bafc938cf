"""tools/fit_srgb_decode.py reproduces the polynomial that tfcolor.color ships.

Refitted coefficients are not bit-identical across NumPy / BLAS builds and CPUs (the least-squares
solve sums in a different order; power-basis coefficients then differ at ~1e-8 relative), so
these tests check the properties that matter: the refit meets the documented Lab error bound, and
it is the same polynomial as the shipped one to within the rounding the fit's conditioning allows.
"""
import importlib.util
import pathlib

import numpy as np

from tfcolor import color

_TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "fit_srgb_decode.py"
_CHEB = np.polynomial.chebyshev


def _load_tool():
    spec = importlib.util.spec_from_file_location("fit_srgb_decode", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lab_error_bound(tool, chebyshev):
    """1000 x max |p - decode| * f'(Y) on a grid finer than (and not nested in) the fit's."""
    x = np.linspace(tool.LO, tool.HI, 1_000_003)
    t = (2.0 * x - tool.LO - tool.HI) / (tool.HI - tool.LO)
    weighted = np.abs(_CHEB.chebval(t, chebyshev) - tool.decode(x)) * tool.lab_weight(x)
    return 1000 * weighted.max()   # Lab a = 500 (f_x - f_y): at most 1000 x the error of one f


def test_fit_reproduces_the_shipped_polynomial_and_its_lab_bound():
    tool = _load_tool()
    assert (tool.LO, tool.HI, tool.LAB_EPSILON) == (
            color._SRGB_THRESHOLD, 1.0, color._LAB_EPSILON)
    refit, bound, condition = tool.fit_chebyshev()
    shipped = _CHEB.poly2cheb(np.asarray(color._DECODE_POLY))
    # The property that matters: the Lab error bound documented in tfcolor.color ("3e-5 Lab in
    # exact arithmetic"), for the refit and for the shipped constants, off the fitting grid.
    assert 1000 * bound < 3e-5
    assert _lab_error_bound(tool, refit) < 3e-5
    assert _lab_error_bound(tool, shipped) < 3e-5
    # Same polynomial: a backward-stable least-squares solve moves the coefficients by about
    # condition * eps * max|c| (the residual term adds condition * |r| / |f| ~ 1e-5 of that:
    # negligible); allow 4 (degree + 1) times that for the summation order of the BLAS in use,
    # the reweighting steps and the float64 power-basis round trip of the shipped constants.
    # The Chebyshev basis is well conditioned on [-1, 1], so this is also a bound on the
    # functions (|p_a - p_b| <= sum |c_a - c_b|); the power basis amplifies rounding ~1e7-fold.
    assert condition < 1e3, condition        # a badly conditioned fit would need a new analysis
    eps = np.finfo(np.float64).eps
    tolerance = 4 * (tool.DEGREE + 1) * condition * eps * np.abs(refit).max()
    np.testing.assert_allclose(shipped, refit, rtol=0, atol=tolerance)
    # The tolerance still catches a real change to the fit: one reweighting step fewer moves the
    # coefficients ~20x further than it allows.
    shorter, _, _ = tool.fit_chebyshev(iterations=29)
    assert np.abs(shorter - shipped).max() > 10 * tolerance


def test_fit_error_shrinks_with_degree():
    # The weighted fit converges: each degree is at least as good as the one below.
    tool = _load_tool()
    bounds = [tool.fit(degree, points=20001, iterations=15)[1] for degree in (6, 8, 10)]
    assert bounds[0] > bounds[1] > bounds[2]
