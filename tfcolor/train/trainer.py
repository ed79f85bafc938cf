"""The generic trainer: a custom training loop for any :class:`tfcolor.tasks.base.Task` under any
``tf.distribute`` strategy (SimCLR-TF2 / Model Garden style).

The trainer owns what does not depend on the objective; the task owns the rest (inputs, model,
loss, preview). It never looks inside a batch.

One call of a ``tf.function`` runs ``steps_per_loop`` optimizer steps; each step is
``strategy.run(replica_step)`` on the next distributed batch. Inside a replica step:

1. ``task.compute_loss(model, batch, training=True, global_batch_size=B)`` gives this replica's
   share of the global mean data loss (its sum divided by the number of units in the *global*
   batch, like ``tf.nn.compute_average_loss``), so that summing gradients over replicas gives the
   gradient of the global mean;
2. weight decay is an L2 term ``0.5 * wd * ||w||^2`` on kernels (Caffe's convention, as in the
   paper's released solver), divided by the number of replicas for the same reason; the task's
   head (:meth:`~tfcolor.tasks.base.Task.head_variables`) can have its own rate (released TF
   code: 1e-6 on the head only);
3. gradients are summed across replicas *by the loop* (``replica_context.all_reduce``), then
   optionally clipped by global norm (so clipping sees the true global gradient, which Keras'
   per-replica ``clipnorm`` would not), bias gradients are multiplied by ``bias_lr_multiplier``
   (Caffe's ``lr_mult: 2``; with SGD this is exactly a per-variable learning rate), and the
   optimizer (SGD, momentum 0.9, piecewise-constant schedule; wrapped in a Keras
   ``LossScaleOptimizer`` under mixed precision) applies them. The optimizer's own cross-replica
   sum is disabled, so gradients are summed exactly once, and the loss-scale optimizer's
   finiteness check sees the global gradient on every replica.

Logged losses: ``loss`` (data + weight decay), ``<task.name>`` (the data loss),
``weight_decay`` and ``<task.name>/<term>`` for the task's terms, as ``loss/...`` scalars.

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

Input position: when the task's batches carry ``"index"`` (each element's position in a
deterministic record stream), every step records ``max(index) + 1`` in the ``input_position``
variable, which is checkpointed (8 bytes) instead of the tf.data iterator and its buffers; on
resume the trainer calls ``task.build_inputs(input_position)``. Batches without ``"index"`` are
resumed by checkpointing the serialized iterator (which includes its prefetch and parallel-map
buffers: large checkpoints). See :mod:`tfcolor.train.checkpointing`.
"""
import contextlib
import dataclasses
import math
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor.config import OptimizerConfig
from tfcolor.tasks import base as task_lib
from tfcolor.train import checkpointing
from tfcolor.train import step as step_lib
from tfcolor.train import lock as lock_lib
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import summaries


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


