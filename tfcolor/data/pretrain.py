"""The pretraining input pipeline (the papers' recipe), entirely in TensorFlow ops.

What the pipeline computes is the user-facing configuration, with the same names as the flags of
``binaries/pretrain``: :class:`tfcolor.config.DataConfig` (``batch_size``, ``crop_size``,
``min_side``, ``max_side``, ``points``, ``edge_buffer``, ``targets_on_device``,
``shuffle_buffer``; ``data`` is the default source) and :class:`tfcolor.config.LossConfig`
(``kind`` and ``window`` of the targets). How it runs (seed, determinism, caching, resuming,
decoding limits) are keyword options, the fields of :class:`PipelineOptions`. A whole
:class:`tfcolor.config.PretrainConfig` also gives the run's defaults of ``seed``,
``deterministic`` and ``cache``::

    ds = pretrain_dataset(run_config, start=position, include_index=True)
    ds = pretrain_dataset(DataConfig(crop_size=128, points=64), LossConfig(kind="lab_hist"),
                          source="/data/train", seed=3, repeat=False)

Per image (Larsson et al. 2016, section 4; released Caffe ``train_vgg16.prototxt``):

1. robust decode (:mod:`tfcolor.data.decode`; bad files are skipped and reported);
2. the short side is scaled to an integer drawn uniformly from [352, 600] (``min_side``,
   ``max_side``) and a random 352 x 352 crop (``crop_size``) is taken; both happen in one
   resampling op that computes only the crop (:func:`tfcolor.data.stages.scale_crop`, bilinear
   with antialiasing by default); small images are scaled up, huge JPEGs are decoded at a
   reduced DCT scale first;
3. random horizontal mirror (``random_mirror``);
4. desaturation to the grey input ``tfcolor.color.rgb_to_gray`` (mean of R, G, B);
5. ``points`` random pixel centres (y, x) per image (paper: 128), integers drawn uniformly
   in [edge_buffer, crop_size - edge_buffer). The papers only say the centres stay away from the
   border. ``edge_buffer=None`` (default) uses the released Caffe value scaled to the crop,
   ``round(96 * crop_size / 352)`` (Caffe: centres uniform in [96, 256) on a 352 crop, i.e. the
   central 160 x 160 pixels); the released TensorFlow code (``selfsup``,
   ``colorize_hypercolumn.py``) uses ``edge_buffer = 32`` with 256 centres;
6. batching (``drop_remainder=True`` for training) and the targets of the loss kind
   (``tfcolor.targets.TargetBuilder(kind, window)``), computed on whole batches in the
   pipeline, or left to the training step with ``targets_on_device``.

Output, as ``docs/DESIGN.md`` fixes: ``{"gray": (B, S, S, 1) float32, "centers": (B, P, 2)
int32, "targets": (B, P, D) float32}``, or ``"rgb": (B, S, S, 3)`` instead of ``"targets"`` with
``targets_on_device``. ``include_names=True`` adds ``"name"`` (B,) strings.

``targets_on_device="auto"`` (default) picks on-device targets when TensorFlow sees a GPU or
TPU: there the target construction is a tiny fraction of a training step, and the host CPU is
better spent decoding; on a CPU-only machine the targets are built in the pipeline, where they
run in parallel with (and hidden behind) the training step.

Randomness is stateless: every random draw of an image derives from ``(seed, worker, position
in the stream)``, so a pipeline with a given seed produces the same crops, mirrors and centres
whatever the parallelism (``deterministic=False`` only lets the *order* vary).

Resuming (``start``, ``include_index``): a checkpoint holds no tf.data buffers, only the stream
position (records consumed). The pipeline is rebuilt from the seed at that position, so the
checkpoint stays small at any batch size or buffer depth and a resumed run sees the same
elements and the same augmentations as an uninterrupted one. For a list of files (the usual
ImageNet folder; unsharded) the record order is itself a function of the position (a stateless
permutation per epoch), so the restart costs nothing; other sources (TFRecord, TFDS, arrays,
``cache``) are fast-forwarded with ``skip`` at the record level, before decoding (cheap per
record, but linear in the position: for 1.28M ImageNet file names through a seeded ``shuffle``
it was tens of seconds per epoch skipped on 2 busy cores; TFRecords also read the records).
(``tf.data.Options.experimental_symbolic_checkpoint`` was measured as the alternative: the robust
decoder's per-record ``ignore_errors`` is not supported by it, TF 2.21.)

Multi-worker training: pass ``input_context`` (from ``strategy.distribute_datasets_from_function``)
to shard explicitly (by file where the source has enough files, see
:func:`tfcolor.data.sources.resolve_shard_policy`) and batch per replica; without it, the global
batch is produced and the auto-shard policy is set for ``experimental_distribute_dataset``.
"""
import dataclasses
import logging
import random
import typing

