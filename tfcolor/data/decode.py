"""Robust image decoding as TensorFlow ops: a reason code instead of a crash.

A multi-day pretraining run must survive its data. :func:`decode_image` turns the bytes of one
file into a float32 RGB image in [0, 1] of shape (H, W, 3) **and** an int32 reason code
(``0`` = decoded; see :data:`REASONS`). Files it can recognise as bad from their header are
rejected without raising (reason ``empty``, ``unknown_format``, ``unsupported``,
``too_large``); a file whose header looks right but whose data is broken (a truncated JPEG, a
corrupt PNG) makes the decoder op raise. :func:`safe_decode_dataset` runs the whole decode of one
file inside its own tiny ``tf.data`` pipeline with ``ignore_errors``, so that such an error
becomes the reason ``corrupt`` (with the file name) instead of killing the input pipeline, or
``not_a_file`` when the path itself cannot be read. The pipelines then drop invalid images and
report them to a :class:`SkipCounter`. Two more reasons come from TFRecord sources
(:class:`tfcolor.data.TFRecordSource`): ``bad_record`` (a record that is not a
``tf.train.Example``) and ``corrupt_file`` (a truncated file or a bad CRC: the rest of that file).

How each kind of input is handled (tested in ``tests/data/test_decode.py`` and, for the shared
hostile-input matrix ``tests/hostile_inputs.py`` through the pipelines, in
``tests/data/test_hostile.py``):

=================== ==========================================================================
input               result
=================== ==========================================================================
JPEG (RGB)          decoded (accurate integer IDCT, as Pillow); huge JPEGs are decoded at
                    1/2, 1/4 or 1/8 scale in the DCT domain when the short side stays >=
                    ``min_short_side`` (no quality loss for the pipeline, which scales the
                    short side to at most that size anyway)
greyscale JPEG/PNG  replicated to 3 channels
CMYK / YCCK JPEG    decoded by libjpeg-turbo to RGB correctly (checked against Pillow)
PNG 8 / 16 bit      16-bit PNGs keep their precision: values are ``v / 65535``
palette PNG         expanded to RGB(A) by libpng (tRNS transparency becomes alpha)
RGBA / LA / alpha   composited over a uniform grey ``alpha_background`` (default 0.5, the
                    same neutral grey as the shared photo corpus), so transparent regions are
                    achromatic instead of showing the arbitrary colours hidden under alpha 0;
                    ``alpha_background=None`` drops the alpha channel instead
GIF                 first frame (animations: only the first frame is allocated as RGB; giflib
                    still reads every frame's palette indices)
BMP 24 / 32 bit     decoded; the 4th channel of 32-bit BMPs is ignored (usually padding)
BMP <= 8 bit        ``unsupported`` (TensorFlow's BMP decoder ignores the palette and would
                    return palette indices as grey values)
WebP                decoded (``tf.io.decode_image`` supports WebP since TF 2.16; first frame)
1 x 1, 7 x 5, ...   decoded (the pipelines scale small images up)
empty file          ``empty``
not an image        ``unknown_format`` (e.g. a text or HTML file named ``.jpg``)
truncated / corrupt ``corrupt`` (only via :func:`safe_decode_dataset`)
unreadable path     ``not_a_file``: a dangling link, a directory, a vanished file, no
                    permission (only via :func:`safe_decode_dataset` with ``read_file``)
> ``max_pixels``    ``too_large``, checked from the header of PNG, GIF, BMP, WebP (VP8, VP8L,
                    VP8X) and JPEG before anything is decoded, so a decompression bomb (a
                    100 KB PNG declaring 30000 x 30000) costs no memory. Default
                    :data:`DEFAULT_MAX_PIXELS` = 100,000,000 (the ``max_pixels`` option of
                    ``pretrain_dataset`` (:class:`tfcolor.data.pretrain.PipelineOptions`) and
                    field of ``EvalDataConfig``; ``None`` disables it). A GIF counts as
                    ``max(screen, sum of its frames' sizes)``: giflib reads every frame, and
                    a frame may be larger than the screen (``tfcolor.data.decode_cost``)
progressive JPEG    ``too_many_scans`` above ``max_jpeg_scans`` start-of-scan markers
with many scans     (default ``decode_cost.MAX_JPEG_SCANS`` = 500; a standard progressive JPEG
                    has about 10): decoding time grows with the number of scans
=================== ==========================================================================

Images smaller than the training crop are not rejected: the pipelines scale the short side up.
JPEGs are turned upright according to their EXIF orientation tag (parsed in graph ops, checked
against Pillow's ``ImageOps.exif_transpose``; ``tf.io.decode_jpeg`` alone ignores it).
"""
import logging
import threading