def make_optimizer(config, train_steps, *, mixed_precision=False):
    """SGD with momentum and the config's piecewise-constant schedule (loss-scaled if mixed)."""
    boundaries, values = config.learning_rates(train_steps)
    if boundaries:
        # Caffe's multistep: the update with 0-based index d (``optimizer.iterations == d``) is
        # the first at the dropped rate; PiecewiseConstantDecay switches *after* a boundary.
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [b - 1 for b in boundaries], values)
    else:
        rate = values[0]
    optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=config.momentum)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer):
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = inner.learning_rate
    if callable(getattr(inner, "_learning_rate", None)):
        rate = inner._learning_rate(inner.iterations)  # pylint: disable=protected-access
    return float(np.asarray(rate))


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
        if not isinstance(task, task_lib.Task):
            raise TypeError(f"task must be a tfcolor.tasks.base.Task, got {type(task).__name__}")
        self.task = task
        self.strategy = strategy
        self.model_dir = model_dir
        self.train_steps = train_steps
        self.optimizer_config = optimizer_config or OptimizerConfig()
        self.optimizer_config.validate()
        self.steps_per_loop = steps_per_loop
        self.checkpoint_every = checkpoint_every
        self.summary_every = summary_every
        self.image_every = image_every
        self.mixed_precision = mixed_precision
        self.hooks = list(hooks)
        self.handle_sigterm = handle_sigterm
        self._stop_requested = False
        self._stop_reason = "preempted"
        self.lock_model_dir = lock_model_dir
        self.force_unlock = force_unlock

        dataset = task.build_inputs(0)
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(f"{type(task).__name__}.build_inputs must return a tf.data.Dataset, "
                            f"got {type(dataset).__name__}")
        spec = dataset.element_spec
        task.check_inputs(spec)
        self.global_batch_size = task.batch_size(spec)
        if self.global_batch_size is None:
            raise ValueError("the dataset must have a static batch size (batch with "
                             f"drop_remainder=True); got {spec}")
        replicas = strategy.num_replicas_in_sync
        if self.global_batch_size % replicas:
            raise ValueError(f"global batch size {self.global_batch_size} is not divisible by the "
                             f"{replicas} replicas of the strategy")

        self.is_chief = strategy_lib.is_chief(strategy)
        task_type, task_id = strategy_lib.worker_id(strategy)
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        tpu = isinstance(strategy, (tf.distribute.TPUStrategy,))

        with strategy.scope():
            self.model = task.build_model()
            self.optimizer = make_optimizer(self.optimizer_config, train_steps,
                                            mixed_precision=mixed_precision)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.input_position = tf.Variable(0, dtype=tf.int64, trainable=False,
                                              name="input_position")
            self._build(spec)
            step_lib.disable_optimizer_all_reduce(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)

        if checkpoint_iterator == "auto":
            checkpoint_iterator = not (multi_worker or tpu)
        elif checkpoint_iterator and (multi_worker or tpu):
            raise ValueError("checkpoint_iterator=True is not supported with multi-worker or TPU "
                             "strategies (see tfcolor.train.checkpointing)")
        # Distributed iterators are not trackable and their batches are split already; to follow
        # the input position, single-worker strategies read global batches from a plain tf.data
        # iterator and split them across replicas inside the step function.
        self._host_split = bool(checkpoint_iterator)
        positioned = "index" in spec
        self._track_position = self._host_split and positioned
        self._dataset = dataset
        self._iterator = None
        if not positioned:
            self._iterator = self._make_iterator(dataset)
        self.checkpointer = checkpointing.Checkpointer(
            model_dir, max_to_keep=keep_checkpoints, is_chief=self.is_chief,
            worker_name=f"{task_type}_{task_id}",
            iterator=self._iterator if checkpoint_iterator and not positioned else None,
            input_position=self.input_position if self._track_position else None,
            model=self.model, optimizer=self.optimizer, step=self.step,
            layer_rng=_rng_states(self.model))
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        else:
            self.writer = tf.summary.create_noop_writer()
        self._loop_fn = tf.function(self._train_loop)

    def _make_iterator(self, dataset):
        if self._host_split:
            return iter(dataset)
        if "index" in dataset.element_spec:  # not followed here (multi-worker, TPU): drop it
            dataset = dataset.map(lambda b: {k: v for k, v in b.items() if k != "index"})
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _input(self, restart=False):
        """The input iterator; with positioned batches it is (re)built at ``input_position``."""
        if self._iterator is None or (restart and self._track_position):
            start = int(self.input_position.numpy()) if self._track_position else 0
            dataset = self._dataset if start == 0 else self.task.build_inputs(start)
            self._iterator = self._make_iterator(dataset)
        return self._iterator

    # ----------------------------------------------------------------------------------------
    # Graph pieces.

    def _compute_loss(self, batch, training):
        # Like Keras' own train_step, run the model without AutoGraph conversion: Keras layers
        # are written for plain tracing, and AutoGraph mis-handles some of them (e.g. a layer
        # overriding __call__ with a zero-argument super() call).
        compute = tf.autograph.experimental.do_not_convert(self.task.compute_loss)
        loss, terms = compute(self.model, batch, training=training,
                              global_batch_size=self.global_batch_size)
        return (tf.cast(loss, tf.float32),
                {k: tf.cast(v, tf.float32) for k, v in terms.items()})

    def _build(self, spec):
        """Builds the model's variables and finds the loss-term names with one dummy batch."""
        batch = self.task.dummy_batch(spec)
        loss, terms = self._compute_loss(batch, training=False)
        if loss.shape.rank != 0:
            raise ValueError(f"{type(self.task).__name__}.compute_loss must return a scalar loss, "
                             f"got shape {loss.shape}")
        self.term_names = sorted(terms)
        self.update_rule = step_lib.UpdateRule(
            self.optimizer_config, self.model.trainable_variables,
            self.task.head_variables(self.model))

    @property
    def loss_names(self):
        """The names of the logged losses, in the order :meth:`run_steps` returns them."""
        name = self.task.name
        return ["loss", name, "weight_decay"] + [f"{name}/{t}" for t in self.term_names]

    def _replica_step(self, batch):
        replicas = self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            data_loss, terms = self._compute_loss(batch, training=True)
            decay = self.update_rule.weight_decay() / replicas
            loss = data_loss + decay
            scaled = self.optimizer.scale_loss(loss) if self.mixed_precision else loss
        grads = self.update_rule.gradients(tape, scaled, variables, self.optimizer)
        self.optimizer.apply(grads, variables)
        name = self.task.name
        out = {"loss": loss, name: data_loss, "weight_decay": decay}
        for term in self.term_names:
            out[f"{name}/{term}"] = terms[term]
        return out

    def _split(self, batch):
        """Global batch (host tensors) -> per-replica slices, replica i gets rows [i*b, (i+1)*b)."""
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return batch
        per = self.global_batch_size // replicas

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group
            return tf.nest.map_structure(lambda t: t[i * per:(i + 1) * per], batch)

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def _train_loop(self, iterator, num_steps):
        names = self.loss_names
        total = tf.zeros([len(names)], tf.float32)
        for _ in tf.range(num_steps):
            batch = dict(next(iterator))
            index = batch.pop("index", None)
            if index is not None and self._track_position:
                self.input_position.assign(tf.reduce_max(index) + 1)
            if self._host_split:
                batch = self._split(batch)
            per_replica = self.strategy.run(self._replica_step, args=(batch,))
            total += tf.stack([self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[n],
                                                    axis=None) for n in names])
            self.step.assign_add(1)
        total /= tf.cast(num_steps, tf.float32)
        return {n: total[i] for i, n in enumerate(names)}

    # ----------------------------------------------------------------------------------------
    # Host-side loop.

    def weights_finite(self):
        """True when every model and optimizer float variable is finite."""
        variables = list(self.model.variables) + list(self.optimizer.variables)
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
        out = self._loop_fn(self._input(), tf.constant(int(num_steps), tf.int32))
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
        return max(1, min(min(targets) - step, self.steps_per_loop))

    def preview(self):
        """The task's preview image of the current model (e.g. grey | colorized | original),
        or None."""
        return self.task.preview(self.model)

    def _write_images(self, step):
        image = self.preview()
        if image is not None:
            with self.writer.as_default(step=step):
                tf.summary.image(self.task.name, tf.convert_to_tensor(image)[None])

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
        iterator = self._input(restart=restored is not None)
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
                out = self._loop_fn(iterator, tf.constant(n, tf.int32))
                losses = {k: float(v) for k, v in out.items()}
                elapsed = time.perf_counter() - t0
                new_step = int(self.step.numpy())
                bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
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
        lr = current_learning_rate(self.optimizer)
        remaining = self.train_steps - step
        eta = remaining * self.global_batch_size / images_per_second if images_per_second else None
        scalars = {"loss/" + k: v for k, v in losses.items()}
        scalars["learning_rate"] = lr
        scalars["images_per_second"] = images_per_second
        if self.mixed_precision:
            scalars["loss_scale"] = float(np.asarray(self.optimizer.dynamic_scale))
        summaries.write_scalars(self.writer, step, scalars)
        logging.info(summaries.progress_line(step, self.train_steps, losses, lr,
                                             images_per_second, eta))


def _rng_states(model):
    """A trackable holding the Keras seed-generator states (dropout) of ``model``.

    ``tf.train.Checkpoint`` does not track Keras 3 seed generators through the model, so without
    this a resumed run would redraw the dropout masks of the first steps.
    """
    holder = tf.Module()
    holder.states = [v.value for v in model.variables if "seed_generator_state" in v.path]
    return holder


def _next_multiple(step, every):
    return (step // every + 1) * every
