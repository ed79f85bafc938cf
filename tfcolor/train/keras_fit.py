"""Keras-native training: ``compile()`` + ``fit()`` for the model of any task.

For users who import the layers and never touch ``binaries/``: :class:`TaskModel` wraps a
:class:`tfcolor.tasks.base.Task` and the model it builds in a ``keras.Model`` whose
``train_step`` is the generic trainer's replica step (:mod:`tfcolor.train.trainer`), so
``model.fit`` trains any task with Keras callbacks (``TensorBoard``, ``BackupAndRestore``,
``EarlyStopping``, ...) under any ``tf.distribute`` strategy::

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = TaskModel(task, optimizer_config=opt)        # builds task.build_model()
        model.compile(optimizer=make_optimizer(opt, steps))    # tfcolor.train.make_optimizer
    model.fit(task.build_inputs(), epochs=steps // 100, steps_per_epoch=100,
              callbacks=[keras.callbacks.TensorBoard(log_dir),
                         keras.callbacks.BackupAndRestore(backup_dir)])

One training step (``train_step``, run by Keras in every replica) is the trainer's:

1. ``task.compute_loss(model, batch, training=True, global_batch_size=B)``: this replica's share
   of the global mean data loss (the batch's ``"index"``, if any, is dropped);
2. plus the Caffe-style L2 weight decay ``0.5 * wd * ||w||^2`` on kernels divided by the number
   of replicas (``head_weight_decay`` on :meth:`~tfcolor.tasks.base.Task.head_variables`);
3. gradients summed across replicas once, by the step (the optimizer's own cross-replica sum is
   disabled in :meth:`TaskModel.compile`), then clipped by global norm (``clip_norm``), bias
   gradients multiplied by ``bias_lr_multiplier``, and applied by the optimizer.

Steps 2 and 3 are :class:`tfcolor.train.step.UpdateRule`.

Mixed precision is Keras' own path: with the ``mixed_float16`` policy set before the
``TaskModel`` is built, ``compile`` wraps the optimizer in a ``keras.optimizers.LossScaleOptimizer``
(or pass ``make_optimizer(..., mixed_precision=True)``); the step scales the loss with
``optimizer.scale_loss`` and the loss-scale optimizer unscales and skips non-finite steps.

The input starts once: the model is built in the constructor (one dummy batch through
``task.compute_loss``, as the trainer does), so ``TaskModel`` skips Keras' symbolic build, which
under a strategy draws a batch from a first iterator and restarts the input (a pipeline that
reshuffles on every iteration would then train in its second iteration's order).

Logged values (Keras logs, ``History``, ``TensorBoard``): ``loss`` (data + weight decay),
``<task.name>`` (data loss), ``weight_decay`` and ``<task.name>/<term>``, the trainer's names;
Keras reports their running mean over the epoch, so an epoch of ``S`` steps logs the mean the
trainer logs for a loop of ``S`` steps. ``tests/train/test_keras_fit.py`` checks that ``fit`` and
the trainer give the same losses and final weights on a deterministic run, on one device and
under ``MirroredStrategy``.

What ``fit`` does not do that the trainer does: the trainer's checkpoints (input position,
``model_dir`` lock, validation of damaged files), its NaN guard (use
``keras.callbacks.TerminateOnNaN``) and SIGTERM handling (``BackupAndRestore`` with
``save_freq`` covers preemption at batch granularity). ``BackupAndRestore`` restores the
weights, the optimizer (its step counter, hence the learning-rate schedule) and the epoch, but
Keras restarts the input pipeline at its first batch: a resumed run is the uninterrupted one
only when every epoch reads the same batches (a finite dataset of one epoch, e.g.
``task.build_inputs().take(steps_per_epoch)``); with a stream (``steps_per_epoch`` on a
repeating dataset) the resumed run reads the stream from its start again.

The colorizer also trains as a plain Keras model without a task:
``Colorizer.compile(optimizer, loss=tfcolor.losses.HueChromaLoss())`` and ``fit`` on
``({"gray": ..., "centers": ...}, targets)`` batches (see :mod:`tfcolor.models.colorizer`);
that path has no Caffe weight decay or bias multiplier.
"""
import dataclasses

import keras
import tensorflow as tf

from tfcolor.config import OptimizerConfig
from tfcolor.tasks import base as task_lib
from tfcolor.train import step as step_lib

__all__ = ["TaskModel"]


