"""Fits the polynomial sRGB decode used by ``tfcolor.color``'s ``implementation="polynomial"``.

The sRGB decode above its linear segment, ``(x + 0.055)^2.4`` for x in [0.04045, 1] (the
constant ``1.055^-2.4`` is folded into the next matrix), is approximated by a degree-12
polynomial in ``t = (2x - 1.04045) / 0.95955`` (so t is in [-1, 1]). The error is minimised in
the units that matter: the error of a linear value moves the Lab result by at most
``500 f'(Y)`` times that error, with ``f'(Y) = Y^(-2/3) / 3`` (clamped at the Lab threshold
0.008856), so the fit minimises ``max |error| * f'(decode(x))`` by Lawson's iteratively
reweighted least squares on Chebyshev polynomials, then converts to power-basis coefficients
for Horner evaluation.

    python tools/fit_srgb_decode.py     # prints the coefficients and the error bound

The printed tuple is ``tfcolor.color._DECODE_POLY``; ``tests/test_color.py`` checks the
constants against the exact power in float64 and the Lab error against scikit-image, and
``tests/test_fit_srgb_decode.py`` checks that a refit meets the Lab error bound and agrees with
the shipped constants in the Chebyshev basis to a tolerance set by the fit's condition number
(refitted power-basis coefficients differ across NumPy / BLAS builds at ~1e-8 relative, which
changes the polynomial by ~1e-11 Lab).
"""
import numpy as np

LO, HI = 0.04045, 1.0
DEGREE = 12
LAB_EPSILON = 0.008856
DECODE_SCALE = 1.055 ** -2.4


def decode(x):
    """``(x + 0.055)^2.4``: the sRGB decode divided by ``1.055^-2.4``."""
    return (x + 0.055) ** 2.4


def lab_weight(x):
    """d f / d Y at the decoded value: the Lab sensitivity to an error in a linear value."""
    linear = np.maximum(decode(x) * DECODE_SCALE, LAB_EPSILON)
    return DECODE_SCALE / (3.0 * linear ** (2.0 / 3.0))


def fit_chebyshev(degree=DEGREE, points=200001, iterations=30):
    """The weighted minimax fit in the Chebyshev basis.

    Returns ``(coefficients, bound, condition)``: Chebyshev coefficients in ``t`` (lowest degree
    first), ``max |error| * f'(Y)`` on the fitting grid, and the 2-norm condition number of the
    last least-squares problem (weighted Chebyshev-Vandermonde matrix with the column scaling
    ``chebfit`` applies). Rounding in that solve moves the coefficients by about
    ``condition * eps * max|coefficient|`` (the residual term is negligible: the fit is ~1e-7
    relative), which is how far two machines with different BLAS may disagree; the Chebyshev
    basis is well conditioned on [-1, 1] (``|c_k| <= 2 max|p|``), so coefficients are compared
    there and not in the power basis, where the conversion amplifies rounding ~1e7-fold.
    """
    x = np.linspace(LO, HI, points)
    t = (2.0 * x - LO - HI) / (HI - LO)
    target = decode(x)
    weight, sensitivity = lab_weight(x), lab_weight(x)
    for _ in range(iterations):
        used = weight
        coefficients = np.polynomial.chebyshev.chebfit(t, target, degree, w=used)
        error = np.abs(np.polynomial.chebyshev.chebval(t, coefficients) - target) * sensitivity
        weight = weight * (1.0 + error / error.max())
    design = np.polynomial.chebyshev.chebvander(t, degree) * used[:, None]
    design /= np.sqrt(np.square(design).sum(axis=0))
    return coefficients, float(error.max()), float(np.linalg.cond(design))


def fit(degree=DEGREE, points=200001, iterations=30):
    """``(power-basis coefficients, bound)``: :func:`fit_chebyshev` converted for Horner/Estrin."""
    coefficients, bound, _ = fit_chebyshev(degree, points, iterations)
    return np.polynomial.chebyshev.cheb2poly(coefficients), bound


def main():
    chebyshev, bound, condition = fit_chebyshev()
    power = np.polynomial.chebyshev.cheb2poly(chebyshev)
    print("_DECODE_POLY = (")
    for c in power:
        print(f"        {float(c)!r},")
    print(")")
    print(f"# max |error| * f'(Y): {bound:.3e}  (Lab a/b error bound: 1000 x that = "
          f"{1000 * bound:.2e})")
    print(f"# Chebyshev coefficients: {', '.join(f'{c:.6e}' for c in chebyshev)}")
    print(f"# condition number of the last weighted least-squares solve: {condition:.1f}")


if __name__ == "__main__":
    main()
