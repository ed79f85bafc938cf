"""The hostile-input matrix (tests/hostile_inputs.py) through the data pipelines.

One folder with every case is written once per module (camera-size JPEGs included) and read by
one pretraining pipeline (as a folder) and one evaluation pipeline (as an explicit list of every
path): valid files come out with the size, orientation and colours Pillow gives them, every
other one is skipped and counted with its reason, and the run goes on.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from tfcolor.config import DataConfig
from tfcolor.data import SkipCounter, sources
from tfcolor.data import evaluate, pretrain

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import hostile_inputs  # noqa: E402

def _not_listed(cases):
    """Cases a folder listing or a glob does not return (a directory is a sub-folder)."""
    return {n for n, c in cases.items() if not c.listed}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return str(folder), hostile_inputs.write_image_cases(folder, camera=True)


def _pillow_rgb(case):
    """Independent reference: Pillow (EXIF transpose, alpha over grey 0.5), OpenCV for 16-bit
    colour PNGs."""
    if case.name == "sixteen_bit_rgb.png":
        import cv2  # pylint: disable=import-outside-toplevel
        return cv2.imread(case.path, cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535.0
    with Image.open(case.path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16"):
            grey = np.asarray(image, np.float64) / 65535.0
            return np.repeat(grey[..., None], 3, axis=-1)
        if image.mode in ("RGBA", "LA", "PA"):
            rgba = np.asarray(image.convert("RGBA"), np.float64) / 255.0
            alpha = rgba[..., 3:]
            return rgba[..., :3] * alpha + 0.5 * (1.0 - alpha)
        return np.asarray(image.convert("RGB"), np.float64) / 255.0


def test_pretraining_over_the_matrix_folder(matrix):
    folder, cases = matrix
    counter = SkipCounter()
    config = DataConfig(batch_size=1, crop_size=64, min_side=64, max_side=80, points=8,
                        targets_on_device=False)
    batches = list(pretrain.pretrain_dataset(
        config, source=folder, skip_counter=counter, repeat=False, shuffle=False,
        drop_remainder=False, include_names=True))
    produced = sorted(os.path.basename(b["name"][0].numpy().decode()) for b in batches)
    assert produced == sorted(n for n, c in cases.items() if c.valid)
    expected_skips = {n: c.expected for n, c in cases.items()
                      if not c.valid and n not in _not_listed(cases)}
    assert {os.path.basename(n): r for n, r in counter.skipped} == expected_skips
    assert counter.total == len(expected_skips)
    for batch in batches:
        gray = batch["gray"].numpy()
        assert gray.shape == (1, 64, 64, 1)
        assert np.isfinite(gray).all() and gray.min() >= 0.0 and gray.max() <= 1.0
        assert np.isfinite(batch["targets"].numpy()).all()


def test_evaluation_of_every_listed_path_matches_pillow(matrix):
    """Full-size images from an explicit list of every case (the directory expands to no
    image; the dangling link is skipped as not_a_file)."""
    _, cases = matrix
    counter = SkipCounter()
    config = evaluate.EvalDataConfig(short_side=None, crop="full", batch_size=None,
                                     include_names=True)
    source = sources.as_source([c.path for c in cases.values()])
    images = {os.path.basename(e["name"].numpy().decode()): e["rgb"].numpy()
              for e in evaluate.eval_dataset(source, config, skip_counter=counter)}
    assert sorted(images) == sorted(n for n, c in cases.items() if c.valid)
    assert {os.path.basename(n): r for n, r in counter.skipped} == {
        n: c.expected for n, c in cases.items() if not c.valid and n not in _not_listed(cases)}
    for name, image in images.items():
        case = cases[name]
        assert image.shape == case.size + (3,), name          # upright (EXIF applied)
        reference = _pillow_rgb(case)
        assert reference.shape == image.shape, name
        diff = np.abs(image - reference)
        if name.endswith(".png"):
            assert diff.max() < 1e-5, name                        # lossless: exact
        else:
            assert diff.mean() < 1.5 / 255, (name, diff.mean())   # JPEG/GIF/WebP decoders
            assert diff.max() < 24 / 255, (name, diff.max())


def test_globs_drop_directories_and_keep_dangling_links(matrix):
    folder, cases = matrix
    listed = {os.path.basename(p) for p in sources.list_image_files(os.path.join(folder, "*"))}
    assert listed == set(cases) - _not_listed(cases)
    assert {os.path.basename(p) for p in sources.list_image_files(folder)} == listed


def test_a_decompression_bomb_is_refused_from_its_header_in_bounded_memory():
    """The 30000 x 30000 PNG (9e8 pixels) is refused as too_large before decoding: the child
    process's peak memory grows by far less than the 1.8 GB of its 16-bit pixels."""
    # VmHWM (peak resident memory of this process image): unlike ru_maxrss it is not inherited
    # from the (large) pytest process across fork + exec.
    code = (
        "import sys\n"
        "def peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})\n"
        "import hostile_inputs\n"
        "import tensorflow as tf\n"
        "from tfcolor.data import decode\n"
        "ds = tf.data.Dataset.from_tensors({'encoded': tf.constant(hostile_inputs.png_bomb()),"
        " 'name': 'bomb'})\n"
        "before = peak()\n"
        "(e,) = list(ds.interleave(lambda e: decode.safe_decode_dataset(e, read_file=False)))\n"
        "after = peak()\n"
        "print(decode.REASONS[int(e['reason'])], (after - before) // 1024, after // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)
    reason, grown_mb, peak_mb = out.stdout.split()
    assert reason == "too_large"
    assert int(grown_mb) < 200, out.stdout
    assert int(peak_mb) < 1000, out.stdout


@pytest.mark.parametrize("kwargs,chunk", [
    (dict(quality=80), b"VP8 "), (dict(lossless=True), b"VP8L"), (None, b"VP8X")])
def test_webp_pixel_limit_is_read_from_the_header(kwargs, chunk):
    import io  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor.data import decode  # pylint: disable=import-outside-toplevel
    rgb = hostile_inputs.smooth_rgb(37, 53)
    if kwargs is None:  # with alpha: the extended format
        image, kwargs = Image.fromarray(np.dstack([rgb, rgb[..., :1]])), dict(quality=80)
    else:
        image = Image.fromarray(rgb)
    buf = io.BytesIO()
    image.save(buf, "WEBP", **kwargs)
    data = buf.getvalue()
    assert data[12:16] == chunk
    reasons = [decode.REASONS[int(decode.decode_image(tf.constant(data), max_pixels=m)[1])]
               for m in (37 * 53 - 1, 37 * 53)]
    assert reasons == ["too_large", "ok"]


def test_pretraining_on_tfrecords_of_the_matrix_runs_on_over_epochs(tmp_path):
    """Every readable case as a TFRecord Example, plus a garbage record and a truncated file:
    a repeating pipeline keeps producing batches over several epochs and reports each bad
    record once by name."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    cases = hostile_inputs.write_image_cases(tmp_path, camera=False)
    readable = {n: c for n, c in cases.items() if os.path.isfile(c.path)}

    def example(data):
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
        return tf.train.Example(features=tf.train.Features(
            feature={"image/encoded": feature})).SerializeToString()

    names = sorted(readable)
    with tf.io.TFRecordWriter(str(tmp_path / "matrix.tfrecord")) as writer:
        for name in names:
            with open(readable[name].path, "rb") as f:
                writer.write(example(f.read()))
        writer.write(b"\x00garbage, not an Example")
    with tf.io.TFRecordWriter(str(tmp_path / "cut.tfrecord")) as writer:
        for name in ("grey.jpg", "palette.png"):
            with open(readable[name].path, "rb") as f:
                writer.write(example(f.read()))
    cut = (tmp_path / "cut.tfrecord").read_bytes()
    (tmp_path / "cut.tfrecord").write_bytes(cut[:len(cut) - 40])
    counter = SkipCounter()
    config = DataConfig(batch_size=4, crop_size=32, min_side=32, max_side=40, points=4,
                        targets_on_device=True)
    valid = [n for n in names if readable[n].valid]
    batches = list(pretrain.pretrain_dataset(
        config, source=str(tmp_path / "*.tfrecord"), skip_counter=counter, include_names=True,
        shuffle=False).take(3 * len(valid) // 4))
    assert len(batches) == 3 * len(valid) // 4           # about three epochs, no error
    seen = {n.decode() for b in batches for n in b["name"].numpy()}
    index = {f"{tmp_path / 'matrix.tfrecord'}#{i}": n for i, n in enumerate(names)}
    assert {index[n] for n in seen if n in index} == set(valid)
    skipped = {os.path.basename(n): r for n, r in counter.skipped}
    expected = {f"matrix.tfrecord#{i}": readable[n].expected for i, n in enumerate(names)
                if not readable[n].valid}
    expected[f"matrix.tfrecord#{len(names)}"] = "bad_record"
    corrupt = [n for n in skipped if n.startswith("cut.tfrecord (unreadable after record 0")]
    assert len(corrupt) == 1 and skipped.pop(corrupt[0]) == "corrupt_file"
    assert skipped == expected
