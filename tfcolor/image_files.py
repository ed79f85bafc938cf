"""Image files: listing inputs, reading images, writing PNGs, colorizing files and folders.

Inputs are files, folders (all images inside, sorted; ``recursive=True`` to descend), globs or
the shipped photos, ``embedded[:SPLIT]`` as everywhere in tfcolor (:func:`expand_inputs`).
:func:`read_image` reads one as float32 RGB in [0, 1]; colour inputs are desaturated by the
colorizer (the network and the output only use their grey). An input
that cannot be used is skipped by :func:`colorize_files` with one logged line
``skipped PATH: reason: detail``, the reason being ``not_a_file``, ``empty``, ``unknown_format``,
``too_large`` (above :data:`MAX_PIXELS` = ``tfcolor.data.decode.DEFAULT_MAX_PIXELS``, read from
the header, for a GIF from every frame's image descriptor: never decoded), ``too_many_scans`` (a
progressive JPEG with more than ``tfcolor.data.decode_cost.MAX_JPEG_SCANS`` scans: its decoding
time grows with them), ``corrupt``, ``unreadable`` or ``failed`` (an error while colorizing
it). Outputs are PNGs named after the input (``name.png``, ``name_uncertainty.png``,
``name_sample1.png``, ...), written atomically (:func:`save_png`: temporary name
``.NAME.png.PID.tmp``, then ``os.replace``); existing outputs are kept unless ``overwrite=True``.
Temporary PNGs of killed runs (their process is dead) are removed when the next run starts
(``tfcolor.leftovers``).

Colorizing one image in memory is ``tfcolor.predictors.colorize_image``; decoding encoded image
bytes inside TensorFlow (the ``colorize_bytes`` signature, the training pipelines) is
``tfcolor.data.decode``.
"""
import glob
import logging
import os
import time
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tfcolor import leftovers
from tfcolor import predictors
from tfcolor.data import decode as decode_lib
from tfcolor.data import decode_cost
from tfcolor.data import sources as sources_lib

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageReadError", "expand_inputs", "read_image",
           "save_png", "output_paths", "colorize_files"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")
#: Images with more pixels are refused unread (``tfcolor.data.decode.DEFAULT_MAX_PIXELS``).
MAX_PIXELS = decode_lib.DEFAULT_MAX_PIXELS


class ImageReadError(IOError):
    """An input cannot be used: missing, not a regular file, not an image, corrupt or too large.

    Attributes:
        path: the input.
        reason: ``"not_a_file"``, ``"empty"``, ``"unknown_format"``, ``"too_large"``,
            ``"too_many_scans"``, ``"corrupt"`` or ``"unreadable"`` (the names of ``tfcolor.data.decode.REASONS`` where
            they mean the same).
    """

    def __init__(self, message, path=None, reason="corrupt"):
        super().__init__(message)
        self.path = path
        self.reason = reason


