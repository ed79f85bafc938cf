"""The baselines' input: the colorization pretraining pipeline, with the colour crops.

Both baselines train on exactly the images, crops, mirrors and pixel centres of colorization
pretraining (:func:`tfcolor.data.pretrain_dataset` with the same
:class:`tfcolor.config.DataConfig`); they build their own targets from the crops, so the pipeline
yields the colour crop ``"rgb"`` (``targets_on_device=True``) and no colorization targets, and
every batch carries ``"index"`` (each element's position in the record stream) so that a trainer
resumes the stream exactly.
"""
import dataclasses

from tfcolor import config as config_lib
from tfcolor import data as data_lib
from tfcolor.data import pretrain

__all__ = ["TASK_OPTIONS", "check_data_config", "check_pipeline_options", "pretraining_batches"]

#: Pipeline options the baselines' tasks set themselves.
TASK_OPTIONS = ("start", "include_index")


def check_data_config(data_config):
    """``data_config`` (default ``DataConfig()``) validated (the source is opened later);
    raises :class:`tfcolor.config.ConfigError` naming a bad field."""
    data_config = config_lib.DataConfig() if data_config is None else data_config
    if not isinstance(data_config, config_lib.DataConfig):
        raise TypeError("data_config must be a tfcolor.config.DataConfig, got "
                        f"{type(data_config).__name__}")
    return data_config.validate(sources=False)


def check_pipeline_options(options, seed):
    """The pipeline options of a task (:class:`tfcolor.data.pretrain.PipelineOptions` fields;
    ``seed`` by default), without the ones the task sets (:data:`TASK_OPTIONS`)."""
    options = dict(options or {})
    taken = sorted(set(options) & set(TASK_OPTIONS))
    if taken:
        raise config_lib.ConfigError(f"{taken[0]} is set by the task (build_inputs(start)), not "
                                     "by pipeline_options", taken[0])
    names = [f.name for f in dataclasses.fields(pretrain.PipelineOptions)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise config_lib.ConfigError(
                f"pipeline_options has unknown option(s) {unknown}; the options are "
                f"{', '.join(n for n in names if n not in TASK_OPTIONS)}", "pipeline_options")
    options.setdefault("seed", seed)
    pretrain.PipelineOptions(**options).validate()  # a bad value: ConfigError naming it
    return options


def pretraining_batches(data_config, source, options, start=0):
    """Global batches ``{"gray", "rgb", "centers", "index"}`` from stream position ``start``."""
    data_config = dataclasses.replace(data_config, targets_on_device=True)
    return data_lib.pretrain_dataset(data_config, source=source, start=int(start),
                                     include_index=True, **options)