@keras.saving.register_keras_serializable(package="tfcolor")
class TaskModel(keras.Model):
    """A task's model as a ``keras.Model`` that ``fit`` trains with the trainer's step.

    Build it (and ``compile`` it) inside ``strategy.scope()``.

    Args:
        task: a :class:`tfcolor.tasks.base.Task`.
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig`; its ``weight_decay``,
            ``head_weight_decay``, ``bias_lr_multiplier`` and ``clip_norm`` are applied by the
            step (the learning rate and momentum belong to the optimizer passed to ``compile``,
            e.g. ``make_optimizer(optimizer_config, train_steps)``).
        element_spec: the ``element_spec`` of the task's batches (default: that of
            ``task.build_inputs(0)``); fixes the global batch size.
        network: the task's model, if already built (default: ``task.build_model()``).
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``).

    Attributes:
        network: the task's model (``TaskModel(x)`` calls it).
        task: the task.
        global_batch_size: rows in a global batch.
        loss_names: the logged names, in the trainer's order.
    """

    def __init__(self, task, *, optimizer_config=None, element_spec=None, network=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(task, task_lib.Task):
            raise TypeError(f"task must be a tfcolor.tasks.base.Task, got {type(task).__name__}")
        optimizer_config = OptimizerConfig() if optimizer_config is None else optimizer_config
        if isinstance(optimizer_config, dict):
            optimizer_config = OptimizerConfig(**optimizer_config)
        self.optimizer_config = optimizer_config.validate()
        self.task = task
        if element_spec is None:
            element_spec = task.build_inputs(0).element_spec
        task.check_inputs(element_spec)
        self.global_batch_size = task.batch_size(element_spec)
        if self.global_batch_size is None:
            raise ValueError("the dataset must have a static batch size (batch with "
                             f"drop_remainder=True); got {element_spec}")
        self.network = task.build_model() if network is None else network
        # Build the variables and find the loss-term names with one dummy batch: the step is
        # the custom loop's (tfcolor.train.step.TaskUpdate).
        self._update = step_lib.TaskUpdate(task, self.network, self.optimizer_config,
                                           element_spec, self.global_batch_size)
        if not self.network.built:
            # A subclassed model whose variables the loss created through another method than
            # __call__ (e.g. ``sparse``): built, or Keras would build it by calling it on a
            # whole task batch before fit.
            self.network.built = True
        self.term_names = self._update.term_names
        self.loss_names = self._update.loss_names
        self._trackers = [keras.metrics.Mean(name=n) for n in self.loss_names]
        self._rule = self._update.rule
        self.built = True

    # -- Keras API --------------------------------------------------------------------------

    @property
    def metrics(self):
        return list(self._trackers)

    def compile(self, optimizer="sgd", **kwargs):
        """``keras.Model.compile``; ``loss`` and ``metrics`` are not accepted (the task defines
        the loss), ``jit_compile`` defaults to False (the trainer's numerics).

        The optimizer's own cross-replica gradient sum is disabled: the step sums gradients
        once, before clipping.
        """
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(f"TaskModel.compile: {key}= is not accepted; the task's "
                                 "compute_loss is the loss and its terms are logged")
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, **kwargs)
        step_lib.disable_optimizer_all_reduce(self.optimizer)

    def compile_from_config(self, config):
        """Compiles from ``get_compile_config()`` when a ``.keras`` file is loaded (Keras skips
        compiling a model whose ``compile`` is overridden unless this is overridden too)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.network.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):  # pylint: disable=unused-argument
        # Keras' TF trainer (under a strategy) draws one batch from a first iterator to build
        # the model symbolically, then restarts the input: the pipeline would start twice and,
        # with tf.data's default reshuffle_each_iteration, fit would train on the second
        # iteration's order (not the trainer's). Everything but the optimizer is built in
        # __init__, so only the optimizer is built here.
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            with self.distribute_strategy.scope():
                optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        """Calls the task's model."""
        return self.network(inputs, training=training)

    def train_step(self, data):
        replicas = self.distribute_strategy.num_replicas_in_sync
        values = self._update.train_step(self._batch(data), self.optimizer)
        return self._record([values[n] for n in self.loss_names], replicas)

    def test_step(self, data):
        batch = self._batch(data)
        replicas = self.distribute_strategy.num_replicas_in_sync
        data_loss, terms = self._update.loss(batch, training=False)
        decay = self._rule.weight_decay() / replicas
        return self._record(self._update.values(data_loss, decay, terms), replicas)

    def get_config(self):
        """Needs a serialisable task (``get_config``/``from_config``, registered with
        ``keras.saving.register_keras_serializable``); the network is rebuilt by the task."""
        if not callable(getattr(self.task, "get_config", None)):
            raise NotImplementedError(
                f"TaskModel.get_config: {type(self.task).__name__} has no get_config(); give the "
                "task get_config()/from_config() and register it with "
                "keras.saving.register_keras_serializable, or save weights only "
                "(save_weights, BackupAndRestore)")
        config = super().get_config()
        config.update(task=keras.saving.serialize_keras_object(self.task),
                      optimizer_config=dataclasses.asdict(self.optimizer_config))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        task = keras.saving.deserialize_keras_object(config.pop("task"))
        return cls(task, **config)

    # -- the step's pieces ------------------------------------------------------------------

    def _batch(self, data):
        if not isinstance(data, dict):
            raise ValueError(f"TaskModel trains on the task's batches (dicts of tensors); got "
                             f"{type(data).__name__}. Feed task.build_inputs() to fit.")
        return {k: v for k, v in data.items() if k != "index"}

    def _record(self, values, replicas):
        # Each replica holds its share of the global mean; Keras means the trackers over the
        # replicas, so they record share x replicas (as Keras' own loss tracker does).
        for tracker, value in zip(self._trackers, values):
            tracker.update_state(value * replicas)
        return {t.name: t.result() for t in self._trackers}
