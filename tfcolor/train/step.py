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
"""
import keras
import tensorflow as tf

__all__ = ["UpdateRule", "disable_optimizer_all_reduce"]


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
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        grads = [tf.convert_to_tensor(g) for g in grads]
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
