"""Tests for tfcolor.color against scikit-image, OpenCV, hand-computed values and round trips."""
import functools
import os
import sys

import cv2
import keras
import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from tfcolor import color
from tfcolor.train.strategy import make_strategy  # one strategy per device set

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_testing  # noqa: E402


def _cube(n):
    """All n^3 points of a regular grid over the sRGB cube, shape (n^3, 3), float64."""
    g = np.linspace(0.0, 1.0, n)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


# Black, white, greys, primaries, secondaries, near-threshold values and ties.
SPECIAL = np.array([
        [0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0],
        [0, 1, 1], [1, 0, 1], [0.04045, 0.04045, 0.04045], [0.04045, 0.0, 1.0], [1e-7, 0, 0],
        [1, 1, 1 - 1e-7], [0.2, 0.2, 0.1], [0.3, 0.1, 0.3], [0.0031308, 0.5, 0.9]])


def _photos():
    """Real photographs shipped with scikit-image, float64 in [0, 1], subsampled for speed."""
    return {name: getattr(skimage.data, name)()[::2, ::2, :3] / 255.0
            for name in ("astronaut", "coffee", "chelsea")}


def _circular_diff(a, b):
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)


# ------------------------------------------------------------------------------------------------
# Lab
# ------------------------------------------------------------------------------------------------

def test_rgb_to_lab_matches_skimage_on_dense_cube():
    cube = _cube(64)
    ours = color.rgb_to_lab(tf.constant(cube, tf.float32)).numpy()
    ref = skimage.color.rgb2lab(cube)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-3


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_rgb_to_lab_matches_skimage_on_photos(name):
    image = _photos()[name]
    ours = color.rgb_to_lab(tf.constant(image[None], tf.float32)).numpy()[0]
    assert np.abs(ours - skimage.color.rgb2lab(image)).max() < 1e-3


def test_rgb_to_lab_float64_is_exact():
    cube = _cube(17)
    ours = color.rgb_to_lab(cube).numpy()
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, skimage.color.rgb2lab(cube), atol=1e-9)


def test_rgb_to_lab_hand_values():
    # White: XYZ = row sums of the sRGB matrix (0.950456, 1, 1.088754), slightly off the D65
    # white (0.95047, 1, 1.08883), hence tiny non-zero a, b (as in skimage). Black is 0.
    lab = color.rgb_to_lab(tf.constant([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], tf.float64)).numpy()
    white = [100.0, 500 * (np.cbrt(0.950456 / 0.95047) - 1), 200 * (1 - np.cbrt(1.088754 / 1.08883))]
    np.testing.assert_allclose(lab, [white, [0, 0, 0]], atol=1e-9)
    # Mid grey 0.5: Y = ((0.5 + 0.055) / 1.055)^2.4, L = 116 Y^(1/3) - 16.
    grey = color.rgb_to_lab(tf.constant([[0.5, 0.5, 0.5]], tf.float64)).numpy()
    assert abs(grey[0, 0] - (116 * ((0.555 / 1.055) ** 2.4) ** (1 / 3) - 16)) < 1e-9


