"""A whole pretraining run from a :class:`tfcolor.config.PretrainConfig`.

:func:`pretrain` validates the config, seeds (and, with ``deterministic``, enables TF op
determinism with a deterministic data order), picks the strategy, builds the data pipeline
(:func:`tfcolor.data.pretrain_dataset`), the colorizer (:class:`tfcolor.models.Colorizer`), the
loss (:mod:`tfcolor.losses`) and runs the :class:`~tfcolor.train.loop.Trainer`. It resumes from
the latest checkpoint of ``model_dir`` automatically. At the end of a completed run it writes the
final checkpoint, ``model_dir/colorizations.png`` (grey | colorized | original for the preview
images, decoded with the library's defaults: interpolated median chroma, circular hue
expectation, the released chromatic fading ``min(|z|/eta, 1)`` (the printed ``max`` never fades),
input lightness; :func:`tfcolor.colorize.colorize_batch`) and a SavedModel in
``model_dir/export`` (:func:`tfcolor.export.export_saved_model`).

With ``config.data.heldout_data`` set, the held-out loss (fixed crops and centres of photos
never trained on) is computed every ``config.train.eval_every`` steps and at the end, logged,
written to TensorBoard (``heldout/loss``) and appended to ``model_dir/heldout.jsonl``
(:mod:`tfcolor.train.heldout`).

``model_dir/config.json`` holds the config (``PretrainConfig.to_dict()``), read back by
:func:`tfcolor.export.load_model`. Restarting in a ``model_dir`` whose ``config.json`` has a
different model or loss section is refused (the checkpoint would not fit); other sections (e.g.
more ``train_steps``) may change between restarts.

One run per ``model_dir``: :func:`pretrain` takes ``model_dir/.lock`` (pid, host, start time;
:mod:`tfcolor.train.lock`) before writing anything and releases it at the end; a second run on
the same directory raises :class:`tfcolor.train.lock.ModelDirLockedError`, the lock of a killed
run on this host is taken over with a warning.

Checkpoints hold the model, optimizer, step, RNG state and the input position (records consumed);
the input pipeline is rebuilt at that position on resume (:func:`build_dataset` with ``start``),
so checkpoints stay about the size of the variables and optimizer slots (README, "Checkpoint
size").
"""
import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from tfcolor import config as config_lib
from tfcolor.train import lock as lock_lib
from tfcolor.train import loop
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import summaries

CONFIG_FILE = "config.json"
PREVIEW_FILE = "colorizations.png"
EXPORT_DIR = "export"
_PREVIEW_MAX_SIZE = 256


@dataclasses.dataclass
class PretrainResult:
    """What :func:`pretrain` returns: the loop's :class:`~tfcolor.train.loop.TrainResult` fields
    plus the paths written at the end (None when not written, e.g. after a preemption)."""
    train: loop.TrainResult
    preview_png: str = None
    export_dir: str = None
    model: object = None
    heldout_curve: list = None

    @property
    def stopped(self):
        return self.train.stopped


def build_model(config):
    """The colorizer of ``config`` (a ``PretrainConfig``); call inside a strategy scope."""
    from tfcolor.models import Colorizer  # pylint: disable=import-outside-toplevel
    m = config.model
    return Colorizer(m.arch, taps=m.taps, kind=config.loss.kind, hidden=m.hidden,
                     dropout=m.dropout, convention=m.convention, batch_norm=m.batch_norm,
                     sync_batch_norm=m.sync_batch_norm, fov=m.fov, input_mean=m.input_mean)


def build_loss(loss_config):
    """``(loss_fn, terms_fn)`` for the loss kind: per-point losses and their logged parts."""
    from tfcolor import losses  # pylint: disable=import-outside-toplevel
    kind = loss_config.kind
    if kind == "hue_chroma":
        loss = losses.HueChromaLoss(hue_weight=loss_config.hue_weight,
                                    lightness_weight=loss_config.lightness_weight)
        chroma_only = losses.HueChromaLoss(hue_weight=0.0,
                                           lightness_weight=loss_config.lightness_weight)

        def terms(y_true, y_pred):
            chroma = chroma_only(y_true, y_pred)
            return {"chroma": chroma, "hue": loss(y_true, y_pred) - chroma}
        return loss, terms
    if kind == "lab_hist":
        loss = losses.HistogramKL((32, 32))
        a_only = losses.HistogramKL((32, 32), group_weights=[1.0, 0.0])
        b_only = losses.HistogramKL((32, 32), group_weights=[0.0, 1.0])
        return loss, lambda y, p: {"a": a_only(y, p), "b": b_only(y, p)}
    if kind == "lab_joint":
        return losses.HistogramKL((256,)), None
    return losses.LabRegressionLoss(), None


def build_dataset(config, start=0, include_index=False):
    """``(dataset, target_builder or None)``: global batches, targets in tf.data or on device.

    ``start`` fast-forwards the (seeded) record stream to that position; ``include_index`` adds
    each element's stream position ``"index"`` to the batches (see
    :class:`tfcolor.data.PretrainDataConfig`).
    """
    from tfcolor import data as data_lib  # pylint: disable=import-outside-toplevel
    builder = build_target_builder(config)
    on_device = data_lib.resolve_targets_on_device(config.data.targets_on_device)
    source = config.data.data
    data_config = _data_config(config, targets_on_device=on_device, start=start,
                               include_index=include_index)
    dataset = data_lib.pretrain_dataset(None if source == "embedded" else source, data_config,
                                        target_builder=None if on_device else builder)
    return dataset, (builder if on_device else None)


