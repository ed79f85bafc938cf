"""Building, pretraining and loading the self-supervised baselines.

:func:`pretrain` runs a baseline's task (:class:`tfcolor.tasks.denoising.DenoisingTask` or
:class:`tfcolor.tasks.split_brain.SplitBrainTask`) through the library's one training entry point,
on the pretraining pipeline of :mod:`tfcolor.data` (the crops, mirrors and pixel centres of
colorization pretraining; the noise and the targets are TF ops mapped onto those batches). It
writes ``tfcolor_baseline.json`` (:data:`tfcolor.run_dir.BASELINE_FILE`: the kind and the model's
arguments) into the ``model_dir``, so that :func:`load` (and
``tfcolor.downstream.initialization.load_trunk(model_dir)``) can rebuild the model, whose
``arch`` and ``downstream_trunk(absorb_bn, color_input)`` give the trunk for fine-tuning.
"""
import contextlib
import json
import os

import tensorflow as tf

from tfcolor import run_dir
from tfcolor.baselines import denoising
from tfcolor.baselines import split_brain
from tfcolor.config import TrainConfig
from tfcolor.tasks import denoising as denoising_task
from tfcolor.tasks import split_brain as split_brain_task
from tfcolor.train import checkpointing
from tfcolor.train import experiment
from tfcolor.train import lock as lock_lib
from tfcolor.train import strategy as strategy_lib

__all__ = ["BASELINES", "build", "make_task", "load", "pretrain"]

#: The baselines' kinds.
BASELINES = ("denoising", "split_brain")
_MODELS = {"denoising": denoising.DenoisingAutoencoder,
           "split_brain": split_brain.SplitBrainAutoencoder}


def _check_kind(kind):
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}.")
    return kind


def build(kind, **model_kwargs):
    """A fresh baseline network: a :class:`~tfcolor.baselines.denoising.DenoisingAutoencoder`
    (``"denoising"``) or a :class:`~tfcolor.baselines.split_brain.SplitBrainAutoencoder`
    (``"split_brain"``)."""
    return _MODELS[_check_kind(kind)](**model_kwargs)


def make_task(kind, data_config=None, *, source=None, model_kwargs=None, noise_rate=None,
              corrupted_weight=None, seed=0, pipeline_options=None):
    """The :class:`tfcolor.tasks.base.Task` of a baseline
    (:class:`~tfcolor.tasks.denoising.DenoisingTask` or
    :class:`~tfcolor.tasks.split_brain.SplitBrainTask`; see their arguments).

    ``noise_rate`` and ``corrupted_weight`` are denoising options (``None``: the task's
    defaults); giving them for ``"split_brain"`` is an error.
    """
    common = dict(source=source, model_kwargs=model_kwargs, seed=seed,
                  pipeline_options=pipeline_options)
    if _check_kind(kind) == "denoising":
        options = {k: v for k, v in (("noise_rate", noise_rate),
                                     ("corrupted_weight", corrupted_weight)) if v is not None}
        return denoising_task.DenoisingTask(data_config, **common, **options)
    given = [k for k, v in (("noise_rate", noise_rate), ("corrupted_weight", corrupted_weight))
             if v is not None]
    if given:
        raise ValueError(f"{given} are denoising options; the split-brain baseline has none.")
    return split_brain_task.SplitBrainTask(data_config, **common)


def _read_metadata(model_dir):
    path = os.path.join(str(model_dir), run_dir.BASELINE_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing: {model_dir} is not a baseline model_dir.")
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}).") from None
    if not isinstance(meta, dict) or meta.get("kind") not in BASELINES or not isinstance(
            meta.get("model", {}), dict):
        raise ValueError(f"{path} must hold a JSON object with 'kind' (one of {BASELINES}) and "
                         f"'model' (the network's arguments); got {text[:200]!r}.")
    return meta


def _write_metadata(model_dir, meta):
    """Writes the baseline file; refuses a ``model_dir`` that holds another run."""
    path = os.path.join(str(model_dir), run_dir.BASELINE_FILE)
    meta = json.loads(json.dumps(meta))  # as it reads back (tuples are lists)
    if tf.io.gfile.exists(os.path.join(str(model_dir), run_dir.CONFIG_FILE)):
        raise ValueError(f"{model_dir} holds a colorization run ({run_dir.CONFIG_FILE}); "
                         "pretrain a baseline into another model_dir.")
    if not tf.io.gfile.exists(path) and tf.io.gfile.exists(
            os.path.join(str(model_dir), checkpointing.CHECKPOINT_STATE_FILE)):
        raise ValueError(f"{model_dir} holds checkpoints but no {run_dir.BASELINE_FILE}: not a "
                         "baseline run; pretrain into another model_dir (nothing was changed).")
    if tf.io.gfile.exists(path):
        try:
            old = _read_metadata(model_dir)
        except ValueError:
            old = None
        if old != meta:
            raise ValueError(f"{path} describes another baseline run ({old}), not {meta}: its "
                             "checkpoints would not fit; use another model_dir (nothing was "
                             "changed).")
        return
    tf.io.gfile.makedirs(str(model_dir))
    temp = path + ".tmp"
    with tf.io.gfile.GFile(temp, "w") as f:
        json.dump(meta, f, indent=2)
    tf.io.gfile.rename(temp, path, overwrite=True)


