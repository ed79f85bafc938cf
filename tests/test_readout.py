"""Tests for tfcolor.readout: histograms -> colours (upsampling, point estimates, lightness)."""
import math

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from tfcolor import bins, predictors, readout
from tfcolor import color as tfc


def _one_hot_logits(indices, k=32, scale=30.0):
    return scale * tf.one_hot(indices, k)


# ---------------------------------------------------------------------------- upsampling


def test_upsample_hits_grid_cells_and_interpolates_linearly():
    grid = np.random.default_rng(0).normal(size=(1, 3, 4, 2)).astype(np.float32)
    out = readout.upsample_grid(grid, (10, 13), grid_factor=4).numpy()
    assert out.shape == (1, 10, 13, 2)
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(out[0, 4 * i, 4 * j], grid[0, i, j], atol=1e-6)
    # Pixel (1, 6): grid coordinate (0.25, 1.5), hand-computed bilinear weights.
    want = (0.75 * (0.5 * grid[0, 0, 1] + 0.5 * grid[0, 0, 2])
            + 0.25 * (0.5 * grid[0, 1, 1] + 0.5 * grid[0, 1, 2]))
    np.testing.assert_allclose(out[0, 1, 6], want, atol=1e-6)
    # Past the last cell (pixel 9 -> coordinate 2.25) the value is clamped to the last row.
    np.testing.assert_allclose(out[0, 9, 0], grid[0, 2, 0], atol=1e-6)


def test_upsample_with_a_shrunk_network_input():
    # The network saw 5 x 5 (grid factor 1) for a 10 x 10 image: pixel y -> (y + 0.5) / 2 - 0.5.
    grid = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    out = readout.upsample_grid(grid, (10, 10), grid_factor=1, network_size=(5, 5)).numpy()
    want_rows = np.clip((np.arange(10) + 0.5) / 2 - 0.5, 0, 4)
    np.testing.assert_allclose(out[0, :, 0, 0], want_rows * 5, atol=1e-5)


# ---------------------------------------------------------------------------- readout


def test_one_hot_hue_chroma_reads_out_the_bin_colour_with_the_input_lightness():
    hue_bins = np.array([[[3, 20]]])
    chroma_bins = np.array([[[6, 4]]])
    logits = tf.concat([_one_hot_logits(hue_bins), _one_hot_logits(chroma_bins)], -1)
    gray = np.full((1, 1, 8, 1), 0.5, np.float32)
    rgb = readout.readout_rgb(logits, gray, grid_factor=4, fading=None).numpy()
    np.testing.assert_allclose(rgb.mean(-1), 0.5, atol=1e-6)
    hcl = tfc.rgb_to_hcl(tf.constant(rgb)).numpy()
    # Pixels 0 and 4 sit on grid cells: hue and chroma are the bins' centres.
    assert hcl[0, 0, 0, 0] == pytest.approx(3.5 / 32, abs=1e-4)
    assert hcl[0, 0, 0, 1] == pytest.approx(6.5 / 32, abs=1e-4)
    assert hcl[0, 0, 4, 0] == pytest.approx(20.5 / 32, abs=1e-4)
    assert hcl[0, 0, 4, 1] == pytest.approx(4.5 / 32, abs=1e-4)
    # Independent check of the hue with scikit-image's HSV.
    assert skcolor.rgb2hsv(rgb[0])[0, 0, 0] == pytest.approx(3.5 / 32, abs=1e-4)


def test_hue_is_interpolated_on_the_circle():
    # Two grid cells with hues 31.5/32 and 0.5/32 and equal chroma: halfway is hue 0 (red),
    # not 0.5 (cyan) as a naive interpolation of the hue value would give.
    logits = tf.concat([_one_hot_logits([[[31, 0]]]), _one_hot_logits([[[10, 10]]])], -1)
    gray = np.full((1, 1, 5, 1), 0.5, np.float32)
    rgb = readout.readout_rgb(logits, gray, grid_factor=4, fading=None).numpy()
    hue = tfc.rgb_to_hcl(tf.constant(rgb)).numpy()[0, 0, 2, 0]
    assert min(hue, 1 - hue) < 1e-3
    assert rgb[0, 0, 2, 0] > rgb[0, 0, 2, 1]  # red


