"""How the gradients of several tasks over one shared base (trunk) and one head per task become one
update: joint SGD (:class:`SumRule`), NormSGD (:class:`NormSGDRule`) and one adaptive optimizer per
task (:class:`SeparateRule`). These are the multi-task peers of
:class:`tfcolor.train.step.UpdateRule` and keep its conventions: gradients are summed across
replicas exactly once, in the replica context, then weight decay, clipping by global norm and
the bias multiplier are applied; the optimizer's own cross-replica sum must be disabled
(:func:`tfcolor.train.step.disable_optimizer_all_reduce`).

Notation: M tasks, ``g_m`` task m's gradient over the base (the gradient of its data loss, this
replica's share of the global mean, summed over replicas), ``h_m`` its gradient over its own head,
``w_m`` its task weight, P the number of scalars in the base.

* :class:`SumRule` (eq. 4.9): ``base <- (1/M) sum_m w_m g_m``, head m ``<- (w_m/M) h_m``: the
  gradient of the weighted mean loss (``reduction="sum"`` drops the 1/M).
* :class:`NormSGDRule` (eq. 4.11 and §8.3.4): ``base <- (1/M) sum_m w_m g_m / (s_m + eps)`` with
  ``s_m`` a per-task running statistic of ``mean_p |g_m,p| = ||g_m||_1 / P`` (one scalar per task,
  over every base parameter), frozen at ``freeze_step``; head m ``<- (w_m/M) h_m / (s_m + eps)``;
  then weight decay is added and the trainer's momentum-SGD optimizer applies the result. Every
  normalised task gradient has the same L1 norm, so multiplying a task's loss by a constant leaves
  every update unchanged (up to ``eps``).
* :class:`SplitWeightsRule` (split-weights, §8.2.2): every base weight belongs to the task of
  the column of its destination unit (:func:`tfcolor.models.split.column_masks`; task m owns
  column m) and gets that task's gradient only, ``base <- sum_m w_m mask_m * g_m``; head m
  ``<- w_m h_m``. No 1/M: each parameter gets its one owner's whole gradient, as if the task
  trained alone (so equal task gradients give the mean rule's update).
* :class:`SeparateRule` (eq. 4.10, "multi-Adam"): one optimizer per task, owned by the rule;
  optimizer m applies ``g_m`` (base) and ``h_m`` (head m); the update is ``sum_m optimizer_m(g_m)``,
  so eq. 4.10's 1/M belongs in each optimizer's learning rate (:attr:`SeparateRule.rate_factor`).

Weight decay is *not* a loss term here (unlike :class:`~tfcolor.train.step.UpdateRule`): the
rules add its gradient ``rate * w`` (of ``0.5 * rate * ||w||^2`` on kernels, Caffe's convention;
``weight_decay`` on base kernels, ``head_weight_decay`` on head kernels) to the aggregated
gradient, after the normalisation, so the task losses given to :func:`task_gradients` must be data
losses only. With one task and :class:`SumRule` this is today's single-task update.

Tasks that are missing from a call's gradients are inactive in that step (round-robin): M counts
the active tasks, inactive tasks' heads are left out of the update (their momentum does not move
them) and their statistics do not change.

Mixed precision: the gradients come in multiplied by the loss scale (the ``LossScaleOptimizer``'s
``dynamic_scale``, see :func:`loss_scales`). The rules divide by it first, so the NormSGD
statistic and the logged norms are of unscaled gradients, and multiply the result by it again,
so the loss-scale optimizer's finiteness check and unscaling work as usual. Non-finite gradients
of a task do not change its statistic; the update is then non-finite, which the loss-scale
optimizer skips (a task with finite gradients in such a step still updates its statistic: it is a
valid measurement). ``clip_norm`` applies to the combined, unscaled gradient (for NormSGD, in
normalised units).

Each call returns log-friendly per-task norms of the (global, unscaled) base gradient:
``<task>/grad_l1_mean`` (``||g_m||_1 / P``), ``<task>/grad_l2`` and, for NormSGD,
``<task>/grad_normaliser`` (the ``s_m`` in use). They are identical on every replica: reduce them
across replicas with ``MEAN``, not ``SUM``.

State: every rule is a ``tf.Module`` (a trackable: put it in the ``tf.train.Checkpoint``); create it
inside ``strategy.scope()``. NormSGD's running statistics and their update counts are variables;
:class:`SeparateRule` owns its optimizers.

Defaults and where they come from (METHOD_CH4.md §8.3; "not specified" there means the dissertation
does not say):

* ``reduction="mean"`` (:class:`SumRule`): eq. 4.9 uses the mean.
* ``task_weights`` all 1. Under NormSGD they weight the *normalised* gradients (votes)
  **[interpretation]**: a weight on the raw gradient would be normalised away.
* ``average_heads=True``: a head gets its task's share ``w_m/M`` like the base, i.e. eqs. 4.9/4.10
  read over the whole parameter vector, where task m's gradient is zero on the other heads
  **[interpretation]**; ``False`` gives each head its task's whole gradient, as if alone.
* ``ema_decay=0.99`` **[interpretation]**: whether the statistic is per iteration or a running
  average is not specified; ``0`` is eq. 4.11 per iteration. The average is zero-debiased
  (divided by ``1 - decay**n`` after n updates), so early steps use the measurements seen so far.
* ``freeze_step``: required; the statistic is updated by the steps ``step < freeze_step`` and
  frozen after (§8.3.4: "after the initial warm-up phase and before the first learning-rate drop";
  the iteration is not specified). :func:`default_freeze_step` gives one **[interpretation]**. A
  task never measured before the freeze (round-robin) takes its first measurement.
* ``normalize_heads=True`` **[interpretation]**: not specified; without it a task's loss scale
  still sets its head's step, and the loss-scale invariance of §8.3.2 holds only for the base.
* ``decay_after_normalisation=True``: not specified; after, the decay does not depend on any
  task's loss scale (the invariance is exact) and is counted once. ``False`` adds ``rate * w`` to
  every task's gradient before normalising (the released TF code put a weight-decay term in each
  task's loss).
* ``epsilon=1e-12`` **[interpretation]**: not specified; it only guards a task whose base gradient
  is exactly zero, and is far below any mean absolute gradient met in practice, so it leaves the
  invariance intact (an Adam-like 1e-5 would not: mean absolute gradients can be that small).
* Momentum (0.9), learning rate and its warm-up belong to the optimizer and its schedule
  (:class:`tfcolor.config.OptimizerConfig`); NormSGD is this rule followed by momentum SGD.
"""
import keras
import numpy as np
import tensorflow as tf

