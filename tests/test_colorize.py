"""Tests for tfcolor.colorize: decoding, upsampling, lightness, any-size prediction, files."""
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import color as skcolor

from tfcolor import bins, colorize
from tfcolor import color as tfc
from tfcolor.models.colorizer import Colorizer

TAPS = ["data", "conv1_1", "conv2_2", "conv3_3", "fc7"]


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(2)
    return Colorizer("vgg_tiny", kind="hue_chroma", hidden=8, dropout=0.0, taps=TAPS)


def _one_hot_logits(indices, k=32, scale=30.0):
    return scale * tf.one_hot(indices, k)


# ---------------------------------------------------------------------------- upsampling


def test_upsample_hits_grid_cells_and_interpolates_linearly():
    grid = np.random.default_rng(0).normal(size=(1, 3, 4, 2)).astype(np.float32)
    out = colorize.upsample_grid(grid, (10, 13), grid_factor=4).numpy()
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
    out = colorize.upsample_grid(grid, (10, 10), grid_factor=1, network_size=(5, 5)).numpy()
    want_rows = np.clip((np.arange(10) + 0.5) / 2 - 0.5, 0, 4)
    np.testing.assert_allclose(out[0, :, 0, 0], want_rows * 5, atol=1e-5)


def test_reflect_pad_matches_numpy_symmetric_and_handles_tiny_images():
    x = np.random.default_rng(1).uniform(size=(2, 5, 7, 1)).astype(np.float32)
    got = colorize.reflect_pad(x, 8).numpy()
    want = np.pad(x, [(0, 0), (0, 3), (0, 1), (0, 0)], mode="symmetric")
    np.testing.assert_array_equal(got, want)
    tiny = colorize.reflect_pad(np.ones((1, 1, 2, 1), np.float32), 32)
    assert tiny.shape == (1, 32, 32, 1)


# ---------------------------------------------------------------------------- decoding


def test_one_hot_hue_chroma_decodes_to_the_bin_colour_with_the_input_lightness():
    hue_bins = np.array([[[3, 20]]])
    chroma_bins = np.array([[[6, 4]]])
    logits = tf.concat([_one_hot_logits(hue_bins), _one_hot_logits(chroma_bins)], -1)
    gray = np.full((1, 1, 8, 1), 0.5, np.float32)
    rgb = colorize.decode_rgb(logits, gray, grid_factor=4, fading=None).numpy()
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
    rgb = colorize.decode_rgb(logits, gray, grid_factor=4, fading=None).numpy()
    hue = tfc.rgb_to_hcl(tf.constant(rgb)).numpy()[0, 0, 2, 0]
    assert min(hue, 1 - hue) < 1e-3
    assert rgb[0, 0, 2, 0] > rgb[0, 0, 2, 1]  # red


def test_released_fading_of_a_uniform_hue_gives_grey():
    logits = tf.concat([tf.zeros([1, 2, 2, 32]), _one_hot_logits([[[20, 20], [20, 20]]])], -1)
    gray = np.random.default_rng(3).uniform(size=(1, 8, 8, 1)).astype(np.float32)
    rgb = colorize.decode_rgb(logits, gray, fading="released").numpy()
    np.testing.assert_allclose(rgb, np.repeat(gray, 3, -1), atol=1e-5)
    # The paper's printed factor never fades: the same input stays colourful.
    rgb_paper = colorize.decode_rgb(logits, gray, fading="paper").numpy()
    assert np.abs(rgb_paper - gray).max() > 0.05


def test_lab_hist_one_hot_decodes_to_bin_centres():
    spec = bins.get("lab_a")
    a_bin, b_bin = 20, 9
    logits = tf.concat([_one_hot_logits([[[a_bin]]]), _one_hot_logits([[[b_bin]]])], -1)
    gray = np.full((1, 1, 1, 1), 0.5, np.float32)
    rgb = colorize.decode_rgb(logits, gray, kind="lab_hist", lightness=None).numpy()
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
    rgb = colorize.decode_rgb(probs, gray, kind="lab_hist", lightness=None,
                              from_logits=False).numpy()
    lab = skcolor.rgb2lab(rgb[0].astype(np.float64))[0, 0]
    want_a = 0.5 * spec.centers[4] + 0.5 * spec.centers[27]
    assert lab[1] == pytest.approx(want_a, abs=0.05)
    assert lab[2] == pytest.approx(spec.centers[16], abs=0.05)
    rgb_median = colorize.decode_rgb(probs, gray, kind="lab_hist", lightness=None,
                                     from_logits=False, lab_method="median").numpy()
    lab_median = skcolor.rgb2lab(rgb_median[0].astype(np.float64))[0, 0]
    assert lab_median[1] == pytest.approx(spec.edges[5], abs=0.05)
    assert colorize.ColorizeOptions().fading == "released"
    assert colorize.ColorizeOptions().lab_method is None  # -> expectation in decode


