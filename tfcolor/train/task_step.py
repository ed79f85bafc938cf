"""Step objects: what one training step is, for the host loop of :mod:`tfcolor.train.trainer`.

The trainer is split the way TF Model Garden's Orbit splits it, without its weight: the **host
loop** (:class:`tfcolor.train.trainer.Trainer`: cadence, checkpoints and exact resume, SIGTERM,
the NaN guard, the ``model_dir`` lock, summaries, hooks, progress) knows nothing of how many tasks
there are; a **step object** owns the model(s), optimizer(s), input streams and their trackables,
and runs ``n`` steps in one ``tf.function`` call.

* :class:`TrainStep`: the contract the host loop relies on.
* :class:`TaskStep`: one :class:`tfcolor.tasks.base.Task` -- its model, one optimizer, one input
  stream; the replica step is :class:`tfcolor.train.step.TaskUpdate`, which Keras ``fit``
  (:class:`tfcolor.train.keras_fit.TaskModel`) runs too.
* :class:`tfcolor.train.multitask_step.MultiTaskStep`: several tasks on one shared trunk.

Input position (both step kinds): when a task's batches carry ``"index"`` (each element's position
in a deterministic record stream), every step records ``max(index) + 1`` in an ``input_position``
variable, which is checkpointed (8 bytes) instead of the tf.data iterator and its buffers; on resume
the step calls ``task.build_inputs(input_position)``. Batches without ``"index"`` are resumed by
checkpointing the serialized iterator (which includes its prefetch and parallel-map buffers: large
checkpoints). Distributed iterators are not trackable and their batches are split already, so to
follow the position single-worker strategies read global batches from a plain tf.data iterator
and split them across replicas inside the step function; multi-worker and TPU strategies read
distributed datasets and restart the input on resume.
"""
import abc

import tensorflow as tf

from tfcolor.config import OptimizerConfig
from tfcolor.tasks import base as task_lib
from tfcolor.train import optimizers as optimizers_lib
from tfcolor.train import step as step_lib

__all__ = ["TrainStep", "TaskStep", "InputStream", "rng_states"]


class TrainStep(abc.ABC):
    """What the host loop needs of a step object.

    Attributes:
        model: the model the run trains (previews, hooks, export).
        optimizer: the optimizer whose learning rate is logged.
        step: the global step, an int64 ``tf.Variable`` (checkpointed).
        images_per_step: input elements consumed per step (throughput).
        mixed_precision: whether losses are scaled.
    """

    model = None
    optimizer = None
    step = None
    images_per_step = None
    mixed_precision = False

    @abc.abstractmethod
    def checkpoint_parts(self):
        """``(iterator, input_position, trackables)`` for
        :class:`tfcolor.train.checkpointing.Checkpointer`: the iterator to save whole (or None),
        the trackable input position (or None) and a dict of the other objects."""

    @abc.abstractmethod
    def restart_inputs(self, restored):
        """Rebuilds the input streams at their checkpointed positions (``restored``: a
        checkpoint was restored)."""

    @abc.abstractmethod
    def run(self, num_steps):
        """Runs ``num_steps`` steps in one ``tf.function`` call; returns ``{name: mean value}``
        (float32 scalars) over them."""

    def next_boundary(self, step):  # pylint: disable=unused-argument
        """The next step at which a ``run`` call must end (e.g. a round-robin task switch), or
        None."""
        return None

    def variables(self):
        """The float state checked to be finite before every checkpoint."""
        return list(self.model.variables) + list(self.optimizer.variables)

    def preview(self):
        """``{name: (H, W, 3) image}`` summarising the current model (may be empty)."""
        return {}

    def summary_scalars(self):
        """Extra scalars for each summary (``{name: float}``)."""
        scalars = {"learning_rate": optimizers_lib.current_learning_rate(self.optimizer)}
        if self.mixed_precision and hasattr(self.optimizer, "dynamic_scale"):
            scalars["loss_scale"] = float(tf.convert_to_tensor(self.optimizer.dynamic_scale))
        return scalars