import tensorflow as tf

from tfcolor.data import decode_cost

__all__ = [
    "REASONS", "OK", "EMPTY", "UNKNOWN_FORMAT", "UNSUPPORTED", "TOO_LARGE", "CORRUPT",
    "NOT_A_FILE", "BAD_RECORD", "CORRUPT_FILE", "TOO_MANY_SCANS",
    "FORMATS", "SkipCounter", "default_skip_counter", "sniff_format", "decode_image",
    "to_rgb", "safe_decode_dataset", "DEFAULT_MAX_PIXELS", "exif_orientation",
    "apply_orientation",
]

_LOG = logging.getLogger("tfcolor.data")

#: Reason codes returned with every decoded image; the index is the code.
REASONS = ("ok", "empty", "unknown_format", "unsupported", "too_large", "corrupt", "not_a_file",
           "bad_record", "corrupt_file", "too_many_scans")
(OK, EMPTY, UNKNOWN_FORMAT, UNSUPPORTED, TOO_LARGE, CORRUPT, NOT_A_FILE, BAD_RECORD,
 CORRUPT_FILE, TOO_MANY_SCANS) = range(len(REASONS))

#: Container formats recognised from their magic bytes; the index is the format code.
FORMATS = ("unknown", "jpeg", "png", "gif", "bmp", "webp")
_JPEG, _PNG, _GIF, _BMP, _WEBP = 1, 2, 3, 4, 5

#: Default limit on width * height (100 megapixels) before an image is skipped as too large.
DEFAULT_MAX_PIXELS = 100_000_000

_HEADER_BYTES = 32


# ------------------------------------------------------------------------------------------------
# Skip bookkeeping
# ------------------------------------------------------------------------------------------------

class SkipCounter:
    """Thread-safe tally of the images a pipeline skipped, with their names and reasons.

    The pipelines call :meth:`record` (through a ``tf.py_function`` that runs only for skipped
    images, so valid images never leave the graph). Read :attr:`total`, :attr:`counts`,
    :attr:`skipped` or :meth:`summary` at any time, e.g. at the end of training. A pipeline that
    repeats re-reads its files every epoch, so a bad file is skipped (and counted in
    :attr:`total`) once per epoch; :attr:`distinct` and :attr:`skipped` count each name once.

    Args:
        log_first: log a warning with the file name for the first ``log_first`` distinct
            skipped files ...
        log_every: ... and then one line every ``log_every`` skips.
        max_names: remember at most this many distinct names (the counts stay exact).
    """

    def __init__(self, log_first=20, log_every=1000, max_names=10000):
        self.log_first = int(log_first)
        self.log_every = max(1, int(log_every))
        self.max_names = int(max_names)
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        """Forgets everything recorded so far."""
        with self._lock:
            self._counts = {}
            self._names = {}
            self._total = 0
            self._distinct = 0

    def record(self, name, reason):
        """Records one skipped image ``name`` (str or bytes) with ``reason`` (name or code)."""
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(reason, str):
            reason = REASONS[int(reason)]
        with self._lock:
            self._total += 1
            self._counts[reason] = self._counts.get(reason, 0) + 1
            new = name not in self._names
            if new:
                self._distinct += 1
                if len(self._names) < self.max_names:
                    self._names[name] = reason
            total, distinct = self._total, self._distinct
        if new and distinct <= self.log_first:
            _LOG.warning("tfcolor.data: skipped %s (%s)", name, reason)
        elif total % self.log_every == 0:
            _LOG.warning("tfcolor.data: %d images skipped so far: %s", total, self.counts)

    @property
    def total(self):
        """Number of skips (a file skipped in every epoch counts every time)."""
        with self._lock:
            return self._total

    @property
    def distinct(self):
        """Number of distinct skipped names."""
        with self._lock:
            return self._distinct

    @property
    def counts(self):
        """Dict reason -> number of skips."""
        with self._lock:
            return dict(self._counts)

    @property
    def skipped(self):
        """List of (name, reason) of the distinct skipped images (the first ``max_names``), in
        the order they were first seen."""
        with self._lock:
            return list(self._names.items())

    def summary(self):
        """One line: the totals and the count per reason."""
        with self._lock:
            if not self._total:
                return "tfcolor.data: no image skipped"
            parts = ", ".join(f"{r}: {n}" for r, n in sorted(self._counts.items()))
            return (f"tfcolor.data: {self._total} image(s) skipped ({parts}); "
                    f"{self._distinct} distinct file(s)")

    def log_summary(self, logger=None):
        """Logs :meth:`summary` (at WARNING if anything was skipped, else INFO)."""
        (logger or _LOG).log(logging.WARNING if self.total else logging.INFO, self.summary())

    def _graph_record(self, name, reason):
        """Runs in ``tf.py_function``: records and returns False (the filter's verdict)."""
        self.record(name.numpy(), int(reason.numpy()))
        return False

    def __repr__(self):
        return f"SkipCounter(total={self.total}, distinct={self.distinct}, counts={self.counts})"


