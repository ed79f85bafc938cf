"""The fine-tuning and evaluation pipelines (tf.data) of a :class:`LabeledData`.

Per element, in TF ops:

* :func:`train_dataset`: float RGB in [0, 1] -> optional random short-side scaling
  (``scale_range``) -> random ``crop_size`` crop (images smaller than the crop are scaled up)
  -> random mirror -> grey (``(R + G + B) / 3``) unless ``color`` -> batches for the tasks of
  :mod:`tfcolor.tasks.downstream`:

  * classification: ``{"image": (B, S, S, 1 or 3), "label": (B,)}`` (class indices);
  * multi-label: ``{"image", "label": (B, C)}`` (1 / 0 / -1 ignored);
  * segmentation: ``{"image", "points": (B, P, 2), "label": (B, P)}``: ``P`` pixels (y, x)
    drawn uniformly among the crop's non-ignored pixels (stateless random: Gumbel top-k over
    the valid pixels) and their labels (images whose crop has fewer valid pixels than P repeat
    some; a crop without any valid pixel has ``IGNORE_LABEL`` at every point and contributes
    no loss).

  ``"image"`` is grey (1 channel) or, with ``color``, RGB (3 channels).
* :func:`eval_dataset`: deterministic batches ``{"image", "label"}``; classification resizes
  the short side to ``resize`` then centre-crops ``crop_size`` (``ten_crop`` returns the 10
  standard crops: corners, centre and their mirrors); segmentation keeps the whole image and
  its label map (batch 1 unless all images share a size).

Image files are decoded by :func:`tfcolor.data.stages.decoded_images` (bad files skipped and
reported to the process-wide skip counter); a pass in which none of them decodes raises. The
Python functions of a file pipeline (the skip report, reading label maps) keep no state, so its
iterator is checkpointed like any other (fine-tuning resumes its data stream); so is one over a
list of in-memory arrays of different sizes (looked up by index).
"""
import numpy as np
import tensorflow as tf
from PIL import Image

from tfcolor.data import decode
from tfcolor.data import sources
from tfcolor.data import stages
from tfcolor.downstream import scoring

IGNORE_LABEL = scoring.IGNORE_LABEL

def _read_mask(path):
    """A label map as uint8 (H, W); an unreadable file gives an empty (0, 0) map (skipped)."""
    try:
        with Image.open(path.decode() if isinstance(path, bytes) else path) as im:
            if im.mode not in ("P", "L"):
                im = im.convert("L")
            return np.asarray(im, np.uint8)
    except Exception:  # PIL raises many types for bad files  pylint: disable=broad-except
        return np.zeros((0, 0), np.uint8)


def _decoded_files(paths, skip_counter=None):
    """{"image", "name", "index"} of the image files that decode, in order; the others are
    skipped and reported to the SkipCounter (default: the process-wide one) by
    :func:`tfcolor.data.stages.decoded_images`. A pass in which no file decodes raises
    (instead of a repeating pipeline spinning forever): a sentinel closes each pass and the
    scan asserts that some file came before it."""
    count = len(paths)
    records = tf.data.Dataset.from_tensor_slices(
        {"path": list(paths), "name": list(paths), "index": np.arange(count, dtype=np.int64)})
    decoded = stages.decoded_images(records, sources.FileSource(list(paths)),
                                    skip_counter=skip_counter,
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    decoded = decoded.map(lambda e: {"image": e["image"], "index": e["index"],
                                     "name": e["name"]})
    end = tf.data.Dataset.from_tensors({"image": tf.zeros([0, 0, 3], tf.float32),
                                        "index": tf.constant(-1, tf.int64),
                                        "name": tf.constant("")})

    def guard(good_so_far, e):
        last = tf.equal(e["index"], -1)
        check = tf.debugging.Assert(
            tf.logical_or(tf.logical_not(last), good_so_far > 0),
            [f"none of the {count} labelled image files could be decoded, e.g. {paths[0]}; "
             f"see the logged skips"])
        with tf.control_dependencies([check]):
            return good_so_far + tf.cast(tf.logical_not(last), tf.int64), e

    return decoded.concatenate(end).scan(tf.constant(0, tf.int64), guard).filter(
        lambda e: e["index"] >= 0)


def _stateless_python(dataset):
    """``dataset`` with iterator checkpoints allowed although it runs Python functions: tf.data
    refuses to save an iterator over a ``tf.py_function`` / ``tf.numpy_function`` ("EagerPyFunc
    is stateful") unless told that their state need not be saved, which holds for these (they
    keep none)."""
    options = tf.data.Options()
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return dataset.with_options(options)


def _float_rgb(image):
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) / 255.0
    image = tf.cast(image, tf.float32)
    if image.shape[-1] == 1:
        image = tf.tile(image, [1, 1, 3])
    return image


