"""Tests for tfcolor.metrics against hand-computed values and scikit-image."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio

from tfcolor import metrics


def _rng_images(seed, shape=(2, 6, 7, 3)):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_psnr_matches_skimage_per_image():
    a, b = _rng_images(0), _rng_images(1)
    got = metrics.psnr(a, b).numpy()
    want = [peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(len(a))]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_psnr_hand_computed():
    a = np.zeros((1, 2, 2, 3), np.float32)
    b = a.copy()
    b[0, 0, 0, 0] = 0.5  # MSE = 0.25 / 12
    assert metrics.psnr(a, b).numpy()[0] == pytest.approx(10 * math.log10(12 / 0.25), rel=1e-6)
    assert math.isinf(metrics.psnr(a, a).numpy()[0])


def test_gray_baseline_is_mean_of_channels():
    rgb = _rng_images(2)
    g = metrics.gray_baseline(rgb).numpy()
    np.testing.assert_allclose(g, np.repeat(rgb.mean(-1, keepdims=True), 3, -1), atol=1e-7)


def test_alphabeta_error_hand_computed_single_pixel():
    color = pytest.importorskip("tfcolor.color")
    base = np.full((1, 4, 5, 3), 0.5, np.float32)
    pred = base.copy()
    pred[0, 1, 2] = [0.9, 0.2, 0.4]
    err = metrics.alphabeta_error(base, pred).numpy()
    ab = color.rgb_to_alphabeta(tf.constant(np.stack([base[0, 1, 2], pred[0, 1, 2]])[None])).numpy()
    ab = ab[..., -2:]
    want = np.sqrt(((ab[0, 0] - ab[0, 1]) ** 2).sum())
    assert want > 0
    assert err[0, 1, 2] == pytest.approx(want, rel=1e-5)
    assert np.count_nonzero(err) == 1
    # One pixel of 20 wrong by d: mean distance d / 20, root mean square sqrt(d^2 / 20).
    assert metrics.alphabeta_mean(base, pred).numpy()[0] == pytest.approx(want / 20, rel=1e-5)
    assert metrics.alphabeta_rms(base, pred).numpy()[0] == pytest.approx(want / math.sqrt(20),
                                                                         rel=1e-5)


def test_rms_is_at_least_the_mean_distance_with_equality_only_for_constant_errors():
    pytest.importorskip("tfcolor.color")
    grey = np.full((1, 6, 7, 3), 0.5, np.float32)
    shifted = grey + np.array([0.1, -0.05, 0.0], np.float32)  # the same colour error everywhere
    err = metrics.alphabeta_error(grey, shifted).numpy()
    assert err.min() > 0 and np.ptp(err) < 1e-6
    assert metrics.alphabeta_rms(grey, shifted).numpy()[0] == pytest.approx(
            metrics.alphabeta_mean(grey, shifted).numpy()[0], rel=1e-5)
    a, b = _rng_images(6), _rng_images(7)  # errors that vary from pixel to pixel
    mean = metrics.alphabeta_mean(a, b).numpy()
    rms = metrics.alphabeta_rms(a, b).numpy()
    assert np.all(rms > mean * (1 + 1e-3))
    m = metrics.ColorizationMetrics(["model"])
    m.update("model", a, b)
    r = m.result()["model"]
    assert r["alphabeta_rms"] > r["alphabeta_mean"]
    assert not any("rmse" in key for key in r)  # the ambiguous name is gone


def test_gray_baseline_of_gray_image_has_zero_error():
    pytest.importorskip("tfcolor.color")
    gray = np.repeat(_rng_images(3, (2, 5, 6, 1)), 3, axis=-1)
    m = metrics.ColorizationMetrics(["gray"])
    m.update("gray", gray, metrics.gray_baseline(gray))
    r = m.result()["gray"]
    assert r["alphabeta_mean"] == pytest.approx(0.0, abs=1e-6)
    # (x + x + x) / 3 can differ from x in the last float32 bit: "zero" up to rounding.
    assert r["psnr"] > 120
    _, f = m.curve("gray")
    assert f[1] == pytest.approx(1.0) and r["auc"] == pytest.approx(1.0, abs=1e-3)
    # Exactly equal images: infinite PSNR, counted, and the curve is 1 from threshold 0 on.
    exact = metrics.ColorizationMetrics(["gray"])
    exact.update("gray", gray, gray)
    r = exact.result()["gray"]
    assert math.isinf(r["psnr"]) and r["images_with_infinite_psnr"] == 2
    assert exact.curve("gray")[1][0] == 1.0 and r["auc"] == 1.0


def test_accumulator_matches_direct_computation_and_curve():
    pytest.importorskip("tfcolor.color")
    a, b = _rng_images(4), _rng_images(5)
    m = metrics.ColorizationMetrics(["model"], t_max=1.0, num_bins=1000)
    m.update("model", a[:1], b[:1])
    m.update("model", a[1], b[1])  # a single (H, W, 3) image
    r = m.result()["model"]
    err = metrics.alphabeta_error(a, b).numpy()
    assert r["images"] == 2 and r["pixels"] == err.size
    assert r["alphabeta_mean"] == pytest.approx(err.mean(), rel=1e-5)
    assert r["alphabeta_rms"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-5)
    want_psnr = np.mean([peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(2)])
    assert r["psnr"] == pytest.approx(want_psnr, rel=1e-5)
    # The histogram-based curve equals the exact empirical CDF at the bin edges (up to one pixel
    # sitting on an edge in float32 vs float64).
    t, f = m.curve("model")
    t2, f2, area = metrics.cumulative_error_curve(err, t_max=1.0, num_points=len(t))
    np.testing.assert_allclose(t, t2)
    np.testing.assert_allclose(f, f2, atol=1.01 / err.size)
    assert 0 < f[len(f) // 2] < 1
    assert r["auc"] == pytest.approx(area, abs=1e-6)
    json.dumps(r)


def test_cumulative_curve_hand_computed():
    t, f, area = metrics.cumulative_error_curve([0.0, 0.25, 0.5, 2.0], t_max=1.0, num_points=5)
    np.testing.assert_allclose(t, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(f, [0.25, 0.5, 0.75, 0.75, 0.75])
    # Trapezoids: (0.25+0.5 + 0.5+0.75 + 0.75+0.75 + 0.75+0.75) / 2 / 4
    assert area == pytest.approx(5.0 / 8.0)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 2, 4), np.float32), "3 channels"),
    (np.zeros((2, 2), np.float32), "shape"),
    (np.zeros((2, 2, 3), np.uint8), "float"),
])
def test_bad_inputs_name_the_problem(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        metrics.psnr(bad, bad)


def test_bad_configuration():
    with pytest.raises(ValueError, match="t_max"):
        metrics.ColorizationMetrics(["a"], t_max=0)
    with pytest.raises(KeyError, match="unknown predictor"):
        metrics.ColorizationMetrics(["a"]).update("b", np.zeros((1, 2, 2, 3), np.float32),
                                                  np.zeros((1, 2, 2, 3), np.float32))


def test_plot_writes_png(tmp_path):
    from PIL import Image
    t = np.linspace(0, 1, 11)
    path = metrics.plot_curves({"model": (t, t), "gray": (t, t ** 2)}, str(tmp_path / "c.png"))
    img = np.asarray(Image.open(path))
    assert img.shape == (480, 640, 3)
    assert (img != 255).any(axis=-1).mean() > 0.01  # something was drawn
