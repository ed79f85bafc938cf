"""Building blocks shared by the pretraining and evaluation pipelines.

* :func:`decoded_images`: records of a source -> ``{"image", "name", ...}`` with every bad file
  dropped and reported to a :class:`~tfcolor.data.decode.SkipCounter` (the report runs in a
  ``tf.py_function`` on the skip path only; ``skip_counter=False`` keeps the graph pure, e.g. for
  tf.data service, and only drops).
* :func:`scale_crop`: resize-then-crop in one op (``tf.raw_ops.ScaleAndTranslate``, the kernel
  behind ``tf.image.resize``), computing only the output pixels: identical to
  ``tf.image.resize(image, (nh, nw), antialias=...)[oy:oy+S, ox:ox+S]``.
* :func:`shard_spec`, :func:`dataset_options`: multi-worker sharding and tf.data options.
"""
import tensorflow as tf

import tfcolor.data.decode as decode_lib
import tfcolor.data.sources as sources_lib

__all__ = ["decoded_images", "scale_crop", "scaled_size", "shard_spec", "dataset_options",
           "RESIZE_KERNELS", "element_seed", "NO_DECODABLE_IMAGE"]

#: Start of the error of a pipeline that meets ``max_consecutive_skips`` bad records in a row.
NO_DECODABLE_IMAGE = "no decodable image"

#: Kernels of ``tf.raw_ops.ScaleAndTranslate`` ("triangle" is bilinear).
RESIZE_KERNELS = ("triangle", "keyscubic", "mitchellcubic", "lanczos3", "lanczos5", "box",
                  "gaussian", "lanczos1")


def _counter(skip_counter):
    if skip_counter is None:
        return decode_lib.default_skip_counter()
    if skip_counter is False:
        return None
    if not isinstance(skip_counter, decode_lib.SkipCounter):
        raise TypeError(f"skip_counter must be a SkipCounter, None (process default) or False "
                        f"(no report), got {type(skip_counter).__name__}")
    return skip_counter


def decoded_images(records, source, *, skip_counter=None, min_short_side=None,
                   max_pixels=decode_lib.DEFAULT_MAX_PIXELS, alpha_background=0.5,
                   exif_orientation=True, num_parallel_calls=tf.data.AUTOTUNE,
                   deterministic=None, max_consecutive_skips=None):
    """Decodes records robustly; drops (and reports) the bad ones.

    Returns a dataset of the record dicts with ``"image"`` (float32 (H, W, 3) in [0, 1])
    replacing the payload; other keys pass through. ``max_consecutive_skips``: raise an
    ``InvalidArgumentError`` (message: :data:`NO_DECODABLE_IMAGE`) after that many bad records
    in a row, so that a repeating pipeline over data without a single decodable image fails
    instead of spinning forever; None: no limit.
    """
    counter = _counter(skip_counter)
    if source.payload == "image":
        def convert(record):
            rest = {k: v for k, v in record.items() if k not in ("image", "pixels", "hw")}
            return dict(rest, image=source.to_float_rgb(record, alpha_background))
        return records.map(convert, num_parallel_calls=num_parallel_calls,
                           deterministic=deterministic)

    read_file = source.payload == "path"
    parse = source.image_bytes if source.payload == "example" else None

    def attempt(record):
        return decode_lib.safe_decode_dataset(
            record, read_file=read_file, parse=parse, min_short_side=min_short_side,
            max_pixels=max_pixels, alpha_background=alpha_background,
            exif_orientation=exif_orientation)

    ds = records.interleave(attempt, cycle_length=num_parallel_calls, block_length=1,
                            num_parallel_calls=num_parallel_calls, deterministic=deterministic)

    def judge(element):
        """Adds "ok"; a bad element is reported to the counter (in a py_function run only for
        bad elements, so that valid images never leave the graph)."""
        reason = element["reason"]
        if "status" in element:  # a source-level problem (TFRecord: bad record / file)
            reason = tf.where(tf.equal(element["status"], decode_lib.OK), reason,
                              element["status"])
        ok = tf.equal(reason, decode_lib.OK)
        if counter is not None:  # _graph_record records and returns False
            ok = tf.cond(ok, lambda: tf.constant(True), lambda: tf.py_function(
                counter._graph_record, [element["name"], reason], tf.bool))
        return dict(element, ok=tf.ensure_shape(ok, []))

    ds = ds.map(judge)
    if max_consecutive_skips is not None:
        limit = int(max_consecutive_skips)

        def guard(run, element):
            run = tf.where(element["ok"], tf.zeros_like(run), run + 1)
            check = tf.debugging.Assert(tf.less(run, limit), [
                f"{NO_DECODABLE_IMAGE}: {limit} bad records in a row (the whole source?); see "
                f"the logged skips"])
            with tf.control_dependencies([check]):
                return tf.identity(run), element

        ds = ds.scan(tf.constant(0, tf.int64), guard)
    ds = ds.filter(lambda element: element["ok"])
    return ds.map(lambda e: {k: v for k, v in e.items() if k not in ("reason", "status", "ok")})