from tfcolor.config import OptimizerConfig
from tfcolor.train import step as step_lib

__all__ = ["GradientRule", "SumRule", "NormSGDRule", "SeparateRule", "SplitWeightsRule", "RULES",
           "make_rule",
           "task_gradients", "loss_scales", "default_freeze_step"]


def _scale_of(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.cast(tf.convert_to_tensor(optimizer.dynamic_scale), tf.float32)
    return None


def loss_scales(tasks, optimizer=None, rule=None):
    """``{task: scale}`` to pass to :func:`task_gradients`: the loss-scale optimizer's dynamic
    scale (:class:`SeparateRule`: each task's own optimizer's), or None without loss scaling."""
    if isinstance(rule, SeparateRule):
        return {t: _scale_of(rule.optimizers[t]) for t in tasks}
    return {t: _scale_of(optimizer) for t in tasks}


def task_gradients(tape, task_losses, base_variables, head_variables, scales=None):
    """Each task's gradients over the base and over its own head, summed across replicas once.

    Call in the replica context (or without a strategy). ``tape`` must be persistent when there
    are several tasks. Variables a loss does not reach get zeros.

    Args:
        tape: the ``tf.GradientTape`` that recorded the losses.
        task_losses: ``{task: loss}``: this replica's share of each task's global mean data
            loss (no weight decay: the rules add it), float32 scalars.
        base_variables: the shared variables.
        head_variables: ``{task: [variables of its head]}``.
        scales: ``{task: loss scale or None}`` (:func:`loss_scales`); the gradients come out
            multiplied by it (the loss is not scaled on the tape: the scale seeds the backward
            pass, which is the same computation).

    Returns:
        ``(task_grads, head_grads)``: ``{task: [gradients over base_variables]}`` and
        ``{task: [gradients over head_variables[task]]}``, float32 tensors.
    """
    base_variables = list(base_variables)
    scales = scales or {}
    flat, sizes = [], []
    for task, loss in task_losses.items():
        heads = list(head_variables.get(task, ()))
        scale = scales.get(task)
        seed = None if scale is None else tf.cast(scale, loss.dtype)
        variables = base_variables + heads
        # Zeros filled in here: the tape's own UnconnectedGradients.ZERO fails on Keras 3
        # variables (their dtype is a string).
        grads = tape.gradient(loss, variables, output_gradients=seed)
        flat.extend(tf.zeros(v.shape, tf.float32) if g is None
                    else tf.cast(tf.convert_to_tensor(g), tf.float32)
                    for g, v in zip(grads, variables))
        sizes.append((task, len(heads)))
    if flat:
        flat = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, flat)
    task_grads, head_grads = {}, {}
    i, nb = 0, len(base_variables)
    for task, nh in sizes:
        task_grads[task] = list(flat[i:i + nb])
        head_grads[task] = list(flat[i + nb:i + nb + nh])
        i += nb + nh
    return task_grads, head_grads