def test_rgb_to_lab_close_to_opencv():
    # OpenCV's float path uses a slightly different white (0.950456, 1.088754) and an
    # interpolated gamma; it is a second, looser reference (skimage differs from it by ~0.6 too).
    cube = _cube(32).astype(np.float32)
    ours = color.rgb_to_lab(cube).numpy()
    ref = cv2.cvtColor(cube.reshape(1, -1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    assert np.abs(ours - ref).max() < 1.0


def test_lab_round_trip_dense_cube():
    cube = _cube(64).astype(np.float32)
    back = color.lab_to_rgb(color.rgb_to_lab(cube)).numpy()
    assert np.abs(back - cube).max() < 1e-4


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-120, 120, 5000),
                    rng.uniform(-120, 120, 5000)], axis=-1)
    # skimage zeroes z where fz < 0 (a different out-of-range rule); stay where both agree.
    lab = lab[(lab[:, 0] + 16) / 116 - lab[:, 2] / 200 >= 0]
    ref = skimage.color.lab2rgb(lab)
    ours = color.lab_to_rgb(lab.astype(np.float32)).numpy()
    assert np.abs(ours - ref).max() < 1e-4
    unclipped = color.lab_to_rgb(lab.astype(np.float32), clip=False).numpy()
    assert (unclipped < -1e-3).any() and (unclipped > 1 + 1e-3).any()   # out of gamut kept
    np.testing.assert_allclose(np.clip(unclipped, 0, 1), ours, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Lab, implementation="polynomial" (the XLA path of implementation="auto")
# ------------------------------------------------------------------------------------------------

def test_decode_polynomial_constants_match_the_power_in_float64():
    # The constants, evaluated in float64, against numpy's power, in the units the fit minimises:
    # |error| * f'(Y) bounds the Lab a/b error divided by 1000.
    x = np.linspace(color._SRGB_THRESHOLD, 1.0, 100001)
    t = x * color._T_SCALE + color._T_OFFSET
    assert t.min() >= -1 - 1e-12 and t.max() <= 1 + 1e-12
    poly = np.polynomial.polynomial.polyval(t, color._DECODE_POLY)
    exact = (x + 0.055) ** 2.4
    linear = np.maximum(exact * color._DECODE_SCALE, color._LAB_EPSILON)
    sensitivity = color._DECODE_SCALE / (3 * linear ** (2 / 3))
    assert np.abs(poly - exact).max() < 1e-6
    assert (np.abs(poly - exact) * sensitivity).max() < 5e-8


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4, 7, 12, 13])
def test_estrin_evaluates_the_same_polynomial_as_numpy(degree):
    coefficients = tuple(np.random.default_rng(degree).normal(size=degree + 1))
    t = np.linspace(-1.0, 1.0, 101)
    ours = color._estrin(tf.constant(t), coefficients)
    np.testing.assert_allclose(ours, np.polynomial.polynomial.polyval(t, coefficients),
                               rtol=1e-12, atol=1e-12)


def test_newton_cube_root_is_within_float32_rounding_and_has_exact_gradient():
    t = np.exp(np.linspace(np.log(1e-6), np.log(1e6), 200001)).astype(np.float32)
    tt = tf.constant(t)
    with tf.GradientTape() as tape:
        tape.watch(tt)
        root = color._cbrt_newton(tt)
    grad = tape.gradient(root, tt).numpy().astype(np.float64)
    exact = np.cbrt(t.astype(np.float64))
    assert np.abs(root.numpy() / exact - 1).max() < 2e-7          # ~1.7 float32 ulp
    np.testing.assert_allclose(grad, exact / (3 * t.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_polynomial_lab_matches_skimage_on_cube_and_photos(jit):
    forward = functools.partial(color.rgb_to_lab, implementation="polynomial")
    inverse = functools.partial(color.lab_to_rgb, implementation="polynomial")
    if jit:
        forward = tf.function(forward, jit_compile=True)
        inverse = tf.function(inverse, jit_compile=True)
    cube = _cube(64)
    lab = forward(tf.constant(cube, tf.float32)).numpy()
    assert np.abs(lab - skimage.color.rgb2lab(cube)).max() < 1e-4
    assert np.abs(inverse(tf.constant(lab)).numpy() - cube).max() < 1e-4
    for image in _photos().values():
        ours = forward(tf.constant(image[None], tf.float32)).numpy()[0]
        assert np.abs(ours - skimage.color.rgb2lab(image)).max() < 1e-4
    rng = np.random.default_rng(1)
    ref_lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-120, 120, 5000),
                        rng.uniform(-120, 120, 5000)], axis=-1)
    ref_lab = ref_lab[(ref_lab[:, 0] + 16) / 116 - ref_lab[:, 2] / 200 >= 0]
    ours = inverse(tf.constant(ref_lab, tf.float32)).numpy()
    assert np.abs(ours - skimage.color.lab2rgb(ref_lab)).max() < 1e-4