def _elements(data):
    """Dataset of {"image": (H, W, 3) float32, "label": ...} in order."""
    images, labels = data.images, data.labels
    seg = data.task == "segmentation"
    if isinstance(images, np.ndarray) and (not seg or isinstance(labels, np.ndarray)):
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        return ds.map(lambda e: {"image": _float_rgb(e["image"]),
                                 "label": e["label"][..., None] if seg else e["label"]})
    if not isinstance(images, np.ndarray) and all(isinstance(p, str) for p in images):
        decoded = _decoded_files(images)
        decoded = _stateless_python(decoded)
        if not seg:
            table = tf.constant(np.asarray(labels))
            return decoded.map(lambda e: {"image": e["image"],
                                          "label": tf.gather(table, e["index"])})
        if all(isinstance(m, str) for m in labels):
            mask_paths = tf.constant(list(labels))

            def read(e):
                path = tf.gather(mask_paths, e["index"])
                mask = tf.numpy_function(_read_mask, [path], tf.uint8, stateful=False)
                return {"image": e["image"], "label": tf.ensure_shape(mask, [None, None])[
                    ..., None], "name": path}
            with_masks = decoded.map(read)
        else:
            arrays = [np.asarray(m, np.uint8) for m in labels]
            with_masks = decoded.map(lambda e: dict(e, label=tf.ensure_shape(tf.numpy_function(
                lambda i: arrays[int(i)], [e["index"]], tf.uint8, stateful=False),
                [None, None])[..., None]))


        def matching(e):
            ok = tf.reduce_all(tf.equal(tf.shape(e["label"])[:2], tf.shape(e["image"])[:2]))
            return tf.cond(ok, lambda: tf.constant(True), lambda: tf.py_function(
                decode.default_skip_counter()._graph_record,
                [tf.strings.join([e["name"], " (label map unreadable or not the image's size)"]),
                 decode.CORRUPT], tf.bool))
        return with_masks.filter(matching).map(lambda e: {"image": e["image"],
                                                          "label": e["label"]})

    # In-memory arrays of different sizes: looked up by index (a pure function, so the iterator
    # can be checkpointed, unlike a generator's position).
    arrays = [np.asarray(image) for image in images]
    arrays = [image[..., None] if image.ndim == 2 else image for image in arrays]
    dtype = tf.as_dtype(arrays[0].dtype)
    if seg:
        label_arrays = [np.asarray(label, np.uint8)[..., None] for label in labels]
    else:
        table = tf.constant(np.asarray([np.asarray(label) for label in labels], np.int64))

    def lookup(index):
        image = tf.numpy_function(lambda i: arrays[int(i)], [index], dtype, stateful=False)
        image = tf.ensure_shape(image, [None, None, None])
        if seg:
            label = tf.ensure_shape(tf.numpy_function(
                lambda i: label_arrays[int(i)], [index], tf.uint8, stateful=False),
                [None, None, 1])
        else:
            label = tf.gather(table, index)
        return {"image": _float_rgb(image), "label": label}
    return _stateless_python(tf.data.Dataset.range(len(arrays)).map(lookup))


def _resize_short(image, short, method="bilinear"):
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.cast(short, tf.float32) / tf.minimum(h, w)
    size = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    size = tf.maximum(size, short)
    out = tf.image.resize(image, size, method=method, antialias=method == "bilinear")
    # float rounding of the resampling may step just outside [0, 1]
    return tf.cast(out, image.dtype) if method == "nearest" else tf.clip_by_value(out, 0.0, 1.0)