@pytest.mark.parametrize("kind, depth", [("lab_joint", 256), ("lab_regression", 2)])
def test_other_kinds_decode_with_exact_lightness(kind, depth):
    pred = np.random.default_rng(4).normal(size=(2, 3, 3, depth)).astype(np.float32) * 10
    gray = np.random.default_rng(5).uniform(size=(2, 9, 11, 1)).astype(np.float32)
    out = colorize.decode(colorize.split_predictions(pred, kind), gray, kind=kind)
    rgb = out["rgb"].numpy()
    assert rgb.shape == (2, 9, 11, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb.mean(-1), gray[..., 0], atol=1e-5)
    assert out["uncertainty"].shape == (2, 9, 11, 1)


def test_match_lightness_exact_and_released():
    rng = np.random.default_rng(6)
    rgb = rng.uniform(-0.2, 1.2, size=(500, 3)).astype(np.float32)
    gray = rng.uniform(size=(500, 1)).astype(np.float32)
    exact = colorize.match_lightness(rgb, gray).numpy()
    np.testing.assert_allclose(exact.mean(-1, keepdims=True), gray, atol=1e-6)
    assert exact.min() >= 0 and exact.max() <= 1
    # The colour direction (offset from grey) is kept, only scaled down.
    off_in = rgb - rgb.mean(-1, keepdims=True)
    off_out = exact - gray
    cos = (off_in * off_out).sum(-1) / (np.linalg.norm(off_in, axis=-1)
                                          * np.linalg.norm(off_out, axis=-1) + 1e-12)
    assert np.all(cos[np.linalg.norm(off_out, axis=-1) > 1e-4] > 0.9999)
    released = colorize.match_lightness(rgb, gray, "released").numpy()
    np.testing.assert_allclose(released, np.clip(rgb - rgb.mean(-1, keepdims=True) + gray, 0, 1),
                               atol=1e-6)
    inside = np.all((rgb - rgb.mean(-1, keepdims=True) + gray >= 0)
                    & (rgb - rgb.mean(-1, keepdims=True) + gray <= 1), axis=-1)
    np.testing.assert_allclose(exact[inside], released[inside], atol=1e-6)


def test_uncertainty_is_entropy_times_chroma():
    hue_logits = np.random.default_rng(7).normal(size=(1, 2, 2, 32)).astype(np.float32)
    logits = tf.concat([hue_logits, _one_hot_logits([[[8, 8], [8, 8]]])], -1)
    gray = np.full((1, 8, 8, 1), 0.5, np.float32)
    out = colorize.decode(colorize.split_predictions(logits), gray)
    p = tf.nn.softmax(hue_logits).numpy()[0, 0, 0]
    want = -(p * np.log(p)).sum() / math.log(32) * 8.5 / 32
    assert out["uncertainty"].numpy()[0, 0, 0, 0] == pytest.approx(want, rel=1e-4)


def test_sample_quantile_half_is_the_median_and_samples_differ():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(1, 3, 3, 64)).astype(np.float32) * 3
    logits[..., 32 + 20:] -= 30.0  # chroma < 0.63: feasible at lightness 0.5 for every hue
    hist = colorize.split_predictions(logits)
    gray = np.full((1, 12, 12, 1), 0.5, np.float32)
    median = colorize.decode(hist, gray, fading=None,
                             chroma_method="median_bin_centre")["rgb"].numpy()
    # Quantile 0.5 picks the centre of the bin where the CDF reaches 0.5, i.e. the released
    # bin-centre median (the default median interpolates inside that bin); hue then is the
    # median of the circular histogram, so compare chroma only.
    q = colorize.decode(hist, gray, fading=None, sample_quantile=0.5)["rgb"].numpy()
    c_med = tfc.rgb_to_hcl(tf.constant(median)).numpy()[..., 1]
    c_q = tfc.rgb_to_hcl(tf.constant(q)).numpy()[..., 1]
    np.testing.assert_allclose(c_q[0, ::4, ::4], c_med[0, ::4, ::4], atol=1e-4)
    a = colorize.decode(hist, gray, sample_quantile=0.1)["rgb"].numpy()
    b = colorize.decode(hist, gray, sample_quantile=0.9)["rgb"].numpy()
    assert np.abs(a - b).max() > 0.01


