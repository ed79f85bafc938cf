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
constants against the exact power in float64 and the Lab error against scikit-image.
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


def fit(degree=DEGREE, points=200001, iterations=30):
    x = np.linspace(LO, HI, points)
    t = (2.0 * x - LO - HI) / (HI - LO)
    weight, sensitivity = lab_weight(x), lab_weight(x)
    for _ in range(iterations):
        coefficients = np.polynomial.chebyshev.chebfit(t, decode(x), degree, w=weight)
        error = np.abs(np.polynomial.chebyshev.chebval(t, coefficients) - decode(x)) * sensitivity
        weight = weight * (1.0 + error / error.max())
    return np.polynomial.chebyshev.cheb2poly(coefficients), float(error.max())


def main():
    power, bound = fit()
    print("_DECODE_POLY = (")
    for c in power:
        print(f"        {float(c)!r},")
    print(")")
    print(f"# max |error| * f'(Y): {bound:.3e}  (Lab a/b error bound: 1000 x that = "
          f"{1000 * bound:.2e})")


if __name__ == "__main__":
    main()
