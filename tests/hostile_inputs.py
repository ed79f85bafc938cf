"""The hostile-input matrix shared by the tests of every entry point (imported by path).

:func:`write_image_cases` writes real-world and hostile files into a folder and returns one
:class:`Case` per file, with what any tfcolor program must do with it: ``expected == "ok"`` means a
valid image that must be processed (an output written, or an example produced); any other value is
the reason it must be skipped with a logged message (the names of
``tfcolor.data.decode.REASONS`` where the decoder is the one that refuses it, ``"not_a_file"``
for a folder or a dangling link that only looks like an image by its name).

Everything is generated here (Pillow, OpenCV for the 16-bit colour PNG, hand-written PNG chunks
for the decompression bomb, hand-written GIF blocks and LZW data for the GIF whose frame is larger
than its screen, a progressive JPEG whose scans are repeated), so the tests need no network and no
shared data.
"""
import dataclasses
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

#: Pixels the bomb declares (30000 x 30000 = 9e8, above tfcolor's documented limit of 1e8).
BOMB_SIDE = 30000
#: The GIF bomb: a 64 x 64 screen holding one 12000 x 12000 frame (~100 KB, 1.44e8 pixels).
GIF_SCREEN, GIF_FRAME = (64, 64), (12000, 12000)
#: Scans of the crafted progressive JPEG (tfcolor refuses more than 500).
MANY_SCANS = 2000


@dataclasses.dataclass(frozen=True)
class Case:
    """One file of the matrix.

    Attributes:
        name: file name inside the folder (also the key of :func:`write_image_cases`' result).
        path: absolute path.
        expected: ``"ok"`` or the reason of the skip.
        note: what the file is, for test ids and messages.
        size: (height, width) of the upright image for valid cases, else None.
        listed: whether listing the folder (or a glob such as ``folder/*``) returns it. A
            directory is a sub-folder, never an image: tfcolor's folder listings recurse into
            it and globs drop it, so ``folder.jpg`` is neither read nor reported there; its
            ``expected`` is what a program given that path explicitly as one input must do.
    """
    name: str
    path: str
    expected: str
    note: str
    size: tuple = None
    listed: bool = True

    @property
    def valid(self):
        return self.expected == "ok"


def smooth_rgb(height, width, seed=0):
    """A smooth, colourful uint8 image (cheap to encode, JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    phase = rng.uniform(0, 2 * np.pi, 3)
    freq = rng.uniform(2.0, 5.0, 3)
    channels = [0.5 + 0.45 * np.sin(freq[c] * (x + 0.7 * y) * np.pi + phase[c])
                for c in range(3)]
    return (np.stack(channels, -1) * 255).round().astype(np.uint8)


def _encode(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(side=BOMB_SIDE):
    """A valid ~100 KB 1-bit greyscale PNG of ``side`` x ``side`` black pixels.

    Fully decoded as RGB float32 it would take ``side**2 * 12`` bytes (43 GB for 30000).
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    chunks.append(compressor.compress(row * (side % 1000)))
    chunks.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", b"".join(chunks)) + _png_chunk(b"IEND", b""))