def sample_valid_centers(mask, num_points, seed):
    """``num_points`` (y, x) int32 centres drawn uniformly among the pixels of ``mask`` (H, W)
    that are not ``IGNORE_LABEL``, without replacement while there are enough (Gumbel top-k);
    returns ``(centers (P, 2), valid (P,) bool)``."""
    mask = tf.convert_to_tensor(mask)
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    flat = tf.reshape(mask, [-1])
    ok = flat != IGNORE_LABEL
    u = tf.random.stateless_uniform(tf.shape(flat), seed, 1e-6, 1.0)
    gumbel = -tf.math.log(-tf.math.log(u))
    scores = tf.where(ok, gumbel, -np.inf)
    n = tf.size(flat)
    k = tf.minimum(num_points, n)
    _, idx = tf.math.top_k(scores, k)
    valid_count = tf.reduce_sum(tf.cast(ok, tf.int32))
    # Repeat the valid draws when fewer than P pixels are valid.
    repeat = tf.math.floormod(tf.range(num_points), tf.maximum(tf.minimum(valid_count, k), 1))
    idx = tf.gather(idx, repeat)
    centers = tf.stack([idx // w, idx % w], axis=-1)
    return tf.cast(centers, tf.int32), tf.fill([num_points], valid_count > 0)


def train_dataset(data, *, batch_size=32, crop_size=None, scale_range=None, mirror=True,
                  color=False, num_points=256, seed=0, repeat=True, shuffle_buffer=10000):
    """Fine-tuning batches for the tasks of :mod:`tfcolor.tasks.downstream` (see the module
    docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    if scale_range is not None and crop_size is None:
        raise ValueError("scale_range needs crop_size: scaled images differ in size and must "
                         "be cropped to be batched.")
    seg = data.task == "segmentation"
    ds = _elements(data)
    if repeat:
        ds = ds.cache() if isinstance(data.images, np.ndarray) else ds
        ds = ds.shuffle(min(len(data), shuffle_buffer), seed=seed,
                        reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate()

    def augment(position, e):
        s = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), position]),
                                                   4)
        image, label = e["image"], e["label"]
        if scale_range is not None:
            lo, hi = scale_range
            short = tf.random.stateless_uniform([], s[0], lo, hi + 1, dtype=tf.int32)
            image = _resize_short(image, short)
            if seg:
                label = _resize_short(label, short, "nearest")
        if crop_size is not None:
            shape = tf.shape(image)
            short = tf.minimum(shape[0], shape[1])
            image, label = tf.cond(
                short < crop_size,
                lambda: (_resize_short(image, crop_size),
                         _resize_short(label, crop_size, "nearest") if seg else label),
                lambda: (image, label))
            shape = tf.shape(image)
            oy = tf.random.stateless_uniform([], s[1], 0, shape[0] - crop_size + 1, tf.int32)
            ox = tf.random.stateless_uniform([], s[2], 0, shape[1] - crop_size + 1, tf.int32)
            image = image[oy:oy + crop_size, ox:ox + crop_size]
            if seg:
                label = label[oy:oy + crop_size, ox:ox + crop_size]
            image = tf.ensure_shape(image, [crop_size, crop_size, 3])
        if mirror:
            flip = tf.random.stateless_uniform([], s[3]) < 0.5
            image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
            if seg:
                label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
        x = image if color else tf.reduce_mean(image, axis=-1, keepdims=True)
        if seg:
            mask = label[..., 0]
            centers, _ = sample_valid_centers(
                mask, num_points, tf.random.experimental.stateless_fold_in(s[0], 7))
            values = tf.gather_nd(tf.cast(mask, tf.int32), centers)  # 255 at ignored points
            return {"image": x, "points": centers, "label": values}
        return {"image": x, "label": label}

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if crop_size is None and not _fixed_size(data):
        raise ValueError("images of different sizes need crop_size to be batched.")
    ds = ds.batch(batch_size, drop_remainder=repeat)
    return ds.prefetch(tf.data.AUTOTUNE)


def _fixed_size(data):
    return isinstance(data.images, np.ndarray)


def ten_crops(images, crop_size):
    """(B, H, W, C) -> (10, B, S, S, C): four corners, centre, and their mirrors."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    s = crop_size
    offsets = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
    crops = [images[:, oy:oy + s, ox:ox + s] for oy, ox in offsets]
    crops += [tf.reverse(c, [2]) for c in crops]
    return tf.stack(crops)


def eval_dataset(data, *, batch_size=32, resize=None, crop_size=None, color=False,
                 ten_crop=False):
    """Deterministic evaluation batches ``{"image", "label"}`` (see the module docstring).

    ``ten_crop=True`` makes ``"image"`` (B, 10, S, S, C) (classification only).
    """
    seg = data.task == "segmentation"
    if ten_crop and (seg or crop_size is None):
        raise ValueError("ten_crop needs a classification task and crop_size.")

    def prepare(e):
        image, label = e["image"], e["label"]
        if resize is not None:
            image = _resize_short(image, resize)
            if seg:
                label = _resize_short(label, resize, "nearest")
        if crop_size is not None and not seg:
            shape = tf.shape(image)
            if not ten_crop:
                oy = (shape[0] - crop_size) // 2
                ox = (shape[1] - crop_size) // 2
                image = tf.ensure_shape(image[oy:oy + crop_size, ox:ox + crop_size],
                                        [crop_size, crop_size, 3])
        x = image if color else tf.reduce_mean(image, axis=-1, keepdims=True)
        if ten_crop:
            x = ten_crops(x[None], crop_size)[:, 0]
        return {"image": x, "label": label[..., 0] if seg else label}

    ds = _elements(data).map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    fixed = _fixed_size(data) or (crop_size is not None and not seg)
    return ds.batch(batch_size if fixed else 1).prefetch(tf.data.AUTOTUNE)
