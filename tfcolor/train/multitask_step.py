"""Several tasks on one shared trunk: the multi-task step object of the host loop
(:class:`tfcolor.train.trainer.Trainer`), the method's shared-weights training (METHOD_CH4.md
§8.3, §8.5.2).

:class:`MultiTaskStep` owns

* a :class:`tfcolor.models.multitask.MultiTaskModel`: one trunk, one model per task, each built
  by :meth:`tfcolor.tasks.base.Task.build_model_on` (Model Garden's ``MultiTaskBaseModel``);
* one input stream per task (its own source, crop size and batch size), each with its own
  checkpointed position, so every task resumes exactly where it was;
* a gradient rule (:mod:`tfcolor.train.gradient_rules`): ``sum`` (joint SGD, eq. 4.9),
  ``normsgd`` (eq. 4.11), ``separate`` (one adaptive optimizer per task, eq. 4.10) or
  ``split_weights`` (§8.2.2, task m owns column m of every trunk layer), whose state is
  checkpointed;
* a schedule (:mod:`tfcolor.train.task_sampler`): ``joint`` (every task every step) or
  ``round_robin`` (one task per quantum of Q steps, §8.3.5);
* the optimizer(s): momentum SGD on the rule's result; under round-robin each task keeps its
  own momentum by default (``round_robin_state="per_task"``: §8.3.5's [interpretation], the
  task state that is swapped), ``"shared"`` keeps one.

One step, in every replica: each active task's data loss on its own batch (this replica's share
of its global mean, :class:`tfcolor.tasks.base.Task` normalisation); each task's gradient over the
trunk and over its own head, summed across replicas once
(:func:`~tfcolor.train.gradient_rules.task_gradients`, seeded with the loss scale under mixed
precision); the rule combines them, adds weight decay, clips, multiplies bias gradients, and the
optimizer applies the result.

Logged values: ``<task>`` (data loss), ``<task>/<term>``, ``weight_decay``, ``loss`` (the sum of
the active tasks' data losses plus weight decay: what plain summed SGD would minimise), and the
gradient statistics ``grad/<task>/l1_mean`` (``||g_m||_1 / P`` over the trunk), ``grad/<task>/l2``
and, under NormSGD, ``grad/<task>/normaliser`` (the denominator in use). Under round-robin a
loop only holds its active task's values.

Every optimizer's step counter follows the global step (it is set before each update), so the
learning-rate schedule and warm-up are the run's whatever task is active.
"""
import functools

import tensorflow as tf

from tfcolor.config import OptimizerConfig
from tfcolor.models import multitask as multitask_lib
from tfcolor.models import split as split_lib
from tfcolor.tasks import base as task_lib
from tfcolor.train import gradient_rules
from tfcolor.train import optimizers as optimizers_lib
from tfcolor.train import step as step_lib
from tfcolor.train import task_sampler
from tfcolor.train import task_step

__all__ = ["MultiTaskStep", "ROUND_ROBIN_STATES", "GRADIENT_RULES"]

#: Round-robin optimizer state: one momentum per task (swapped with the task) or one shared.
ROUND_ROBIN_STATES = ("per_task", "shared")
#: The gradient rules by name.
GRADIENT_RULES = tuple(gradient_rules.RULES)


def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)