def default_freeze_step(warmup_steps, first_drop_step):
    """**[interpretation]** Where NormSGD freezes its statistics when the run does not say: one
    warm-up length after the linear warm-up ends (the gradient norm has finished its early climb,
    fig. 4.4), but never later than midway between the end of the warm-up and the first drop
    (§8.3.4: after the warm-up, before the first drop). Without warm-up: midway to the first drop.
    """
    warmup_steps, first_drop_step = int(warmup_steps), int(first_drop_step)
    if warmup_steps < 0 or first_drop_step <= warmup_steps:
        raise ValueError(f"the first learning-rate drop ({first_drop_step}) must come after the "
                         f"warm-up ({warmup_steps} steps)")
    midway = warmup_steps + (first_drop_step - warmup_steps) // 2
    if warmup_steps == 0:
        return max(1, midway)
    return max(1, min(2 * warmup_steps, midway))


class GradientRule(tf.Module):
    """What the three rules share; see the module docstring.

    Args:
        tasks: task names, in order (the order of the heads in the update).
        base_variables: the shared trainable variables (P = their number of scalars).
        head_variables: ``{task: [its head's trainable variables]}``.
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig` (``weight_decay``,
            ``head_weight_decay``, ``bias_lr_multiplier``, ``clip_norm`` are read).
        task_weights: ``{task: weight}`` (missing tasks: 1).
        average_heads: heads get their task's share ``w_m/M`` (else ``w_m``).
    """

    def __init__(self, tasks, base_variables, head_variables, optimizer_config=None, *,
                 task_weights=None, average_heads=True, name=None):
        super().__init__(name=name)
        tasks = list(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct names, at least one; got {tasks!r}")
        unknown = sorted(set(head_variables) - set(tasks))
        if unknown:
            raise ValueError(f"head variables for tasks that are not in {tasks}: {unknown}")
        weights = dict(task_weights or {})
        unknown = sorted(set(weights) - set(tasks))
        if unknown:
            raise ValueError(f"task weights for tasks that are not in {tasks}: {unknown}")
        for task, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise ValueError(f"task weight of {task!r} must be a positive number, got {w!r}")
        self.tasks = tasks
        self.task_weights = {t: float(weights.get(t, 1.0)) for t in tasks}
        self.average_heads = bool(average_heads)
        self.config = (optimizer_config or OptimizerConfig()).validate()
        # Plain lists/dicts of variables would be tracked (and saved) as the rule's own: keep
        # the model's variables out of the rule's checkpoint object graph.
        base = list(base_variables)
        heads = {t: list(head_variables.get(t, ())) for t in tasks}
        seen = {id(v) for v in base}
        for t in tasks:
            for v in heads[t]:
                if id(v) in seen:
                    raise ValueError(f"variable {v.name} is in the base or in another head too; "
                                     f"every variable belongs to one place")
                seen.add(id(v))
        self._layout = _Untracked(base=base, heads=heads)
        # No base (0): the trunk is fixed and only the heads train (``train_trunk=False``).
        self.num_base_scalars = int(sum(int(tf.size(v)) for v in base))
        all_heads = [v for t in tasks for v in heads[t]]
        update_rule = step_lib.UpdateRule(self.config, base + all_heads, all_heads)
        decay = {id(v): rate for v, rate in update_rule.decayed}
        bias = {id(v): b for v, b in zip(base + all_heads, update_rule.bias_mask)}
        self._update_rule = _Untracked(rule=update_rule, decay=decay, bias=bias)

    @property
    def base_variables(self):
        return self._layout.base

    def head_variables(self, task):
        return self._layout.heads[task]

    def weight_decay(self):
        """``sum 0.5 * rate * ||w||^2`` over the decayed kernels (for logging)."""
        return self._update_rule.rule.weight_decay()

    def variables_for(self, active):
        """The variables an update over the ``active`` tasks touches, in its order."""
        return self.base_variables + [v for t in self.tasks if t in active
                                      for v in self.head_variables(t)]

    # Pieces.

    def _active(self, task_grads, head_grads):
        active = [t for t in self.tasks if t in task_grads]
        extra = sorted(set(task_grads) - set(self.tasks))
        if extra or not active:
            raise ValueError(f"gradients for unknown tasks {extra} or for none of {self.tasks}")
        nb = len(self.base_variables)
        for t in active:
            nh = len(self.head_variables(t))
            if len(task_grads[t]) != nb or len(head_grads.get(t, ())) != nh:
                raise ValueError(f"task {t!r}: expected {nb} base and {nh} head gradients, got "
                                 f"{len(task_grads[t])} and {len(head_grads.get(t, ()))}")
        return active

    def _decay_gradient(self, v):
        rate = self._update_rule.decay.get(id(v))
        return None if rate is None else rate * tf.cast(tf.convert_to_tensor(v), tf.float32)

    def _add_decay(self, grads, variables):
        out = []
        for g, v in zip(grads, variables):
            d = self._decay_gradient(v)
            out.append(g if d is None else g + d)
        return out

    def _finish(self, grads, variables):
        """Clip by global norm, multiply bias gradients (as :class:`step.UpdateRule`)."""
        if self.config.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
        mult = self.config.bias_lr_multiplier
        if mult != 1.0:
            grads = [g * mult if self._update_rule.bias[id(v)] else g
                     for g, v in zip(grads, variables)]
        return list(grads)

    def _norms(self, base_grads):
        """(L1 / P, L2) of one task's base gradient (zeros without a base)."""
        if not base_grads:
            return tf.constant(0.0), tf.constant(0.0)
        l1 = tf.add_n([tf.reduce_sum(tf.abs(g)) for g in base_grads])
        l2 = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in base_grads]))
        return l1 / float(self.num_base_scalars), l2