def _lzw_uniform(pixels, min_code_size=2):
    """GIF LZW data (with its minimum code size and data sub-blocks) of ``pixels`` pixels of
    colour 0: the codes of ever longer runs (1, 2, 3, ... pixels), a clear code whenever the
    table is full, so a frame of 1.44e8 pixels takes ~100 KB."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    out, bits = bytearray(), [0, 0]  # accumulator, bit count

    def emit(code, size):
        bits[0] |= code << bits[1]
        bits[1] += size
        while bits[1] >= 8:
            out.append(bits[0] & 0xFF)
            bits[0] >>= 8
            bits[1] -= 8

    size, next_code, longest, first = min_code_size + 1, eoi + 1, 1, True
    emit(clear, size)
    remaining = pixels
    while remaining > 0:
        take = min(longest, remaining)
        emit(0 if take == 1 else eoi + 1 + (take - 2), size)
        remaining -= take
        if not first:
            next_code += 1  # the decoder adds one table entry per code after the first
        first = False
        longest += take == longest
        if next_code >= (1 << size) and size < 12:
            size += 1
        if next_code >= 4094 and remaining > 0:
            emit(clear, size)
            size, next_code, longest, first = min_code_size + 1, eoi + 1, 1, True
    emit(eoi, size)
    if bits[1]:
        out.append(bits[0] & 0xFF)
    blocks = bytearray([min_code_size])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\x00")


def gif_with_frames(screen, frames):
    """A valid GIF: logical screen ``screen`` (height, width), one black-and-white global colour
    table, and one black frame of each (height, width) of ``frames`` at the top left (a frame may
    be larger than the screen: GIF allows it, and decoders allocate the frame)."""
    data = b"GIF89a" + struct.pack("<HHBBB", screen[1], screen[0], 0x80, 0, 0)
    data += b"\x00\x00\x00\xff\xff\xff"
    for height, width in frames:
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        data += _lzw_uniform(height * width)
    return data + b"\x3b"


def jpeg_with_scans(scans, seed=0):
    """A small progressive JPEG whose first (DC) scan is repeated until the file has ``scans``
    start-of-scan markers: decoding time grows with the scans."""
    data = _encode(Image.fromarray(smooth_rgb(48, 64, seed)), "JPEG", quality=90,
                   progressive=True)
    first = data.index(b"\xff\xda")
    end = data.index(b"\xff\xda", first + 2)
    while data[end - 2:end - 1] == b"\xff":  # the segment before the next SOS may be a table
        end -= 1
    scan = data[first:end]
    # Cut at the first marker after the scan's entropy-coded data (a DHT before the next scan).
    body = scan[2:]
    pos = 0
    while True:
        pos = body.index(b"\xff", pos)
        if body[pos + 1] not in (0x00,) and not 0xD0 <= body[pos + 1] <= 0xD7:
            break
        pos += 2
    scan = scan[:2 + pos]
    count = data.count(b"\xff\xda")
    return data[:first] + scan * (scans - count + 1) + data[first + len(scan):]


def _exif_jpeg(rgb, orientation):
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    return _encode(image, "JPEG", quality=85, exif=exif.tobytes())


def _sixteen_bit_rgb_png(rgb):
    import cv2  # test-only dependency; Pillow cannot write 16-bit colour PNGs
    bgr16 = (rgb[..., ::-1].astype(np.uint16) * 257)
    ok, data = cv2.imencode(".png", bgr16)
    assert ok
    return data.tobytes()


def write_image_cases(folder, *, camera=True):
    """Writes the matrix into ``folder``; returns ``{name: Case}``.

    Args:
        folder: an existing directory (str or path).
        camera: include the two camera-size JPEGs (4000 x 3000, landscape and EXIF-rotated
            portrait: ~0.5 s to write). ``False`` keeps only small files.
    """
    folder = os.fspath(folder)
    rgb = smooth_rgb(120, 160)
    image = Image.fromarray(rgb)
    cases = []

    def add(name, data, expected, note, size=None):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        cases.append(Case(name, path, expected, note, size))

    if camera:
        cam = smooth_rgb(3000, 4000, seed=1)
        add("camera_4000x3000.jpg", _encode(Image.fromarray(cam), "JPEG", quality=85), "ok",
            "camera-size landscape JPEG", (3000, 4000))
        # Stored landscape, EXIF orientation 6 (rotate 90 degrees clockwise): upright portrait.
        add("camera_portrait_exif6.jpg", _exif_jpeg(cam, 6), "ok",
            "camera-size JPEG, EXIF orientation 6 (portrait)", (4000, 3000))
    photo = smooth_rgb(512, 683, seed=2)
    add("photo_683x512.jpg", _encode(Image.fromarray(photo), "JPEG", quality=90), "ok",
        "ordinary photo whose long side exceeds the default max_side", (512, 683))
    highlights = photo.copy()
    highlights[100:300, 200:500] = 255  # a blown-out sky: shrinking it once overshot 1.0
    add("highlights_683x512.jpg", _encode(Image.fromarray(highlights), "JPEG", quality=90), "ok",
        "683 x 512 photo with pure-white highlights, longer than the default max_side",
        (512, 683))
    add("exif_portrait_small.jpg", _exif_jpeg(rgb, 8), "ok",
        "small JPEG with EXIF orientation 8", (160, 120))
    add("one_pixel.png", _encode(Image.fromarray(rgb[:1, :1]), "PNG"), "ok", "1 x 1 PNG", (1, 1))
    add("seven_by_five.jpg", _encode(Image.fromarray(rgb[:5, :7]), "JPEG", quality=95), "ok",
        "7 x 5 JPEG", (5, 7))
    add("grey.jpg", _encode(image.convert("L"), "JPEG", quality=90), "ok", "greyscale JPEG",
        (120, 160))
    add("cmyk.jpg", _encode(image.convert("CMYK"), "JPEG", quality=90), "ok", "CMYK JPEG",
        (120, 160))
    alpha = np.linspace(0, 255, 120 * 160).reshape(120, 160).astype(np.uint8)
    add("rgba.png", _encode(Image.fromarray(np.dstack([rgb, alpha])), "PNG"), "ok", "RGBA PNG",
        (120, 160))
    add("palette.png", _encode(image.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG"), "ok",
        "palette PNG", (120, 160))
    add("sixteen_bit_grey.png",
        _encode(Image.fromarray((np.linspace(0, 65535, 120 * 160).reshape(120, 160)
                                 ).astype(np.uint16)), "PNG"), "ok", "16-bit greyscale PNG",
        (120, 160))
    add("sixteen_bit_rgb.png", _sixteen_bit_rgb_png(rgb), "ok", "16-bit RGB PNG", (120, 160))
    frames = [Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE),
              Image.fromarray(rgb[::-1]).convert("P", palette=Image.ADAPTIVE)]
    add("animated.gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                duration=100, loop=0), "ok", "animated GIF (2 frames)", (120, 160))
    add("progressive.jpg", _encode(image, "JPEG", quality=90, progressive=True), "ok",
        "progressive JPEG", (120, 160))
    add("webp.webp", _encode(image, "WEBP", quality=90), "ok", "WebP", (120, 160))
    add("truncated.jpg", _encode(image, "JPEG", quality=95)[:600], "corrupt", "truncated JPEG")
    add("truncated.png", _encode(image, "PNG")[:300], "corrupt", "truncated PNG")
    add("zero_bytes.jpg", b"", "empty", "zero-byte file named .jpg")
    add("text.jpg", b"this is not an image\n", "unknown_format", "text file named .jpg")
    add("page.png", b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n",
        "unknown_format", "HTML page named .png")
    add("bomb.png", png_bomb(), "too_large",
        f"decompression bomb: {BOMB_SIDE} x {BOMB_SIDE} PNG in ~100 KB")
    add("gif_frame_larger_than_screen.gif", gif_with_frames(GIF_SCREEN, [GIF_FRAME]), "too_large",
        f"GIF bomb: a {GIF_SCREEN[0]} x {GIF_SCREEN[1]} screen with a {GIF_FRAME[0]} x "
        f"{GIF_FRAME[1]} frame in ~100 KB")
    add("gif_small_frame.gif", gif_with_frames((40, 60), [(40, 60), (20, 30)]), "ok",
        "hand-written GIF, two frames inside the screen", (40, 60))
    add("many_scans.jpg", jpeg_with_scans(MANY_SCANS), "too_many_scans",
        f"progressive JPEG with {MANY_SCANS} scans")
    os.mkdir(os.path.join(folder, "folder.jpg"))
    cases.append(Case("folder.jpg", os.path.join(folder, "folder.jpg"), "not_a_file",
                      "a directory named x.jpg", listed=False))
    os.symlink(os.path.join(folder, "missing_target.jpg"), os.path.join(folder, "dangling.jpg"))
    cases.append(Case("dangling.jpg", os.path.join(folder, "dangling.jpg"), "not_a_file",
                      "a broken symbolic link"))
    return {case.name: case for case in cases}


def valid_cases(cases):
    return {name: case for name, case in cases.items() if case.valid}


def invalid_cases(cases):
    return {name: case for name, case in cases.items() if not case.valid}