def build_target_builder(config):
    """The :class:`tfcolor.targets.TargetBuilder` of the run's loss kind and window."""
    from tfcolor import targets  # pylint: disable=import-outside-toplevel
    return targets.TargetBuilder(config.loss.kind, window=config.loss.window)


def _data_config(config, **overrides):
    from tfcolor import data as data_lib  # pylint: disable=import-outside-toplevel
    source = config.data.data
    return data_lib.PretrainDataConfig.from_config(
        config.data, config.loss, seed=config.train.seed,
        deterministic=True if config.train.deterministic else None,
        cache=source == "embedded" or source.startswith("embedded:"), **overrides)


def heldout_hook(config, loss_fn, terms_fn=None):
    """The :class:`tfcolor.train.heldout.HeldOutLoss` hook of ``config.data.heldout_data``
    (None when it is not set), writing ``model_dir/heldout.jsonl``."""
    if not config.data.heldout_data:
        return None
    from tfcolor.train import heldout  # pylint: disable=import-outside-toplevel
    source = config.data.heldout_data
    batches = heldout.heldout_batches(None if source == "embedded" else source,
                                      _data_config(config), build_target_builder(config),
                                      images=config.data.heldout_images)
    return heldout.HeldOutLoss(batches, loss_fn, terms_fn, every=config.train.eval_every,
                               path=os.path.join(config.train.model_dir, heldout.CURVE_FILE))


def preview_images(config):
    """The validation images of the colorization grids, (N, S, S, 3) in [0, 1], or None."""
    count = config.data.validation_images
    if not count:
        return None
    from tfcolor import data as data_lib  # pylint: disable=import-outside-toplevel
    source = config.data.data
    source = None if source == "embedded" or source.startswith("embedded:") else source
    size = min(config.data.crop_size, _PREVIEW_MAX_SIZE)
    try:
        return data_lib.load_images(source, count=count, size=size)
    except (ValueError, OSError, tf.errors.OpError) as e:
        logging.warning("no preview images (%s): colorization grids are skipped", e)
        return None


def make_preview_fn(kind):
    """``preview_fn(model, rgb) -> colorized rgb`` with the default decoding (released fading)."""
    from tfcolor import colorize  # pylint: disable=import-outside-toplevel

    def preview(model, rgb):
        return colorize.colorize_batch(model, rgb, kind=kind, fading="released")
    return preview


def _check_model_dir(config, model_dir):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        try:
            old = json.load(f)
        except json.JSONDecodeError:
            return  # unreadable: overwritten below
    new = config.to_dict()
    for section in ("model", "loss"):
        before, now = old.get(section, {}), new[section]
        changed = {k: (before.get(k), v) for k, v in now.items()
                   if k in before and _norm(before.get(k)) != _norm(v)}
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
        hooks: passed to the :class:`~tfcolor.train.loop.Trainer`.
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
    if t.deterministic:
        loop.set_deterministic(t.seed)
    else:
        keras.utils.set_random_seed(t.seed)
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
        with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
            json.dump(config.to_dict(), f, indent=2)
    previous_policy = keras.mixed_precision.global_policy()
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        first, target_builder = build_dataset(config, include_index=True)

        def dataset_fn(start):
            # The Trainer resumes the input at the checkpoint's position by calling this.
            if start == 0:
                return first
            return build_dataset(config, start=start, include_index=True)[0]
        loss_fn, terms_fn = build_loss(config.loss)
        images = preview_images(config)
        heldout = heldout_hook(config, loss_fn, terms_fn) if chief else None
        if heldout is not None:
            hooks = list(hooks) + [heldout]
        trainer = loop.Trainer(
            strategy=strategy, model_fn=lambda: build_model(config), loss_fn=loss_fn,
            terms_fn=terms_fn, dataset=dataset_fn, model_dir=model_dir,
            train_steps=t.train_steps,
            optimizer_config=config.optimizer, target_builder=target_builder,
            steps_per_loop=t.steps_per_loop, checkpoint_every=t.checkpoint_every,
            keep_checkpoints=t.keep_checkpoints, summary_every=t.summary_every,
            image_every=t.image_every if images is not None else 0, preview_images=images,
            preview_fn=make_preview_fn(config.loss.kind), mixed_precision=t.mixed_precision,
            hooks=hooks, force_unlock=force_unlock)
        logging.info("pretraining %s (%s loss) on %s, %d replica(s), global batch %d, %d steps, "
                     "model_dir %s", config.model.arch, config.loss.kind, config.data.data,
                     strategy.num_replicas_in_sync, config.data.batch_size, t.train_steps,
                     model_dir)
        result = trainer.train()
        # Unreadable images were skipped by the pipeline: say how many and which kinds.
        from tfcolor.data import decode as decode_lib  # pylint: disable=import-outside-toplevel
        decode_lib.default_skip_counter().log_summary()
        out = PretrainResult(train=result, model=trainer.model,
                             heldout_curve=heldout.curve if heldout is not None else None)
        if result.stopped != "completed" or not chief:
            return out
        grid = trainer.colorize_preview()
        if grid is not None:
            out.preview_png = summaries.write_png(grid, os.path.join(model_dir, PREVIEW_FILE))
            logging.info("colorizations: %s", out.preview_png)
        if t.export if export is None else export:
            from tfcolor import export as export_lib  # pylint: disable=import-outside-toplevel
            out.export_dir = export_lib.export_saved_model(
                trainer.model, os.path.join(model_dir, EXPORT_DIR), kind=config.loss.kind,
                config=config.to_dict())
            logging.info("SavedModel: %s", out.export_dir)
        return out
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
