"""The proxy tasks of a multi-task :class:`tfcolor.config.PretrainConfig`, and its step.

:func:`build_tasks` turns ``config.multitask`` into :class:`tfcolor.tasks.base.Task` objects, each
with its own input section (``multitask.task_data``) and options (``multitask.task_options``);
:func:`make_step` builds the :class:`tfcolor.train.multitask_step.MultiTaskStep` that trains them
on one trunk (``config.model``: architecture and trunk options; ``multitask.input_channels``);
:func:`tfcolor.train.pretrain` runs it (docs/multitask.md).

Each task's input section starts from the task's own defaults and takes the run's batch size
(``data.batch_size``) and, except video, its photo source (``data.data``) unless ``task_data``
says otherwise:

* ``colorization``: the run's ``data`` section (crops, points, held-out data) with its
  ``task_data`` overrides; its loss is the run's ``loss`` section.
* ``jigsaw``: :func:`tfcolor.tasks.jigsaw.default_data_config` (500 x 500 sources, thesis);
  options ``piece_size``, ``color``, ``tap``, ``reduce_channels``, ``init_stddev``.
* ``video``: :func:`tfcolor.tasks.video.default_data_config` on the video corpus
  (``task_data: video: data:`` names it); options: :class:`tfcolor.tasks.video.VideoTask`'s.
* ``denoising``: the run's ``data`` section, as colorization (the baseline's recipe); options
  ``noise_rate``, ``corrupted_weight``.
* ``distillation``: the run's ``data`` section, as colorization; its options are the ``distill``
  section (:meth:`tfcolor.tasks.distillation.DistillationTask.from_config`), its teacher
  statistics are kept in ``model_dir/distill_statistics.json``.

Every task's pipeline is seeded from ``train.seed`` plus a fixed per-task offset
(:data:`SEED_OFFSETS`), so two tasks reading the same photos do not draw the same order and crops
at the same step, and deterministic runs stay deterministic.
"""
import dataclasses
import importlib
import os

from tfcolor import config as config_lib
from tfcolor.distill import teachers
from tfcolor.models import factory
from tfcolor.tasks import colorization
from tfcolor.tasks import denoising
from tfcolor.tasks import distillation
from tfcolor.tasks import jigsaw
from tfcolor.tasks import scaled
from tfcolor.train import multitask_step
from tfcolor.train import trunk_init

__all__ = ["build_tasks", "make_step", "make_trunk", "task_data_config", "SEED_OFFSETS"]

#: Added to ``train.seed`` for each task's pipeline seed.
SEED_OFFSETS = {"colorization": 0, "jigsaw": 1000, "video": 2000, "denoising": 3000,
                "split_brain": 4000, "distillation": 5000}


def task_data_config(config, task):
    """The :class:`tfcolor.config.DataConfig` of ``task`` in the run ``config``."""
    mt = config.multitask
    overrides = dict(mt.task_data.get(task, {}))
    if task in ("colorization", "denoising", "distillation"):
        return dataclasses.replace(config.data, **overrides)
    base = {"batch_size": config.data.batch_size, "validation_images": 0}
    if task != "video":  # the video task reads its own corpus, not the photos
        base["data"] = config.data.data
    base.update(overrides)
    module = importlib.import_module(f"tfcolor.tasks.{task}")
    return module.default_data_config(**base)


def _pipeline_options(config, task, data_config):
    options = {"seed": config.train.seed + SEED_OFFSETS[task]}
    if config.train.deterministic:
        options["deterministic"] = True
    if data_config.data == "embedded":
        options["cache"] = True
    return options


def _options(config, task):
    return dict(config.multitask.task_options.get(task, {}))


def _colorization(config):
    run = dataclasses.replace(
        config, data=task_data_config(config, "colorization"),
        train=dataclasses.replace(config.train,
                                  seed=config.train.seed + SEED_OFFSETS["colorization"]))
    if _options(config, "colorization"):
        raise config_lib.ConfigError("colorization takes its options from the model and loss "
                                     "sections, not from task_options", "task_options")
    return colorization.ColorizationTask.from_config(run)


def _jigsaw(config):
    data_config = task_data_config(config, "jigsaw")
    options = _options(config, "jigsaw")
    model_keys = ("tap", "reduce_channels", "init_stddev")
    model_kwargs = {k: options.pop(k) for k in model_keys if k in options}
    model_kwargs["arch"] = config.model.arch
    return jigsaw.JigsawTask(data_config, model_kwargs=model_kwargs,
                             seed=config.train.seed + SEED_OFFSETS["jigsaw"],
                             pipeline_options=_pipeline_options(config, "jigsaw", data_config),
                             **options)