def _is_image(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _listed(path):
    """A folder entry or glob match worth reporting: a regular file, or anything named like an
    image (a folder ``x.jpg`` or a dangling link is then skipped with reason ``not_a_file``)."""
    return _is_image(path) and (os.path.isfile(path) or os.path.lexists(path))


def _training_only_source(entry):
    """``tfds:NAME`` or TFRecord files (not a folder): image sources that only the training
    pipelines read (``tfcolor.data.sources``)."""
    entry = str(entry)
    if entry.startswith("tfds:"):
        return True
    name = os.path.basename(entry).lower()
    return (any(suffix in name for suffix in sources_lib.TFRECORD_SUFFIXES)
            and not os.path.isdir(entry))


def expand_inputs(inputs, recursive=False):
    """Files, folders, globs and the shipped photos -> sorted list of ``(path, output stem)``.

    Folders contribute the entries named like images they contain (by extension; recursively with
    ``recursive``), named by their path relative to the folder; globs and files contribute
    themselves, named by their base name. Entries named like images that are not regular files
    (a folder ``x.jpg``, a dangling symbolic link) are listed too, so that :func:`read_image`
    reports them (``not_a_file``) instead of their silently vanishing. Duplicate stems get
    ``_2``, ``_3``... ``"embedded"`` / ``"embedded:SPLIT"`` are the shipped photos
    (``tfcolor.data.sources.embedded_split``: the same names as every image source of tfcolor;
    ``./embedded`` for a folder of that name). A path that does not exist at all (not even as a
    dangling link), an unknown split, or a source only the training pipelines read (TFRecord
    files, ``tfds:NAME``) raises ``FileNotFoundError``.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    found = []
    for entry in inputs:
        try:
            shipped = sources_lib.embedded_files(entry)
        except sources_lib.SourceError as e:
            raise FileNotFoundError(str(e)) from e
        if shipped is not None:
            found += [(p, os.path.splitext(os.path.basename(p))[0]) for p in shipped]
        elif _training_only_source(entry):
            raise FileNotFoundError(f"input {entry!r}: TFRecord files and TensorFlow Datasets "
                                    "are training sources (pretrain, the prior); give image "
                                    "files, folders, globs or embedded[:SPLIT]")
        elif os.path.isdir(entry):
            if recursive:
                paths = [os.path.join(d, f) for d, _, fs in os.walk(entry) for f in fs]
            else:
                paths = [os.path.join(entry, f) for f in os.listdir(entry)]
            paths = sorted(p for p in paths if _listed(p))
            found += [(p, os.path.splitext(os.path.relpath(p, entry))[0]) for p in paths]
        elif os.path.isfile(entry) or os.path.lexists(entry):
            found.append((entry, os.path.splitext(os.path.basename(entry))[0]))
        elif glob.has_magic(entry):
            paths = sorted(p for p in glob.glob(entry, recursive=recursive)
                           if os.path.isfile(p) or _listed(p))
            found += [(p, os.path.splitext(os.path.basename(p))[0]) for p in paths]
        else:
            raise FileNotFoundError(f"input {entry!r} is neither a file, a folder nor a glob "
                                    "that matches something")
    seen = {}
    out = []
    for path, stem in found:
        stem = stem.replace(os.sep, "__")
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append((path, stem if n == 1 else f"{stem}_{n}"))
    return out


def _one_line(error):
    """``Type: first line of the message`` (TensorFlow errors span many lines)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


_SCAN_CHUNK = 1 << 20


def _decode_cost(path, max_pixels):
    """``(reason, detail)`` when the file's bytes show that decoding it would allocate more than
    ``max_pixels`` (a GIF's frames) or take absurdly long (a JPEG's scans), else None
    (``tfcolor.data.decode_cost``: the same measures as the TensorFlow decoder's)."""
    with open(path, "rb") as f:
        head = f.read(6)
        if head[:3] == b"\xff\xd8\xff":
            scans, chunk = decode_cost.jpeg_scans(head), head
            while chunk:  # streamed (the whole file is never held); a marker may straddle
                tail = chunk[-1:] if chunk[-1:] == b"\xff" else b""
                chunk = f.read(_SCAN_CHUNK)
                scans += decode_cost.jpeg_scans(tail + chunk)
            if scans > decode_cost.MAX_JPEG_SCANS:
                return ("too_many_scans", f"{scans} JPEG scans, above the limit of "
                        f"{decode_cost.MAX_JPEG_SCANS} (decoding time grows with the scans)")
        elif head in (b"GIF87a", b"GIF89a") and max_pixels is not None:
            screen, largest, total, exceeded = decode_cost.gif_frames(head + f.read())
            if exceeded:
                return ("too_large", f"more than {decode_cost.MAX_GIF_BLOCKS} GIF blocks")
            if max(screen, total) > max_pixels:
                return ("too_large", f"GIF frames of {total} pixels in all (largest {largest}, "
                        f"screen {screen}), above the limit of {max_pixels}")
    return None


def read_image(path, max_pixels=MAX_PIXELS):
    """See :func:`_read_pixels`: the image as float32 (H, W, 3) in [0, 1]."""
    arr = _read_pixels(path, max_pixels)
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32)
        out /= 255.0  # in place: the same float32 values as a division of a copy
        return out
    return arr


