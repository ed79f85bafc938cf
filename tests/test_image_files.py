"""Tests for tfcolor.image_files: listing inputs, reading images, writing PNGs, colorizing files."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor import image_files, predictors
from tfcolor.data import sources
from tfcolor.models.colorizer import Colorizer

TAPS = ["data", "conv1_1", "conv2_2", "conv3_3", "fc7"]


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(2)
    return Colorizer("vgg_tiny", kind="hue_chroma", hidden=8, dropout=0.0, taps=TAPS)


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
    flat = image_files.expand_inputs([str(tmp_path / "a")])
    assert [s for _, s in flat] == ["x", "y"]
    deep = image_files.expand_inputs([str(tmp_path / "a")], recursive=True)
    assert sorted(s for _, s in deep) == ["sub__x", "x", "y"]
    globbed = image_files.expand_inputs([str(tmp_path / "a" / "*.png"), str(tmp_path / "z.png"),
                                         str(tmp_path / "a" / "x.png")])
    assert [s for _, s in globbed] == ["x", "z", "x_2"]
    with pytest.raises(FileNotFoundError, match="neither a file"):
        image_files.expand_inputs([str(tmp_path / "missing.png")])


def test_expand_inputs_reads_the_shipped_photos_by_the_source_names():
    for name in ("embedded", "embedded:validation"):
        assert [p for p, _ in image_files.expand_inputs([name])] == sources.as_source(name).files
    with pytest.raises(FileNotFoundError, match="splits train, validation, all"):
        image_files.expand_inputs(["embedded:test"])
    for training_only in ("tfds:voc/2012", "train-00000-of-00001.tfrecord"):
        with pytest.raises(FileNotFoundError, match="TFRecord files and TensorFlow Datasets"):
            image_files.expand_inputs([training_only])


def test_read_image_modes(tmp_path):
    grey = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    _write(tmp_path / "g.png", grey)
    g = image_files.read_image(str(tmp_path / "g.png"))
    assert g.shape == (3, 4, 3)
    np.testing.assert_allclose(g[..., 0], grey / 255.0, atol=1e-6)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 10
    _write(tmp_path / "rgba.png", rgba)
    assert image_files.read_image(str(tmp_path / "rgba.png"))[0, 0, 0] == 1.0
    Image.fromarray(np.full((2, 3), 65535, np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_allclose(image_files.read_image(str(tmp_path / "deep.png")), 1.0)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(image_files.ImageReadError, match="^unknown_format: ") as info:
        image_files.read_image(str(tmp_path / "bad.jpg"))
    assert info.value.path == str(tmp_path / "bad.jpg") and info.value.reason == "unknown_format"


def test_colorize_files_writes_pngs_and_skips_corrupt(model, tmp_path, caplog):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(12)
    _write(src / "one.png", (rng.uniform(size=(20, 30, 3)) * 255).astype(np.uint8))
    _write(src / "two.jpg", (rng.uniform(size=(33, 17)) * 255).astype(np.uint8))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    seen = []
    with caplog.at_level(logging.WARNING, logger="tfcolor.image_files"):
        res = image_files.colorize_files(
                predictors.KerasPredictor(model), [str(src)], str(tmp_path / "out"),
                predictors.ColorizeOptions(uncertainty=True, samples=1),
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


# ---------------------------------------------------------------------------- hostile input

def _hostile_inputs():
    import importlib.util  # pylint: disable=import-outside-toplevel
    spec = importlib.util.spec_from_file_location(
            "hostile_inputs", os.path.join(os.path.dirname(__file__), "hostile_inputs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_read_image_on_the_hostile_matrix(tmp_path):
    hostile = _hostile_inputs()
    cases = hostile.write_image_cases(tmp_path, camera=False)
    for case in cases.values():
        if case.valid:
            image = image_files.read_image(case.path)
            assert image.shape == tuple(case.size) + (3,), case.note
            assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
        else:
            with pytest.raises(image_files.ImageReadError) as info:
                image_files.read_image(case.path)
            assert info.value.reason == case.expected, (case.note, str(info.value))
            assert "\n" not in str(info.value)
    # The limit is read from the header, whatever the size: 7 x 5 = 35 pixels.
    with pytest.raises(image_files.ImageReadError, match="^too_large: 7 x 5 = 35 pixels"):
        image_files.read_image(cases["seven_by_five.jpg"].path, max_pixels=34)
    assert image_files.read_image(cases["seven_by_five.jpg"].path, max_pixels=35).shape == (5, 7, 3)
    assert image_files.MAX_PIXELS == 100_000_000
    # Folders list the non-files named like images, so that they are reported, not dropped.
    listed = [os.path.basename(p) for p, _ in image_files.expand_inputs([str(tmp_path)])]
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
        "from tfcolor import image_files\n"
        "try:\n"
        "    image_files.read_image(sys.argv[1])\n"
        "except image_files.ImageReadError as e:\n"
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
    """A predictor that fails (like a broken op) on inputs wider than 30 pixels."""

    def __init__(self, predictor):
        self.inner = predictor
        self.kind, self.grid_factor, self.from_logits = predictor.kind, 4, True

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
    predictor = _FailingOnWide(predictors.KerasPredictor(model))
    opts = predictors.ColorizeOptions(uncertainty=True)
    res = image_files.colorize_files(predictor, [str(src)], str(out), opts)
    assert res["skipped"] == [(str(src / "wide.png"),
                               "failed: InvalidArgumentError: boom")]
    assert sorted(os.listdir(out)) == ["narrow.png", "narrow_uncertainty.png"]
    # A second run keeps what exists (and finishes nothing else: wide still fails).
    stamp = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    (out / "narrow.png").write_bytes(b"user's file")
    again = image_files.colorize_files(predictor, [str(src)], str(out), opts)
    assert again["kept"] == [(str(src / "narrow.png"), str(out / "narrow_uncertainty.png"))]
    assert (out / "narrow.png").read_bytes() == b"user's file"
    assert os.stat(out / "narrow_uncertainty.png").st_mtime_ns == stamp["narrow_uncertainty.png"]
    # overwrite=True replaces them; an output that would be the input itself is never written.
    third = image_files.colorize_files(predictors.KerasPredictor(model), [str(src)], str(out),
                                       opts, overwrite=True)
    assert len(third["written"]) == 4 and not third["skipped"]
    assert Image.open(out / "narrow.png").size == (30, 20)
    in_place = image_files.colorize_files(predictors.KerasPredictor(model),
                                          [str(src / "wide.png")], str(src),
                                          predictors.ColorizeOptions(), overwrite=True)
    assert in_place["skipped"][0][1].startswith("output_is_input")
    assert Image.open(src / "wide.png").size == (40, 20)


def test_save_png_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    image_files.save_png(np.full((4, 5, 3), 0.5, np.float32), str(target))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        image_files.save_png(np.zeros((4, 5, 3), np.float32), str(target))
    assert target.read_bytes() == before  # the earlier file is whole
    assert os.listdir(tmp_path) == ["x.png"]  # no temporary file left