import tensorflow as tf

import tfcolor.data.decode as decode_lib
import tfcolor.data.sources as sources_lib
import tfcolor.data.stages as stages
from tfcolor import config as config_lib
from tfcolor.color import rgb_to_gray
from tfcolor.config import CAFFE_EDGE_BUFFER_FRACTION, ConfigError
from tfcolor.targets import TargetBuilder

_LOG = logging.getLogger("tfcolor.data")

__all__ = ["PipelineOptions", "pretrain_dataset", "resolve_targets_on_device", "heldout_batches",
           "HELDOUT_SEED", "CAFFE_EDGE_BUFFER_FRACTION"]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass
class PipelineOptions:
    """How :func:`pretrain_dataset` runs: its keyword options, with these names and defaults.

    What it computes per image is the :class:`tfcolor.config.DataConfig` and ``LossConfig``;
    these options are the per-call choices (training vs. one evaluation pass, resuming) and the
    decoding limits, none of which a run records in its ``config.json``.

    Attributes:
        seed: base seed of the shuffle and all augmentations; ``None`` draws one. Default 0, or
            the run's ``train.seed`` for a ``PretrainConfig``.
        deterministic: tf.data's element-order determinism (None: tf.data default, True).
            Default None, or True for a ``PretrainConfig`` with ``train.deterministic``.
        shuffle: shuffle the images (files fully; TFRecord/TFDS through ``shuffle_buffer``).
        cache: ``False``; ``True`` caches the *decoded* images in memory (small sets such as the
            embedded photos: decode once); a path caches them to files there. Default False, or
            True for a ``PretrainConfig`` whose data is the embedded photos (and no ``source``
            is given).
        repeat: repeat forever (training).
        drop_remainder: drop the last partial batch (training: True).
        random_mirror: random horizontal flip.
        shard_policy: ``"auto"``, ``"file"``, ``"data"`` or ``"off"``.
        resize_kernel, antialias: resampling of the scale step (bilinear, antialiased).
        jpeg_dct_downscale: decode huge JPEGs at 1/2, 1/4 or 1/8 size when their short side
            stays >= ``max_side``.
        alpha_background: grey that transparent pixels are composited over (None: drop alpha).
        max_pixels: skip images with more pixels as ``too_large``, judged from the file header
            before decoding (decompression bombs); default
            ``tfcolor.data.decode.DEFAULT_MAX_PIXELS`` = 100,000,000; None: no limit.
        exif_orientation: turn JPEGs upright by their EXIF orientation tag.
        include_names: add the file names (``"name"``) to the batches.
        include_index: add ``"index"`` (B,) int64 to the batches: each element's position in
            the record stream (the position its random draws are keyed by). A training loop
            records ``max(index) + 1`` as its input position (see ``start``).
        start: stream position to resume from (default 0): the pipeline is rebuilt with the
            same seed at that position, so a resumed run sees exactly the elements, crops,
            mirrors and centres an uninterrupted run would (in deterministic order). A file list
            (unsharded, uncached) starts there directly (position-keyed order); other sources
            skip the first ``start`` records *before* decoding; with ``cache`` the decoded cache
            is built once (one pass over the small set) and the position is skipped in it.
        num_parallel_calls, prefetch: tf.data parallelism / prefetch depth (AUTOTUNE = -1).
    """
    seed: typing.Optional[int] = 0
    deterministic: typing.Optional[bool] = None
    shuffle: bool = True
    cache: typing.Union[bool, str] = False
    repeat: bool = True
    drop_remainder: bool = True
    random_mirror: bool = True
    shard_policy: str = "auto"
    resize_kernel: str = "triangle"
    antialias: bool = True
    jpeg_dct_downscale: bool = True
    alpha_background: typing.Optional[float] = 0.5
    max_pixels: typing.Optional[int] = decode_lib.DEFAULT_MAX_PIXELS
    exif_orientation: bool = True
    include_names: bool = False
    include_index: bool = False
    start: int = 0
    num_parallel_calls: int = tf.data.AUTOTUNE
    prefetch: int = tf.data.AUTOTUNE

    def validate(self):
        """Raises :class:`tfcolor.config.ConfigError` naming the first bad option; returns self."""
        if self.shard_policy not in sources_lib.SHARD_POLICIES:
            raise ConfigError(f"shard_policy must be one of {sources_lib.SHARD_POLICIES}, got "
                              f"{self.shard_policy!r}", "shard_policy")
        if self.resize_kernel not in stages.RESIZE_KERNELS:
            raise ConfigError(f"resize_kernel must be one of {stages.RESIZE_KERNELS}, got "
                              f"{self.resize_kernel!r}", "resize_kernel")
        if self.seed is not None and not _is_int(self.seed):
            raise ConfigError(f"seed must be an int or None, got {self.seed!r}", "seed")
        if self.deterministic not in (None, True, False):
            raise ConfigError(f"deterministic must be True, False or None, got "
                              f"{self.deterministic!r}", "deterministic")
        if not (self.cache is True or self.cache is False or isinstance(self.cache, str)):
            raise ConfigError(f"cache must be True, False or a file path prefix, got "
                              f"{self.cache!r}", "cache")
        if self.alpha_background is not None and not (
                isinstance(self.alpha_background, (int, float))
                and not isinstance(self.alpha_background, bool)
                and 0 <= self.alpha_background <= 1):
            raise ConfigError(f"alpha_background must be in [0, 1] or None, got "
                              f"{self.alpha_background!r}", "alpha_background")
        if self.max_pixels is not None and (not _is_int(self.max_pixels) or self.max_pixels <= 0):
            raise ConfigError(f"max_pixels must be a positive integer or None, got "
                              f"{self.max_pixels!r}", "max_pixels")
        if not _is_int(self.start) or self.start < 0:
            raise ConfigError(f"start must be a non-negative integer, got {self.start!r}",
                              "start")
        for name in ("num_parallel_calls", "prefetch"):
            value = getattr(self, name)
            if not _is_int(value) or (value <= 0 and value != tf.data.AUTOTUNE):
                raise ConfigError(f"{name} must be a positive integer or tf.data.AUTOTUNE, got "
                                  f"{value!r}", name)
        return self


