"""The pretraining input pipeline (the papers' recipe), entirely in TensorFlow ops.

Per image (Larsson et al. 2016, section 4; released Caffe ``train_vgg16.prototxt``):

1. robust decode (:mod:`tfcolor.data.decode`; bad files are skipped and reported);
2. the short side is scaled to an integer drawn uniformly from [352, 600]
   (``min_short_side``, ``max_short_side``) and a random 352 x 352 crop (``crop_size``) is
   taken; both happen in one resampling op that computes only the crop
   (:func:`tfcolor.data.stages.scale_crop`, bilinear with antialiasing by default); small
   images are scaled up, huge JPEGs are decoded at a reduced DCT scale first;
3. random horizontal mirror (``random_mirror``);
4. desaturation to the grey input ``tfcolor.color.rgb_to_gray`` (mean of R, G, B);
5. ``num_centers`` random pixel centres (y, x) per image (paper: 128), integers drawn uniformly
   in [edge_buffer, crop_size - edge_buffer). The papers only say the centres stay away from the
   border. ``edge_buffer=None`` (default) uses the released Caffe value scaled to the crop,
   ``round(96 * crop_size / 352)`` (Caffe: centres uniform in [96, 256) on a 352 crop, i.e. the
   central 160 x 160 pixels); the released TensorFlow code (``selfsup``,
   ``colorize_hypercolumn.py``) uses ``edge_buffer = 32`` with 256 centres;
6. batching (``drop_remainder=True`` for training) and the targets of the loss kind
   (``tfcolor.targets.TargetBuilder``), computed on whole batches in the pipeline, or left to the
   training step with ``targets_on_device``.

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

_LOG = logging.getLogger("tfcolor.data")

__all__ = ["PretrainDataConfig", "pretrain_dataset", "resolve_targets_on_device",
           "CAFFE_EDGE_BUFFER_FRACTION"]

#: Released Caffe: centres in [96, 256) on a 352 crop.
CAFFE_EDGE_BUFFER_FRACTION = 96.0 / 352.0
_PAPER_MAX_SHORT_FRACTION = 600.0 / 352.0


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass
class PretrainDataConfig:
    """Every number of the pretraining pipeline (defaults: the paper).

    Attributes:
        batch_size: global batch size (paper: 8); per replica when ``input_context`` is given
            (``input_context.get_per_replica_batch_size``).
        crop_size: S, the square crop (352).
        min_short_side, max_short_side: the short side is scaled to an integer drawn uniformly
            in this inclusive range (352, 600). ``None``: ``crop_size`` and
            ``round(crop_size * 600 / 352)``.
        random_mirror: random horizontal flip.
        num_centers: P, sampled centres per image (128).
        edge_buffer: centres lie in [edge_buffer, S - edge_buffer). ``None``:
            ``round(S * 96 / 352)`` (released Caffe); the released TF code used 32.
        target_kind, target_window, target_bins: the ``TargetBuilder`` (``"hue_chroma"``, R = 7,
            K = 32) when none is passed.
        targets_on_device: ``True``, ``False`` or ``"auto"`` (GPU/TPU present -> True).
        seed: base seed of the shuffle and all augmentations; ``None`` draws one.
        deterministic: tf.data's element-order determinism (None: tf.data default, True).
        shuffle: shuffle the images (files fully; TFRecord/TFDS through ``shuffle_buffer``).
        shuffle_buffer: records in the shuffle buffer of TFRecord/TFDS sources and of a cache.
        cache: ``False``; ``True`` caches the *decoded* images in memory (small sets such as the
            embedded photos: decode once); a path caches them to files there.
        repeat: repeat forever (training).
        drop_remainder: drop the last partial batch (training: True).
        shard_policy: ``"auto"``, ``"file"``, ``"data"`` or ``"off"``.
        resize_kernel, antialias: resampling of the scale step (bilinear, antialiased).
        jpeg_dct_downscale: decode huge JPEGs at 1/2, 1/4 or 1/8 size when their short side
            stays >= ``max_short_side``.
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
    batch_size: int = 8
    crop_size: int = 352
    min_short_side: typing.Optional[int] = None
    max_short_side: typing.Optional[int] = None
    random_mirror: bool = True
    num_centers: int = 128
    edge_buffer: typing.Optional[int] = None
    target_kind: str = "hue_chroma"
    target_window: int = 7
    target_bins: int = 32
    targets_on_device: typing.Union[bool, str] = "auto"
    seed: typing.Optional[int] = 0
    deterministic: typing.Optional[bool] = None
    shuffle: bool = True
    shuffle_buffer: int = 1024
    cache: typing.Union[bool, str] = False
    repeat: bool = True
    drop_remainder: bool = True
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

    @property
    def short_side_range(self):
        """(min, max) short side after defaults."""
        lo = self.crop_size if self.min_short_side is None else self.min_short_side
        hi = (int(round(self.crop_size * _PAPER_MAX_SHORT_FRACTION))
              if self.max_short_side is None else self.max_short_side)
        return lo, hi

    @property
    def resolved_edge_buffer(self):
        """The edge buffer after defaults."""
        if self.edge_buffer is None:
            return int(round(self.crop_size * CAFFE_EDGE_BUFFER_FRACTION))
        return self.edge_buffer

    def validate(self):
        """Raises ValueError naming the first bad field; returns self."""
        for name in ("batch_size", "crop_size", "num_centers", "target_window", "target_bins",
                     "shuffle_buffer"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        lo, hi = self.short_side_range
        for name, value in (("min_short_side", lo), ("max_short_side", hi)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if lo < self.crop_size:
            raise ValueError(f"min_short_side={lo} is smaller than crop_size={self.crop_size}: "
                             f"the crop would not fit")
        if hi < lo:
            raise ValueError(f"max_short_side={hi} < min_short_side={lo}")
        buffer = self.resolved_edge_buffer
        if not _is_int(buffer) or buffer < 0:
            raise ValueError(f"edge_buffer must be a non-negative integer or None, got {buffer!r}")
        if 2 * buffer >= self.crop_size:
            raise ValueError(f"edge_buffer={buffer} leaves no room for centres in a "
                             f"crop_size={self.crop_size} crop (need 2 * edge_buffer < crop_size)")
        if self.targets_on_device not in (True, False, "auto"):
            raise ValueError(f"targets_on_device must be True, False or 'auto', got "
                             f"{self.targets_on_device!r}")
        if self.shard_policy not in sources_lib.SHARD_POLICIES:
            raise ValueError(f"shard_policy must be one of {sources_lib.SHARD_POLICIES}, got "
                             f"{self.shard_policy!r}")
        if self.resize_kernel not in stages.RESIZE_KERNELS:
            raise ValueError(f"resize_kernel must be one of {stages.RESIZE_KERNELS}, got "
                             f"{self.resize_kernel!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        if not (self.cache is True or self.cache is False or isinstance(self.cache, str)):
            raise ValueError(f"cache must be True, False or a file path prefix, got {self.cache!r}")
        if self.alpha_background is not None and not 0 <= self.alpha_background <= 1:
            raise ValueError(f"alpha_background must be in [0, 1] or None, got "
                             f"{self.alpha_background!r}")
        if self.max_pixels is not None and (not _is_int(self.max_pixels) or self.max_pixels <= 0):
            raise ValueError(f"max_pixels must be a positive integer or None, got "
                             f"{self.max_pixels!r}")
        if not _is_int(self.start) or self.start < 0:
            raise ValueError(f"start must be a non-negative integer, got {self.start!r}")
        for name in ("num_parallel_calls", "prefetch"):
            value = getattr(self, name)
            if not _is_int(value) or (value <= 0 and value != tf.data.AUTOTUNE):
                raise ValueError(f"{name} must be a positive integer or tf.data.AUTOTUNE, got "
                                 f"{value!r}")
        return self

    @classmethod
    def from_config(cls, data_config, loss_config=None, **overrides):
        """From ``tfcolor.config.DataConfig`` (and ``LossConfig``): maps the shared fields."""
        fields = dict(
            batch_size=data_config.batch_size, crop_size=data_config.crop_size,
            min_short_side=data_config.min_side, max_short_side=data_config.max_side,
            num_centers=data_config.points, edge_buffer=data_config.edge_buffer,
            targets_on_device=data_config.targets_on_device,
            shuffle_buffer=data_config.shuffle_buffer)
        if loss_config is not None:
            for ours, theirs in (("target_kind", "kind"), ("target_window", "window"),
                                 ("target_bins", "num_bins")):
                if hasattr(loss_config, theirs):
                    fields[ours] = getattr(loss_config, theirs)
        fields.update(overrides)
        return cls(**fields)


#: Bad records in a row after which a source of unknown length (TFRecord, TFDS) is declared
#: to hold no decodable image.
_UNKNOWN_LENGTH_SKIP_LIMIT = 100_000


def resolve_targets_on_device(value="auto"):
    """``True``/``False`` as given; ``"auto"``: True when a GPU or TPU is visible."""
    if value == "auto":
        return bool(tf.config.list_logical_devices("GPU")
                    or tf.config.list_logical_devices("TPU"))
    if value not in (True, False):
        raise ValueError(f"targets_on_device must be True, False or 'auto', got {value!r}")
    return bool(value)


def _augment(config, seed, stream):
    crop = config.crop_size
    lo, hi = config.short_side_range
    buffer = config.resolved_edge_buffer
    from tfcolor.color import rgb_to_gray  # pylint: disable=import-outside-toplevel

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
                                kernel=config.resize_kernel, antialias=config.antialias)
        rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        if config.random_mirror:
            flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
            rgb = tf.cond(flip, lambda: tf.reverse(rgb, axis=[1]), lambda: rgb)
        rgb = tf.ensure_shape(rgb, [crop, crop, 3])
        centers = tf.random.stateless_uniform([config.num_centers, 2], seeds[4], buffer,
                                              crop - buffer, dtype=tf.int32)
        out = {"rgb": rgb, "gray": rgb_to_gray(rgb, validate=False), "centers": centers}
        if config.include_names:
            out["name"] = element["name"]
        if config.include_index:
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


def pretrain_dataset(source=None, config=None, *, target_builder=None, input_context=None,
                     skip_counter=None):
    """The pretraining ``tf.data.Dataset`` (see the module docstring).

    Args:
        source: anything :func:`tfcolor.data.as_source` accepts; ``None``: the embedded photos.
        config: a :class:`PretrainDataConfig` (default: the paper's recipe).
        target_builder: ``TargetBuilder`` (or any callable ``(rgb, centers) -> (B, P, D)`` of TF
            ops); ``None`` builds ``TargetBuilder(config.target_kind, config.target_window,
            num_bins=config.target_bins)``.
        input_context: ``tf.distribute.InputContext`` for explicit per-worker sharding and
            per-replica batches.
        skip_counter: a :class:`~tfcolor.data.decode.SkipCounter`; ``None``: the process default
            (:func:`~tfcolor.data.decode.default_skip_counter`); ``False``: don't report.

    Returns:
        A dataset of dicts ``{"gray", "centers", "targets"}`` (or ``"rgb"`` instead of
        ``"targets"`` with on-device targets).
    """
    config = (config or PretrainDataConfig()).validate()
    src = sources_lib.as_source(source)
    on_device = resolve_targets_on_device(config.targets_on_device)
    if target_builder is None and not on_device:
        from tfcolor.targets import TargetBuilder  # pylint: disable=import-outside-toplevel
        target_builder = TargetBuilder(config.target_kind, window=config.target_window,
                                       num_bins=config.target_bins)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2 ** 31)
    shard = stages.shard_spec(src, config.shard_policy, input_context)
    if shard:
        sharding = f"{shard[2]}, pipeline {shard[1] + 1} of {shard[0]}"
    else:
        options = stages.dataset_options(src, shard_policy=config.shard_policy)
        sharding = f"auto-shard policy {options.experimental_distribute.auto_shard_policy.name}"
    _LOG.info("tfcolor.data: pretraining on %r; sharding: %s; targets %s; seed %d", src,
              sharding, "on device (rgb yielded)" if on_device else "in the pipeline", seed)
    stream = input_context.input_pipeline_id if input_context is not None else 0
    batch_size = (input_context.get_per_replica_batch_size(config.batch_size)
                  if input_context is not None else config.batch_size)
    parallel = config.num_parallel_calls
    deterministic = config.deterministic
    min_side = config.short_side_range[1] if config.jpeg_dct_downscale else None

    def records(shuffle, repeat):
        kwargs = dict(shuffle=shuffle, seed=seed, repeat=repeat, shard=shard,
                      shuffle_buffer=config.shuffle_buffer, deterministic=deterministic)
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
            ds, src, skip_counter=skip_counter, min_short_side=min_side,
            max_pixels=config.max_pixels, alpha_background=config.alpha_background,
            exif_orientation=config.exif_orientation, num_parallel_calls=parallel,
            deterministic=deterministic, max_consecutive_skips=limit)

    start = config.start

    def with_index(ds):
        # Resuming: the same seeded stream, fast-forwarded by ``start`` elements; the indices
        # (which key every random draw) continue from ``start``.
        if start:
            ds = ds.skip(start)
        return ds.enumerate(start=start).map(lambda i, e: dict(e, index=i))

    if start:
        _LOG.info("tfcolor.data: resuming the input stream at record %d", start)
    if config.cache is False and shard is None and isinstance(src, sources_lib.FileSource):
        # Position-keyed: resuming at ``start`` skips nothing at all.
        ds = decode(_position_keyed_files(src.files, seed, config.shuffle, config.repeat, start))
    elif config.cache is not False:
        ds = decode(records(shuffle=False, repeat=False), passes=1)
        ds = ds.cache("" if config.cache is True else config.cache)
        if config.shuffle:
            ds = ds.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if config.repeat:
            ds = ds.repeat()
        ds = with_index(ds)
    else:
        ds = decode(with_index(records(shuffle=config.shuffle, repeat=config.repeat)))
    ds = ds.map(_augment(config, seed, stream), num_parallel_calls=parallel,
                deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=config.drop_remainder,
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
    if config.prefetch:
        ds = ds.prefetch(config.prefetch)
    return ds.with_options(stages.dataset_options(
        src, deterministic=deterministic, input_context=input_context,
        shard_policy=config.shard_policy))
