"""The generic trainer: the host loop of a custom training loop for any
:class:`tfcolor.tasks.base.Task`, or several on one trunk, under any ``tf.distribute`` strategy
(SimCLR-TF2 / Model Garden style).

The loop is split the way Orbit splits it: :class:`Trainer` is the **host loop** (cadence,
checkpoints and exact resume, SIGTERM and preemption, the NaN guard, the ``model_dir`` lock,
summaries, hooks, progress) and knows nothing of how many tasks there are; a **step object**
(:mod:`tfcolor.train.task_step`) owns the model(s), optimizer(s), input streams and their
trackables and runs ``steps_per_loop`` steps in one ``tf.function`` call. Given a task, the
trainer builds a :class:`~tfcolor.train.task_step.TaskStep`; given a step object (e.g.
:class:`tfcolor.train.multitask_step.MultiTaskStep`), it runs it.

One step of one task (:class:`tfcolor.train.step.TaskUpdate`, inside ``strategy.run``):

1. ``task.compute_loss(model, batch, training=True, global_batch_size=B)`` gives this replica's
   share of the global mean data loss (its sum divided by the number of units in the *global*
   batch, like ``tf.nn.compute_average_loss``), so that summing gradients over replicas gives the
   gradient of the global mean;
2. weight decay is an L2 term ``0.5 * wd * ||w||^2`` on kernels (Caffe's convention, as in the
   paper's released solver), divided by the number of replicas for the same reason; the task's
   head (:meth:`~tfcolor.tasks.base.Task.head_variables`) can have its own rate (released TF
   code: 1e-6 on the head only);
3. gradients are summed across replicas *by the step* (``replica_context.all_reduce``), then
   optionally clipped by global norm (so clipping sees the true global gradient, which Keras'
   per-replica ``clipnorm`` would not), bias gradients are multiplied by ``bias_lr_multiplier``
   (Caffe's ``lr_mult: 2``; with SGD this is exactly a per-variable learning rate), and the
   optimizer (SGD, momentum 0.9, piecewise-constant schedule with an optional linear warm-up,
   :mod:`tfcolor.train.optimizers`; wrapped in a Keras ``LossScaleOptimizer`` under mixed
   precision) applies them. The optimizer's own cross-replica sum is disabled, so gradients are
   summed exactly once, and the loss-scale optimizer's finiteness check sees the global gradient
   on every replica.

Logged losses: ``loss`` (data + weight decay), ``<task.name>`` (the data loss),
``weight_decay`` and ``<task.name>/<term>`` for the task's terms, as ``loss/...`` scalars, and
every summary also as one JSON line in ``model_dir/train.jsonl`` (:data:`TRAIN_LOG_FILE`).

Batch normalization with ``synchronized=True`` (the trunks' ``sync_batch_norm``) normalizes over
the global batch in this loop under ``MirroredStrategy`` with Keras 3 on the TF backend (its
moments all-reduce in the replica context); ``tests/train/test_trainer.py`` checks it against a
single device on the same global batch.

Safety: a non-finite loss stops the run with :class:`NonFiniteLossError` before anything is
saved, and weights are checked to be finite before every checkpoint, so the last good checkpoint
is never overwritten with NaN state. ``SIGTERM`` (preemption) finishes the current loop, writes a
checkpoint and returns ``stopped="preempted"``. A damaged latest checkpoint stops the run with
:class:`tfcolor.train.checkpointing.CorruptCheckpointError`. :meth:`Trainer.train` holds the
``model_dir`` lock (:mod:`tfcolor.train.lock`): a second run on the same directory refuses with
:class:`tfcolor.train.lock.ModelDirLockedError` instead of interleaving checkpoints.

Input position: see :mod:`tfcolor.train.task_step` (checkpointed stream positions, or whole
iterators for batches without ``"index"``).
"""
import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time

import keras
import tensorflow as tf
from absl import logging

from tfcolor.tasks import base as task_lib
from tfcolor.train import checkpointing
from tfcolor.train import lock as lock_lib
from tfcolor.train import optimizers as optimizers_lib
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import summaries
from tfcolor.train import task_step as task_step_lib