def test_decode_works_inside_tf_function_and_rejects_bad_input():
    logits = np.random.default_rng(9).normal(size=(1, 2, 3, 64)).astype(np.float32)
    gray = np.full((1, 7, 9, 1), 0.3, np.float32)
    f = tf.function(lambda p, g: colorize.decode_rgb(p, g),
                    input_signature=[tf.TensorSpec([None, None, None, 64]),
                                     tf.TensorSpec([None, None, None, 1])])
    np.testing.assert_allclose(f(logits, gray).numpy(), colorize.decode_rgb(logits, gray).numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="needs 256"):
        colorize.decode_rgb(logits, gray, kind="lab_joint")
    with pytest.raises(ValueError, match="unknown kind"):
        colorize.decode_rgb(logits, gray, kind="rgb")
    with pytest.raises(ValueError, match=r"\(B, H, W, 1\)"):
        colorize.decode_rgb(logits, gray[0])
    with pytest.raises(ValueError, match="lightness"):
        colorize.decode_rgb(logits, gray, lightness="approximately")


# ---------------------------------------------------------------------------- with a model


def test_colorize_batch_any_size_equals_manual_pipeline(model):
    rgb = np.random.default_rng(10).uniform(size=(2, 23, 41, 3)).astype(np.float32)
    out = colorize.colorize_batch(model, rgb).numpy()
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out.mean(-1), rgb.mean(-1), atol=1e-5)
    gray = rgb.mean(-1, keepdims=True)
    padded = colorize.reflect_pad(gray, 32)
    assert padded.shape == (2, 32, 64, 1)
    logits = model.dense(padded, grid_factor=4)[:, :6, :11]
    want = colorize.decode_rgb(logits, gray).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert colorize.model_stride(model) == 32


def test_colorize_image_options(model):
    image = np.random.default_rng(11).uniform(size=(40, 70, 3)).astype(np.float32)
    source = colorize.KerasSource(model)
    opts = colorize.ColorizeOptions(max_side=32, samples=2, uncertainty=True, fading="released")
    out = colorize.colorize_image(source, image, opts)
    assert out["rgb"].shape == (40, 70, 3)
    np.testing.assert_allclose(out["rgb"].numpy().mean(-1), image.mean(-1), atol=1e-5)
    assert out["uncertainty"].shape == (40, 70) and len(out["samples"]) == 2
    grey_in = colorize.colorize_image(source, image.mean(-1), opts)["rgb"].numpy()
    np.testing.assert_allclose(grey_in, out["rgb"].numpy(), atol=1e-5)  # colour is discarded
    with pytest.raises(ValueError, match="reference"):
        colorize.colorize_image(source, image, colorize.ColorizeOptions(transfer="bias"))
    with pytest.raises(ValueError, match="empty"):
        colorize.colorize_image(source, np.zeros((0, 4, 3), np.float32))
    ref = np.zeros((10, 10, 3), np.float32)
    ref[..., 0] = 0.9  # a red reference
    for method in ("quantile", "bias"):
        res = colorize.colorize_image(source, image, colorize.ColorizeOptions(
                transfer=method, max_side=32, transfer_steps=50), reference=ref)["rgb"].numpy()
        np.testing.assert_allclose(res.mean(-1), image.mean(-1), atol=1e-4)


# ---------------------------------------------------------------------------- files


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)


def test_expand_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sub").mkdir()
    img = np.zeros((4, 4, 3), np.uint8)
    for p in ["a/x.png", "a/y.jpg", "a/sub/x.png", "z.png"]:
        _write(tmp_path / p, img)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    flat = colorize.expand_inputs([str(tmp_path / "a")])
    assert [s for _, s in flat] == ["x", "y"]
    deep = colorize.expand_inputs([str(tmp_path / "a")], recursive=True)
    assert sorted(s for _, s in deep) == ["sub__x", "x", "y"]
    globbed = colorize.expand_inputs([str(tmp_path / "a" / "*.png"), str(tmp_path / "z.png"),
                                      str(tmp_path / "a" / "x.png")])
    assert [s for _, s in globbed] == ["x", "z", "x_2"]
    with pytest.raises(FileNotFoundError, match="neither a file"):
        colorize.expand_inputs([str(tmp_path / "missing.png")])


