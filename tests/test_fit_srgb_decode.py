"""tools/fit_srgb_decode.py reproduces the polynomial constants that tfcolor.color ships."""
import importlib.util
import pathlib

import numpy as np

from tfcolor import color

_TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "fit_srgb_decode.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("fit_srgb_decode", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_reproduces_the_shipped_constants_and_bound():
    tool = _load_tool()
    assert (tool.LO, tool.HI, tool.LAB_EPSILON) == (
            color._SRGB_THRESHOLD, 1.0, color._LAB_EPSILON)
    power, bound = tool.fit()
    np.testing.assert_allclose(power, color._DECODE_POLY, rtol=1e-9, atol=1e-15)
    # Lab a/b error bound in exact arithmetic: 1000 x max |error| * f'(Y) (a = 500 (f_x - f_y)).
    assert 1000 * bound < 5e-5


def test_fit_error_shrinks_with_degree():
    # The weighted fit converges: each degree is at least as good as the one below.
    tool = _load_tool()
    bounds = [tool.fit(degree, points=20001, iterations=15)[1] for degree in (6, 8, 10)]
    assert bounds[0] > bounds[1] > bounds[2]