#: Every summary as one JSON line ``{"step": ..., "loss/<name>": ..., "learning_rate": ...,
#: "grad/<task>/<norm>": ...}`` in the model_dir (a resumed run appends; take the last line of
#: a step).
TRAIN_LOG_FILE = "train.jsonl"
#: Logged values whose names start with this are gradient statistics (multi-task steps), not
#: losses: TensorBoard shows them under their own name and the NaN guard ignores them.
GRADIENT_PREFIX = "grad/"

# Re-exported: the optimizer builders live in tfcolor.train.optimizers.
make_optimizer = optimizers_lib.make_optimizer
current_learning_rate = optimizers_lib.current_learning_rate


class NonFiniteLossError(FloatingPointError):
    """The training loss (or the weights) became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns.

    Attributes:
        step: global step reached.
        losses: mean of every loss term over the last loop (Python floats).
        checkpoint: path of the last checkpoint written (or restored), or None.
        stopped: ``"completed"``, ``"preempted"`` (SIGTERM) or the reason given to
            :meth:`Trainer.request_stop` (``"early_stop"`` by default).
        images_per_second: training throughput over the run (excluding the first loop, which
            includes tracing), or None when too few loops ran.
        history: list of (step, losses) after every loop.
    """
    step: int
    losses: dict
    checkpoint: str
    stopped: str
    images_per_second: float
    history: list