def _read_pixels(path, max_pixels=MAX_PIXELS):
    """Reads an image file as (H, W, 3) pixels: uint8 for 8-bit images, float32 in [0, 1] for
    16-bit and 32-bit ones (EXIF orientation applied; grey, palette, CMYK, 16-bit and alpha
    images converted to RGB; the first frame of an animation). :func:`read_image` gives float32.

    Args:
        path: the file.
        max_pixels: images with more pixels (read from the header) are refused without being
            decoded (a decompression bomb never reaches memory); default
            ``tfcolor.data.decode.DEFAULT_MAX_PIXELS`` (1e8 = 10000 x 10000); None: no limit
            but Pillow's own (about 1.8e8 pixels).

    Raises:
        ImageReadError: with ``reason`` ``not_a_file`` (a folder, a dangling link, missing),
            ``empty`` (zero bytes), ``unknown_format`` (not an image Pillow knows), ``too_large``
            (above ``max_pixels``; a GIF: its screen or all its frames together),
            ``too_many_scans`` (a JPEG of more than
            ``tfcolor.data.decode_cost.MAX_JPEG_SCANS`` scans), ``corrupt`` (truncated or damaged data) or ``unreadable``
            (the file system refused it, e.g. permissions).
    """

    def fail(reason, detail):
        raise ImageReadError(f"{reason}: {detail}", path=path, reason=reason)

    if not os.path.isfile(path):
        fail("not_a_file", "a folder" if os.path.isdir(path) else
             ("a broken symbolic link" if os.path.islink(path) else "no such file"))
    try:
        if os.path.getsize(path) == 0:
            fail("empty", "zero-byte file")
        refused = _decode_cost(path, max_pixels)
        if refused is not None:
            fail(*refused)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                img_file = Image.open(path)
            except UnidentifiedImageError:
                fail("unknown_format", "not an image Pillow can identify")
            except Image.DecompressionBombError as e:
                fail("too_large", f"above the limit of {max_pixels} pixels ({_one_line(e)})")
            except OSError as e:
                if e.errno is not None:  # the file system, not the data
                    raise
                fail("corrupt", _one_line(e))
            except Exception as e:  # PIL raises many types  pylint: disable=broad-except
                fail("corrupt", _one_line(e))
            with img_file as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    fail("too_large", f"{width} x {height} = {width * height} pixels, above the "
                         f"limit of {max_pixels}")
                if width * height == 0:
                    fail("corrupt", f"the header declares an empty image ({width} x {height})")
                try:
                    img.load()
                    img = ImageOps.exif_transpose(img)
                    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                        arr = np.asarray(img, dtype=np.float32)
                        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                        arr = np.clip(np.repeat(arr[..., None], 3, axis=-1), 0.0, 1.0)
                    else:
                        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
                except MemoryError:
                    raise
                except Exception as e:  # PIL raises many types  pylint: disable=broad-except
                    fail("corrupt", _one_line(e))
    except ImageReadError:
        raise
    except OSError as e:  # permissions, I/O errors
        fail("unreadable", _one_line(e))
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        fail("corrupt", f"decoded to an empty array (shape {arr.shape})")
    return arr


#: The temporary name of :func:`save_png` (a regular expression; group ``pid``).
TEMPORARY_PNG = r"\..+\.png\.(?P<pid>\d+)\.tmp"