class _Untracked:
    """Holds references without making them part of a ``tf.Module``'s checkpointed state."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class _SingleOptimizerRule(GradientRule):
    """A rule whose result one optimizer (the trainer's) applies."""

    def _combine(self, active, task_grads, head_grads, step):
        raise NotImplementedError

    def gradients(self, task_grads, head_grads, step, loss_scale=None):
        """The update for the trainer's optimizer.

        Call in the replica context, after :func:`task_gradients` (so the gradients are global).

        Args:
            task_grads: ``{task: [gradients over the base]}`` of the active tasks.
            head_grads: ``{task: [gradients over its head]}``.
            step: this update's index (int scalar; the trainer's global step before it).
            loss_scale: the factor the gradients carry (None: 1); the result carries it too.

        Returns:
            ``(grads_and_vars, norms)``: a list of (gradient, variable) over the base and the
            active tasks' heads, and ``{name: float32 scalar}`` (see the module docstring).
        """
        active = self._active(task_grads, head_grads)
        scale = None if loss_scale is None else tf.cast(loss_scale, tf.float32)

        def unscale(gs):
            gs = [tf.cast(tf.convert_to_tensor(g), tf.float32) for g in gs]
            return gs if scale is None else [g / scale for g in gs]

        task_grads = {t: unscale(task_grads[t]) for t in active}
        head_grads = {t: unscale(head_grads.get(t, ())) for t in active}
        grads, norms = self._combine(active, task_grads, head_grads, step)
        variables = self.variables_for(active)
        grads = self._finish(grads, variables)
        if scale is not None:
            grads = [g * scale for g in grads]
        return list(zip(grads, variables)), norms

    def apply(self, task_grads, head_grads, step, optimizer):
        """:meth:`gradients` with the optimizer's loss scale, applied by ``optimizer``; returns
        the norms."""
        grads_and_vars, norms = self.gradients(task_grads, head_grads, step,
                                               loss_scale=_scale_of(optimizer))
        optimizer.apply([g for g, _ in grads_and_vars], [v for _, v in grads_and_vars])
        return norms


class SumRule(_SingleOptimizerRule):
    """Joint SGD (eq. 4.9): ``(1/M) sum_m w_m g_m`` (``reduction="sum"``: no 1/M); see the module
    docstring. Other arguments: :class:`GradientRule`."""

    def __init__(self, tasks, base_variables, head_variables, optimizer_config=None, *,
                 reduction="mean", **kw):
        super().__init__(tasks, base_variables, head_variables, optimizer_config, **kw)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def _combine(self, active, task_grads, head_grads, step):
        del step
        share = 1.0 / len(active) if self.reduction == "mean" else 1.0
        norms = {}
        base = None
        for t in active:
            norms[f"{t}/grad_l1_mean"], norms[f"{t}/grad_l2"] = self._norms(task_grads[t])
            w = self.task_weights[t] * share
            part = [w * g for g in task_grads[t]]
            base = part if base is None else [a + b for a, b in zip(base, part)]
        heads = []
        for t in active:
            w = self.task_weights[t] * (share if self.average_heads else 1.0)
            heads.extend(w * g for g in head_grads[t])
        grads = base + heads
        return self._add_decay(grads, self.variables_for(active)), norms


class NormSGDRule(_SingleOptimizerRule):
    """NormSGD's gradient normalisation (eq. 4.11, §8.3.4); the trainer's momentum-SGD
    optimizer applies the result. See the module docstring for the formula and the defaults.

    Args:
        freeze_step: the statistic is updated by steps ``< freeze_step`` (None: never frozen).
        ema_decay: decay of the running statistic in [0, 1); 0: per iteration (eq. 4.11).
        epsilon: added to the statistic in the denominator.
        normalize_heads: divide head m's gradient by task m's statistic too.
        decay_after_normalisation: add weight decay to the normalised average (else to every
            task's gradient before normalising).
        Other arguments: :class:`GradientRule`.
    """

    def __init__(self, tasks, base_variables, head_variables, optimizer_config=None, *,
                 freeze_step, ema_decay=0.99, epsilon=1e-12, normalize_heads=True,
                 decay_after_normalisation=True, **kw):
        super().__init__(tasks, base_variables, head_variables, optimizer_config, **kw)
        if self.num_base_scalars == 0:
            raise ValueError("NormSGD normalises the gradients over a shared base, and this one "
                             "has no parameters (a fixed trunk: use the sum rule)")
        if freeze_step is not None and (isinstance(freeze_step, bool)
                                        or not isinstance(freeze_step, int) or freeze_step < 0):
            raise ValueError(f"freeze_step must be a step number >= 0 or None, got "
                             f"{freeze_step!r}")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if not float(epsilon) >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.freeze_step = freeze_step
        self.ema_decay = float(ema_decay)
        self.epsilon = float(epsilon)
        self.normalize_heads = bool(normalize_heads)
        self.decay_after_normalisation = bool(decay_after_normalisation)
        # Every replica computes the same value from the summed gradients: keep the first.
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.statistic_average = {
            t: tf.Variable(0.0, trainable=False, dtype=tf.float32, aggregation=agg,
                           name=f"normsgd_average_{i}") for i, t in enumerate(self.tasks)}
        self.statistic_updates = {
            t: tf.Variable(0, trainable=False, dtype=tf.int64, aggregation=agg,
                           name=f"normsgd_updates_{i}") for i, t in enumerate(self.tasks)}

    def statistic(self, task):
        """Task ``task``'s current (debiased) statistic, the denominator before ``epsilon``;
        0 before its first measurement."""
        count = self.statistic_updates[task]
        bias = 1.0 - tf.pow(tf.constant(self.ema_decay, tf.float32), tf.cast(count, tf.float32))
        return tf.where(count > 0, self.statistic_average[task] / tf.maximum(bias, 1e-30), 0.0)

    def _update_statistic(self, task, value, step):
        count = self.statistic_updates[task]
        live = tf.constant(True) if self.freeze_step is None else (
            tf.cast(step, tf.int64) < self.freeze_step)
        update = tf.logical_and(tf.math.is_finite(value), tf.logical_or(live, count == 0))
        d = self.ema_decay
        average = self.statistic_average[task]
        new = tf.where(update, d * average + (1.0 - d) * value, average)
        new_count = count + tf.cast(update, tf.int64)
        average.assign(new)
        count.assign(new_count)
        bias = 1.0 - tf.pow(tf.constant(d, tf.float32), tf.cast(new_count, tf.float32))
        # Never measured (only non-finite values so far): this step's own value.
        return tf.where(new_count > 0, new / tf.maximum(bias, 1e-30), value)

    def _combine(self, active, task_grads, head_grads, step):
        share = 1.0 / len(active)
        norms = {}
        base, heads = None, []
        for t in active:
            g, h = task_grads[t], head_grads[t]
            l1_mean, norms[f"{t}/grad_l2"] = self._norms(g)
            norms[f"{t}/grad_l1_mean"] = l1_mean
            if not self.decay_after_normalisation:
                g = self._add_decay(g, self.base_variables)
                h = self._add_decay(h, self.head_variables(t))
                l1_mean, _ = self._norms(g)
            s = self._update_statistic(t, l1_mean, step)
            norms[f"{t}/grad_normaliser"] = s
            factor = self.task_weights[t] * share / (s + self.epsilon)
            part = [factor * x for x in g]
            base = part if base is None else [a + b for a, b in zip(base, part)]
            hw = self.task_weights[t] * (share if self.average_heads else 1.0)
            if self.normalize_heads:
                hw = hw / (s + self.epsilon)
            heads.extend(hw * x for x in h)
        grads = base + heads
        if self.decay_after_normalisation:
            grads = self._add_decay(grads, self.variables_for(active))
        return grads, norms


class SeparateRule(GradientRule):
    """One optimizer per task (eq. 4.10, "multi-Adam"): ``sum_m optimizer_m(g_m)``.

    The rule owns the optimizers (and so checkpoints them). Optimizer m applies task m's
    gradient over the base and its head, plus weight decay (``rate * w``, added to every task's
    gradient before its optimizer, as an L2 term in each task's loss), clipped by global norm,
    bias gradients multiplied. Because an adaptive optimizer is invariant to the gradient's scale,
    eq. 4.10's 1/M cannot be put in the gradient: give each optimizer the learning rate times
    :attr:`rate_factor` (``1/M``; ``average_heads`` cannot be honoured separately for heads and
    must be True). Optimizers applied one after the other give exactly the sum, since none
    reads the weights (no decoupled weight decay).

    The bias multiplier is applied as in the other rules; under an adaptive optimizer it has
    almost no effect (only through the optimizer's epsilon).

    Mixed precision: wrap each optimizer in its own ``LossScaleOptimizer`` and scale each task's
    loss with its own scale (:func:`loss_scales` with ``rule=``); a task whose gradients overflow
    skips only its own update.

    Args:
        optimizers: ``{task: keras optimizer}``, one for each task, distinct objects. Built here
            on the base and the task's head (create the rule inside ``strategy.scope()``); their
            own cross-replica sum is disabled.
        Other arguments: :class:`GradientRule`.
    """

    def __init__(self, tasks, base_variables, head_variables, optimizer_config=None, *,
                 optimizers, **kw):
        super().__init__(tasks, base_variables, head_variables, optimizer_config, **kw)
        if not self.average_heads:
            raise ValueError("SeparateRule: each task's optimizer moves the base and its head at "
                             "one learning rate; average_heads=False is not available")
        if sorted(optimizers) != sorted(self.tasks):
            raise ValueError(f"SeparateRule needs one optimizer per task {self.tasks}, got "
                             f"{sorted(optimizers)}")
        if len({id(o) for o in optimizers.values()}) != len(optimizers):
            raise ValueError("SeparateRule needs a distinct optimizer object per task")
        self.optimizers = dict(optimizers)
        for t in self.tasks:
            step_lib.disable_optimizer_all_reduce(self.optimizers[t])
            self.optimizers[t].build(self.base_variables + self.head_variables(t))

    @property
    def rate_factor(self):
        """The factor (1/M) each optimizer's learning rate carries, for eq. 4.10's mean."""
        return 1.0 / len(self.tasks)

    def apply(self, task_grads, head_grads, step, optimizer=None):
        """Applies every active task's optimizer; returns the norms. Call in the replica context,
        after :func:`task_gradients` with :func:`loss_scales` ``(tasks, rule=self)``."""
        del step
        if optimizer is not None:
            raise ValueError("SeparateRule applies its own optimizers; pass optimizer=None")
        active = self._active(task_grads, head_grads)
        norms, updates = {}, []
        # Every task's gradient (with its weight decay) is formed before any optimizer moves
        # the shared weights, so the order of the optimizers does not matter.
        for t in active:
            opt = self.optimizers[t]
            scale = _scale_of(opt)
            variables = self.base_variables + self.head_variables(t)
            grads = [tf.cast(tf.convert_to_tensor(g), tf.float32)
                     for g in list(task_grads[t]) + list(head_grads.get(t, ()))]
            if scale is not None:
                grads = [g / scale for g in grads]
            norms[f"{t}/grad_l1_mean"], norms[f"{t}/grad_l2"] = self._norms(
                grads[:len(self.base_variables)])
            grads = self._finish(self._add_decay(grads, variables), variables)
            if scale is not None:
                grads = [g * scale for g in grads]
            updates.append((opt, grads, variables))
        for opt, grads, variables in updates:
            opt.apply(grads, variables)
        return norms


class SplitWeightsRule(SumRule):
    """Split-weights (METHOD_CH4.md §8.2.2): every base weight and bias belongs to one task, the
    task of the column of its destination unit, and gets only that task's gradient:
    ``base <- sum_m w_m mask_m * g_m``, head m ``<- w_m h_m`` (no 1/M **[interpretation]**: every
    parameter gets its one owner's whole gradient, as that task alone would give it, the
    scale of split-activations' separately trained columns; if all tasks had the same
    gradient the update would be the mean rule's). Task m (``tasks[m]``) owns column m. With
    one task this is :class:`SumRule`. Under round-robin an inactive task's column gets no
    gradient. ``average_heads`` has no effect (there is no share to take).

    Args:
        masks: ``{variable path: [M masks]}`` over the base variables, each a 0/1 array
            broadcastable to the variable, the M masks summing to 1
            (:func:`tfcolor.models.split.column_masks` of the trunk, which also checks its layer
            kinds). None: from the variables' shapes, the destination unit on the last axis
            (Keras kernels, biases, batch-normalisation parameters), unit ``c`` of ``C`` in
            column ``floor(c * M / C)``.
        Other arguments: :class:`GradientRule`.
    """

    def __init__(self, tasks, base_variables, head_variables, optimizer_config=None, *,
                 masks=None, **kw):
        if kw.pop("reduction", "sum") != "sum":
            raise ValueError("split-weights gives every weight its owner task's whole gradient: "
                             "reduction must be 'sum'")
        super().__init__(tasks, base_variables, head_variables, optimizer_config,
                         reduction="sum", **kw)
        num = len(self.tasks)
        given = None if masks is None else dict(masks)
        per_variable = []
        for v in self.base_variables:
            shape = tuple(int(d) for d in v.shape)
            if given is None:
                if not shape:
                    raise ValueError(f"split-weights: variable {v.path} has no unit axis")
                cols = (np.arange(shape[-1]) * num) // shape[-1]
                cols = cols.reshape((1,) * (len(shape) - 1) + (-1,))
                ms = [(cols == m).astype(np.float32) for m in range(num)]
            else:
                if v.path not in given:
                    raise ValueError(f"split-weights: no column masks for base variable {v.path}")
                ms = [np.asarray(x, np.float32) for x in given.pop(v.path)]
                if len(ms) != num:
                    raise ValueError(f"split-weights: {v.path} has {len(ms)} column masks for "
                                     f"{num} tasks")
                try:
                    total = np.broadcast_to(sum(ms), shape)
                except ValueError as e:
                    raise ValueError(f"split-weights: the masks of {v.path} do not broadcast to "
                                     f"its shape {shape}") from e
                if not all(np.isin(x, (0.0, 1.0)).all() for x in ms) or not (total == 1).all():
                    raise ValueError(f"split-weights: the masks of {v.path} must be 0/1 and put "
                                     f"every entry in exactly one column")
            per_variable.append([tf.constant(x) for x in ms])
        if given:
            raise ValueError(f"split-weights: masks for variables that are not in the base: "
                             f"{sorted(given)[:3]}")
        self._masks = _Untracked(values=per_variable)

    def column_mask(self, task, index):
        """The mask of base variable ``index`` for ``task`` (a broadcastable float32 tensor)."""
        return self._masks.values[index][self.tasks.index(task)]

    def _combine(self, active, task_grads, head_grads, step):
        masked = {t: [g * self.column_mask(t, i) for i, g in enumerate(task_grads[t])]
                  for t in active}
        grads, norms = super()._combine(active, masked, head_grads, step)
        # Log each task's whole (unmasked) base gradient, as the other rules do.
        for t in active:
            norms[f"{t}/grad_l1_mean"], norms[f"{t}/grad_l2"] = self._norms(task_grads[t])
        return grads, norms


RULES = {"sum": SumRule, "normsgd": NormSGDRule, "separate": SeparateRule,
         "split_weights": SplitWeightsRule}


def make_rule(name, *args, **kwargs):
    """The rule named ``name`` (``sum``, ``normsgd``, ``separate`` or ``split_weights``)."""
    if name not in RULES:
        raise ValueError(f"unknown gradient rule {name!r}; choose one of {', '.join(RULES)}")
    return RULES[name](*args, **kwargs)