def set_deterministic(seed):
    """Seeds Python, NumPy, TF and Keras and enables TF op determinism."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


class Trainer:
    """Trains the model of a :class:`~tfcolor.tasks.base.Task`; see the module docstring.

    Args:
        task: a :class:`tfcolor.tasks.base.Task`: it builds the model (inside
            ``strategy.scope()``), the input (global batches that repeat forever) and the loss.
        strategy: a ``tf.distribute.Strategy`` (see :func:`tfcolor.train.make_strategy`).
        model_dir: checkpoints and summaries go here.
        train_steps: total steps.
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig`.
        steps_per_loop, checkpoint_every, keep_checkpoints, summary_every, image_every: see
            :class:`tfcolor.config.TrainConfig`. ``image_every``: steps between the task's
            preview images (:meth:`~tfcolor.tasks.base.Task.preview`) in TensorBoard (0: off).
            A loop never crosses a step the step object names (``next_boundary``, e.g. a
            round-robin task switch).
        mixed_precision: wrap the optimizer in a ``LossScaleOptimizer`` (set the Keras
            ``mixed_float16`` policy before building the model yourself, or use
            :func:`tfcolor.train.run`).
        checkpoint_iterator: ``"auto"`` (save the input position where possible: the position
            when batches carry ``"index"``, else the serialized iterator), True or False.
        hooks: callables ``hook(trainer, step, losses)`` run after every loop (e.g. the held-out
            loss, early stopping, tests).
        handle_sigterm: install a SIGTERM handler while training (main thread only).
        lock_model_dir: hold ``model_dir/.lock`` while training (:mod:`tfcolor.train.lock`).
        force_unlock: take over the lock even if another host's run seems to hold it.
    """

    def __init__(self, task, *, strategy, model_dir, train_steps, optimizer_config=None,
                 steps_per_loop=10, checkpoint_every=1000, keep_checkpoints=5, summary_every=100,
                 image_every=0, mixed_precision=False, checkpoint_iterator="auto", hooks=(),
                 handle_sigterm=True, lock_model_dir=True, force_unlock=False):
        for name, value in (("train_steps", train_steps), ("steps_per_loop", steps_per_loop),
                            ("checkpoint_every", checkpoint_every),
                            ("summary_every", summary_every)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(task, task_step_lib.TrainStep):
            self.train_step = task
            self.task = getattr(task, "task", None)
        elif isinstance(task, task_lib.Task):
            self.task = task
            self.train_step = task_step_lib.TaskStep(
                task, strategy=strategy, train_steps=train_steps,
                optimizer_config=optimizer_config, mixed_precision=mixed_precision,
                checkpoint_iterator=checkpoint_iterator)
        else:
            raise TypeError(f"task must be a tfcolor.tasks.base.Task or a step object "
                            f"(tfcolor.train.task_step.TrainStep), got {type(task).__name__}")
        self.strategy = strategy
        self.model_dir = model_dir
        self.train_steps = train_steps
        self.steps_per_loop = steps_per_loop
        self.checkpoint_every = checkpoint_every
        self.summary_every = summary_every
        self.image_every = image_every
        self.hooks = list(hooks)
        self.handle_sigterm = handle_sigterm
        self._stop_requested = False
        self._stop_reason = "preempted"
        self.lock_model_dir = lock_model_dir
        self.force_unlock = force_unlock

        self.is_chief = strategy_lib.is_chief(strategy)
        task_type, task_id = strategy_lib.worker_id(strategy)
        iterator, position, trackables = self.train_step.checkpoint_parts()
        self.checkpointer = checkpointing.Checkpointer(
            model_dir, max_to_keep=keep_checkpoints, is_chief=self.is_chief,
            worker_name=f"{task_type}_{task_id}", iterator=iterator, input_position=position,
            **trackables)
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        else:
            self.writer = tf.summary.create_noop_writer()

    # -- what the step object holds ---------------------------------------------------------

    @property
    def model(self):
        return self.train_step.model

    @property
    def optimizer(self):
        return self.train_step.optimizer

    @property
    def step(self):
        return self.train_step.step

    @property
    def mixed_precision(self):
        return self.train_step.mixed_precision

    @property
    def global_batch_size(self):
        """Input elements per step (over all tasks)."""
        return self.train_step.images_per_step

    @property
    def input_position(self):
        return getattr(self.train_step, "input_position", None)

    @property
    def loss_names(self):
        """The names of the logged losses."""
        return self.train_step.loss_names

    # ----------------------------------------------------------------------------------------
    # Host-side loop.

    def weights_finite(self):
        """True when every model and optimizer float variable is finite."""
        variables = self.train_step.variables()
        checks = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))
                  for v in variables if tf.as_dtype(v.dtype).is_floating]
        return bool(tf.reduce_all(checks)) if checks else True

    def save(self):
        """Writes a checkpoint of the current state after checking it is finite."""
        if not self.weights_finite():
            raise NonFiniteLossError(
                f"weights became NaN/Inf at step {int(self.step.numpy())}: not saving them; the "
                f"last good checkpoint is kept ({self.checkpointer.latest()})")
        path = self.checkpointer.save(int(self.step.numpy()))
        logging.info("checkpoint %s", path)
        return path

    def run_steps(self, num_steps):
        """Runs ``num_steps`` training steps (one ``tf.function`` call) and returns their mean
        losses as floats, without checkpoints, summaries or checks (benchmarks, notebooks)."""
        out = self.train_step.run(int(num_steps))
        return {k: float(v) for k, v in out.items()}

    def request_stop(self, reason="early_stop"):
        """Asks the loop to checkpoint and stop after the current loop.

        Args:
            reason: what ``TrainResult.stopped`` will say. SIGTERM uses ``"preempted"``; hooks
                that stop training on purpose (e.g. the fine-tuning protocol's early stopping)
                keep the default ``"early_stop"``.
        """
        self._stop_reason = reason
        self._stop_requested = True

    def _next_chunk(self, step):
        targets = [self.train_steps, _next_multiple(step, self.checkpoint_every),
                   _next_multiple(step, self.summary_every)]
        if self.image_every:
            targets.append(_next_multiple(step, self.image_every))
        boundary = self.train_step.next_boundary(step)
        if boundary is not None and boundary > step:
            targets.append(boundary)
        return max(1, min(min(targets) - step, self.steps_per_loop))

    def previews(self):
        """``{task name: preview image}`` of the current model (e.g. grey | colorized |
        original); tasks without a preview are left out."""
        return self.train_step.preview()

    def preview(self):
        """The preview image of the run's task (with several tasks: colorization's, or the
        first task's that has one), or None."""
        images = self.previews()
        if not images:
            return None
        return images.get("colorization", next(iter(images.values())))

    def _write_images(self, step):
        images = self.previews()
        if images:
            with self.writer.as_default(step=step):
                for name, image in images.items():
                    tf.summary.image(name, tf.convert_to_tensor(image)[None])

    def train(self):
        """Takes the ``model_dir`` lock, restores the latest checkpoint (if any) and trains up to
        ``train_steps``.

        Raises:
            tfcolor.train.lock.ModelDirLockedError: another run holds ``model_dir``.
        """
        held = (lock_lib.hold(self.model_dir, force=self.force_unlock)
                if self.lock_model_dir and self.is_chief else contextlib.nullcontext())
        with held:
            return self._train()

    def _train(self):
        restored = self.checkpointer.restore_latest()
        self.train_step.restart_inputs(restored is not None)
        step = int(self.step.numpy())
        if restored:
            logging.info("resumed from %s at step %d", restored, step)
        else:
            logging.info("no checkpoint in %s: training from step 0", self.model_dir)
        last_ckpt = restored
        previous_handler = None
        install = self.handle_sigterm and threading.current_thread() is threading.main_thread()
        if install:
            previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        history = []
        losses = {}
        timed_images, timed_seconds = 0, 0.0
        window_images, window_start = 0, time.perf_counter()
        first_loop = True
        stopped = "completed"
        try:
            while step < self.train_steps:
                n = self._next_chunk(step)
                t0 = time.perf_counter()
                out = self.train_step.run(n)
                losses = {k: float(v) for k, v in out.items()}
                elapsed = time.perf_counter() - t0
                new_step = int(self.step.numpy())
                # Gradient norms may be infinite in a step the loss-scale optimizer skips.
                bad = {k: v for k, v in losses.items()
                       if not k.startswith(GRADIENT_PREFIX) and not math.isfinite(v)}
                if bad:
                    raise NonFiniteLossError(
                        f"loss became non-finite between steps {step} and {new_step}: {bad}. "
                        f"Stopped without saving; the last good checkpoint is kept "
                        f"({last_ckpt or 'none written yet'}). Lower the learning rate, enable "
                        "gradient clipping (clip_norm) or check the input data.")
                step = new_step
                history.append((step, losses))
                if not first_loop:
                    timed_images += n * self.global_batch_size
                    timed_seconds += elapsed
                first_loop = False
                window_images += n * self.global_batch_size
                if step % self.summary_every == 0 or step >= self.train_steps:
                    now = time.perf_counter()
                    rate = window_images / max(now - window_start, 1e-9)
                    window_images, window_start = 0, now
                    self._summarize(step, losses, rate)
                if self.image_every and step % self.image_every == 0:
                    self._write_images(step)
                for hook in self.hooks:
                    hook(self, step, losses)
                if self._stop_requested:
                    last_ckpt = self.save()
                    stopped = self._stop_reason
                    if stopped == "preempted":
                        logging.warning("stop requested (SIGTERM): checkpoint %s written at step "
                                        "%d; rerun the same command to resume", last_ckpt, step)
                    else:
                        logging.info("stopping at step %d (%s): checkpoint %s", step, stopped,
                                     last_ckpt)
                    break
                if step % self.checkpoint_every == 0 or step >= self.train_steps:
                    last_ckpt = self.save()
        finally:
            if install:
                signal.signal(signal.SIGTERM, previous_handler)
            self.writer.flush()
        return TrainResult(step=step, losses=losses, checkpoint=last_ckpt, stopped=stopped,
                           images_per_second=(timed_images / timed_seconds
                                              if timed_seconds > 0 else None),
                           history=history)

    def _on_sigterm(self, signum, frame):  # pylint: disable=unused-argument
        logging.warning("SIGTERM received: checkpointing after the current loop")
        self.request_stop("preempted")

    def _summarize(self, step, losses, images_per_second):
        extra = self.train_step.summary_scalars()
        lr = extra.get("learning_rate", current_learning_rate(self.optimizer))
        remaining = self.train_steps - step
        eta = remaining * self.global_batch_size / images_per_second if images_per_second else None
        scalars = {(k if k.startswith(GRADIENT_PREFIX) else "loss/" + k): v
                   for k, v in losses.items()}
        scalars.update(extra)
        scalars["images_per_second"] = images_per_second
        summaries.write_scalars(self.writer, step, scalars)
        if self.is_chief:
            record = {"step": int(step), **{k: _json_number(v) for k, v in scalars.items()}}
            with tf.io.gfile.GFile(os.path.join(self.model_dir, TRAIN_LOG_FILE), "a") as f:
                f.write(json.dumps(record) + "\n")
        shown = {k: v for k, v in losses.items() if not k.startswith(GRADIENT_PREFIX)}
        logging.info(summaries.progress_line(step, self.train_steps, shown, lr,
                                             images_per_second, eta))


def _json_number(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _next_multiple(step, every):
    return (step // every + 1) * every
