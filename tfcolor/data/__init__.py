"""Input pipelines: sources, the embedded photos, robust decoding, pretraining and evaluation.

>>> import tfcolor.data as data
>>> from tfcolor.config import DataConfig, LossConfig
>>> ds = data.pretrain_dataset()                       # embedded photos, paper recipe
>>> ds = data.pretrain_dataset(DataConfig(data="/data/imagenet/train", batch_size=32),
...                            LossConfig(kind="lab_hist"), seed=3)   # options: PipelineOptions
>>> ev = data.eval_dataset("tfds:voc/2012:validation", data.EvalDataConfig(short_side=256))
>>> counter = data.default_skip_counter(); print(counter.summary())   # skipped bad files

Modules: :mod:`~tfcolor.data.sources` (folders, globs, TFRecord, TFDS, NumPy),
:mod:`~tfcolor.data.embedded` (the shipped photos), :mod:`~tfcolor.data.decode` (robust decoding
and :class:`SkipCounter`), :mod:`~tfcolor.data.stages` (shared pipeline stages),
:mod:`~tfcolor.data.pretrain` and :mod:`~tfcolor.data.evaluate` (the two pipelines).
"""
from tfcolor.data.decode import (REASONS, SkipCounter, decode_image, default_skip_counter,
                                 safe_decode_dataset, to_rgb)
from tfcolor.data.embedded import attribution_text, embedded_manifest, embedded_photos
from tfcolor.data.evaluate import EvalDataConfig, eval_dataset, load_images
from tfcolor.data.pretrain import (PipelineOptions, heldout_batches, pretrain_dataset,
                                   resolve_targets_on_device)
from tfcolor.data.sources import (ArraySource, FileSource, ImageSource, SourceError,
                                  TFDSSource, TFRecordSource, as_source, list_image_files,
                                  resolve_shard_policy)

__all__ = [
    "REASONS", "SkipCounter", "decode_image", "default_skip_counter", "safe_decode_dataset",
    "to_rgb", "attribution_text", "embedded_manifest", "embedded_photos", "EvalDataConfig",
    "eval_dataset", "load_images", "PipelineOptions", "heldout_batches", "pretrain_dataset",
    "resolve_targets_on_device", "ArraySource", "FileSource", "ImageSource", "SourceError",
    "TFDSSource", "TFRecordSource", "as_source", "list_image_files", "resolve_shard_policy",
]