def test_released_fading_of_a_uniform_hue_gives_grey():
    logits = tf.concat([tf.zeros([1, 2, 2, 32]), _one_hot_logits([[[20, 20], [20, 20]]])], -1)
    gray = np.random.default_rng(3).uniform(size=(1, 8, 8, 1)).astype(np.float32)
    rgb = readout.readout_rgb(logits, gray, fading="released").numpy()
    np.testing.assert_allclose(rgb, np.repeat(gray, 3, -1), atol=1e-5)
    # The paper's printed factor never fades: the same input stays colourful.
    rgb_paper = readout.readout_rgb(logits, gray, fading="paper").numpy()
    assert np.abs(rgb_paper - gray).max() > 0.05


def test_lab_hist_one_hot_reads_out_bin_centres():
    spec = bins.get("lab_a")
    a_bin, b_bin = 20, 9
    logits = tf.concat([_one_hot_logits([[[a_bin]]]), _one_hot_logits([[[b_bin]]])], -1)
    gray = np.full((1, 1, 1, 1), 0.5, np.float32)
    rgb = readout.readout_rgb(logits, gray, kind="lab_hist", lightness=None).numpy()
    lab = skcolor.rgb2lab(rgb[0].astype(np.float64))[0, 0]
    centres = spec.centers
    assert lab[1] == pytest.approx(centres[a_bin], abs=0.05)
    assert lab[2] == pytest.approx(centres[b_bin], abs=0.05)
    want_l = skcolor.rgb2lab(np.full((1, 1, 3), 0.5))[0, 0, 0]
    assert lab[0] == pytest.approx(want_l, abs=0.05)


def test_lab_hist_defaults_to_the_expectation_and_hue_chroma_to_released_fading():
    # a: 0.5 on bin 4, 0.5 on bin 27 (expectation ~ 0, median at the upper edge of bin 4);
    # b: a delta on bin 16 (both rules give its centre).
    spec = bins.get("lab_a")
    pa = np.zeros(32, np.float32)
    pa[4], pa[27] = 0.5, 0.5
    pb = np.zeros(32, np.float32)
    pb[16] = 1.0
    probs = tf.constant(np.concatenate([pa, pb])[None, None, None])
    gray = np.full((1, 1, 1, 1), 0.5, np.float32)
    rgb = readout.readout_rgb(probs, gray, kind="lab_hist", lightness=None,
                              from_logits=False).numpy()
    lab = skcolor.rgb2lab(rgb[0].astype(np.float64))[0, 0]
    want_a = 0.5 * spec.centers[4] + 0.5 * spec.centers[27]
    assert lab[1] == pytest.approx(want_a, abs=0.05)
    assert lab[2] == pytest.approx(spec.centers[16], abs=0.05)
    rgb_median = readout.readout_rgb(probs, gray, kind="lab_hist", lightness=None,
                                     from_logits=False, lab_method="median").numpy()
    lab_median = skcolor.rgb2lab(rgb_median[0].astype(np.float64))[0, 0]
    assert lab_median[1] == pytest.approx(spec.edges[5], abs=0.05)
    assert predictors.ColorizeOptions().fading == "released"
    assert predictors.ColorizeOptions().lab_method is None  # -> expectation in readout


@pytest.mark.parametrize("kind, depth", [("lab_joint", 256), ("lab_regression", 2)])
def test_other_kinds_read_out_with_exact_lightness(kind, depth):
    pred = np.random.default_rng(4).normal(size=(2, 3, 3, depth)).astype(np.float32) * 10
    gray = np.random.default_rng(5).uniform(size=(2, 9, 11, 1)).astype(np.float32)
    out = readout.readout(readout.split_predictions(pred, kind), gray, kind=kind)
    rgb = out["rgb"].numpy()
    assert rgb.shape == (2, 9, 11, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb.mean(-1), gray[..., 0], atol=1e-5)
    assert out["uncertainty"].shape == (2, 9, 11, 1)