def load(model_dir, checkpoint=None):
    """Rebuilds a trained baseline from its ``model_dir``; the model has ``arch`` and
    ``downstream_trunk(absorb_bn, color_input)``.

    Args:
        model_dir: a baseline run directory (``tfcolor_baseline.json`` and checkpoints).
        checkpoint: a checkpoint prefix or the name of one in ``model_dir`` (default: the
            latest complete one, :func:`tfcolor.run_dir.latest_checkpoint`).

    Raises:
        FileNotFoundError: no baseline file or no checkpoint.
        ValueError: a garbled baseline file.
        tfcolor.train.checkpointing.CorruptCheckpointError: the checkpoint is damaged.
        AssertionError: the checkpoint does not fit the described model.
    """
    meta = _read_metadata(model_dir)
    model = build(meta["kind"], **meta.get("model", {}))
    path = (checkpointing.checkpoint_in(str(model_dir), checkpoint) if checkpoint
            else run_dir.latest_checkpoint(model_dir))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}.")
    status = tf.train.Checkpoint(model=model).restore(str(path)).expect_partial()
    status.assert_existing_objects_matched()
    return model


def pretrain(kind, source, model_dir, *, model_kwargs=None, data_config=None, train_steps=1000,
             optimizer_config=None, noise_rate=denoising.DEFAULT_RATE, corrupted_weight=1.0,
             strategy=None, steps_per_loop=10, checkpoint_every=None, summary_every=None, seed=0):
    """Pretrains a baseline through :func:`tfcolor.train.experiment.run`; returns its
    :class:`tfcolor.train.trainer.TrainResult`.

    Args:
        kind: ``"denoising"`` or ``"split_brain"``.
        source: the images, anything :func:`tfcolor.data.as_source` accepts (``None``:
            ``data_config.data``).
        model_dir: checkpoints, summaries and ``tfcolor_baseline.json``. A ``model_dir`` of
            another run (a colorization run, or a baseline with another kind or model) is
            refused and left as it is; the same baseline's is resumed from its latest checkpoint.
        model_kwargs: arguments of the network (``arch``, ``taps``, ``split``, ...).
        data_config: the pipeline's :class:`tfcolor.config.DataConfig` (the crops and centres of
            colorization pretraining).
        train_steps, optimizer_config, strategy, steps_per_loop, checkpoint_every,
            summary_every: of the trainer (``checkpoint_every``: default ``train_steps``;
            ``summary_every``: default ``steps_per_loop``; ``strategy``: default strategy).
        noise_rate, corrupted_weight: denoising options.
        seed: seed of the weight initialisation, of the pipeline's shuffle, crops and centres,
            and of the denoising noise.
    """
    _check_kind(kind)
    model_kwargs = dict(model_kwargs or {})
    task = make_task(kind, data_config, source=source, model_kwargs=model_kwargs, seed=seed,
                     **(dict(noise_rate=noise_rate, corrupted_weight=corrupted_weight)
                        if kind == "denoising" else {}))
    train_config = TrainConfig(
            model_dir=str(model_dir), train_steps=int(train_steps),
            steps_per_loop=int(steps_per_loop),
            checkpoint_every=int(checkpoint_every or train_steps),
            summary_every=int(summary_every or steps_per_loop), image_every=0, export=False,
            seed=seed)
    strategy = strategy or tf.distribute.get_strategy()
    chief = strategy_lib.is_chief(strategy)
    tf.io.gfile.makedirs(str(model_dir))
    # The lock covers the baseline file too: two runs cannot interleave it and the checkpoints.
    with lock_lib.hold(str(model_dir)) if chief else contextlib.nullcontext():
        if chief:
            _write_metadata(model_dir, {"kind": kind, "model": model_kwargs,
                                        "noise_rate": noise_rate if kind == "denoising" else None})
        result = experiment.run(task, train_config, optimizer_config, strategy=strategy,
                                lock_model_dir=False)
    return result.train