_DEFAULT_COUNTER = SkipCounter()


def default_skip_counter():
    """The process-wide :class:`SkipCounter` used when a pipeline is given none."""
    return _DEFAULT_COUNTER


# ------------------------------------------------------------------------------------------------
# Header parsing (pure TF ops on the first bytes)
# ------------------------------------------------------------------------------------------------

def _header(contents):
    head = tf.strings.substr(contents, 0, _HEADER_BYTES)
    return tf.strings.substr(tf.strings.join([head, b"\0" * _HEADER_BYTES]), 0, _HEADER_BYTES)


def _header_bytes(header):
    return tf.cast(tf.io.decode_raw(header, tf.uint8), tf.int64)


def _uint(raw, start, size, little_endian):
    value = tf.constant(0, tf.int64)
    order = range(size - 1, -1, -1) if little_endian else range(size)
    for i in order:
        value = value * 256 + raw[start + i]
    return value


def sniff_format(contents):
    """Format code (index into :data:`FORMATS`) of encoded image bytes, from the magic bytes."""
    head = _header(contents)
    sub = lambda pos, n: tf.strings.substr(head, pos, n)  # noqa: E731
    checks = [
        (tf.equal(sub(0, 3), b"\xff\xd8\xff"), _JPEG),
        (tf.equal(sub(0, 8), b"\x89PNG\r\n\x1a\n"), _PNG),
        (tf.logical_or(tf.equal(sub(0, 6), b"GIF87a"), tf.equal(sub(0, 6), b"GIF89a")), _GIF),
        (tf.equal(sub(0, 2), b"BM"), _BMP),
        (tf.logical_and(tf.equal(sub(0, 4), b"RIFF"), tf.equal(sub(8, 4), b"WEBP")), _WEBP),
    ]
    code = tf.constant(0, tf.int32)
    for cond, value in reversed(checks):
        code = tf.where(cond, tf.constant(value, tf.int32), code)
    return code


