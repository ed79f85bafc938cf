"""Robust decoding: every kind of bad or unusual file is decoded right or skipped with a reason."""
import io
import logging
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor.data import decode

sys.path.insert(0, os.path.dirname(__file__))
from data_testlib import BAD_FOLDER_EXPECTED, encode, smooth_rgb  # noqa: E402


def _decode_many(datas, **kwargs):
    """Runs decode_image through safe_decode_dataset (as the pipelines do), one trace for all."""
    ds = tf.data.Dataset.from_tensor_slices({"encoded": tf.constant(list(datas))})
    ds = ds.interleave(lambda e: decode.safe_decode_dataset(e, read_file=False, **kwargs))
    return [(e["image"].numpy(), decode.REASONS[int(e["reason"])]) for e in ds]


def _decode_bytes(data, **kwargs):
    (result,) = _decode_many([data], **kwargs)
    return result


def _pil_rgb(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0


def test_bad_folder_outcomes(bad_image_folder):
    folder, _ = bad_image_folder
    names = sorted(BAD_FOLDER_EXPECTED)
    results = _decode_many([(folder / n).read_bytes() for n in names], min_short_side=600)
    for name, (image, reason) in zip(names, results):
        assert reason == BAD_FOLDER_EXPECTED[name], name
        if reason == "ok":
            assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.float32
            assert 0.0 <= image.min() and image.max() <= 1.0


def test_rgb_jpeg_matches_pillow(bad_image_folder):
    folder, _ = bad_image_folder
    data = (folder / "good.jpg").read_bytes()
    image, _ = _decode_bytes(data)
    np.testing.assert_allclose(image, _pil_rgb(data), atol=3 / 255)


def test_grey_jpeg_becomes_three_equal_channels(bad_image_folder):
    folder, _ = bad_image_folder
    data = (folder / "grey.jpg").read_bytes()
    image, _ = _decode_bytes(data)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_allclose(image, _pil_rgb(data), atol=3 / 255)


def test_cmyk_jpeg_decodes_to_the_right_colours(bad_image_folder):
    """libjpeg-turbo converts CMYK to RGB: same colours as Pillow and the RGB original."""
    folder, arrays = bad_image_folder
    data = (folder / "cmyk.jpg").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image, reason = _decode_bytes(data)
    assert reason == "ok"
    reference = _pil_rgb(data)
    assert np.abs(image - reference).mean() < 1.5 / 255
    assert np.abs(image - reference).max() < 12 / 255
    original = arrays["good.jpg"] / 255.0
    assert np.abs(image - original).mean() < 3 / 255   # not inverted, not channel-swapped


def test_rgba_png_is_composited_over_grey(bad_image_folder):
    folder, arrays = bad_image_folder
    rgb, alpha = arrays["rgba.png"]
    data = (folder / "rgba.png").read_bytes()
    a = alpha[..., None] / 255.0
    image, _ = _decode_bytes(data)
    np.testing.assert_allclose(image, rgb / 255.0 * a + 0.5 * (1 - a), atol=1e-5)
    image, _ = _decode_bytes(data, alpha_background=1.0)
    np.testing.assert_allclose(image, rgb / 255.0 * a + (1 - a), atol=1e-5)
    image, _ = _decode_bytes(data, alpha_background=None)
    np.testing.assert_allclose(image, rgb / 255.0, atol=1e-6)


def test_sixteen_bit_png_keeps_its_precision(bad_image_folder):
    folder, arrays = bad_image_folder
    image, _ = _decode_bytes((folder / "sixteen_bit.png").read_bytes())
    expected = arrays["sixteen_bit.png"] / 65535.0
    for c in range(3):
        np.testing.assert_allclose(image[..., c], expected, atol=1e-6)
    # far finer than 8-bit quantisation (which would be off by up to 0.002)
    assert np.abs(image[..., 0] - expected).max() < 1e-4


def test_palette_png_is_expanded(bad_image_folder):
    folder, _ = bad_image_folder
    data = (folder / "palette.png").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "P"
    image, _ = _decode_bytes(data)
    np.testing.assert_allclose(image, _pil_rgb(data), atol=1e-6)


def test_large_jpeg_uses_dct_downscaling(bad_image_folder):
    folder, _ = bad_image_folder
    data = (folder / "large.jpg").read_bytes()
    image, reason = _decode_bytes(data, min_short_side=600)
    assert reason == "ok"
    assert image.shape == (1000, 1500, 3)   # 1/4 scale: the short side stays >= 600
    reference = Image.open(io.BytesIO(data))
    reference.draft("RGB", (1500, 1000))   # Pillow's own DCT-domain downscaling
    assert reference.size == (1500, 1000)
    np.testing.assert_allclose(image.mean(axis=(0, 1)),
                               np.asarray(reference, np.float32).mean(axis=(0, 1)) / 255,
                               atol=2 / 255)
    image, _ = _decode_bytes(data, min_short_side=300)
    assert image.shape == (500, 750, 3)     # 1/8 scale


def test_too_large_is_skipped_from_the_header(bad_image_folder):
    folder, _ = bad_image_folder
    names = ("large.jpg", "sixteen_bit.png", "small.png")
    results = _decode_many([(folder / n).read_bytes() for n in names], max_pixels=1000)
    assert [r for _, r in results] == ["too_large", "too_large", "ok"]   # small: 600 pixels
    _, reason = _decode_bytes((folder / "good.jpg").read_bytes(), max_pixels=None)
    assert reason == "ok"


def test_other_formats():
    rgb = smooth_rgb(24, 32)
    image = Image.fromarray(rgb)
    gif = encode(image, "GIF")
    results = _decode_many([encode(image, "BMP"), encode(image, "WEBP", lossless=True), gif,
                            encode(image.convert("P"), "BMP")])
    assert [r for _, r in results] == ["ok", "ok", "ok", "unsupported"]
    np.testing.assert_allclose(results[0][0], rgb / 255.0, atol=1e-6)   # BMP
    np.testing.assert_allclose(results[1][0], rgb / 255.0, atol=1e-6)   # lossless WebP
    np.testing.assert_allclose(results[2][0], _pil_rgb(gif), atol=1e-6)
    # (TensorFlow would return palette indices for 8-bit BMPs: rejected as unsupported)


def test_sniff_format():
    rgb = Image.fromarray(smooth_rgb(8, 8))
    cases = {"jpeg": encode(rgb, "JPEG"), "png": encode(rgb, "PNG"), "gif": encode(rgb, "GIF"),
             "bmp": encode(rgb, "BMP"), "webp": encode(rgb, "WEBP"), "unknown": b"GIF8"}
    for fmt, data in cases.items():
        assert decode.FORMATS[int(decode.sniff_format(data))] == fmt


def test_unreadable_paths_are_not_a_file_and_corrupt_data_is_corrupt(tmp_path):
    """The read-only second attempt tells a path that cannot be read from broken data."""
    (tmp_path / "dir.jpg").mkdir()
    os.symlink(tmp_path / "absent.jpg", tmp_path / "dangling.jpg")
    (tmp_path / "cut.jpg").write_bytes(encode(Image.fromarray(smooth_rgb(40, 40)), "JPEG")[:300])
    names = ["nope.jpg", "dir.jpg", "dangling.jpg", "cut.jpg"]
    ds = tf.data.Dataset.from_tensor_slices({"path": [str(tmp_path / n) for n in names],
                                             "name": names})
    ds = ds.interleave(lambda e: decode.safe_decode_dataset(e, read_file=True))
    got = {e["name"].numpy().decode(): decode.REASONS[int(e["reason"])] for e in ds}
    assert got == {"nope.jpg": "not_a_file", "dir.jpg": "not_a_file",
                   "dangling.jpg": "not_a_file", "cut.jpg": "corrupt"}


def test_to_rgb_channel_counts():
    grey = np.random.default_rng(0).random((4, 5, 1)).astype(np.float32)
    out = decode.to_rgb(grey).numpy()
    np.testing.assert_array_equal(out, np.repeat(grey, 3, -1))
    grey_alpha = np.concatenate([grey, np.zeros_like(grey)], -1)
    np.testing.assert_allclose(decode.to_rgb(grey_alpha, 0.25).numpy(), 0.25)
    # unknown channel count at trace time goes through the dynamic branch
    fn = tf.function(lambda x: decode.to_rgb(x, 0.5),
                     input_signature=[tf.TensorSpec([None, None, None], tf.float32)])
    np.testing.assert_allclose(fn(grey_alpha).numpy(), 0.5)
    with pytest.raises(ValueError, match="1 to 4 channels"):
        decode.to_rgb(np.zeros((2, 2, 5), np.float32))


def test_decode_image_argument_errors():
    with pytest.raises(ValueError, match="scalar"):
        decode.decode_image(tf.constant(["a", "b"]))
    with pytest.raises(ValueError, match="alpha_background"):
        decode.decode_image(b"", alpha_background=2.0)
    with pytest.raises(ValueError, match="min_short_side"):
        decode.decode_image(b"", min_short_side=0)


def test_skip_counter_tallies_and_logs(caplog):
    counter = decode.SkipCounter(log_first=1, log_every=2)
    assert counter.summary() == "tfcolor.data: no image skipped"
    with caplog.at_level(logging.WARNING, logger="tfcolor.data"):
        counter.record(b"a.jpg", decode.EMPTY)
        counter.record("b.jpg", "corrupt")
        counter.record("c.jpg", decode.CORRUPT)
        counter.record("c.jpg", decode.CORRUPT)   # the same file again (next epoch)
    assert counter.total == 4 and counter.distinct == 3
    assert counter.counts == {"empty": 1, "corrupt": 3}
    assert counter.skipped == [("a.jpg", "empty"), ("b.jpg", "corrupt"), ("c.jpg", "corrupt")]
    assert "4 image(s) skipped (corrupt: 3, empty: 1); 3 distinct" in counter.summary()
    messages = [r.getMessage() for r in caplog.records]
    assert any("a.jpg" in m for m in messages)      # the first skip is logged by name
    assert any("2 images skipped" in m for m in messages)  # then every log_every
    assert any("4 images skipped" in m for m in messages)
    assert not any("b.jpg" in m for m in messages)
    counter.reset()
    assert counter.total == 0 and counter.counts == {} and counter.skipped == []


def _with_exif(rgb, orientation, extra_tags=False):
    exif = Image.Exif()
    exif[0x0112] = orientation
    if extra_tags:   # the orientation is then not the first IFD0 entry
        exif[0x010F] = "Maker"
        exif[0x0110] = "Model"
    return encode(Image.fromarray(rgb), "JPEG", quality=95, exif=exif.tobytes())


def _big_endian_exif(data, orientation):
    """Inserts a hand-built big-endian ("MM") APP1 Exif segment right after the SOI marker."""
    tiff = (b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
            + b"\x01\x12" + b"\x00\x03" + (1).to_bytes(4, "big")
            + orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00")
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def test_exif_orientation_matches_pillow_exif_transpose():
    from PIL import ImageOps
    rgb = smooth_rgb(24, 40, seed=5)
    rgb[:6, :8] = [255, 0, 0]   # an asymmetric mark
    datas = [_with_exif(rgb, o, extra) for o in range(1, 9) for extra in (False, True)]
    datas += [_big_endian_exif(encode(Image.fromarray(rgb), "JPEG", quality=95), o)
              for o in (3, 6)]
    orientations = [int(decode.exif_orientation(d)) for d in datas]
    assert orientations == [o for o in range(1, 9) for _ in range(2)] + [3, 6]
    for data, (image, reason) in zip(datas, _decode_many(datas)):
        reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        assert reason == "ok"
        np.testing.assert_allclose(image, np.asarray(reference, np.float32) / 255, atol=3 / 255)
    image, _ = _decode_bytes(datas[10], exif_orientation=False)   # orientation 6, ignored
    assert image.shape == (24, 40, 3)


def test_no_exif_means_upright():
    rgb = smooth_rgb(8, 8)
    for data in (encode(Image.fromarray(rgb), "JPEG"), encode(Image.fromarray(rgb), "PNG"), b""):
        assert int(decode.exif_orientation(data)) == 1