_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(PipelineOptions))


def _is_embedded(data):
    return isinstance(data, str) and (data == "embedded" or data.startswith("embedded:"))


def _resolve(config, loss, source, options):
    """``(data_config, loss_config, source, PipelineOptions)`` of :func:`pretrain_dataset`'s
    arguments, validated."""
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(f"pretrain_dataset() got unknown option(s) {unknown}; the options are "
                        f"{', '.join(_OPTION_NAMES)} (see PipelineOptions)")
    defaults = {}
    if isinstance(config, config_lib.PretrainConfig):
        if loss is not None:
            raise TypeError("pretrain_dataset(PretrainConfig, loss): the loss is the "
                            "PretrainConfig's; pass a DataConfig to give another")
        run = config
        config, loss = run.data, run.loss
        defaults = dict(seed=run.train.seed,
                        deterministic=True if run.train.deterministic else None,
                        cache=source is None and _is_embedded(run.data.data))
    elif config is None:
        config = config_lib.DataConfig()
    elif not isinstance(config, config_lib.DataConfig):
        raise TypeError("pretrain_dataset() takes a tfcolor.config.PretrainConfig or DataConfig "
                        f"first, got {type(config).__name__} (the source is source=...)")
    loss = config_lib.LossConfig() if loss is None else loss
    if not isinstance(loss, config_lib.LossConfig):
        raise TypeError(f"loss must be a tfcolor.config.LossConfig, got {type(loss).__name__}")
    config.validate(sources=False)
    loss.validate()
    opts = PipelineOptions(**dict(defaults, **options)).validate()
    if source is None:
        source = config.data
    if isinstance(source, str) and source == "embedded":
        source = None
    return config, loss, source, opts


