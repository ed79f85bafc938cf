"""A whole pretraining run from a :class:`tfcolor.config.PretrainConfig`.

:func:`pretrain` validates the config, seeds (and, with ``deterministic``, enables TF op
determinism with a deterministic data order), picks the strategy, builds the data pipeline
(:func:`tfcolor.data.pretrain_dataset`), the colorizer (:class:`tfcolor.models.Colorizer`) and the
loss (:mod:`tfcolor.losses`) as a :class:`tfcolor.tasks.colorization.ColorizationTask`, and runs
it through the one entry point :func:`tfcolor.train.experiment.run`. It resumes from
the latest checkpoint of ``model_dir`` automatically. At the end of a completed run it writes the
final checkpoint, ``model_dir/colorizations.png`` (grey | colorized | original for the preview
images, decoded with the library's defaults: interpolated median chroma, circular hue
expectation, the released chromatic fading ``min(|z|/eta, 1)`` (the printed ``max`` never fades),
input lightness; :func:`tfcolor.predictors.colorize_batch`) and a SavedModel in
``model_dir/export`` (:func:`tfcolor.export.export_saved_model`).

With ``config.data.heldout_data`` set, the held-out loss (fixed crops and centres of photos
never trained on) is computed every ``config.train.eval_every`` steps and at the end, logged,
written to TensorBoard (``heldout/loss``) and appended to ``model_dir/heldout.jsonl``
(:mod:`tfcolor.train.heldout`). With ``config.train.keep_best`` the model of the lowest
held-out loss is kept in ``model_dir/best`` and is the run's model: at the end of the run it is
restored before the preview and the export (which say which step they show), and
:func:`tfcolor.run_dir.load_model` (``binaries/export``, ``colorize``, ``evaluate``,
``finetune --init``) loads it too. The last checkpoint stays the one training resumes from.

With ``config.model.prior_bias`` a run that starts from scratch first computes the marginal
prior of its training data (:func:`tfcolor.prior.marginal_prior` over the first
:data:`PRIOR_BIAS_IMAGES` images of the run's seeded order: the prior ``binaries/evaluate``
compares with) and starts the head's output bias at its logarithm
(:meth:`tfcolor.layers.HistogramHead.start_at_prior`).

``model_dir/config.json`` holds the config (``PretrainConfig.to_dict()``), read back by
:func:`tfcolor.run_dir.load_model`. Restarting in a ``model_dir`` whose ``config.json`` has a
different model or loss section is refused (the checkpoint would not fit); other sections (e.g.
more ``train_steps``) may change between restarts.

Several tasks
-------------
With ``config.multitask`` naming other or more tasks than colorization alone (C+J, C+J+V, ...),
the run trains them on one shared trunk (:func:`tfcolor.train.multitask.make_step`:
:class:`tfcolor.train.multitask_step.MultiTaskStep`, gradient rule and schedule from the config).
The held-out loss, when colorization is one of the tasks, is its colorizer's; the previews are
written as ``colorizations.png`` and ``<task>_preview.png``; the export is the colorizer's
SavedModel (tasks without colorization export nothing: their trunk is fine-tuned from the
checkpoint). ``keep_best`` is refused (several objectives). Restarting with other tasks, rule,
schedule or trunk input is refused like another model section.

One run per ``model_dir``: :func:`pretrain` takes ``model_dir/.lock`` (pid, host, start time;
:mod:`tfcolor.train.lock`) before writing anything and releases it at the end; a second run on
the same directory raises :class:`tfcolor.train.lock.ModelDirLockedError`, the lock of a killed
run on this host is taken over with a warning.

Checkpoints hold the model, optimizer, step, RNG state and the input position (records consumed);
the input pipeline is rebuilt at that position on resume
(:func:`tfcolor.tasks.colorization.build_dataset` with ``start``),
so checkpoints stay about the size of the variables and optimizer slots (docs/training.md,
"Checkpoints").
"""
import dataclasses
import functools
import os

import tensorflow as tf
from absl import logging

from tfcolor import config as config_lib
from tfcolor import export as export_lib
from tfcolor import prior as prior_lib
from tfcolor import run_dir
from tfcolor.data import decode as decode_lib
from tfcolor.models import factory
from tfcolor.tasks import colorization
from tfcolor.train import experiment
from tfcolor.train import heldout as heldout_lib
from tfcolor.train import lock as lock_lib
from tfcolor.train import multitask
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import summaries
from tfcolor.train import trainer as trainer_lib

#: ``model.prior_bias``: the prior averages the targets of this many training images at most
#: (``binaries/evaluate --prior_max_images`` has the same default, so both use one prior).
PRIOR_BIAS_IMAGES = 1000
#: Model-section fields that only initialize the model: they may change between restarts.
INITIALIZATION_FIELDS = ("prior_bias",)
#: Distillation fields that decide what the student learns to match (the teachers, their
#: layer and combination): a restart with others would continue a different run.
DISTILL_STRUCTURE = ("teachers", "teacher_layer", "student_layer", "pre_relu", "combine",
                     "subset_spread", "subset_seed", "color_images")
