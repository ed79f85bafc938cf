"""The evaluation pipeline: deterministic resizing and cropping, no augmentation.

Each image is robustly decoded (bad files skipped and reported, as in pretraining), its short
side resized to ``short_side`` (antialiased bilinear; ``None`` keeps the size), then either
centre-cropped to ``crop_size`` x ``crop_size`` (``crop="center"``, default ``crop_size =
short_side``) or kept whole (``crop="full"``; sizes then differ, so batches hold one image).
Order follows the source (sorted files), nothing is shuffled or repeated.

Output: ``{"rgb": (B, H, W, 3) float32 in [0, 1], "gray": (B, H, W, 1)}`` plus ``"name"`` (B,)
with ``include_names=True``. ``batch_size=None`` yields single unbatched images.
"""
import dataclasses
import typing

import numpy as np
import tensorflow as tf

import tfcolor.data.decode as decode_lib
import tfcolor.data.sources as sources_lib
import tfcolor.data.stages as stages
from tfcolor.color import rgb_to_gray

__all__ = ["EvalDataConfig", "eval_dataset", "load_images", "CROPS"]

CROPS = ("center", "full")


@dataclasses.dataclass
class EvalDataConfig:
    """Options of the evaluation pipeline.

    Attributes:
        short_side: the short side is resized to this (None: original size).
        crop: ``"center"`` (square centre crop) or ``"full"`` (whole image).
        crop_size: side of the centre crop (None: ``short_side``; needs one of the two).
        batch_size: images per batch; ``None`` for unbatched elements. ``crop="full"`` with
            images of different sizes needs 1 or None.
        include_names: add ``"name"``.
        drop_remainder: drop a last partial batch.
        count: use only the first ``count`` decodable images (None: all).
        resize_kernel, antialias, alpha_background, max_pixels, exif_orientation: as in
            pretraining.
        num_parallel_calls, prefetch: tf.data parallelism.
    """
    short_side: typing.Optional[int] = 256
    crop: str = "center"
    crop_size: typing.Optional[int] = None
    batch_size: typing.Optional[int] = 1
    include_names: bool = False
    drop_remainder: bool = False
    count: typing.Optional[int] = None
    resize_kernel: str = "triangle"
    antialias: bool = True
    alpha_background: typing.Optional[float] = 0.5
    max_pixels: typing.Optional[int] = decode_lib.DEFAULT_MAX_PIXELS
    exif_orientation: bool = True
    num_parallel_calls: int = tf.data.AUTOTUNE
    prefetch: int = tf.data.AUTOTUNE

    def validate(self):
        """Raises ValueError naming the first bad field; returns self."""
        def positive(name, value, optional=True):
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer"
                                 f"{' or None' if optional else ''}, got {value!r}")
        positive("short_side", self.short_side)
        positive("crop_size", self.crop_size)
        positive("batch_size", self.batch_size)
        positive("count", self.count)
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.crop == "center" and self.crop_size is None and self.short_side is None:
            raise ValueError("crop='center' needs crop_size or short_side")
        if (self.crop == "center" and self.short_side is not None and self.crop_size is not None
                and self.crop_size > self.short_side):
            raise ValueError(f"crop_size={self.crop_size} exceeds short_side={self.short_side}")
        if self.crop == "full" and self.batch_size not in (None, 1):
            raise ValueError(f"crop='full' keeps each image's own size, so batch_size must be 1 "
                             f"or None, got {self.batch_size}")
        if self.resize_kernel not in stages.RESIZE_KERNELS:
            raise ValueError(f"resize_kernel must be one of {stages.RESIZE_KERNELS}, got "
                             f"{self.resize_kernel!r}")
        return self


def _prepare(config):

    def prepare(element):
        image = element["image"]
        shape = tf.shape(image)
        if config.short_side is not None:
            nh, nw = stages.scaled_size(shape[0], shape[1], config.short_side)
        else:
            nh, nw = shape[0], shape[1]
        if config.crop == "center":
            size = config.crop_size or config.short_side
            if config.short_side is None:  # the crop must fit: scale up small images only
                short = tf.maximum(tf.minimum(nh, nw), size)
                nh, nw = stages.scaled_size(shape[0], shape[1], short)
            oy = (nh - size) // 2
            ox = (nw - size) // 2
            out_size = (size, size)
        else:
            oy = ox = tf.constant(0, tf.int32)
            out_size = (nh, nw)
        rgb = stages.scale_crop(image, (nh, nw), (oy, ox), out_size,
                                kernel=config.resize_kernel, antialias=config.antialias)
        rgb = tf.clip_by_value(rgb, 0.0, 1.0)
        if config.crop == "center":
            rgb = tf.ensure_shape(rgb, [out_size[0], out_size[1], 3])
        out = {"rgb": rgb, "gray": rgb_to_gray(rgb, validate=False)}
        if config.include_names:
            out["name"] = element["name"]
        return out

    return prepare


def eval_dataset(source=None, config=None, *, input_context=None, skip_counter=None):
    """The evaluation ``tf.data.Dataset`` (see the module docstring).

    Args:
        source: anything :func:`tfcolor.data.as_source` accepts; ``None``: the embedded
            validation photos.
        config: an :class:`EvalDataConfig`.
        input_context: optional ``tf.distribute.InputContext``: each worker gets every n-th
            image.
        skip_counter: as in :func:`tfcolor.data.pretrain_dataset`.
    """
    config = (config or EvalDataConfig()).validate()
    src = sources_lib.as_source("embedded:validation" if source is None else source)
    shard = stages.shard_spec(src, "auto", input_context)
    kwargs = dict(shuffle=False, repeat=False, shard=shard, deterministic=True)
    if isinstance(src, sources_lib.TFDSSource):
        kwargs["input_context"] = input_context
    ds = stages.decoded_images(
        src.records(**kwargs), src, skip_counter=skip_counter, max_pixels=config.max_pixels,
        alpha_background=config.alpha_background, exif_orientation=config.exif_orientation,
        num_parallel_calls=config.num_parallel_calls, deterministic=True)
    if config.count is not None:
        ds = ds.take(config.count)
    ds = ds.map(_prepare(config), num_parallel_calls=config.num_parallel_calls,
                deterministic=True)
    if config.batch_size is not None:
        ds = ds.batch(config.batch_size, drop_remainder=config.drop_remainder)
    if config.prefetch:
        ds = ds.prefetch(config.prefetch)
    return ds.with_options(stages.dataset_options(src, deterministic=True,
                                                  input_context=input_context))


def load_images(source=None, count=None, size=128, skip_counter=None):
    """First ``count`` images of ``source`` as a NumPy array (N, size, size, 3) float32:
    short side resized to ``size`` and centre-cropped (e.g. preview images for summaries).
    ``source=None``: the embedded validation photos."""
    config = EvalDataConfig(short_side=size, crop="center", batch_size=None, count=count)
    images = [e["rgb"].numpy() for e in eval_dataset(source, config, skip_counter=skip_counter)]
    if not images:
        raise ValueError(f"no decodable image in {source!r}")
    return np.stack(images)