def test_auto_implementation_is_polynomial_under_xla_only():
    x = tf.constant(_cube(33)[None], tf.float32)

    def run(implementation, jit):
        fn = tf.function(lambda t: (color.rgb_to_lab(t, implementation=implementation),
                                    color.lab_to_rgb(color.rgb_to_lab(t, implementation="pow"),
                                                     implementation=implementation)),
                         jit_compile=jit)
        return [out.numpy() for out in fn(x)]

    for jit in (False, True):
        auto, pow_, polynomial = run("auto", jit), run("pow", jit), run("polynomial", jit)
        expected = polynomial if jit else pow_
        for a, e, other in zip(auto, expected, polynomial if not jit else pow_):
            np.testing.assert_array_equal(a, e)
            assert not np.array_equal(a, other)      # the two implementations do differ
    eager = color.rgb_to_lab(x).numpy()
    np.testing.assert_array_equal(eager, color.rgb_to_lab(x, implementation="pow").numpy())
    # float64 stays exact under XLA: "auto" keeps the power there.
    compiled = tf.function(color.rgb_to_lab, jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(_cube(9), tf.float64)).numpy(),
                               skimage.color.rgb2lab(_cube(9)), atol=1e-9)


def test_polynomial_gradients_agree_with_pow_gradients():
    x = tf.constant(np.concatenate([SPECIAL, _cube(9)]), tf.float32)
    weights = tf.constant([1.0, 2.0, 3.0])
    grads = {}
    for implementation in ("pow", "polynomial"):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            lab = color.rgb_to_lab(x, implementation=implementation)
            forward = tf.reduce_sum(lab * weights)
            back = tf.reduce_sum(color.lab_to_rgb(lab * 0.999, implementation=implementation)
                                 * weights)
        grads[implementation] = [tape.gradient(forward, x).numpy(), tape.gradient(back, x).numpy()]
    for ours, ref in zip(grads["polynomial"], grads["pow"]):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=1e-3)


def test_implementation_errors():
    with pytest.raises(ValueError, match=r"rgb_to_lab: `implementation` must be one of"):
        color.rgb_to_lab(np.zeros((1, 3), np.float32), implementation="lut")
    with pytest.raises(ValueError, match=r"lab_to_rgb: implementation='polynomial' is float32"):
        color.lab_to_rgb(np.zeros((1, 3)), implementation="polynomial")
    layer = color.ColorConversion("rgb_to_lab", options={"implementation": "polynomial"})
    x = _photos()["coffee"][None, :8, :8].astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(),
                                  color.rgb_to_lab(x, implementation="polynomial").numpy())
    layer_testing.run_serialization_test(layer, call_args=(x,), atol=0, rtol=0)  # options kept


# ------------------------------------------------------------------------------------------------
# Grey
# ------------------------------------------------------------------------------------------------

def test_rgb_to_gray_is_mean_with_channel_axis():
    x = tf.constant([[[0.3, 0.6, 0.9], [1.0, 0.0, 0.5]]])
    gray = color.rgb_to_gray(x).numpy()
    assert gray.shape == (1, 2, 1)
    np.testing.assert_allclose(gray[..., 0], [[0.6, 0.5]], atol=1e-7)


# ------------------------------------------------------------------------------------------------
# Hue / chroma / lightness
# ------------------------------------------------------------------------------------------------

def test_rgb_to_hcl_matches_skimage_hsv():
    cube = np.concatenate([_cube(32), SPECIAL])
    hcl = color.rgb_to_hcl(tf.constant(cube, tf.float32)).numpy()
    hsv = skimage.color.rgb2hsv(cube)
    chroma = cube.max(-1) - cube.min(-1)
    np.testing.assert_allclose(hcl[:, 1], chroma, atol=1e-6)
    np.testing.assert_allclose(hcl[:, 2], (cube.max(-1) + cube.min(-1)) / 2, atol=1e-6)
    colored = chroma > 1e-6
    assert _circular_diff(hcl[colored, 0], hsv[colored, 0]).max() < 1e-5
    assert ((hcl[:, 0] >= 0) & (hcl[:, 0] < 1)).all()
    mean = color.rgb_to_hcl(cube, lightness="mean").numpy()
    np.testing.assert_allclose(mean[:, 2], cube.mean(-1), atol=1e-12)
    np.testing.assert_array_equal(mean[:, :2], color.rgb_to_hcl(cube).numpy()[:, :2])