class MultiTaskStep(task_step.TrainStep):
    """Several tasks, one shared trunk (see the module docstring).

    Args:
        tasks: the :class:`tfcolor.tasks.base.Task` objects (distinct ``name`` s), in order;
            each implements ``build_model_on``.
        trunk_fn: ``trunk_fn() -> tfcolor.models.multitask.SharedTrunk``, called inside
            ``strategy.scope()``.
        strategy: a ``tf.distribute.Strategy``.
        train_steps: the run's length (learning-rate schedule, NormSGD's default freeze).
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig` (rates, momentum, warm-up,
            weight decay, clipping, bias multiplier).
        gradient_rule: ``"sum"``, ``"normsgd"``, ``"separate"`` or ``"split_weights"``.
        rule_options: further arguments of the rule (``freeze_step``, ``ema_decay``,
            ``epsilon``, ``normalize_heads``, ``decay_after_normalisation``, ``reduction``,
            ``average_heads``). NormSGD's ``freeze_step`` defaults to
            :func:`~tfcolor.train.gradient_rules.default_freeze_step` of the warm-up and the
            first drop.
        task_weights: ``{task: weight}`` (default 1 each).
        schedule: ``"joint"`` or ``"round_robin"``.
        quantum: steps per task turn under round-robin.
        round_robin_state: ``"per_task"`` (each task its own momentum) or ``"shared"``.
        separate_optimizer: the per-task optimizer of the ``separate`` rule: ``"adam"`` (the
            thesis' multi-Adam) or ``"sgd"`` (momentum SGD); its learning rate carries eq.
            4.10's ``1/M``.
        mixed_precision: loss-scaled optimizers (set the ``mixed_float16`` policy before
            building, e.g. with :func:`tfcolor.train.run`).
        checkpoint_iterator: ``"auto"``, True or False (see
            :func:`tfcolor.train.task_step.resolve_checkpoint_iterator`).
    """

    def __init__(self, tasks, *, trunk_fn, strategy, train_steps, optimizer_config=None,
                 gradient_rule="normsgd", rule_options=None, task_weights=None,
                 schedule="joint", quantum=None, round_robin_state="per_task",
                 separate_optimizer="adam", mixed_precision=False, checkpoint_iterator="auto"):
        tasks = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
        if not tasks:
            raise ValueError("a multi-task step needs at least one task")
        for task in tasks:
            if not isinstance(task, task_lib.Task):
                raise TypeError(f"tasks must be tfcolor.tasks.base.Task objects, got "
                                f"{type(task).__name__}")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be distinct, got {names}")
        if gradient_rule not in GRADIENT_RULES:
            raise ValueError(f"unknown gradient rule {gradient_rule!r}; choose one of "
                             f"{', '.join(GRADIENT_RULES)}")
        if round_robin_state not in ROUND_ROBIN_STATES:
            raise ValueError(f"round_robin_state must be one of {ROUND_ROBIN_STATES}, got "
                             f"{round_robin_state!r}")
        if separate_optimizer not in ("adam", "sgd"):
            raise ValueError(f"separate_optimizer must be 'adam' or 'sgd', got "
                             f"{separate_optimizer!r}")
        self.tasks = {t.name: t for t in tasks}
        self.task_names = names
        self.strategy = strategy
        self.train_steps = train_steps
        self.optimizer_config = (optimizer_config or OptimizerConfig()).validate()
        self.mixed_precision = mixed_precision
        self.gradient_rule = gradient_rule
        self.schedule = task_sampler.make_schedule(schedule, names, quantum)
        self.round_robin_state = round_robin_state
        self._schedule_fn = optimizers_lib.make_schedule(self.optimizer_config, train_steps)

        host_split = task_step.resolve_checkpoint_iterator(strategy, checkpoint_iterator)
        datasets = {n: self.tasks[n].build_inputs(0) for n in names}
        self.global_batch_sizes = {
            n: task_step.check_dataset(self.tasks[n], datasets[n], strategy) for n in names}
        self.images_per_step = sum(self.global_batch_sizes.values())

        config = self.optimizer_config
        with strategy.scope():
            shared = trunk_fn()
            if not isinstance(shared, multitask_lib.SharedTrunk):
                raise TypeError(f"trunk_fn must return a tfcolor.models.multitask.SharedTrunk, "
                                f"got {type(shared).__name__}")
            sub_models = {n: self.tasks[n].build_model_on(shared) for n in names}
            self.model = multitask_lib.MultiTaskModel(shared, sub_models)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.updates = {
                n: step_lib.TaskUpdate(self.tasks[n], sub_models[n], config,
                                       datasets[n].element_spec, self.global_batch_sizes[n])
                for n in names}
            base = self.model.base_variables()
            heads = {n: self.model.head_variables(n) for n in names}
            options = dict(rule_options or {})
            if gradient_rule == "normsgd" and "freeze_step" not in options:
                options["freeze_step"] = default_normsgd_freeze(config, train_steps)
            if gradient_rule == "split_weights" and "masks" not in options:
                # Task m owns column m of every trunk layer (checks the layer kinds).
                options["masks"] = split_lib.column_masks(shared.model, len(names))
            self.optimizer = optimizers_lib.make_optimizer(config, train_steps,
                                                           mixed_precision=mixed_precision)
            self.task_optimizers = {}
            if gradient_rule == "separate":
                maker = (optimizers_lib.make_adam if separate_optimizer == "adam"
                         else optimizers_lib.make_optimizer)
                options["optimizers"] = {
                    n: maker(config, train_steps, mixed_precision=mixed_precision,
                             rate_factor=1.0 / len(names)) for n in names}
            elif self.schedule.name == "round_robin" and round_robin_state == "per_task":
                self.task_optimizers = {
                    n: optimizers_lib.make_optimizer(config, train_steps,
                                                     mixed_precision=mixed_precision)
                    for n in names}
            self.rule = gradient_rules.make_rule(gradient_rule, names, base, heads, config,
                                                 task_weights=task_weights, **options)
            if gradient_rule == "separate":
                self.task_optimizers = dict(self.rule.optimizers)
            step_lib.disable_optimizer_all_reduce(self.optimizer)
            self.optimizer.build(self.rule.variables_for(names))
            for n, opt in self.task_optimizers.items():
                step_lib.disable_optimizer_all_reduce(opt)
                if not opt.built:
                    opt.build(base + heads[n])
        self.inputs = {n: task_step.InputStream(self.tasks[n], datasets[n], strategy,
                                                host_split=host_split,
                                                name=f"input_position_{i}")
                       for i, n in enumerate(names)}
        self._loop_fns = {}

    # -- the contract -----------------------------------------------------------------------

    @property
    def loss_names(self):
        """Every value a loop may log (a round-robin loop holds its active task's only)."""
        return self.names_for(self.task_names)

    def _norm_names(self):
        names = ["l1_mean", "l2"]
        if self.gradient_rule == "normsgd":
            names.append("normaliser")
        return names

    @property
    def input_positions(self):
        """``{task: int64 variable}``, each task's stream position."""
        return {n: s.position for n, s in self.inputs.items()}

    def checkpoint_parts(self):
        trackables = dict(model=self.model, optimizer=self.optimizer, step=self.step,
                          rule=self.rule, layer_rng=task_step.rng_states(self.model))
        if self.task_optimizers and self.gradient_rule != "separate":
            holder = tf.Module()
            holder.optimizers = dict(self.task_optimizers)
            trackables["task_optimizers"] = holder
        iterators = {n: s.saved_iterator for n, s in self.inputs.items()
                     if s.saved_iterator is not None}
        if iterators:
            holder = tf.Module()
            holder.iterators = iterators
            trackables["task_iterators"] = holder
        positions = {n: s.position for n, s in self.inputs.items() if s.track_position}
        position = None
        if positions:
            position = tf.Module()
            position.tasks = positions
        return None, position, trackables

    def restart_inputs(self, restored):
        for stream in self.inputs.values():
            stream.get(restart=restored)

    def next_boundary(self, step):
        return self.schedule.next_boundary(step)

    def active_tasks(self, step=None):
        """The tasks the next step trains."""
        return self.schedule.active(int(self.step.numpy()) if step is None else step)

    def run(self, num_steps):
        step = int(self.step.numpy())
        boundary = self.next_boundary(step)
        if boundary is not None and step + int(num_steps) > boundary > step:
            raise ValueError(f"run({num_steps}) at step {step} would cross the task switch at "
                             f"step {boundary}: run at most {boundary - step} steps (the host "
                             "loop ends every loop at next_boundary)")
        active = self.active_tasks()
        fn = self._loop_fns.get(active)
        if fn is None:
            # The names are fixed per active set: computed here, outside the traced function.
            # No AutoGraph: an explicit tf.while_loop (task_step.TaskStep says why).
            fn = self._loop_fns[active] = tf.function(functools.partial(
                self._train_loop, active=active, names=tuple(self.names_for(active))),
                autograph=False)
        iterators = {n: self.inputs[n].get() for n in active}
        return fn(iterators, tf.constant(int(num_steps), tf.int32))

    def variables(self):
        variables = list(self.model.variables) + list(self.optimizer.variables)
        for opt in self.task_optimizers.values():
            variables.extend(opt.variables)
        return variables + list(self.rule.variables)

    def preview(self):
        images = {}
        for n in self.task_names:
            image = self.tasks[n].preview(self.model.sub_models[n])
            if image is not None:
                images[n] = image
        return images

    def summary_scalars(self):
        rate = self._schedule_fn
        step = int(self.step.numpy())
        value = float(rate(step)) if callable(rate) else float(rate)
        scalars = {"learning_rate": value}
        if self.mixed_precision:
            scalars["loss_scale"] = float(tf.convert_to_tensor(self.optimizer.dynamic_scale))
        return scalars

    # -- graph ------------------------------------------------------------------------------

    def _optimizer_for(self, task):
        return self.task_optimizers.get(task, self.optimizer)

    # Plain TensorFlow: not converted by AutoGraph (see tfcolor.train.step.TaskUpdate).
    @tf.autograph.experimental.do_not_convert
    def _replica_step(self, batches, step, active):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=len(active) > 1) as tape:
            losses, out = {}, {}
            for n in active:
                loss, terms = self.updates[n].loss(batches[n], training=True)
                losses[n] = loss
                out[n] = loss
                for t, v in terms.items():
                    out[f"{n}/{t}"] = v
        if self.gradient_rule == "separate":
            scales = gradient_rules.loss_scales(active, rule=self.rule)
        else:
            scales = gradient_rules.loss_scales(active, self._optimizer_for(active[0]))
        base = self.rule.base_variables
        heads = {n: self.rule.head_variables(n) for n in active}
        task_grads, head_grads = gradient_rules.task_gradients(tape, losses, base, heads, scales)
        del tape
        # Of the weights the losses were evaluated at (before the update), as TaskUpdate logs it.
        decay = self.rule.weight_decay() / replicas
        for n in active:
            if n in self.task_optimizers:
                _inner(self.task_optimizers[n]).iterations.assign(step)
        if self.gradient_rule == "separate":
            norms = self.rule.apply(task_grads, head_grads, step)
        else:
            norms = self.rule.apply(task_grads, head_grads, step,
                                    self._optimizer_for(active[0]))
        out["weight_decay"] = decay
        out["loss"] = tf.add_n([losses[n] for n in active]) + decay
        for name, value in norms.items():
            task, stat = name.split("/", 1)
            # The same global value on every replica: the host sums replicas.
            out[f"grad/{task}/{stat.replace('grad_', '')}"] = value / replicas
        return out

    def names_for(self, active):
        """The values a loop over the ``active`` tasks returns."""
        names = ["loss", "weight_decay"]
        for n in active:
            names.append(n)
            names.extend(f"{n}/{t}" for t in self.updates[n].term_names)
            names.extend(f"grad/{n}/{s}" for s in self._norm_names())
        return names

    def _train_loop(self, iterators, num_steps, active, names):
        def body(i, total):
            batches = {n: self.inputs[n].next_batch(iterators[n]) for n in active}
            step = tf.identity(self.step)
            per_replica = self.strategy.run(self._replica_step, args=(batches, step, active))
            total += tf.stack([self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[n],
                                                    axis=None) for n in names])
            self.step.assign_add(1)
            return i + 1, total

        return task_step.mean_of_loop(body, num_steps, names)


def default_normsgd_freeze(config, train_steps):
    """NormSGD's freeze step for ``config``'s warm-up and first drop
    (:func:`~tfcolor.train.gradient_rules.default_freeze_step`); without drops, the run's
    midpoint stands for the first drop."""
    drops = config.drop_steps(train_steps)
    first = drops[0] if drops else train_steps
    return gradient_rules.default_freeze_step(config.warmup_steps, max(first, config.warmup_steps + 1))