class InputStream:
    """One task's input stream, resumable by position or by its checkpointed iterator.

    Args:
        task: the task (its ``build_inputs(start)``).
        dataset: ``task.build_inputs(0)``.
        strategy: the run's strategy.
        host_split: read global batches from a plain tf.data iterator and split them across
            replicas in the step (single worker); False: a distributed iterator.
        name: the position variable's name.
    """

    def __init__(self, task, dataset, strategy, *, host_split, name="input_position"):
        self.task = task
        self.dataset = dataset
        self.strategy = strategy
        self.host_split = bool(host_split)
        self.positioned = "index" in dataset.element_spec
        self.track_position = self.host_split and self.positioned
        with strategy.scope():
            self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
        self.global_batch_size = task.batch_size(dataset.element_spec)
        self.iterator = None
        if not self.positioned:
            self.iterator = self._make_iterator(dataset)

    @property
    def saved_iterator(self):
        """The iterator to checkpoint whole (unpositioned single-worker input), or None."""
        return self.iterator if (self.host_split and not self.positioned) else None

    def _make_iterator(self, dataset):
        if self.host_split:
            return iter(dataset)
        if "index" in dataset.element_spec:  # not followed here (multi-worker, TPU): drop it
            dataset = dataset.map(lambda b: {k: v for k, v in b.items() if k != "index"})
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def get(self, restart=False):
        """The iterator; with positioned batches it is (re)built at ``position``."""
        if self.iterator is None or (restart and self.track_position):
            start = int(self.position.numpy()) if self.track_position else 0
            # The built dataset serves the first iterator at 0 only: a second iteration of it
            # may not repeat its first order (shuffles reshuffle each iteration).
            dataset = (self.dataset if start == 0 and self.iterator is None
                       else self.task.build_inputs(start))
            self.iterator = self._make_iterator(dataset)
        return self.iterator

    def next_batch(self, iterator):
        """The next batch (graph code): records the position, splits host batches across
        replicas."""
        batch = dict(next(iterator))
        index = batch.pop("index", None)
        if index is not None and self.track_position:
            self.position.assign(tf.reduce_max(index) + 1)
        if self.host_split:
            batch = split_across_replicas(self.strategy, batch, self.global_batch_size)
        return batch


def split_across_replicas(strategy, batch, global_batch_size):
    """Global batch (host tensors) -> per-replica slices; replica i gets rows [i*b, (i+1)*b)."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return batch
    per = global_batch_size // replicas

    def value_fn(ctx):
        i = ctx.replica_id_in_sync_group
        return tf.nest.map_structure(lambda t: t[i * per:(i + 1) * per], batch)

    return strategy.experimental_distribute_values_from_function(value_fn)


def resolve_checkpoint_iterator(strategy, checkpoint_iterator):
    """``checkpoint_iterator`` ("auto", True or False) for ``strategy``: True means single-worker
    host-split input whose position (or iterator) is checkpointed."""
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    tpu = isinstance(strategy, (tf.distribute.TPUStrategy,))
    if checkpoint_iterator == "auto":
        return not (multi_worker or tpu)
    if checkpoint_iterator and (multi_worker or tpu):
        raise ValueError("checkpoint_iterator=True is not supported with multi-worker or TPU "
                         "strategies (see tfcolor.train.checkpointing)")
    return bool(checkpoint_iterator)


def check_dataset(task, dataset, strategy):
    """The global batch size of ``task``'s ``dataset`` after checking it fits ``strategy``."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"{type(task).__name__}.build_inputs must return a tf.data.Dataset, "
                        f"got {type(dataset).__name__}")
    spec = dataset.element_spec
    task.check_inputs(spec)
    size = task.batch_size(spec)
    if size is None:
        raise ValueError("the dataset must have a static batch size (batch with "
                         f"drop_remainder=True); got {spec}")
    replicas = strategy.num_replicas_in_sync
    if size % replicas:
        raise ValueError(f"global batch size {size} is not divisible by the {replicas} replicas "
                         "of the strategy")
    return size


