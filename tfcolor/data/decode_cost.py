"""What decoding an image will cost, read from its bytes before it is decoded.

A header's width and height are not the whole story (``tfcolor.data.decode`` checks them):

* **GIF**: every frame has its own size in its image descriptor, which may be larger than the
  logical screen of the header, and giflib (TensorFlow's GIF decoder) reads *every* frame into
  memory, one byte per pixel, even when only the first is returned. A 100 KB GIF with a 64 x 64
  screen can hold a 12000 x 12000 frame. :func:`gif_frames` / :func:`gif_frame_pixels` walk the
  blocks of the file (image descriptors, extensions, their data sub-blocks) without decoding
  anything and give the largest frame and the sum of all frames' pixels. A GIF counts as
  ``max(screen, sum of its frames)`` pixels against the pixel limit. A GIF with more than
  :data:`MAX_GIF_BLOCKS` (16,384) blocks (frames and extensions) is refused as well, so that the
  walk itself stays bounded (each block's data sub-blocks are skipped by vectorized ops).
* **progressive JPEG**: decoding time grows with the number of scans (each one is a pass over
  the image's coefficients): a 2.4 MB file with 50,000 scans takes over a minute in libjpeg.
  :func:`jpeg_scans` / :func:`jpeg_scan_count` count the start-of-scan markers (``FF DA``: inside
  entropy-coded data an ``FF`` byte is always followed by ``00`` or a restart marker, so every
  ``FF DA`` is a marker; one inside an EXIF thumbnail or other metadata is counted too, an
  overcount of a few). A baseline JPEG has 1 scan, a standard progressive JPEG about 10 (libjpeg's
  default script: 10 for colour, 6 for grey; encoders that optimise the script use a few dozen at
  most). Above :data:`MAX_JPEG_SCANS` (500) a file is refused.

Each measure exists twice: as TensorFlow ops on a scalar string tensor (the decoder of the
training pipelines and of the SavedModel's ``colorize_bytes``: no Python in the graph) and in
plain Python on ``bytes`` (``tfcolor.image_files.read_image``, which decodes with Pillow). The two
are tested against each other and against generated files of known structure.
"""
import tensorflow as tf

__all__ = ["MAX_JPEG_SCANS", "MAX_GIF_BLOCKS", "jpeg_scans", "gif_frames", "jpeg_scan_count",
           "gif_frame_pixels"]

#: Progressive JPEGs with more scans (start-of-scan markers) are refused (``too_many_scans``).
MAX_JPEG_SCANS = 500
#: GIFs with more blocks than this are refused as ``too_large`` (the walk over them is bounded).
MAX_GIF_BLOCKS = 1 << 14

_SOS = b"\xff\xda"


# ------------------------------------------------------------------------------------------------
# Plain Python, on bytes
# ------------------------------------------------------------------------------------------------

def jpeg_scans(data):
    """Number of start-of-scan markers in the JPEG bytes ``data``."""
    return bytes(data).count(_SOS)


def _colour_table_size(packed):
    return 3 << ((packed & 7) + 1) if packed & 0x80 else 0


def gif_frames(data, max_blocks=MAX_GIF_BLOCKS):
    """``(screen, largest, total, blocks_exceeded)`` of the GIF bytes ``data``, without decoding.

    ``screen``: width * height of the logical screen; ``largest`` / ``total``: the largest
    frame's and the sum of all frames' width * height (image descriptors); ``blocks_exceeded``:
    the file has more than ``max_blocks`` blocks (the counts then cover only the first ones).
    A truncated or damaged file is walked as far as it goes (the decoder reports the damage).
    """
    data = bytes(data)
    n = len(data)

    def at(i):
        return data[i] if 0 <= i < n else 0

    screen = (at(6) + 256 * at(7)) * (at(8) + 256 * at(9))
    pos = 13 + _colour_table_size(at(10))
    largest = total = blocks = 0
    while blocks < max_blocks:
        blocks += 1
        kind = at(pos)
        if kind == 0x2C:  # image descriptor, local colour table, LZW minimum code size
            pixels = (at(pos + 5) + 256 * at(pos + 6)) * (at(pos + 7) + 256 * at(pos + 8))
            largest, total = max(largest, pixels), total + pixels
            pos += 11 + _colour_table_size(at(pos + 9))
        elif kind == 0x21:  # extension: introducer and label
            pos += 2
        else:  # trailer (0x3B), end of data or garbage
            return screen, largest, total, False
        while pos < n and data[pos]:  # the data sub-blocks, up to the empty one
            pos += data[pos] + 1
        pos += 1
    return screen, largest, total, True