#: Bad records in a row after which a source of unknown length (TFRecord, TFDS) is declared
#: to hold no decodable image.
_UNKNOWN_LENGTH_SKIP_LIMIT = 100_000


def resolve_targets_on_device(value="auto"):
    """``True``/``False`` as given; ``"auto"``: True when a GPU or TPU is visible."""
    if value == "auto":
        return bool(tf.config.list_logical_devices("GPU")
                    or tf.config.list_logical_devices("TPU"))
    if value not in (True, False):
        raise ConfigError(f"targets_on_device must be True, False or 'auto', got {value!r}",
                          "targets_on_device")
    return bool(value)


def _augment(data, opts, seed, stream):
    crop = data.crop_size
    lo, hi = data.side_range
    buffer = data.resolved_edge_buffer

    def augment(element):
        image = element["image"]
        seeds = tf.random.experimental.stateless_split(
            stages.element_seed(seed, element["index"], stream), 5)
        shape = tf.shape(image)
        short = tf.random.stateless_uniform([], seeds[0], lo, hi + 1, dtype=tf.int32)
        nh, nw = stages.scaled_size(shape[0], shape[1], short)
        oy = tf.random.stateless_uniform([], seeds[1], 0, nh - crop + 1, dtype=tf.int32)
        ox = tf.random.stateless_uniform([], seeds[2], 0, nw - crop + 1, dtype=tf.int32)
        rgb = stages.scale_crop(image, (nh, nw), (oy, ox), (crop, crop),
                                kernel=opts.resize_kernel, antialias=opts.antialias)
        rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        if opts.random_mirror:
            flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
            rgb = tf.cond(flip, lambda: tf.reverse(rgb, axis=[1]), lambda: rgb)
        rgb = tf.ensure_shape(rgb, [crop, crop, 3])
        centers = tf.random.stateless_uniform([data.points, 2], seeds[4], buffer,
                                              crop - buffer, dtype=tf.int32)
        out = {"rgb": rgb, "gray": rgb_to_gray(rgb, validate=False), "centers": centers}
        if opts.include_names:
            out["name"] = element["name"]
        if opts.include_index:
            out["index"] = element["index"]
        return out

    return augment


def _position_keyed_files(files, seed, shuffle, repeat, start):
    """The record stream of a file list as a function of the stream position ``i``: epoch
    ``e = i // N`` visits file ``perm_e(i mod N)``, ``perm_e`` a stateless pseudorandom
    permutation (``tf.random.experimental.index_shuffle``) keyed by ``(seed, e)``. Every epoch
    is a full reshuffle, as with a ``shuffle`` of the whole list, but starting at any position
    costs nothing: no earlier record is generated, whatever the step count.
    """
    n = len(files)
    table = tf.constant(files)
    key = tf.constant([seed, 0x5EED_F11E], tf.int64)

    def record(i):
        epoch, j = i // n, i % n
        if shuffle:
            j = tf.random.experimental.index_shuffle(
                j, tf.random.experimental.stateless_fold_in(key, epoch), n - 1)
        path = tf.gather(table, j)
        return {"path": path, "name": path, "index": i}

    end = (1 << 62) if repeat else n
    return tf.data.Dataset.range(min(start, end), end).map(record)