#: Multi-task fields that shape the checkpoint (the others may change between restarts).
MULTITASK_STRUCTURE = ("tasks", "gradient_rule", "schedule", "round_robin_state",
                       "separate_optimizer", "input_channels", "train_trunk")


@dataclasses.dataclass
class PretrainResult:
    """What :func:`pretrain` returns: the trainer's :class:`~tfcolor.train.trainer.TrainResult`
    plus the paths written at the end (None when not written, e.g. after a preemption), the
    held-out curve of this process and, with ``keep_best``, the kept best model's record
    (:func:`tfcolor.run_dir.read_best`; ``model`` then holds its weights)."""
    train: trainer_lib.TrainResult
    preview_png: str = None
    export_dir: str = None
    model: object = None
    heldout_curve: list = None
    best: dict = None

    @property
    def stopped(self):
        return self.train.stopped


def _check_model_dir(config, model_dir):
    try:
        old = run_dir.read_config(model_dir, as_dict=True)
    except FileNotFoundError:
        return
    except config_lib.ConfigError:
        return  # unreadable: overwritten below
    new = config.to_dict()
    sections = ["model", "loss", "multitask"]
    if "distillation" in config.multitask.tasks:
        sections.append("distill")
    for section in sections:
        before, now = old.get(section, {}), new[section]
        changed = {k: (before.get(k), v) for k, v in now.items()
                   if k in before and _norm(before.get(k)) != _norm(v)
                   and not (section == "model" and k in INITIALIZATION_FIELDS)
                   and not (section == "multitask" and k not in MULTITASK_STRUCTURE)
                   and not (section == "distill" and k not in DISTILL_STRUCTURE)}
        if changed:
            raise config_lib.ConfigError(
                f"model_dir {model_dir} holds a run with a different {section} configuration "
                f"({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())}); "
                "its checkpoints would not fit. Use another model_dir.")


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def pretrain(config, *, strategy=None, hooks=(), export=None, force_unlock=False):
    """Runs (or resumes) pretraining; see the module docstring.

    Args:
        config: a :class:`tfcolor.config.PretrainConfig`.
        strategy: a ``tf.distribute.Strategy`` (default: ``config.train.strategy`` by name).
        hooks: passed to the :class:`~tfcolor.train.trainer.Trainer`.
        export: override ``config.train.export``.
        force_unlock: take over the ``model_dir`` lock even if another host's run holds it.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        tfcolor.train.lock.ModelDirLockedError: another run is using ``model_dir``.
    """
    config.validate()
    t = config.train
    model_dir = t.model_dir
    experiment.seed_everything(t.seed, t.deterministic)
    strategy = strategy or strategy_lib.make_strategy(t.strategy, tpu=t.tpu)
    chief = strategy_lib.is_chief(strategy)
    tf.io.gfile.makedirs(model_dir)
    if not chief:
        return _pretrain(config, strategy, hooks, export, chief, force_unlock)
    with lock_lib.hold(model_dir, force=force_unlock):
        return _pretrain(config, strategy, hooks, export, chief, force_unlock)


def _pretrain(config, strategy, hooks, export, chief, force_unlock):
    t = config.train
    model_dir = t.model_dir
    _check_model_dir(config, model_dir)
    if chief:
        run_dir.write_config(model_dir, config)
    if not config.multitask.single_colorization:
        return _pretrain_multitask(config, strategy, hooks, export, chief, force_unlock)
    task = colorization.ColorizationTask.from_config(config)
    if config.model.prior_bias and run_dir.latest_checkpoint(model_dir, validate=False) is None:
        task.model_fn = functools.partial(factory.build_colorizer, config,
                                          prior=_training_prior(config))
    heldout = None
    if chief:
        batches = colorization.heldout_batches(config)
        if batches is not None:
            heldout = heldout_lib.HeldOutLoss(
                batches, task, every=t.eval_every,
                path=run_dir.heldout_curve_path(model_dir),
                best_dir=run_dir.best_path(model_dir) if t.keep_best else None,
                heldout=heldout_identity(config))
            hooks = list(hooks) + [heldout]
    if task.preview_images is None:
        t = dataclasses.replace(t, image_every=0)
    logging.info("pretraining %s (%s loss) on %s, %d replica(s), global batch %d, %d steps, "
                 "model_dir %s", config.model.arch, config.loss.kind, config.data.data,
                 strategy.num_replicas_in_sync, config.data.batch_size, t.train_steps,
                 model_dir)
    out, trainer = _train(task, t, config, strategy, hooks, force_unlock, heldout)
    result = out.train
    if result.stopped != "completed" or not chief:
        return out
    checkpoint = result.checkpoint
    if t.keep_best:
        checkpoint, out.best = run_dir.model_checkpoint(model_dir)
        if out.best is not None:
            tf.train.Checkpoint(model=trainer.model).restore(checkpoint).expect_partial() \
                .assert_existing_objects_matched()
            logging.info("the run's model is the one of step %d, the lowest held-out loss "
                         "(%.4f; last step %d): the preview and the export show it",
                         out.best["step"], out.best["loss"], result.step)
    grid = trainer.preview()
    if grid is not None:
        out.preview_png = summaries.write_png(grid, run_dir.preview_path(model_dir))
        logging.info("colorizations: %s", out.preview_png)
    if t.export if export is None else export:
        out.export_dir = export_lib.export_saved_model(
            trainer.model, run_dir.export_path(model_dir), kind=config.loss.kind,
            config=config.to_dict(), checkpoint=export_lib.checkpoint_metadata(
                checkpoint, out.best))
        logging.info("SavedModel: %s", out.export_dir)
    return out