def _webp_pixels(contents, raw):
    """Width * height of a WebP from its first chunk (VP8, VP8L or VP8X); -1 if unknown."""
    chunk = tf.strings.substr(_header(contents), 12, 4)
    # VP8 (lossy): 14-bit width and height after the 3-byte frame tag and the start code.
    vp8 = (_uint(raw, 26, 2, True) % 16384) * (_uint(raw, 28, 2, True) % 16384)
    # VP8L (lossless): signature byte 0x2f, then width - 1 and height - 1 in 14 bits each.
    bits = _uint(raw, 21, 4, True)
    vp8l = (bits % 16384 + 1) * ((bits // 16384) % 16384 + 1)
    # VP8X (extended): 24-bit canvas width - 1 and height - 1.
    vp8x = (_uint(raw, 24, 3, True) + 1) * (_uint(raw, 27, 3, True) + 1)
    return tf.where(tf.equal(chunk, b"VP8 "), vp8,
                    tf.where(tf.equal(chunk, b"VP8L"), vp8l,
                             tf.where(tf.equal(chunk, b"VP8X"), vp8x,
                                      tf.constant(-1, tf.int64))))


def _header_info(contents, fmt):
    """(pixels, unsupported) from the header of PNG, GIF, BMP and WebP; pixels is -1 when
    unknown (JPEG: see :func:`decode_image`)."""
    raw = _header_bytes(_header(contents))
    png = _uint(raw, 16, 4, False) * _uint(raw, 20, 4, False)
    gif = _uint(raw, 6, 2, True) * _uint(raw, 8, 2, True)
    dib = _uint(raw, 14, 4, True)
    bmp_w = _uint(raw, 18, 4, True)
    bmp_h = _uint(raw, 22, 4, True)
    bmp_h = tf.where(bmp_h >= 2 ** 31, 2 ** 32 - bmp_h, bmp_h)  # negative height: top-down rows
    bpp = _uint(raw, 28, 2, True)
    pixels = tf.where(tf.equal(fmt, _PNG), png,
                      tf.where(tf.equal(fmt, _GIF), gif,
                               tf.where(tf.equal(fmt, _BMP), bmp_w * bmp_h,
                                        tf.where(tf.equal(fmt, _WEBP),
                                                 _webp_pixels(contents, raw),
                                                 tf.constant(-1, tf.int64)))))
    # OS/2 BMPs (12-byte DIB header) and palette / low bit-depth BMPs are not decoded correctly
    # by TensorFlow's BMP decoder.
    bmp_bad = tf.logical_or(tf.equal(dib, 12), tf.logical_and(tf.not_equal(bpp, 24),
                                                              tf.not_equal(bpp, 32)))
    unsupported = tf.logical_and(tf.equal(fmt, _BMP), bmp_bad)
    return pixels, unsupported


# ------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------

def to_rgb(image, alpha_background=0.5):
    """(H, W, C) float image with C in {1, 2, 3, 4} (known or not at trace time) -> (H, W, 3).

    Grey is replicated; an alpha channel (C = 2 or 4) is composited over the uniform grey
    ``alpha_background`` in [0, 1], or dropped when ``alpha_background`` is None.
    """
    image = tf.convert_to_tensor(image)

    def composite(color, alpha):
        if alpha_background is None:
            return color
        return color * alpha + float(alpha_background) * (1.0 - alpha)

    branches = {
        1: lambda: tf.tile(image[..., :1], [1, 1, 3]),
        2: lambda: tf.tile(composite(image[..., :1], image[..., 1:2]), [1, 1, 3]),
        3: lambda: image[..., :3],
        4: lambda: composite(image[..., :3], image[..., 3:4]),
    }
    channels = image.shape[-1]
    if channels is not None:
        if channels not in branches:
            raise ValueError(f"images must have 1 to 4 channels, got shape {image.shape}")
        return branches[channels]()
    index = tf.clip_by_value(tf.shape(image)[-1] - 1, 0, 3)
    out = tf.switch_case(index, [branches[c] for c in (1, 2, 3, 4)])
    return tf.ensure_shape(out, [None, None, 3])


def _jpeg_ratio_index(contents, min_short_side):
    """Index into (1, 2, 4, 8) of the largest DCT downscale keeping short side >= the hint."""
    shape = tf.io.extract_jpeg_shape(contents)
    short = tf.minimum(shape[0], shape[1])
    index = tf.constant(0, tf.int32)
    for i, ratio in enumerate((2, 4, 8), start=1):
        # libjpeg's scaled size is ceil(size / ratio); floor keeps the check conservative.
        index = tf.where(short // ratio >= min_short_side, tf.constant(i, tf.int32), index)
    return index, tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)


_EXIF_SEARCH_BYTES = 65536
_EXIF_MAX_ENTRIES = 64


def _bytes_at(contents, pos, length):
    """int64 bytes of contents[pos:pos + length], zero-padded past the end."""
    pos = tf.clip_by_value(tf.cast(pos, tf.int32), 0, tf.strings.length(contents))
    chunk = tf.strings.substr(contents, pos, length)
    chunk = tf.strings.substr(tf.strings.join([chunk, b"\0" * length]), 0, length)
    return tf.reshape(tf.cast(tf.io.decode_raw(chunk, tf.uint8), tf.int64), [length])


def exif_orientation(contents):
    """The EXIF orientation (1 to 8; 1 = upright, also when absent or unreadable) of a JPEG.

    Parses the APP1 ``Exif`` segment in graph ops: the TIFF header's byte order, IFD0, and its
    tag 0x0112.
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    head = tf.strings.substr(contents, 0, _EXIF_SEARCH_BYTES)
    parts = tf.strings.split(head, sep=b"Exif\0\0", maxsplit=1)
    found = tf.equal(tf.size(parts), 2)
    tiff = tf.strings.length(parts[0]) + 6
    marker = _bytes_at(contents, tiff - 10, 2)          # APP1 marker before length + "Exif\0\0"
    found = tf.logical_and(found, tf.reduce_all(tf.equal(marker, [0xFF, 0xE1])))
    header = _bytes_at(contents, tiff, 8)
    little = tf.reduce_all(tf.equal(header[:2], [0x49, 0x49]))     # "II"
    big = tf.reduce_all(tf.equal(header[:2], [0x4D, 0x4D]))        # "MM"
    found = tf.logical_and(found, tf.logical_or(little, big))

    def number(raw):
        """Unsigned int of the last axis of raw, in the TIFF byte order."""
        weights_le = tf.constant([256 ** i for i in range(raw.shape[-1])], tf.int64)
        weights = tf.where(little, weights_le, tf.reverse(weights_le, [0]))
        return tf.reduce_sum(raw * weights, axis=-1)

    ifd = tiff + tf.cast(number(header[4:8]), tf.int32)
    count = number(_bytes_at(contents, ifd, 2))
    entries = tf.reshape(_bytes_at(contents, ifd + 2, 12 * _EXIF_MAX_ENTRIES),
                         [_EXIF_MAX_ENTRIES, 12])
    tags = number(entries[:, 0:2])
    in_ifd = tf.range(_EXIF_MAX_ENTRIES, dtype=tf.int64) < count
    valid = tf.logical_and(tf.equal(tags, 0x0112), in_ifd)
    value = tf.reduce_max(tf.where(valid, number(entries[:, 8:10]), 0))
    ok = tf.logical_and(found, tf.logical_and(value >= 1, value <= 8))
    return tf.where(ok, tf.cast(value, tf.int32), 1)


def apply_orientation(image, orientation):
    """Turns an (H, W, C) image stored with EXIF ``orientation`` upright (as Pillow's
    ``ImageOps.exif_transpose``)."""
    image = tf.convert_to_tensor(image)
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,                                   # 1: upright
        lambda: tf.reverse(image, [1]),                  # 2: mirrored
        lambda: tf.reverse(image, [0, 1]),               # 3: rotated 180
        lambda: tf.reverse(image, [0]),                  # 4: flipped vertically
        lambda: transpose(image),                        # 5: transposed
        lambda: tf.image.rot90(image, k=3),              # 6: rotated 90 clockwise to upright
        lambda: tf.reverse(transpose(image), [0, 1]),    # 7: transversed
        lambda: tf.image.rot90(image, k=1),              # 8: rotated 90 counter-clockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    out = tf.switch_case(index, branches)
    return tf.ensure_shape(out, [None, None, image.shape[-1]])


def _decode_jpeg(contents, min_short_side, exif=True):
    image = _decode_jpeg_pixels(contents, min_short_side)
    if exif:
        image = apply_orientation(image, exif_orientation(contents))
    return image


def _decode_jpeg_pixels(contents, min_short_side):
    if not min_short_side:
        image = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
    else:
        index, _ = _jpeg_ratio_index(contents, int(min_short_side))
        image = tf.switch_case(index, [
            (lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r,
                                          dct_method="INTEGER_ACCURATE"))
            for r in (1, 2, 4, 8)])
    return tf.image.convert_image_dtype(image, tf.float32)


def _decode_png(contents, alpha_background):
    image = tf.io.decode_png(contents, channels=0, dtype=tf.uint16)  # 8-bit values scaled by 257
    return to_rgb(tf.cast(image, tf.float32) / 65535.0, alpha_background)


def _decode_gif(contents):
    # decode_image(expand_animations=False) allocates the first frame only (decode_gif would
    # return every frame of an animation as RGB).
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _decode_bmp(contents):
    image = tf.io.decode_bmp(contents, channels=0)
    return tf.image.convert_image_dtype(image[..., :3], tf.float32)


def _decode_webp(contents, alpha_background):
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)  # uint8 only
    return to_rgb(tf.image.convert_image_dtype(image, tf.float32), alpha_background)


def decode_image(contents, *, min_short_side=None, max_pixels=DEFAULT_MAX_PIXELS,
                 alpha_background=0.5, exif_orientation=True,
                 max_jpeg_scans=decode_cost.MAX_JPEG_SCANS):
    """Decodes encoded image bytes to RGB, reporting bad input by a reason code.

    Args:
        contents: scalar string tensor, the bytes of a JPEG, PNG, GIF, BMP or WebP file.
        min_short_side: optional int hint: the caller never needs a short side larger than
            this, so large JPEGs may be decoded at 1/2, 1/4 or 1/8 size (DCT scaling) as long
            as their short side stays >= this value. ``None``: always full size.
        max_pixels: images with more pixels are not decoded (reason ``too_large``); ``None``
            disables the check.
        alpha_background: grey level that transparent pixels are composited over, or ``None``
            to drop alpha.
        exif_orientation: turn JPEGs upright according to their EXIF orientation tag.
        max_jpeg_scans: JPEGs with more start-of-scan markers are not decoded (reason
            ``too_many_scans``); ``None`` disables the check.

    Returns:
        ``(image, reason)``: float32 (H, W, 3) in [0, 1] and an int32 scalar, :data:`OK` when
        decoded. For a rejected file ``image`` is a (1, 1, 3) placeholder. Corrupt data that
        passes the header checks raises an error in the decoder op: use
        :func:`safe_decode_dataset` to turn it into ``reason == CORRUPT``.
    """
    use_exif = exif_orientation
    contents = tf.convert_to_tensor(contents, tf.string)
    if contents.shape.rank not in (None, 0):
        raise ValueError(f"decode_image takes one encoded image (a scalar string), got shape "
                         f"{contents.shape}")
    if min_short_side is not None and (isinstance(min_short_side, bool) or
                                       int(min_short_side) <= 0):
        raise ValueError(f"min_short_side must be a positive int or None, got {min_short_side!r}")
    if alpha_background is not None and not 0.0 <= float(alpha_background) <= 1.0:
        raise ValueError(f"alpha_background must be in [0, 1] or None, got {alpha_background!r}")
    fmt = sniff_format(contents)
    pixels, unsupported = _header_info(contents, fmt)

    def jpeg_pixels():
        if max_pixels is None:
            return tf.constant(-1, tf.int64)
        return tf.cast(tf.reduce_prod(tf.cast(tf.io.extract_jpeg_shape(contents)[:2],
                                              tf.int64)), tf.int64)

    def gif_pixels():  # every frame is allocated, and may be larger than the screen
        screen, _, frames, blocks_exceeded = decode_cost.gif_frame_pixels(contents)
        return tf.where(blocks_exceeded, tf.constant(2 ** 62, tf.int64),
                        tf.maximum(screen, frames))

    if max_pixels is not None:
        pixels = tf.cond(tf.equal(fmt, _GIF), gif_pixels, lambda: pixels)
    pixels = tf.cond(tf.equal(fmt, _JPEG), jpeg_pixels, lambda: pixels)
    too_large = (tf.constant(False) if max_pixels is None
                 else tf.greater(pixels, tf.constant(int(max_pixels), tf.int64)))
    too_many_scans = tf.constant(False) if max_jpeg_scans is None else tf.cond(
            tf.equal(fmt, _JPEG), lambda: decode_cost.jpeg_scan_count(contents) > max_jpeg_scans,
            lambda: tf.constant(False))
    reason = tf.constant(OK, tf.int32)
    for cond, code in reversed([
            (tf.equal(tf.strings.length(contents), 0), EMPTY),
            (tf.equal(fmt, 0), UNKNOWN_FORMAT),
            (unsupported, UNSUPPORTED),
            (too_large, TOO_LARGE),
            (too_many_scans, TOO_MANY_SCANS)]):
        reason = tf.where(cond, tf.constant(code, tf.int32), reason)

    def decode():
        branches = [
            lambda: tf.zeros([1, 1, 3], tf.float32),
            lambda: _decode_jpeg(contents, min_short_side, use_exif),
            lambda: _decode_png(contents, alpha_background),
            lambda: _decode_gif(contents),
            lambda: _decode_bmp(contents),
            lambda: _decode_webp(contents, alpha_background),
        ]
        return tf.switch_case(fmt, branches)

    image = tf.cond(tf.equal(reason, OK), decode, lambda: tf.zeros([1, 1, 3], tf.float32))
    image = tf.ensure_shape(image, [None, None, 3])
    # A decoder may still return an empty image for a degenerate header (0 x N).
    shape = tf.shape(image)
    degenerate = tf.logical_and(tf.equal(reason, OK), tf.equal(shape[0] * shape[1], 0))
    reason = tf.where(degenerate, tf.constant(CORRUPT, tf.int32), reason)
    return image, reason


def safe_decode_dataset(element, *, read_file, parse=None, min_short_side=None,
                        max_pixels=DEFAULT_MAX_PIXELS, alpha_background=0.5,
                        exif_orientation=True):
    """One-element dataset decoding ``element`` without ever raising.

    Meant for ``Dataset.interleave``: ``element`` is a dict with ``"path"`` (when ``read_file``)
    or ``"encoded"`` bytes, plus any other keys, which are passed through. The result has one
    dict with ``"image"`` and ``"reason"`` added (``"path"`` / ``"encoded"`` removed); when
    decoding raised, ``reason`` is :data:`CORRUPT` and the image a placeholder. When the file
    itself cannot be read (missing, a dangling link, a directory, no permission), ``reason`` is
    :data:`NOT_A_FILE`. ``parse`` (optional) maps the payload to the image bytes inside the same
    error-safe attempt (TFRecord sources: the serialized ``tf.train.Example``); when it fails,
    ``reason`` is :data:`BAD_RECORD`. A second attempt without the decoder tells these apart
    from :data:`CORRUPT`; it runs only for elements that failed.
    """
    source_key = "path" if read_file else "encoded"
    passthrough = {k: v for k, v in element.items() if k != source_key}

    def load(data):
        contents = tf.io.read_file(data) if read_file else data
        return parse(contents) if parse is not None else contents

    def decode(data):
        return decode_image(load(data), min_short_side=min_short_side, max_pixels=max_pixels,
                            alpha_background=alpha_background,
                            exif_orientation=exif_orientation)

    def failed(reason):
        return (tf.zeros([1, 1, 3], tf.float32), tf.constant(reason, tf.int32))

    source = tf.data.Dataset.from_tensors(element[source_key])
    result = source.map(decode).ignore_errors()
    if read_file or parse is not None:
        loadable = source.map(lambda d: tf.strings.length(load(d))).ignore_errors()
        result = result.concatenate(loadable.map(lambda _: failed(CORRUPT)))
        result = result.concatenate(tf.data.Dataset.from_tensors(
            failed(NOT_A_FILE if read_file else BAD_RECORD)))
    else:
        result = result.concatenate(tf.data.Dataset.from_tensors(failed(CORRUPT)))
    result = result.take(1)
    return result.map(lambda image, reason: dict(passthrough, image=image, reason=reason))