def pretrain_dataset(config=None, loss=None, *, source=None, target_builder=None,
                     input_context=None, skip_counter=None, purpose="pretraining", **options):
    """The pretraining ``tf.data.Dataset`` (see the module docstring).

    Args:
        config: a :class:`tfcolor.config.PretrainConfig` (its ``data`` and ``loss``, and the
            defaults of ``seed``, ``deterministic`` and ``cache`` from its run), or a
            :class:`tfcolor.config.DataConfig` (default: the paper's recipe).
        loss: the :class:`tfcolor.config.LossConfig` (targets' ``kind`` and ``window``) with a
            ``DataConfig``; default ``LossConfig()``.
        source: the images, anything :func:`tfcolor.data.as_source` accepts; ``None``:
            ``config.data`` (``"embedded"``: the shipped photos).
        target_builder: ``TargetBuilder`` (or any callable ``(rgb, centers) -> (B, P, D)`` of TF
            ops); ``None`` builds ``TargetBuilder(loss.kind, window=loss.window)``.
        input_context: ``tf.distribute.InputContext`` for explicit per-worker sharding and
            per-replica batches (``input_context.get_per_replica_batch_size(batch_size)``).
        skip_counter: a :class:`~tfcolor.data.decode.SkipCounter`; ``None``: the process default
            (:func:`~tfcolor.data.decode.default_skip_counter`); ``False``: don't report.
        purpose: what the data is read for, in the log line that describes the pipeline
            (``"tfcolor.data: <purpose> on <source>; ..."``).
        **options: the fields of :class:`PipelineOptions` (``seed``, ``start``,
            ``include_index``, ``repeat``, ``cache``, ...).

    Returns:
        A dataset of dicts ``{"gray", "centers", "targets"}`` (or ``"rgb"`` instead of
        ``"targets"`` with on-device targets).

    Raises:
        tfcolor.config.ConfigError: a bad value, naming its field or option.
        TypeError: an unknown option, or arguments of the wrong types.
    """
    data, loss, source, opts = _resolve(config, loss, source, options)
    src = sources_lib.as_source(source)
    on_device = resolve_targets_on_device(data.targets_on_device)
    if target_builder is None and not on_device:
        target_builder = TargetBuilder(loss.kind, window=loss.window)
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2 ** 31)
    shard = stages.shard_spec(src, opts.shard_policy, input_context)
    if shard:
        sharding = f"{shard[2]}, pipeline {shard[1] + 1} of {shard[0]}"
    else:
        options_ = stages.dataset_options(src, shard_policy=opts.shard_policy)
        sharding = f"auto-shard policy {options_.experimental_distribute.auto_shard_policy.name}"
    _LOG.info("tfcolor.data: %s on %r; sharding: %s; targets %s; seed %d", purpose, src,
              sharding, "on device (rgb yielded)" if on_device else "in the pipeline", seed)
    stream = input_context.input_pipeline_id if input_context is not None else 0
    batch_size = (input_context.get_per_replica_batch_size(data.batch_size)
                  if input_context is not None else data.batch_size)
    parallel = opts.num_parallel_calls
    deterministic = opts.deterministic
    min_short_side = data.side_range[1] if opts.jpeg_dct_downscale else None

    def records(shuffle, repeat):
        kwargs = dict(shuffle=shuffle, seed=seed, repeat=repeat, shard=shard,
                      shuffle_buffer=data.shuffle_buffer, deterministic=deterministic)
        if isinstance(src, sources_lib.TFDSSource):
            kwargs["input_context"] = input_context
        return src.records(**kwargs)

    # No decodable image in a whole pass means none ever will be: fail instead of repeating an
    # empty epoch forever. A pass over n records holds them all once; with repetition, one good
    # record can be first in one epoch and last in the next, so the limit is 2n bad records in a
    # row (n for the single pass that fills a cache).
    try:
        num_records = max(len(src), 1)
    except TypeError:  # TFRecord / TFDS: no known length
        num_records = None

    def decode(ds, passes=2):
        limit = (_UNKNOWN_LENGTH_SKIP_LIMIT if num_records is None
                 else passes * num_records)
        return stages.decoded_images(
            ds, src, skip_counter=skip_counter, min_short_side=min_short_side,
            max_pixels=opts.max_pixels, alpha_background=opts.alpha_background,
            exif_orientation=opts.exif_orientation, num_parallel_calls=parallel,
            deterministic=deterministic, max_consecutive_skips=limit)

    start = opts.start

    def with_index(ds):
        # Resuming: the same seeded stream, fast-forwarded by ``start`` elements; the indices
        # (which key every random draw) continue from ``start``.
        if start:
            ds = ds.skip(start)
        return ds.enumerate(start=start).map(lambda i, e: dict(e, index=i))

    if start:
        _LOG.info("tfcolor.data: resuming the input stream at record %d", start)
    if opts.cache is False and shard is None and isinstance(src, sources_lib.FileSource):
        # Position-keyed: resuming at ``start`` skips nothing at all.
        ds = decode(_position_keyed_files(src.files, seed, opts.shuffle, opts.repeat, start))
    elif opts.cache is not False:
        ds = decode(records(shuffle=False, repeat=False), passes=1)
        ds = ds.cache("" if opts.cache is True else opts.cache)
        if opts.shuffle:
            ds = ds.shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if opts.repeat:
            ds = ds.repeat()
        ds = with_index(ds)
    else:
        ds = decode(with_index(records(shuffle=opts.shuffle, repeat=opts.repeat)))
    ds = ds.map(_augment(data, opts, seed, stream), num_parallel_calls=parallel,
                deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=opts.drop_remainder,
                  num_parallel_calls=parallel, deterministic=deterministic)
    if not on_device:
        def add_targets(batch):
            out = {"gray": batch["gray"], "centers": batch["centers"],
                   "targets": tf.cast(target_builder(batch["rgb"], batch["centers"]), tf.float32)}
            for key in ("name", "index"):
                if key in batch:
                    out[key] = batch[key]
            return out
        ds = ds.map(add_targets, num_parallel_calls=parallel, deterministic=deterministic)
    if opts.prefetch:
        ds = ds.prefetch(opts.prefetch)
    return ds.with_options(stages.dataset_options(
        src, deterministic=deterministic, input_context=input_context,
        shard_policy=opts.shard_policy))