class TaskStep(TrainStep):
    """One task, one optimizer, one input stream (see the module docstring).

    Args:
        task: a :class:`tfcolor.tasks.base.Task`.
        strategy: a ``tf.distribute.Strategy``.
        train_steps: the run's length (for the learning-rate schedule).
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig`.
        mixed_precision: wrap the optimizer in a ``LossScaleOptimizer``.
        checkpoint_iterator: ``"auto"``, True or False (see
            :func:`resolve_checkpoint_iterator`).
    """

    def __init__(self, task, *, strategy, train_steps, optimizer_config=None,
                 mixed_precision=False, checkpoint_iterator="auto"):
        if not isinstance(task, task_lib.Task):
            raise TypeError(f"task must be a tfcolor.tasks.base.Task, got {type(task).__name__}")
        self.task = task
        self.strategy = strategy
        self.optimizer_config = (optimizer_config or OptimizerConfig()).validate()
        self.mixed_precision = mixed_precision
        host_split = resolve_checkpoint_iterator(strategy, checkpoint_iterator)
        dataset = task.build_inputs(0)
        self.global_batch_size = check_dataset(task, dataset, strategy)
        self.images_per_step = self.global_batch_size
        with strategy.scope():
            self.model = task.build_model()
            self.optimizer = optimizers_lib.make_optimizer(self.optimizer_config, train_steps,
                                                           mixed_precision=mixed_precision)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.update = step_lib.TaskUpdate(task, self.model, self.optimizer_config,
                                              dataset.element_spec, self.global_batch_size)
            step_lib.disable_optimizer_all_reduce(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.inputs = InputStream(task, dataset, strategy, host_split=host_split)
        # No AutoGraph: the loop is an explicit tf.while_loop (AutoGraph's cache of converted
        # methods has been seen to return another method's conversion in long processes).
        self._loop_fn = tf.function(self._train_loop, autograph=False)

    # -- the contract -----------------------------------------------------------------------

    @property
    def loss_names(self):
        return self.update.loss_names

    @property
    def input_position(self):
        return self.inputs.position

    def checkpoint_parts(self):
        trackables = dict(model=self.model, optimizer=self.optimizer, step=self.step,
                          layer_rng=rng_states(self.model))
        position = self.inputs.position if self.inputs.track_position else None
        return self.inputs.saved_iterator, position, trackables

    def restart_inputs(self, restored):
        self.inputs.get(restart=restored)

    def run(self, num_steps):
        return self._loop_fn(self.inputs.get(), tf.constant(int(num_steps), tf.int32))

    def preview(self):
        image = self.task.preview(self.model)
        return {} if image is None else {self.task.name: image}

    # -- graph ------------------------------------------------------------------------------

    def _replica_step(self, batch):
        return self.update.train_step(batch, self.optimizer)

    def _train_loop(self, iterator, num_steps):
        names = self.loss_names

        def body(i, total):
            batch = self.inputs.next_batch(iterator)
            per_replica = self.strategy.run(self._replica_step, args=(batch,))
            total += tf.stack([self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[n],
                                                    axis=None) for n in names])
            self.step.assign_add(1)
            return i + 1, total

        return mean_of_loop(body, num_steps, names)


def mean_of_loop(body, num_steps, names):
    """Runs ``body(i, total) -> (i + 1, total + values)`` ``num_steps`` times in a
    ``tf.while_loop`` from zeros; returns ``{name: mean value}``."""
    start = (tf.constant(0, tf.int32), tf.zeros([len(names)], tf.float32))
    _, total = tf.while_loop(lambda i, _: i < num_steps, body, start)
    total /= tf.cast(num_steps, tf.float32)
    return {n: total[i] for i, n in enumerate(names)}


def rng_states(model):
    """A trackable holding the Keras seed-generator states (dropout) of ``model``.

    ``tf.train.Checkpoint`` does not track Keras 3 seed generators through the model, so without
    this a resumed run would redraw the dropout masks of the first steps.
    """
    holder = tf.Module()
    holder.states = [v.value for v in model.variables if "seed_generator_state" in v.path]
    return holder