def test_match_lightness_exact_and_released():
    rng = np.random.default_rng(6)
    rgb = rng.uniform(-0.2, 1.2, size=(500, 3)).astype(np.float32)
    gray = rng.uniform(size=(500, 1)).astype(np.float32)
    exact = readout.match_lightness(rgb, gray).numpy()
    np.testing.assert_allclose(exact.mean(-1, keepdims=True), gray, atol=1e-6)
    assert exact.min() >= 0 and exact.max() <= 1
    # The colour direction (offset from grey) is kept, only scaled down.
    off_in = rgb - rgb.mean(-1, keepdims=True)
    off_out = exact - gray
    cos = (off_in * off_out).sum(-1) / (np.linalg.norm(off_in, axis=-1)
                                          * np.linalg.norm(off_out, axis=-1) + 1e-12)
    assert np.all(cos[np.linalg.norm(off_out, axis=-1) > 1e-4] > 0.9999)
    released = readout.match_lightness(rgb, gray, "released").numpy()
    np.testing.assert_allclose(released, np.clip(rgb - rgb.mean(-1, keepdims=True) + gray, 0, 1),
                               atol=1e-6)
    inside = np.all((rgb - rgb.mean(-1, keepdims=True) + gray >= 0)
                    & (rgb - rgb.mean(-1, keepdims=True) + gray <= 1), axis=-1)
    np.testing.assert_allclose(exact[inside], released[inside], atol=1e-6)


def test_uncertainty_is_entropy_times_chroma():
    hue_logits = np.random.default_rng(7).normal(size=(1, 2, 2, 32)).astype(np.float32)
    logits = tf.concat([hue_logits, _one_hot_logits([[[8, 8], [8, 8]]])], -1)
    gray = np.full((1, 8, 8, 1), 0.5, np.float32)
    out = readout.readout(readout.split_predictions(logits), gray)
    p = tf.nn.softmax(hue_logits).numpy()[0, 0, 0]
    want = -(p * np.log(p)).sum() / math.log(32) * 8.5 / 32
    assert out["uncertainty"].numpy()[0, 0, 0, 0] == pytest.approx(want, rel=1e-4)


def test_sample_quantile_half_is_the_median_and_samples_differ():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(1, 3, 3, 64)).astype(np.float32) * 3
    logits[..., 32 + 20:] -= 30.0  # chroma < 0.63: feasible at lightness 0.5 for every hue
    hist = readout.split_predictions(logits)
    gray = np.full((1, 12, 12, 1), 0.5, np.float32)
    median = readout.readout(hist, gray, fading=None,
                             chroma_method="median_bin_centre")["rgb"].numpy()
    # Quantile 0.5 picks the centre of the bin where the CDF reaches 0.5, i.e. the released
    # bin-centre median (the default median interpolates inside that bin); hue then is the
    # median of the circular histogram, so compare chroma only.
    q = readout.readout(hist, gray, fading=None, sample_quantile=0.5)["rgb"].numpy()
    c_med = tfc.rgb_to_hcl(tf.constant(median)).numpy()[..., 1]
    c_q = tfc.rgb_to_hcl(tf.constant(q)).numpy()[..., 1]
    np.testing.assert_allclose(c_q[0, ::4, ::4], c_med[0, ::4, ::4], atol=1e-4)
    a = readout.readout(hist, gray, sample_quantile=0.1)["rgb"].numpy()
    b = readout.readout(hist, gray, sample_quantile=0.9)["rgb"].numpy()
    assert np.abs(a - b).max() > 0.01


def test_readout_works_inside_tf_function_and_rejects_bad_input():
    logits = np.random.default_rng(9).normal(size=(1, 2, 3, 64)).astype(np.float32)
    gray = np.full((1, 7, 9, 1), 0.3, np.float32)
    f = tf.function(lambda p, g: readout.readout_rgb(p, g),
                    input_signature=[tf.TensorSpec([None, None, None, 64]),
                                     tf.TensorSpec([None, None, None, 1])])
    np.testing.assert_allclose(f(logits, gray).numpy(), readout.readout_rgb(logits, gray).numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="needs 256"):
        readout.readout_rgb(logits, gray, kind="lab_joint")
    with pytest.raises(ValueError, match="unknown kind"):
        readout.readout_rgb(logits, gray, kind="rgb")
    with pytest.raises(ValueError, match=r"\(B, H, W, 1\)"):
        readout.readout_rgb(logits, gray[0])
    with pytest.raises(ValueError, match="lightness"):
        readout.readout_rgb(logits, gray, lightness="approximately")


def test_every_loss_kind_has_groups_that_match_its_training_targets():
    from tfcolor import losses, targets
    assert sorted(readout.GROUPS) == sorted(losses.LOSS_KINDS)
    for kind in losses.LOSS_KINDS:
        builder = targets.TargetBuilder(kind)
        assert readout.group_sizes(kind) == tuple(builder.output_sizes), kind