def scaled_size(height, width, short_side):
    """(nh, nw) int32 of an image whose short side is scaled to ``short_side`` (rounded; the
    short side is exactly ``short_side``)."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    short = tf.cast(short_side, tf.float32)
    scale = short / tf.minimum(h, w)
    nh = tf.where(h <= w, short, tf.round(h * scale))
    nw = tf.where(w < h, short, tf.round(w * scale))
    return tf.cast(nh, tf.int32), tf.cast(nw, tf.int32)


def scale_crop(image, new_size, offset, crop_size, *, kernel="triangle", antialias=True):
    """Crop of size ``crop_size`` at ``offset`` of ``image`` resized to ``new_size``.

    Args:
        image: float32 (H, W, C).
        new_size: (nh, nw), the size the whole image is (virtually) resized to.
        offset: (oy, ox), the top-left corner of the crop in the resized image.
        crop_size: (ch, cw) Python ints or tensors.
        kernel: one of :data:`RESIZE_KERNELS`.
        antialias: widen the kernel when downscaling (as ``tf.image.resize(antialias=True)``).
    """
    if kernel not in RESIZE_KERNELS:
        raise ValueError(f"kernel must be one of {RESIZE_KERNELS}, got {kernel!r}")
    shape = tf.shape(image)
    new_size = tf.cast(tf.stack(new_size), tf.float32)
    scale = new_size / tf.cast(shape[:2], tf.float32)
    translation = -tf.cast(tf.stack(offset), tf.float32)
    out = tf.raw_ops.ScaleAndTranslate(
        images=image[None], size=tf.cast(tf.stack(crop_size), tf.int32), scale=scale,
        translation=translation, kernel_type=kernel, antialias=antialias)
    return out[0]


def element_seed(base_seed, index, stream=0):
    """Stateless seed (shape [2], int64) of element ``index`` in pipeline ``stream``."""
    seed = tf.stack([tf.constant(base_seed, tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))


def shard_spec(source, policy, input_context):
    """``(num_shards, index, resolved_policy)`` for ``source.records`` (or None)."""
    if input_context is None:
        sources_lib.resolve_shard_policy(policy, None, None)  # validates the name
        return None
    num = input_context.num_input_pipelines
    resolved = sources_lib.resolve_shard_policy(policy, source.num_files, num)
    if resolved == "off":
        return None
    return (num, input_context.input_pipeline_id, resolved)


def dataset_options(source, *, deterministic=None, input_context=None, shard_policy="auto"):
    """tf.data options: determinism, the auto-shard policy, iterator checkpointing.

    With an input context the pipeline has sharded itself, so auto-sharding is turned OFF.
    Otherwise ``shard_policy`` maps to the AutoShardPolicy (``"auto"``: the source's choice, see
    :mod:`tfcolor.data.sources`).
    """
    options = tf.data.Options()
    # The only external state of the pipelines is the skip report's tf.py_function, which has
    # nothing to save: let iterator checkpoints (tf.train.Checkpoint(iterator=...)) through.
    options.experimental_external_state_policy = (
        tf.data.experimental.ExternalStatePolicy.IGNORE)
    if deterministic is not None:
        options.deterministic = bool(deterministic)
    policies = tf.data.experimental.AutoShardPolicy
    if input_context is not None or shard_policy == "off":
        policy = policies.OFF
    elif shard_policy == "file":
        policy = policies.FILE
    elif shard_policy == "data":
        policy = policies.DATA
    else:
        policy = source.auto_shard_policy()
    options.experimental_distribute.auto_shard_policy = policy
    return options