def test_rgb_to_hcl_hand_values_and_zero_hue_for_greys():
    x = tf.constant([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.25, 0.25, 0.25], [0, 0, 0],
                     [1, 1, 1], [0.5, 0.25, 0.25]])
    hcl = color.rgb_to_hcl(x).numpy()
    np.testing.assert_allclose(hcl[:, 0], [0, 1 / 3, 2 / 3, 1 / 6, 0, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(hcl[:, 1], [1, 1, 1, 1, 0, 0, 0, 0.25], atol=1e-7)
    np.testing.assert_allclose(hcl[:, 2], [0.5, 0.5, 0.5, 0.5, 0.25, 0, 1, 0.375], atol=1e-7)
    # Greys on a fine grid: hue exactly 0.
    greys = np.repeat(np.linspace(0, 1, 257)[:, None], 3, axis=1).astype(np.float32)
    assert (color.rgb_to_hcl(greys).numpy()[:, 0] == 0).all()
    # A red a hair below blue-magenta wrap: hue stays < 1.
    nearly = color.rgb_to_hcl(tf.constant([[1.0, 0.0, 1e-8]])).numpy()
    assert 0 <= nearly[0, 0] < 1


def test_hcl_to_rgb_matches_skimage_hsv_formula():
    # Paper: V = L + C/2, S = C/V, then HSV -> RGB (skimage.hsv2rgb), on feasible (H, C, L).
    rng = np.random.default_rng(1)
    h, light = rng.uniform(0, 1, 4000), rng.uniform(0, 1, 4000)
    c = rng.uniform(0, 1, 4000) * 2 * np.minimum(light, 1 - light)
    v = light + c / 2
    s = np.where(v > 0, c / np.maximum(v, 1e-300), 0)
    ref = skimage.color.hsv2rgb(np.stack([h, s, v], -1))
    ours = color.hcl_to_rgb(np.stack([h, c, light], -1).astype(np.float32)).numpy()
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize("lightness", ["bicone", "mean"])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_hcl_round_trip(lightness, dtype):
    cube = tf.constant(np.concatenate([_cube(32), SPECIAL]), dtype)
    hcl = color.rgb_to_hcl(cube, lightness=lightness)
    back = color.hcl_to_rgb(hcl, lightness=lightness).numpy()
    assert np.abs(back - cube.numpy()).max() < (1e-5 if dtype == tf.float32 else 1e-12)


def test_hcl_to_rgb_mean_lightness_is_kept_and_infeasible_chroma_reduced():
    rng = np.random.default_rng(2)
    n = 5000
    hcl = np.stack([rng.uniform(0, 1, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n)], -1)
    for lightness in ("mean", "bicone"):
        rgb = color.hcl_to_rgb(hcl, lightness=lightness).numpy()
        assert rgb.min() >= 0 and rgb.max() <= 1
        back = color.rgb_to_hcl(rgb, lightness=lightness).numpy()
        np.testing.assert_allclose(back[:, 2], hcl[:, 2], atol=1e-9)       # lightness kept
        assert (back[:, 1] <= hcl[:, 1] + 1e-9).all()                       # chroma only reduced
        kept = back[:, 1] > 1e-6
        assert _circular_diff(back[kept, 0], hcl[kept, 0]).max() < 1e-6     # hue kept
        # Feasible inputs are unchanged; infeasible ones sit on the gamut boundary.
        feasible = np.isclose(back[:, 1], hcl[:, 1], atol=1e-9)
        assert feasible.any() and (~feasible).any()
        on_boundary = (rgb[~feasible].min(-1) < 1e-9) | (rgb[~feasible].max(-1) > 1 - 1e-9)
        assert on_boundary.all()


def test_hcl_to_rgb_clip_modes():
    hcl = np.array([[0.0, 1.0, 0.25], [0.5, 0.8, 0.9], [0.3, 0.2, 0.5]])   # two infeasible
    raw = color.hcl_to_rgb(hcl, clip=None).numpy()
    assert raw.min() < 0 and raw.max() > 1
    np.testing.assert_allclose(raw[:, :].mean(-1)[2], color.hcl_to_rgb(hcl).numpy()[2].mean())
    np.testing.assert_allclose(color.hcl_to_rgb(hcl, clip="rgb").numpy(), np.clip(raw, 0, 1))
    # Bicone, chroma clipped: red at L = 0.25 can have at most C = 0.5 -> (0.5, 0, 0).
    np.testing.assert_allclose(color.hcl_to_rgb(hcl).numpy()[0], [0.5, 0.0, 0.0], atol=1e-12)


def _released_numpy(h, c, gray):
    """autocolorize.extraction.calc_rgb_from_hue_chroma + color.match_lightness, re-derived."""
    v = gray + c / 2
    s = 2 * c / (2 * gray + c)
    hsv = np.stack([h, s, v], -1).clip(0, 1)
    rgb = skimage.color.hsv2rgb(hsv).clip(0, 1)
    return (rgb - rgb.mean(-1, keepdims=True) + gray[..., None]).clip(0, 1)


def test_hcl_to_rgb_released_matches_reference_pipeline():
    rng = np.random.default_rng(3)
    n = 4000
    h, c, gray = rng.uniform(0, 1, n), rng.uniform(0, 1, n), rng.uniform(0.01, 1, n)
    ref = _released_numpy(h, c, gray)
    ours = color.hcl_to_rgb(np.stack([h, c, gray], -1), lightness="mean",
                            variant="released").numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    # At black with no chroma the released NumPy code yields NaN (0/0); ours returns black.
    black = color.hcl_to_rgb([[0.0, 0.0, 0.0]], lightness="mean", variant="released").numpy()
    np.testing.assert_array_equal(black, [[0, 0, 0]])


def test_released_and_paper_differ_only_where_released_clips():
    # Yellow: grey 2/3, C = 1 -> released V = 7/6 is clipped, the paper reproduces yellow.
    rgb = np.array([[1.0, 1.0, 0.0], [0.6, 0.3, 0.3]])
    hcl = color.rgb_to_hcl(rgb, lightness="mean")
    paper = color.hcl_to_rgb(hcl, lightness="mean").numpy()
    released = color.hcl_to_rgb(hcl, lightness="mean", variant="released").numpy()
    np.testing.assert_allclose(paper, rgb, atol=1e-12)
    np.testing.assert_allclose(released[1], rgb[1], atol=1e-12)   # no clipping: identical
    assert np.abs(released[0] - rgb[0]).max() > 0.05


# ------------------------------------------------------------------------------------------------
# alpha-beta
# ------------------------------------------------------------------------------------------------

def test_alphabeta_hand_values_and_reference_formula():
    x = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    ab = color.rgb_to_alphabeta(x).numpy()
    third = 1 / 3 + 1e-4
    np.testing.assert_allclose(ab, [[-0.5 / third, 1 / third], [1 / third, 0], [0, 0], [0, 0]],
                               atol=1e-12)
    cube = _cube(16)
    gray = cube.sum(-1) / 3
    ref = np.stack([(cube[:, 2] - 0.5 * (cube[:, 0] + cube[:, 1])) / (gray + 1e-4),
                    (cube[:, 0] - cube[:, 1]) / (gray + 1e-4)], -1)
    np.testing.assert_allclose(color.rgb_to_alphabeta(cube.astype(np.float32)).numpy(), ref,
                               rtol=1e-5, atol=1e-3)


def test_alphabeta_round_trip():
    cube = _cube(32)
    ab = color.rgb_to_alphabeta(cube)
    back = color.alphabeta_to_rgb(ab, color.rgb_to_gray(cube)).numpy()
    np.testing.assert_allclose(back, cube, atol=1e-12)
    cube32 = cube.astype(np.float32)
    back32 = color.alphabeta_to_rgb(color.rgb_to_alphabeta(cube32), color.rgb_to_gray(cube32))
    assert np.abs(back32.numpy() - cube32).max() < 1e-5


# ------------------------------------------------------------------------------------------------
# Finiteness and gradients
# ------------------------------------------------------------------------------------------------

def _all_forward(x):
    lab = color.rgb_to_lab(x)
    hcl = color.rgb_to_hcl(x)
    hcl_mean = color.rgb_to_hcl(x, lightness="mean")
    return [
            color.rgb_to_gray(x), lab, color.lab_to_rgb(lab), color.lab_to_rgb(lab, clip=False),
            hcl, color.hcl_to_rgb(hcl), hcl_mean, color.hcl_to_rgb(hcl_mean, lightness="mean"),
            color.hcl_to_rgb(hcl_mean, lightness="mean", variant="released"),
            color.rgb_to_alphabeta(x),
            color.alphabeta_to_rgb(color.rgb_to_alphabeta(x), color.rgb_to_gray(x)),
    ]


def test_no_nan_or_inf_on_cube_and_special_points():
    x = tf.constant(np.concatenate([_cube(33), SPECIAL]), tf.float32)
    for out in _all_forward(x):
        assert np.isfinite(out.numpy()).all()


def test_gradients_finite_on_special_points():
    x = tf.constant(np.concatenate([SPECIAL, _cube(9)]), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        losses = [tf.reduce_sum(out * tf.range(1.0, out.shape[-1] + 1.0)) for out in _all_forward(x)]
    for i, loss in enumerate(losses):
        grad = tape.gradient(loss, x)
        assert grad is not None and np.isfinite(grad.numpy()).all(), i
        assert np.abs(grad.numpy()).max() > 0, i


def test_hcl_to_rgb_gradients_finite_at_edges():
    hcl = tf.constant([[0.0, 0.0, 0.0], [0.3, 0.0, 1.0], [1.0, 1.0, 0.5], [0.7, 1.0, 0.0],
                       [0.5, 0.5, 0.25], [0.2, 0.9, 0.95]])
    for kwargs in ({}, {"lightness": "mean"}, {"clip": None}, {"clip": "rgb"},
                   {"variant": "released", "lightness": "mean"}, {"variant": "released"}):
        with tf.GradientTape() as tape:
            tape.watch(hcl)
            loss = tf.reduce_sum(color.hcl_to_rgb(hcl, **kwargs) * [1.0, 2.0, 3.0])
        grad = tape.gradient(loss, hcl)
        assert np.isfinite(grad.numpy()).all(), kwargs


def test_lab_gradient_matches_finite_differences():
    x = tf.constant([[0.2, 0.5, 0.7], [0.9, 0.1, 0.3]], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(lambda t: color.rgb_to_lab(t), [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Dtypes, shapes, graph modes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,atol", [(tf.float16, 0.1), (tf.bfloat16, 1.0)])
def test_low_precision_inputs(dtype, atol):
    image = _photos()["chelsea"][:64, :64]
    x = tf.cast(image, dtype)
    ref = color.rgb_to_lab(tf.cast(x, tf.float32)).numpy()    # same quantised input, float32
    lab = color.rgb_to_lab(x)
    assert lab.dtype == dtype
    assert np.abs(lab.numpy().astype(np.float32) - ref).max() <= atol
    for fn in (color.rgb_to_gray, color.rgb_to_hcl, color.rgb_to_alphabeta):
        assert fn(x).dtype == dtype
    assert color.hcl_to_rgb(color.rgb_to_hcl(x)).dtype == dtype
    assert color.lab_to_rgb(lab).dtype == dtype


def test_any_leading_shape():
    rng = np.random.default_rng(4)
    flat = rng.uniform(0, 1, (120, 3)).astype(np.float32)
    for shape in [(120, 3), (2, 60, 3), (2, 3, 4, 5, 3)]:
        for fn in (color.rgb_to_lab, color.rgb_to_hcl, color.rgb_to_gray,
                   color.rgb_to_alphabeta):
            out = fn(flat.reshape(shape)).numpy()
            np.testing.assert_array_equal(out.reshape(120, -1), fn(flat).numpy())
    single = color.rgb_to_lab(flat[0]).numpy()
    np.testing.assert_allclose(single, color.rgb_to_lab(flat).numpy()[0], atol=1e-5)


def test_jit_compile_agrees_with_eager():
    x = tf.constant(np.concatenate([_cube(17), SPECIAL])[None], tf.float32)

    @tf.function(jit_compile=True)
    def compiled(t):
        return _all_forward(t)

    for eager, xla in zip(_all_forward(x), compiled(x)):
        np.testing.assert_allclose(xla.numpy(), eager.numpy(), rtol=1e-5, atol=1e-4)


def test_inside_tf_data_map():
    images = np.stack([_photos()["astronaut"][:32, :32], _photos()["coffee"][:32, :32]])
    ds = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).map(
            lambda im: (color.rgb_to_lab(im), color.rgb_to_hcl(im), color.rgb_to_gray(im)))
    for im, (lab, hcl, gray) in zip(images.astype(np.float32), ds):
        np.testing.assert_allclose(lab.numpy(), color.rgb_to_lab(im).numpy(), atol=1e-4)
        np.testing.assert_allclose(hcl.numpy(), color.rgb_to_hcl(im).numpy(), atol=1e-6)
        assert gray.shape == (32, 32, 1)
    compiled = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).map(
            tf.function(color.rgb_to_lab, jit_compile=True))
    for im, lab in zip(images.astype(np.float32), compiled):
        np.testing.assert_allclose(lab.numpy(), color.rgb_to_lab(im).numpy(), atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

def test_eager_errors_name_function_and_problem():
    with pytest.raises(ValueError, match=r"rgb_to_lab: `rgb` values must lie in \[0.0, 1.0\].*255"):
        color.rgb_to_lab(np.full((2, 3), 200.0, np.float32))
    with pytest.raises(ValueError, match=r"rgb_to_hcl: .*min -0.1"):
        color.rgb_to_hcl(np.array([[-0.1, 0.5, 0.5]], np.float32))
    with pytest.raises(ValueError, match=r"rgb_to_gray: .*NaN"):
        color.rgb_to_gray(np.array([[np.nan, 0.5, 0.5]], np.float32))
    with pytest.raises(ValueError, match=r"rgb_to_lab: `rgb` must have 3 channels.*\(4, 4\)"):
        color.rgb_to_lab(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"alphabeta_to_rgb: `gray` must have 1 channels"):
        color.alphabeta_to_rgb(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(TypeError, match=r"rgb_to_lab: `rgb` must be a floating tensor.*uint8"):
        color.rgb_to_lab(np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"lab_to_rgb: `lab` values must have L in \[0, 100\]"):
        color.lab_to_rgb(np.array([[120.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"hcl_to_rgb: .*chroma, lightness in \[0, 1\].*max 1.5"):
        color.hcl_to_rgb(np.array([[0.2, 1.5, 0.5]]))
    with pytest.raises(ValueError, match=r"alphabeta_to_rgb: `alphabeta` values must be finite"):
        color.alphabeta_to_rgb(np.array([[np.inf, 0.0]]), np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"hcl_to_rgb: `variant` must be one of"):
        color.hcl_to_rgb(np.zeros((1, 3)), variant="caffe")
    with pytest.raises(ValueError, match=r"hcl_to_rgb: `clip` applies to variant='paper'"):
        color.hcl_to_rgb(np.zeros((1, 3)), variant="released", clip=None)
    with pytest.raises(ValueError, match=r"rgb_to_hcl: `lightness` must be one of"):
        color.rgb_to_hcl(np.zeros((1, 3)), lightness="hsl")
    # validate=False skips the range check (no error, garbage in, garbage out).
    assert color.rgb_to_gray(np.full((1, 3), 2.0), validate=False).numpy()[0, 0] == 2.0


def test_graph_mode_range_assert():
    fn = tf.function(color.rgb_to_lab)
    fn(tf.constant([[0.5, 0.5, 0.5]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rgb_to_lab: `rgb` values must"):
        fn(tf.constant([[1.5, 0.5, 0.5]]))
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([[[0.5, 0.5, 0.5]], [[0.5, 2.0, 0.5]]]))
    ds = ds.map(color.rgb_to_hcl)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rgb_to_hcl: `rgb` values must"):
        list(ds)
    # Unknown static channel count: checked at run time.
    loose = tf.function(color.rgb_to_lab, input_signature=[tf.TensorSpec(None, tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must have 3 channels"):
        loose(tf.zeros((2, 4)))


# ------------------------------------------------------------------------------------------------
# Keras layer
# ------------------------------------------------------------------------------------------------

def test_color_conversion_layer_functional_config_and_saving(tmp_path):
    inputs = keras.Input((None, None, 3))
    lab = color.ColorConversion("rgb_to_lab")(inputs)
    gray = color.ColorConversion("rgb_to_gray", name="gray")(inputs)
    model = keras.Model(inputs, [lab, gray])
    x = _photos()["chelsea"][None, :16, :16].astype(np.float32)
    out_lab, out_gray = model(x)
    np.testing.assert_allclose(out_lab.numpy(), color.rgb_to_lab(x).numpy(), atol=1e-5)
    assert out_gray.shape == (1, 16, 16, 1)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x)[0].numpy(), out_lab.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown option"):
        color.ColorConversion("rgb_to_lab", options={"lightness": "mean"})
    with pytest.raises(ValueError, match="conversion"):
        color.ColorConversion("rgb_to_xyz")


@pytest.mark.parametrize("conversion, options", [
        ("rgb_to_lab", {}), ("rgb_to_gray", {}), ("rgb_to_hcl", {}),
        ("hcl_to_rgb", {"lightness": "mean"})])
def test_color_conversion_layer_contract(conversion, options):
    """Config and keras.saving round trips, symbolic, eager and tf.function calls, mixed float16
    and bfloat16, finite input gradients (tests/layer_testing.py); the eager output is the
    function's."""
    x = _photos()["chelsea"][None, 20:28, 30:38].astype(np.float32)
    if conversion == "hcl_to_rgb":
        x = color.rgb_to_hcl(x).numpy()
    want = getattr(color, conversion)(x, **options)
    layer_testing.run_layer_test(
            color.ColorConversion, {"conversion": conversion, "options": options}, x,
            expected_output_shape=want.shape, expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0, expected_output=want)


def test_color_conversion_layer_mixed_precision_and_strategy():
    """Under mixed_float16 the conversion of the float16 input runs in float32."""
    x = _photos()["coffee"][None, :16, :16].astype(np.float32)
    with layer_testing.global_dtype_policy("mixed_float16"):
        out = color.ColorConversion("rgb_to_hcl")(x)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy().astype(np.float32),
                               color.rgb_to_hcl(tf.cast(tf.cast(x, tf.float16), tf.float32)),
                               atol=2e-3)
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPUs (tests/conftest.py)")
    strategy = make_strategy("mirrored", devices=[d.name for d in devices[:2]])
    with strategy.scope():
        layer = color.ColorConversion("rgb_to_lab")
    batch = tf.constant(np.concatenate([x, x]))
    per_replica = strategy.run(tf.function(lambda t: layer(t)),
                               args=(strategy.experimental_distribute_values_from_function(
                                       lambda ctx: batch[ctx.replica_id_in_sync_group:][:1]),))
    for value in strategy.experimental_local_results(per_replica):
        np.testing.assert_allclose(value.numpy(), color.rgb_to_lab(x).numpy(), atol=1e-4)