def save_png(image, path):
    """Writes (H, W, 3) / (H, W) float in [0, 1] (rounded; converted a few rows at a time) or
    uint8 as an 8-bit PNG, atomically.

    The PNG is written to a hidden temporary name in the same folder and renamed over ``path``
    (``os.replace``), so a killed run never leaves a truncated file under the final name.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        out = np.empty(arr.shape, np.uint8)
        rows = max(1, (1 << 16) // max(1, arr[:1].size))
        for start in range(0, arr.shape[0], rows):
            out[start:start + rows] = predictors.to_uint8(arr[start:start + rows])
        arr = out
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        Image.fromarray(arr).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return path


def output_paths(stem, output_dir, options):
    """Every file :func:`colorize_files` writes for one input, the main ``stem.png`` last."""
    base = os.path.join(output_dir, stem)
    paths = [f"{base}_uncertainty.png"] if options.uncertainty else []
    paths += [f"{base}_sample{k}.png" for k in range(1, options.samples + 1)]
    return paths + [base + ".png"]


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def colorize_files(predictor, inputs, output_dir, options=None, reference=None, recursive=False,
                   progress=None, overwrite=False, max_pixels=MAX_PIXELS):
    """Colorizes files / folders / globs into PNGs in ``output_dir``.

    Every input is handled on its own: one that cannot be read (:func:`read_image`'s reasons) or
    whose colorization fails (reason ``failed``) is logged as one line ``skipped PATH: reason:
    detail`` and the others go on. Outputs are written atomically (:func:`save_png`), the main
    ``NAME.png`` last. Existing outputs are never replaced unless ``overwrite``: an input with
    any existing output is left alone (logged ``kept``; re-running a killed run therefore
    finishes it), and an output that would be the input file itself is never written.

    Args:
        predictor: a ``tfcolor.predictors.Predictor`` (see
            ``tfcolor.predictors.colorize_image``).
        inputs: list of files, folders or globs.
        output_dir: where PNGs go (created).
        options: ``tfcolor.predictors.ColorizeOptions``.
        reference: reference RGB (float (H, W, 3)) or path, for histogram transfer.
        recursive: descend into folders / ``**`` globs.
        progress: callable ``progress(i, n, path, seconds)`` after each image (default: log).
        overwrite: replace existing outputs.
        max_pixels: larger images are skipped (``too_large``) without being decoded.

    Returns:
        dict with ``written`` (list of output paths), ``skipped`` (list of (path, "reason:
        detail")) and ``kept`` (list of (path, an existing output)).
    """
    options = (options or predictors.ColorizeOptions()).validate()
    if isinstance(reference, str):
        reference = read_image(reference, max_pixels)
    items = expand_inputs(inputs, recursive=recursive)
    os.makedirs(output_dir, exist_ok=True)
    leftovers.remove_dead(output_dir, TEMPORARY_PNG, "half-written PNG")
    written, skipped, kept = [], [], []

    def skip(path, message):
        message = " ".join(str(message).split("\n"))
        logger.warning("skipped %s: %s", path, message)
        skipped.append((path, message))

    for i, (path, stem) in enumerate(items):
        start = time.perf_counter()
        targets = output_paths(stem, output_dir, options)
        if any(_same_file(t, path) for t in targets):
            skip(path, "output_is_input: the output would replace the input file")
            continue
        existing = [t for t in targets if os.path.lexists(t)]
        if existing and not overwrite:
            logger.warning("kept %s: %s exists (overwrite replaces it)", path, existing[0])
            kept.append((path, existing[0]))
            continue
        try:
            image = _read_pixels(path, max_pixels)
            result = predictors.colorize_image(predictor, image, options, reference=reference,
                                               output_dtype=np.uint8)
            del image
            arrays = ([result["uncertainty"]] if "uncertainty" in result else [])
            arrays += list(result.get("samples", []))
            arrays.append(result["rgb"])
            del result
        except ImageReadError as e:
            skip(path, str(e))
            continue
        except Exception as e:  # one input must not end the run  pylint: disable=broad-except
            skip(path, f"failed: {_one_line(e)}")
            continue
        try:
            for array, target in zip(arrays, targets):
                written.append(save_png(array, target))
        except OSError as e:
            skip(path, f"write_failed: {_one_line(e)}")
            continue
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(i + 1, len(items), path, seconds)
        else:
            logger.info("[%d/%d] %s -> %s (%.2fs)", i + 1, len(items), path, targets[-1],
                        seconds)
    return {"written": written, "skipped": skipped, "kept": kept}