def _video(config):
    video = importlib.import_module("tfcolor.tasks.video")
    data_config = task_data_config(config, "video")
    options = _options(config, "video")
    model_kwargs = dict(options.pop("model_kwargs", {}))
    model_kwargs.setdefault("arch", config.model.arch)
    return video.VideoTask(data_config, model_kwargs=model_kwargs,
                           seed=config.train.seed + SEED_OFFSETS["video"],
                           pipeline_options=_pipeline_options(config, "video", data_config),
                           **options)


def _denoising(config):
    data_config = task_data_config(config, "denoising")
    options = _options(config, "denoising")
    m = config.model
    model_kwargs = dict(arch=m.arch, hidden=m.hidden, dropout=m.dropout,
                        convention=m.convention)
    return denoising.DenoisingTask(data_config, model_kwargs=model_kwargs,
                                   seed=config.train.seed + SEED_OFFSETS["denoising"],
                                   pipeline_options=_pipeline_options(config, "denoising",
                                                                      data_config),
                                   **options)


def _distillation(config):
    data_config = task_data_config(config, "distillation")
    if _options(config, "distillation"):
        raise config_lib.ConfigError("distillation takes its options from the distill section, "
                                     "not from task_options", "task_options")
    path = os.path.join(config.train.model_dir, teachers.STATISTICS_FILE)
    return distillation.DistillationTask.from_config(
        config, data_config, seed=config.train.seed + SEED_OFFSETS["distillation"],
        pipeline_options=_pipeline_options(config, "distillation", data_config),
        statistics_path=path)


_BUILDERS = {"colorization": _colorization, "jigsaw": _jigsaw, "video": _video,
             "denoising": _denoising, "distillation": _distillation}


def build_tasks(config):
    """The tasks of ``config.multitask.tasks``, in order.

    Raises:
        tfcolor.config.ConfigError: a task that cannot share a trunk, or a bad option (named).
    """
    tasks = []
    for name in config.multitask.tasks:
        builder = _BUILDERS.get(name)
        if builder is None:
            raise config_lib.ConfigError(
                f"{name} cannot be trained on a shared trunk: its network is split in two "
                "halves by channel (a split network of its own); train it alone "
                "(tfcolor.baselines.pretrain)", "multitask.tasks")
        try:
            task = builder(config)
        except TypeError as e:
            raise config_lib.ConfigError(f"task_options of {name}: {e}",
                                         "multitask.task_options") from e
        factor = config.multitask.loss_scales.get(name, 1.0)
        tasks.append(task if factor == 1.0 else scaled.ScaledTask(task, factor))
    return tasks


def make_trunk(config, *, initialize=True):
    """The :class:`tfcolor.models.multitask.SharedTrunk` of ``config``: started from the run
    ``multitask.init`` when ``initialize`` (a run that starts from scratch) and fixed when
    ``multitask.train_trunk`` is false (:mod:`tfcolor.train.trunk_init`)."""
    mt = config.multitask
    shared = factory.build_shared_trunk(config)
    if mt.init and initialize:
        trunk_init.initialize_trunk(shared, mt.init)
    if not mt.train_trunk:
        trunk_init.freeze_trunk(shared)
    return shared


def make_step(config, strategy, tasks=None, *, checkpoint_iterator="auto", initialize=True):
    """The :class:`tfcolor.train.multitask_step.MultiTaskStep` of ``config`` (build it under the
    run's mixed-precision policy; :func:`tfcolor.train.experiment.run` does). ``initialize``:
    copy the trunk of ``multitask.init`` (False when the run resumes from its checkpoint)."""
    mt = config.multitask
    tasks = build_tasks(config) if tasks is None else tasks
    return multitask_step.MultiTaskStep(
        tasks, trunk_fn=lambda: make_trunk(config, initialize=initialize), strategy=strategy,
        train_steps=config.train.train_steps, optimizer_config=config.optimizer,
        gradient_rule=mt.gradient_rule, rule_options=mt.rule_options(),
        task_weights=dict(mt.task_weights) or None, schedule=mt.schedule,
        quantum=mt.quantum, round_robin_state=mt.round_robin_state,
        separate_optimizer=mt.separate_optimizer, mixed_precision=config.train.mixed_precision,
        checkpoint_iterator=checkpoint_iterator)
