"""Helpers of the data tests (imported by path, like tests/train_standins.py)."""
import io

import numpy as np
from PIL import Image


def smooth_rgb(height, width, seed=0):
    """A smooth, colourful uint8 image (JPEG-friendly, so decoders agree closely)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    freq = rng.uniform(0.5, 1.5, 3) * 2 * np.pi / max(height, width)
    channels = [0.5 + 0.45 * np.sin(freq[c] * (x + 0.7 * y) + phase[c]) for c in range(3)]
    return (np.stack(channels, -1) * 255).round().astype(np.uint8)


def encode(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


# file name -> expected outcome ("ok" or a skip reason); see bad_image_folder
BAD_FOLDER_EXPECTED = {
    "good.jpg": "ok",
    "truncated.jpg": "corrupt",
    "zero_bytes.jpg": "empty",
    "text.jpg": "unknown_format",
    "grey.jpg": "ok",
    "cmyk.jpg": "ok",
    "rgba.png": "ok",
    "sixteen_bit.png": "ok",
    "palette.png": "ok",
    "small.png": "ok",
    "large.jpg": "ok",
}


def write_bad_image_folder(folder):
    """A folder with a truncated JPEG, a zero-byte file, a text file named .jpg, a greyscale
    JPEG, a CMYK JPEG, an RGBA PNG, a 16-bit PNG, a palette PNG, an image smaller than any crop
    and a 6000 x 4000 JPEG (flat colour, so it is cheap to write and decode), plus one good JPEG.

    Returns (folder, arrays) where arrays maps some names to their source pixels.
    """
    rgb = smooth_rgb(72, 96)
    image = Image.fromarray(rgb)
    alpha = np.linspace(0, 255, 72 * 96).reshape(72, 96).astype(np.uint8)
    sixteen = (np.linspace(0, 65535, 40 * 50).reshape(40, 50)).astype(np.uint16)
    files = {
        "good.jpg": encode(image, "JPEG", quality=95),
        "truncated.jpg": encode(image, "JPEG", quality=95)[:700],
        "zero_bytes.jpg": b"",
        "text.jpg": b"this is not an image\n",
        "grey.jpg": encode(image.convert("L"), "JPEG", quality=95),
        "cmyk.jpg": encode(image.convert("CMYK"), "JPEG", quality=95),
        "rgba.png": encode(Image.fromarray(np.dstack([rgb, alpha])), "PNG"),
        "sixteen_bit.png": encode(Image.fromarray(sixteen), "PNG"),
        "palette.png": encode(image.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG"),
        "small.png": encode(Image.fromarray(smooth_rgb(20, 30, seed=1)), "PNG"),
        "large.jpg": encode(Image.new("RGB", (6000, 4000), (200, 60, 30)), "JPEG", quality=80),
    }
    assert set(files) == set(BAD_FOLDER_EXPECTED)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    arrays = {"good.jpg": rgb, "rgba.png": (rgb, alpha), "sixteen_bit.png": sixteen}
    return folder, arrays