#: Seed of the held-out crops and centres (the same for every run, whatever its training seed).
HELDOUT_SEED = 20160525


def heldout_batches(source, data_config, loss_config, target_builder=None, *, images=64):
    """The fixed held-out set as a list of NumPy batch dicts (``gray``, ``centers``, ``targets``):
    what :class:`tfcolor.train.heldout.HeldOutLoss` evaluates a colorizer on during pretraining.

    Args:
        source: any data source of :func:`pretrain_dataset` (a folder, a glob,
            ``"embedded:validation"``, ...).
        data_config: the training run's :class:`tfcolor.config.DataConfig`; its crop, scale
            range, centres and batch size are kept, the pipeline's randomness is replaced (no
            shuffle, no mirror, seed :data:`HELDOUT_SEED`, one pass).
        loss_config: the run's :class:`tfcolor.config.LossConfig` (target kind and window).
        target_builder: the training run's :class:`tfcolor.targets.TargetBuilder` (None: the
            loss config's).
        images: how many images (fewer if the source has fewer decodable images).

    Raises:
        ValueError: ``images`` is not a positive integer, or no image of ``source`` decodes.
    """
    if isinstance(images, bool) or not isinstance(images, int) or images <= 0:
        raise ValueError(f"heldout_images must be a positive integer, got {images!r}")
    config = dataclasses.replace(data_config, targets_on_device=False,
                                 batch_size=min(data_config.batch_size, images))
    dataset = pretrain_dataset(
        config, loss_config, source=source, target_builder=target_builder, seed=HELDOUT_SEED,
        deterministic=True, shuffle=False, random_mirror=False, repeat=False,
        drop_remainder=False, cache=False, purpose="held-out loss computed")
    batches, count = [], 0
    for batch in dataset:
        take = min(images - count, int(batch["gray"].shape[0]))
        batches.append({k: batch[k].numpy()[:take] for k in ("gray", "centers", "targets")})
        count += take
        if count >= images:
            break
    if not batches:
        raise ValueError(f"heldout_data={source!r}: no decodable image")
    return batches