def _pretrain_multitask(config, strategy, hooks, export, chief, force_unlock):
    """The multi-task run of ``config`` (module docstring, "Several tasks")."""
    t = config.train
    model_dir = t.model_dir
    tasks = multitask.build_tasks(config)
    # A loss-scaled task (multitask.loss_scales) wraps the task: the held-out loss and the
    # prior start are the plain task's.
    by_name = {task.name: getattr(task, "task", task) for task in tasks}
    coloring = by_name.get("colorization")
    fresh = run_dir.latest_checkpoint(model_dir, validate=False) is None
    if coloring is not None and config.model.prior_bias and fresh:
        prior = _training_prior(config)
        coloring.model_on_fn = lambda trunk: factory.build_colorizer(config, prior=prior,
                                                                     trunk=trunk)
    heldout = None
    if chief and coloring is not None:
        batches = colorization.heldout_batches(
            dataclasses.replace(config, data=multitask.task_data_config(config, "colorization")))
        if batches is not None:
            heldout = heldout_lib.HeldOutLoss(
                batches, coloring, every=t.eval_every,
                path=run_dir.heldout_curve_path(model_dir), heldout=heldout_identity(config),
                model_of=lambda trainer: trainer.model.sub_models["colorization"])
            hooks = list(hooks) + [heldout]
    mt = config.multitask
    logging.info("pretraining %s on %s (%s, %s%s), %d replica(s), %d steps, model_dir %s",
                 config.model.arch, "+".join(mt.tasks), mt.gradient_rule, mt.schedule,
                 f" Q={mt.quantum}" if mt.schedule == "round_robin" else "",
                 strategy.num_replicas_in_sync, t.train_steps, model_dir)
    out, trainer = _train(lambda s: multitask.make_step(config, s, tasks, initialize=fresh), t,
                          config,
                          strategy, hooks, force_unlock, heldout)
    result = out.train
    if result.stopped != "completed" or not chief:
        return out
    for name, image in trainer.previews().items():
        path = (run_dir.preview_path(model_dir) if name == "colorization"
                else os.path.join(model_dir, f"{name}_preview.png"))
        written = summaries.write_png(image, path)
        if name == "colorization":
            out.preview_png = written
        logging.info("%s preview: %s", name, written)
    if coloring is not None and (t.export if export is None else export):
        out.export_dir = export_lib.export_saved_model(
            trainer.model.sub_models["colorization"], run_dir.export_path(model_dir),
            kind=config.loss.kind, config=config.to_dict(),
            checkpoint=export_lib.checkpoint_metadata(result.checkpoint, None))
        logging.info("SavedModel of the colorizer: %s", out.export_dir)
    return out


def _train(task, train_config, config, strategy, hooks, force_unlock, heldout):
    """Trains ``task`` (a task, or ``make_step(strategy)``) as ``train_config`` says through
    :func:`experiment.run` in the lock ``pretrain`` holds; returns ``(PretrainResult,
    trainer)``."""
    run = experiment.run(task, train_config, config.optimizer, strategy=strategy, hooks=hooks,
                         force_unlock=force_unlock, seed=False, lock_model_dir=False)
    # Unreadable images were skipped by the pipeline: say how many and which kinds.
    decode_lib.default_skip_counter().log_summary()
    return PretrainResult(train=run.train, model=run.trainer.model,
                          heldout_curve=heldout.curve if heldout is not None else None), \
        run.trainer


def heldout_identity(config):
    """What makes two held-out losses of ``config`` comparable: the held-out source and the
    data and loss fields that shape its fixed crops, centres and targets."""
    d, loss = config.data, config.loss
    return {"heldout_data": d.heldout_data, "heldout_images": d.heldout_images,
            "crop_size": d.crop_size, "side_range": list(d.side_range), "points": d.points,
            "edge_buffer": d.resolved_edge_buffer,
            "kind": loss.kind, "window": loss.window, "hue_weight": loss.hue_weight,
            "lightness_weight": loss.lightness_weight}


def _training_prior(config):
    """The marginal prior of the run's training data (``model.prior_bias``)."""
    source, data_config, loss_config, options = prior_lib.data_config_from_run_config(config)
    prior = prior_lib.marginal_prior(source, data_config, loss_config,
                                     max_images=PRIOR_BIAS_IMAGES, **options)
    logging.info("the head starts at the marginal prior of %d training images (%d points)",
                 prior.images, prior.points)
    return prior