# ------------------------------------------------------------------------------------------------
# TensorFlow ops, on a scalar string tensor
# ------------------------------------------------------------------------------------------------

def jpeg_scan_count(contents):
    """int64 number of start-of-scan markers in the scalar string ``contents``."""
    contents = tf.convert_to_tensor(contents, tf.string)
    parts = tf.strings.split(tf.reshape(contents, [1]), sep=_SOS)
    return tf.cast(parts.row_lengths()[0], tf.int64) - 1


def _chain_ends(raw, n):
    """For every position i, the position of the zero-length sub-block that ends the chain of
    data sub-blocks starting at i (``n`` if it runs past the end), by pointer doubling:
    vectorized, ``log2(n)`` rounds of one gather."""
    index = tf.range(n + 1)
    nxt = tf.where(tf.equal(raw, 0), index, tf.minimum(index + raw + 1, n))
    rounds = tf.cast(tf.math.ceil(tf.math.log(tf.cast(n, tf.float32) + 2.0) / tf.math.log(2.0)),
                     tf.int32) + 1
    _, nxt = tf.while_loop(lambda k, _: k < rounds, lambda k, x: (k + 1, tf.gather(x, x)),
                           (tf.constant(0), nxt))
    return nxt


def gif_frame_pixels(contents, max_blocks=MAX_GIF_BLOCKS):
    """:func:`gif_frames` as graph ops: int64 ``(screen, largest, total)`` and a bool
    ``blocks_exceeded``, for the scalar string ``contents``."""
    contents = tf.convert_to_tensor(contents, tf.string)
    raw = tf.concat([tf.cast(tf.io.decode_raw(contents, tf.uint8), tf.int32),
                     tf.zeros([1], tf.int32)], axis=0)
    n = tf.size(raw) - 1
    ends = _chain_ends(raw, n)

    def at(i):  # byte i (int32), 0 past the end
        return tf.gather(raw, tf.minimum(i, n))

    def wide(i):
        return tf.cast(at(i), tf.int64)

    def table(packed):
        return tf.where(packed >= 128, tf.bitwise.left_shift(3, packed % 8 + 1), 0)

    screen = (wide(6) + 256 * wide(7)) * (wide(8) + 256 * wide(9))
    zero = tf.constant(0, tf.int64)

    def cond(pos, largest, total, blocks, done):  # pylint: disable=unused-argument
        return tf.logical_and(tf.logical_not(done), blocks < max_blocks)

    def body(pos, largest, total, blocks, done):  # pylint: disable=unused-argument
        kind = at(pos)
        image = tf.equal(kind, 0x2C)
        extension = tf.equal(kind, 0x21)
        pixels = tf.where(image, (wide(pos + 5) + 256 * wide(pos + 6))
                          * (wide(pos + 7) + 256 * wide(pos + 8)), zero)
        data = tf.minimum(tf.where(image, pos + 11 + table(at(pos + 9)), pos + 2), n)
        end = tf.logical_not(tf.logical_or(image, extension))
        return (tf.where(end, pos, tf.gather(ends, data) + 1), tf.maximum(largest, pixels),
                total + pixels, blocks + 1, end)

    _, largest, total, blocks, done = tf.while_loop(
            cond, body, (13 + table(at(10)), zero, zero, tf.constant(0), tf.constant(False)),
            parallel_iterations=1)
    return screen, largest, total, tf.logical_and(tf.logical_not(done), blocks >= max_blocks)
