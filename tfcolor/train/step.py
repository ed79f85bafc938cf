"""The parts of one training step that do not depend on the task, shared by the generic trainer
(:mod:`tfcolor.train.trainer`) and Keras ``fit`` (:mod:`tfcolor.train.keras_fit`).

:class:`UpdateRule` holds, for one model and a :class:`tfcolor.config.OptimizerConfig`:

* the weight decay: an L2 term ``0.5 * wd * ||w||^2`` on kernels (Caffe's convention, as in the
  paper's released solver), with ``head_weight_decay`` on the task's head variables; each
  replica adds ``weight_decay() / replicas`` to its share of the loss, so that the summed
  gradients hold it once;
* the gradient rule: gradients of the (loss-scaled) loss are summed across replicas once, in the
  replica context, then clipped by global norm (``clip_norm``; so clipping sees the true global
  gradient, which Keras' per-replica ``clipnorm`` would not; under a ``LossScaleOptimizer`` the
  bound is scaled like the gradients), and bias gradients are multiplied by
  ``bias_lr_multiplier`` (Caffe's ``lr_mult: 2``; with SGD exactly a per-variable learning
  rate).

The optimizer must not sum the gradients again: :func:`disable_optimizer_all_reduce`. Then the
loss-scale optimizer's finiteness check also sees the global gradient on every replica.

:class:`TaskUpdate` is one replica's training step of one task (its loss, the weight decay, the
rule, the optimizer's update, the logged values): the custom loop's single-task step
(:class:`tfcolor.train.task_step.TaskStep`) and Keras ``fit``
(:class:`tfcolor.train.keras_fit.TaskModel`) both run it, so they cannot drift apart.
"""
import keras
import tensorflow as tf

__all__ = ["UpdateRule", "TaskUpdate", "disable_optimizer_all_reduce"]


def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)


def disable_optimizer_all_reduce(optimizer):
    """The step sums gradients across replicas itself; the Keras optimizer must not sum again."""
    inner = _inner(optimizer)
    if not hasattr(inner, "_all_reduce_sum_gradients"):
        raise RuntimeError("this Keras version's TF optimizer has no _all_reduce_sum_gradients; "
                           "the training step cannot control the cross-replica gradient sum")
    inner._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)  # pylint: disable=protected-access


class UpdateRule:
    """Weight decay and gradient processing of ``variables``; see the module docstring.

    Args:
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig` (``weight_decay``,
            ``head_weight_decay``, ``bias_lr_multiplier``, ``clip_norm`` are read).
        variables: the trainable variables, in the order the gradients will come in.
        head_variables: the variables that get ``head_weight_decay``.
    """

    def __init__(self, optimizer_config, variables, head_variables=()):
        self.config = optimizer_config
        head_ids = {id(v) for v in head_variables}
        wd = optimizer_config.weight_decay
        hwd = optimizer_config.head_weight_decay
        hwd = wd if hwd is None else hwd
        self.decayed = []  # (variable, rate)
        self.bias_mask = []
        for v in variables:
            self.bias_mask.append(len(v.shape) == 1 and "bias" in v.name)
            rate = hwd if id(v) in head_ids else wd
            if len(v.shape) >= 2 and rate > 0:
                self.decayed.append((v, rate))

    def weight_decay(self):
        """``sum 0.5 * rate * ||w||^2`` over the decayed kernels, float32 (whole, not per
        replica)."""
        if not self.decayed:
            return tf.constant(0.0, tf.float32)
        return tf.add_n([0.5 * rate * tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
                         for v, rate in self.decayed])

    def gradients(self, tape, loss, variables, optimizer):
        """The gradients to pass to ``optimizer.apply``: of ``loss`` (already loss-scaled if
        the optimizer scales), summed across replicas, clipped, bias-multiplied. Call in the
        replica context."""
        # Zeros for variables the loss does not reach (e.g. layers after the tap a frozen or
        # partial network reads), filled here: the tape's UnconnectedGradients.ZERO fails on
        # Keras 3 variables, whose dtype is a string.
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros(v.shape, v.dtype) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, variables)]
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        clip = self.config.clip_norm
        if clip is not None:
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                clip = clip * optimizer.dynamic_scale  # the gradients are still scaled
            grads, _ = tf.clip_by_global_norm(grads, clip)
        mult = self.config.bias_lr_multiplier
        if mult != 1.0:
            grads = [g * mult if is_bias else g for g, is_bias in zip(grads, self.bias_mask)]
        return grads


class TaskUpdate:
    """One replica's training step of one task (see the module docstring).

    Builds the model's variables with one dummy batch (``task.compute_loss`` on one all-zero
    element) and finds the task's logged terms.

    Its methods are plain TensorFlow (no Python control flow on tensors) and are not converted
    by AutoGraph when a ``tf.function`` calls them: AutoGraph's cache of converted methods has
    been seen to call them without ``self`` in a process that traced other functions first.

    Args:
        task: a :class:`tfcolor.tasks.base.Task`.
        model: its model.
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig`.
        element_spec: the ``element_spec`` of the task's batches.
        global_batch_size: rows in a global batch (the loss's normaliser).

    Attributes:
        loss_names: ``loss`` (data + weight decay), ``<task>`` (data), ``weight_decay``,
            ``<task>/<term>``: the order of :meth:`values`.
        rule: the :class:`UpdateRule`.
    """

    def __init__(self, task, model, optimizer_config, element_spec, global_batch_size):
        self.task = task
        self.model = model
        self.global_batch_size = global_batch_size
        loss, terms = self.loss(task.dummy_batch(element_spec), training=False,
                                global_batch_size=1)
        if loss.shape.rank != 0:
            raise ValueError(f"{type(task).__name__}.compute_loss must return a scalar loss, "
                             f"got shape {loss.shape}")
        self.term_names = sorted(terms)
        name = task.name
        self.loss_names = (["loss", name, "weight_decay"]
                           + [f"{name}/{t}" for t in self.term_names])
        self.rule = UpdateRule(optimizer_config, model.trainable_variables,
                               task.head_variables(model))

    @tf.autograph.experimental.do_not_convert
    def loss(self, batch, training, global_batch_size=None):
        """``(data loss, terms)`` of this replica's batch, float32."""
        # Like Keras' own train_step, run the model without AutoGraph conversion: Keras layers
        # are written for plain tracing, and AutoGraph mis-handles some of them (e.g. a layer
        # overriding __call__ with a zero-argument super() call).
        compute = tf.autograph.experimental.do_not_convert(self.task.compute_loss)
        loss, terms = compute(self.model, batch, training=training,
                              global_batch_size=global_batch_size or self.global_batch_size)
        return (tf.cast(loss, tf.float32),
                {k: tf.cast(v, tf.float32) for k, v in terms.items()})

    @tf.autograph.experimental.do_not_convert
    def values(self, data_loss, decay, terms):
        """The logged values in :attr:`loss_names` order."""
        return [data_loss + decay, data_loss, decay] + [terms[t] for t in self.term_names]

    @tf.autograph.experimental.do_not_convert
    def train_step(self, batch, optimizer):
        """One update in the replica context; returns ``{name: this replica's share}``."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            data_loss, terms = self.loss(batch, training=True)
            decay = self.rule.weight_decay() / replicas
            scaled = optimizer.scale_loss(data_loss + decay)
        grads = self.rule.gradients(tape, scaled, variables, optimizer)
        optimizer.apply(grads, variables)
        return dict(zip(self.loss_names, self.values(data_loss, decay, terms)))