def test_read_image_modes(tmp_path):
    grey = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    _write(tmp_path / "g.png", grey)
    g = colorize.read_image(str(tmp_path / "g.png"))
    assert g.shape == (3, 4, 3)
    np.testing.assert_allclose(g[..., 0], grey / 255.0, atol=1e-6)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 10
    _write(tmp_path / "rgba.png", rgba)
    assert colorize.read_image(str(tmp_path / "rgba.png"))[0, 0, 0] == 1.0
    Image.fromarray(np.full((2, 3), 65535, np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_allclose(colorize.read_image(str(tmp_path / "deep.png")), 1.0)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(colorize.ImageReadError, match="^unknown_format: ") as info:
        colorize.read_image(str(tmp_path / "bad.jpg"))
    assert info.value.path == str(tmp_path / "bad.jpg") and info.value.reason == "unknown_format"


def test_colorize_files_writes_pngs_and_skips_corrupt(model, tmp_path, caplog):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(12)
    _write(src / "one.png", (rng.uniform(size=(20, 30, 3)) * 255).astype(np.uint8))
    _write(src / "two.jpg", (rng.uniform(size=(33, 17)) * 255).astype(np.uint8))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    seen = []
    with caplog.at_level(logging.WARNING, logger="tfcolor.colorize"):
        res = colorize.colorize_files(
                colorize.KerasSource(model), [str(src)], str(tmp_path / "out"),
                colorize.ColorizeOptions(uncertainty=True, samples=1),
                progress=lambda i, n, p, s: seen.append((i, n)))
    assert [os.path.basename(p) for p, _ in res["skipped"]] == ["broken.png"]
    assert "broken.png" in caplog.text
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["one.png", "one_sample1.png", "one_uncertainty.png", "two.png",
                     "two_sample1.png", "two_uncertainty.png"]
    assert seen == [(2, 3), (3, 3)]
    out = np.asarray(Image.open(tmp_path / "out" / "two.png"))
    assert out.shape == (33, 17, 3)
    grey_in = np.asarray(Image.open(src / "two.jpg").convert("L"), np.float32)
    assert np.abs(out.astype(np.float32).mean(-1) - grey_in).max() <= 1.5


def test_mixed_precision_model_decodes_in_float32(model):
    import keras
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_float16")
        half = Colorizer("vgg_tiny", kind="hue_chroma", hidden=8, dropout=0.0, taps=TAPS)
    finally:
        keras.config.set_dtype_policy(previous)
    half.set_weights(model.get_weights())
    rgb = np.random.default_rng(13).uniform(size=(1, 24, 24, 3)).astype(np.float32)
    logits = colorize.predict_grid(half, rgb.mean(-1, keepdims=True), 4)
    assert logits.dtype == tf.float16
    out = colorize.colorize_batch(half, rgb)
    assert out.dtype == tf.float32
    want = colorize.colorize_batch(model, rgb).numpy()
    assert np.abs(out.numpy() - want).mean() < 0.02
    np.testing.assert_allclose(out.numpy().mean(-1), rgb.mean(-1), atol=1e-5)


# ---------------------------------------------------------------------------- hostile input

def _hostile_inputs():
    import importlib.util  # pylint: disable=import-outside-toplevel
    spec = importlib.util.spec_from_file_location(
            "hostile_inputs", os.path.join(os.path.dirname(__file__), "hostile_inputs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shrunk_network_input_stays_in_range():
    # Issue #11: an all-white 683 x 512 image shrunk to 512 x 384 by the antialiased area
    # resize came out at 1.0000075, which the SavedModel's range check refused.
    white = tf.ones([1, 512, 683, 1])
    net, net_hw = colorize._network_input(white, 512)  # pylint: disable=protected-access
    assert net_hw == (384, 512)
    assert float(tf.reduce_max(net)) == 1.0  # clipped, not 1.0000075
    assert float(tf.reduce_min(net)) == pytest.approx(1.0, abs=1e-4)  # still white
    rng = np.random.default_rng(3)
    noise = tf.constant((rng.uniform(size=(1, 700, 333, 1)) > 0.5).astype(np.float32))
    net, _ = colorize._network_input(noise, 100)  # pylint: disable=protected-access
    assert 0.0 <= float(tf.reduce_min(net)) and float(tf.reduce_max(net)) <= 1.0


def test_read_image_on_the_hostile_matrix(tmp_path):
    hostile = _hostile_inputs()
    cases = hostile.write_image_cases(tmp_path, camera=False)
    for case in cases.values():
        if case.valid:
            image = colorize.read_image(case.path)
            assert image.shape == tuple(case.size) + (3,), case.note
            assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
        else:
            with pytest.raises(colorize.ImageReadError) as info:
                colorize.read_image(case.path)
            assert info.value.reason == case.expected, (case.note, str(info.value))
            assert "\n" not in str(info.value)
    # The limit is read from the header, whatever the size: 7 x 5 = 35 pixels.
    with pytest.raises(colorize.ImageReadError, match="^too_large: 7 x 5 = 35 pixels"):
        colorize.read_image(cases["seven_by_five.jpg"].path, max_pixels=34)
    assert colorize.read_image(cases["seven_by_five.jpg"].path, max_pixels=35).shape == (5, 7, 3)
    assert colorize.MAX_PIXELS == 100_000_000
    # Folders list the non-files named like images, so that they are reported, not dropped.
    listed = [os.path.basename(p) for p, _ in colorize.expand_inputs([str(tmp_path)])]
    assert "folder.jpg" in listed and "dangling.jpg" in listed
    assert sorted(listed) == sorted(cases)


def test_a_bomb_is_refused_without_being_decoded(tmp_path):
    # In a child process, so that its peak memory is its own: importing TensorFlow takes
    # ~0.6 GB; decoding the 30000 x 30000 PNG would add >= 0.9 GB (Pillow, 1 byte per pixel).
    hostile = _hostile_inputs()
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile.png_bomb())
    # Peak memory from VmHWM: a child's ru_maxrss starts at its parent's resident size (Linux
    # keeps the pre-exec high-water mark), which exceeds 1 GB in a full-suite pytest process.
    script = (
        "import sys\n"
        "from tfcolor import colorize\n"
        "try:\n"
        "    colorize.read_image(sys.argv[1])\n"
        "except colorize.ImageReadError as e:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "    print(e.reason, hwm[0].split()[1])\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root))
    reason, max_rss_kb = res.stdout.split()
    assert reason == "too_large", res.stderr[-2000:]
    assert int(max_rss_kb) < 1024 * 1024, max_rss_kb


class _FailingOnWide:
    """A histogram source that fails (like a broken op) on inputs wider than 30 pixels."""

    def __init__(self, source):
        self.inner = source
        self.kind, self.grid_factor, self.from_logits = source.kind, 4, True

    def __call__(self, gray):
        if gray.shape[2] > 30:
            raise tf.errors.InvalidArgumentError(None, None, "boom\nsecond line")
        return self.inner(gray)


def test_colorize_files_skips_a_failing_input_and_keeps_existing_outputs(model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(14)
    _write(src / "narrow.png", (rng.uniform(size=(20, 30, 3)) * 255).astype(np.uint8))
    _write(src / "wide.png", (rng.uniform(size=(20, 40, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    source = _FailingOnWide(colorize.KerasSource(model))
    opts = colorize.ColorizeOptions(uncertainty=True)
    res = colorize.colorize_files(source, [str(src)], str(out), opts)
    assert res["skipped"] == [(str(src / "wide.png"),
                               "failed: InvalidArgumentError: boom")]
    assert sorted(os.listdir(out)) == ["narrow.png", "narrow_uncertainty.png"]
    # A second run keeps what exists (and finishes nothing else: wide still fails).
    stamp = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    (out / "narrow.png").write_bytes(b"user's file")
    again = colorize.colorize_files(source, [str(src)], str(out), opts)
    assert again["kept"] == [(str(src / "narrow.png"), str(out / "narrow_uncertainty.png"))]
    assert (out / "narrow.png").read_bytes() == b"user's file"
    assert os.stat(out / "narrow_uncertainty.png").st_mtime_ns == stamp["narrow_uncertainty.png"]
    # overwrite=True replaces them; an output that would be the input itself is never written.
    third = colorize.colorize_files(colorize.KerasSource(model), [str(src)], str(out), opts,
                                    overwrite=True)
    assert len(third["written"]) == 4 and not third["skipped"]
    assert Image.open(out / "narrow.png").size == (30, 20)
    in_place = colorize.colorize_files(colorize.KerasSource(model), [str(src / "wide.png")],
                                       str(src), colorize.ColorizeOptions(), overwrite=True)
    assert in_place["skipped"][0][1].startswith("output_is_input")
    assert Image.open(src / "wide.png").size == (40, 20)


def test_save_png_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    colorize.save_png(np.full((4, 5, 3), 0.5, np.float32), str(target))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        colorize.save_png(np.zeros((4, 5, 3), np.float32), str(target))
    assert target.read_bytes() == before  # the earlier file is whole
    assert os.listdir(tmp_path) == ["x.png"]  # no temporary file left
