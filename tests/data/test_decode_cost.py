"""Decode cost from the bytes (tfcolor.data.decode_cost): GIF frame sizes and JPEG scan counts,
in TensorFlow ops and in Python, against files of known structure and against each other."""
import io
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor import image_files
from tfcolor.data import decode as decode_lib
from tfcolor.data import decode_cost

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import hostile_inputs  # noqa: E402

_gif_ops = tf.function(decode_cost.gif_frame_pixels)


def _both(data, max_blocks=decode_cost.MAX_GIF_BLOCKS):
    python = decode_cost.gif_frames(data, max_blocks)
    graph = tuple(x.numpy().item() for x in decode_cost.gif_frame_pixels(tf.constant(data),
                                                                          max_blocks))
    assert python == graph, (python, graph)
    return python


def _pillow_gif(frames, **kwargs):
    images = [Image.fromarray(hostile_inputs.smooth_rgb(h, w, seed=i)).convert(
        "P", palette=Image.ADAPTIVE) for i, (h, w) in enumerate(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], **kwargs)
    return buf.getvalue()


def test_gif_frames_of_known_files():
    # Pillow's animation (extensions, local colour tables, comments, loop block).
    data = _pillow_gif([(30, 40), (30, 40), (30, 40)], duration=50, loop=0, comment=b"hi")
    assert _both(data) == (1200, 1200, 3600, False)
    # Hand-written: a frame larger than its screen; Pillow and TensorFlow decode it whole.
    data = hostile_inputs.gif_with_frames((16, 16), [(50, 70), (5, 5)])
    assert _both(data) == (256, 3500, 3525, False)
    assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (50, 70)
    bomb = hostile_inputs.gif_with_frames((64, 64), [(12000, 12000)])
    assert len(bomb) < 120_000 and _both(bomb) == (4096, 144_000_000, 144_000_000, False)


def test_gif_walk_is_bounded_and_survives_damage():
    data = _pillow_gif([(8, 8)] * 6, duration=50)
    assert _both(data, max_blocks=4)[3] is True
    assert _both(data, max_blocks=100)[3] is False
    for cut in (0, 6, 13, 20, len(data) // 2, len(data) - 1):
        _both(data[:cut])
    rng = np.random.default_rng(0)
    for _ in range(40):  # random damage: both walks agree and terminate
        raw = bytearray(data)
        for i in rng.integers(0, len(raw), 4):
            raw[i] = int(rng.integers(0, 256))
        _both(bytes(raw))


def test_decode_image_counts_every_gif_frame():
    two = hostile_inputs.gif_with_frames((10, 10), [(10, 10), (10, 10)])
    decode = lambda data, **kw: decode_lib.REASONS[int(decode_lib.decode_image(  # noqa: E731
            tf.constant(data), **kw)[1])]
    assert decode(two, max_pixels=200) == "ok"
    assert decode(two, max_pixels=150) == "too_large"  # each frame fits, both do not
    wide = hostile_inputs.gif_with_frames((10, 10), [(20, 20)])
    assert decode(wide, max_pixels=399) == "too_large"  # the screen fits, the frame does not
    assert decode(wide, max_pixels=None) == "ok"


def _jpeg(image, **kwargs):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def test_jpeg_scans_of_known_files():
    rgb = Image.fromarray(hostile_inputs.smooth_rgb(40, 56))
    # libjpeg's scripts: baseline 1 scan, progressive colour 10, progressive grey 6.
    for image, kwargs, scans in [(rgb, {}, 1), (rgb, {"progressive": True}, 10),
                                 (rgb.convert("L"), {"progressive": True}, 6)]:
        data = _jpeg(image, **kwargs)
        assert decode_cost.jpeg_scans(data) == scans
        assert int(decode_cost.jpeg_scan_count(tf.constant(data))) == scans
    crafted = hostile_inputs.jpeg_with_scans(700)
    assert decode_cost.jpeg_scans(crafted) == 700
    assert int(decode_cost.jpeg_scan_count(tf.constant(crafted))) == 700
    assert int(decode_cost.jpeg_scan_count(tf.constant(b""))) == 0


def test_scan_limit_in_both_decoders(tmp_path, monkeypatch):
    below = hostile_inputs.jpeg_with_scans(decode_cost.MAX_JPEG_SCANS)
    above = hostile_inputs.jpeg_with_scans(decode_cost.MAX_JPEG_SCANS + 1)
    reason = lambda data, **kw: decode_lib.REASONS[int(decode_lib.decode_image(  # noqa: E731
            tf.constant(data), **kw)[1])]
    assert reason(below) == "ok" and reason(above) == "too_many_scans"
    assert reason(above, max_jpeg_scans=None) == "ok"
    (tmp_path / "below.jpg").write_bytes(below)
    (tmp_path / "above.jpg").write_bytes(above)
    assert image_files.read_image(str(tmp_path / "below.jpg")).shape == (48, 64, 3)
    # The Python count is streamed: a marker across a chunk boundary still counts.
    monkeypatch.setattr(image_files, "_SCAN_CHUNK", 7)
    with pytest.raises(image_files.ImageReadError, match="^too_many_scans: 501 JPEG scans"):
        image_files.read_image(str(tmp_path / "above.jpg"))
