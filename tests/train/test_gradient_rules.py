"""Tests of the multi-task gradient rules (tfcolor.train.gradient_rules).

A toy shared-trunk model (one tanh layer shared by two tasks: a squared-error head and a softmax
head) is trained for a few steps through :func:`task_gradients` and a rule, and compared with
independent references: a float64 NumPy implementation of NormSGD / joint SGD / per-task Adam with
momentum, warm-up and freeze written here; a hand-written single-task step; one device for two
replicas; float32 for mixed precision. Properties: a task's loss multiplied by a constant leaves
every NormSGD update unchanged (and changes the joint-SGD one), the statistic is frozen after the
freeze step and unchanged by a non-finite step, and it survives a checkpoint round trip.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config
from tfcolor.train import gradient_rules as gr
from tfcolor.train import step as step_lib

D, K, OA, OB, N = 5, 4, 3, 3, 8  # input, trunk width, head outputs, global batch
TASKS = ("a", "b")
LR, MOMENTUM, WARMUP = 0.05, 0.9, 3

needs_two_cpus = pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2,
                                    reason="needs 2 logical CPU devices (tests/conftest.py)")


def _opt_config(**kw):
    base = dict(learning_rate=LR, lr_drops=[], weight_decay=1e-2, head_weight_decay=1e-3,
                bias_lr_multiplier=2.0)
    base.update(kw)
    return config.OptimizerConfig(**base)


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(D, K)) * 0.5, "b": rng.normal(size=K) * 0.1,
            "Ha": rng.normal(size=(K, OA)) * 0.5, "ca": rng.normal(size=OA) * 0.1,
            "Hb": rng.normal(size=(K, OB)) * 0.5, "cb": rng.normal(size=OB) * 0.1}


def _batches(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(N, D)).astype(np.float32),
             rng.normal(size=(N, OA)).astype(np.float32),
             rng.integers(0, OB, size=N).astype(np.int32)) for _ in range(steps)]


class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to LR over WARMUP updates (update t uses LR * min(1, (t + 1) / WARMUP))."""

    def __call__(self, step):
        return LR * tf.minimum(1.0, (tf.cast(step, tf.float32) + 1.0) / WARMUP)


def _lr(t):
    return LR * min(1.0, (t + 1) / WARMUP)


# --------------------------------------------------------------------------------------------
# The TF side: a toy model trained with task_gradients + a rule.

class Toy:
    def __init__(self, init, strategy, *, mults=(1.0, 20.0), compute_dtype=tf.float32):
        with strategy.scope():
            v = {k: keras.Variable(np.asarray(x, np.float32), name=("bias" if x.ndim == 1
                                                                    else "kernel"))
                 for k, x in init.items()}
        self.v = v
        self.base = [v["W"], v["b"]]
        self.heads = {"a": [v["Ha"], v["ca"]], "b": [v["Hb"], v["cb"]]}
        self.mults = dict(zip(TASKS, mults))
        self.dtype = compute_dtype

    def losses(self, x, ta, tb, tasks=TASKS):
        c = lambda t: tf.cast(t, self.dtype)  # noqa: E731
        z = tf.tanh(c(x) @ c(self.v["W"]) + c(self.v["b"]))
        out = {}
        if "a" in tasks:
            ya = z @ c(self.v["Ha"]) + c(self.v["ca"])
            la = tf.reduce_sum(0.5 * tf.square(tf.cast(ya, tf.float32) - ta)) / N
            out["a"] = self.mults["a"] * la
        if "b" in tasks:
            yb = z @ c(self.v["Hb"]) + c(self.v["cb"])
            lb = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tb, tf.cast(yb, tf.float32))) / N
            out["b"] = self.mults["b"] * lb
        return out

    def weights(self):
        return {k: np.array(x.numpy(), np.float64) for k, x in self.v.items()}


def _split(strategy, tensors):
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return tensors
    per = N // replicas

    def value_fn(ctx):
        i = ctx.replica_id_in_sync_group
        return tuple(t[i * per:(i + 1) * per] for t in tensors)

    return strategy.experimental_distribute_values_from_function(value_fn)


def _train(rule_name, *, steps=8, strategy=None, mults=(1.0, 20.0), compute_dtype=tf.float32,
           opt_config=None, tasks_per_step=None, optimizer_fn=None, model=None, rule=None,
           optimizer=None, start=0, **rule_kw):
    """Trains the toy for ``steps`` steps; returns (model, rule, optimizer, norms per step)."""
    strategy = strategy or tf.distribute.get_strategy()
    opt_config = opt_config or _opt_config()
    if model is None:
        model = Toy(_initial(), strategy, mults=mults, compute_dtype=compute_dtype)
    with strategy.scope():
        if rule is None:
            if rule_name == "separate":
                rule_kw["optimizers"] = {t: optimizer_fn() for t in TASKS}
            rule = gr.make_rule(rule_name, TASKS, model.base, model.heads, opt_config, **rule_kw)
        if optimizer is None and rule_name != "separate":
            optimizer = optimizer_fn() if optimizer_fn else keras.optimizers.SGD(
                learning_rate=Warmup(), momentum=MOMENTUM)
            step_lib.disable_optimizer_all_reduce(optimizer)
            optimizer.build(rule.variables_for(TASKS))

    def make_fn(active):
        @tf.function
        def step_fn(x, ta, tb, step):
            def replica(x, ta, tb):
                with tf.GradientTape(persistent=True) as tape:
                    losses = model.losses(x, ta, tb, active)
                scales = gr.loss_scales(active, optimizer, rule)
                tg, hg = gr.task_gradients(tape, losses, model.base, model.heads, scales)
                return rule.apply(tg, hg, step, optimizer)

            norms = strategy.run(replica, args=_split(strategy, (x, ta, tb)))
            return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                    for k, v in norms.items()}
        return step_fn

    fns = {}
    history = []
    for t, (x, ta, tb) in enumerate(_batches(start + steps)[start:], start=start):
        active = tuple(tasks_per_step(t)) if tasks_per_step else TASKS
        fn = fns.setdefault(active, make_fn(active))
        norms = fn(x, ta, tb, tf.constant(t, tf.int64))
        history.append({k: float(v) for k, v in norms.items()})
    return model, rule, optimizer, history


# --------------------------------------------------------------------------------------------
# The NumPy reference (float64), written from the formulas, not from the module.

def _np_grads(w, x, ta, tb, mults):
    x = x.astype(np.float64)
    z = np.tanh(x @ w["W"] + w["b"])
    out = {}
    ya = z @ w["Ha"] + w["ca"]
    dya = mults[0] * (ya - ta) / N
    yb = z @ w["Hb"] + w["cb"]
    p = np.exp(yb - yb.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dyb = mults[1] * (p - np.eye(OB)[tb]) / N
    for task, dy, H, hk, hb in (("a", dya, w["Ha"], "Ha", "ca"), ("b", dyb, w["Hb"], "Hb", "cb")):
        da = (dy @ H.T) * (1 - z ** 2)
        out[task] = ({"W": x.T @ da, "b": da.sum(0)}, {hk: z.T @ dy, hb: dy.sum(0)})
    return out


def _np_train(rule, *, steps=8, mults=(1.0, 20.0), weights=(1.0, 1.0), wd=1e-2, hwd=1e-3,
              bias_mult=2.0, freeze_step=5, ema_decay=0.5, eps=1e-12, normalize_heads=True,
              decay_after=True, average_heads=True, reduction="mean", adam=None):
    w = _initial()
    P = D * K + K
    decay = {"W": wd, "Ha": hwd, "Hb": hwd}  # kernels only
    vel = {k: np.zeros_like(x) for k, x in w.items()}
    ema, count = [0.0, 0.0], [0, 0]
    adam_state = [{k: (np.zeros_like(x), np.zeros_like(x)) for k, x in w.items()}
                  for _ in TASKS]
    stats = []
    for t, (x, ta, tb) in enumerate(_batches(steps)):
        grads = _np_grads(w, x, ta, tb, mults)
        M = len(TASKS)
        total = {k: np.zeros_like(v) for k, v in w.items()}
        step_stats = {}
        for m, task in enumerate(TASKS):
            base, head = grads[task]
            step_stats[f"{task}/grad_l1_mean"] = sum(np.abs(g).sum() for g in base.values()) / P
            step_stats[f"{task}/grad_l2"] = np.sqrt(sum((g ** 2).sum() for g in base.values()))
            if rule == "separate":
                b1, b2, e = 0.9, 0.999, 1e-7
                for k, g in list(base.items()) + list(head.items()):
                    g = g + decay.get(k, 0.0) * w[k]
                    g = g * (bias_mult if k in ("b", "ca", "cb") else 1.0)
                    mm, vv = adam_state[m][k]
                    mm = b1 * mm + (1 - b1) * g
                    vv = b2 * vv + (1 - b2) * g ** 2
                    adam_state[m][k] = (mm, vv)
                    alpha = adam / M * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
                    total[k] -= alpha * mm / (np.sqrt(vv) + e)
                continue
            if rule == "sum":
                share = 1.0 / M if reduction == "mean" else 1.0
                for k, g in base.items():
                    total[k] += weights[m] * share * g
                for k, g in head.items():
                    total[k] += weights[m] * (share if average_heads else 1.0) * g
                continue
            if not decay_after:
                base = {k: g + decay.get(k, 0.0) * w[k] for k, g in base.items()}
                head = {k: g + decay.get(k, 0.0) * w[k] for k, g in head.items()}
            s_now = sum(np.abs(g).sum() for g in base.values()) / P
            if t < freeze_step or count[m] == 0:
                ema[m] = ema_decay * ema[m] + (1 - ema_decay) * s_now
                count[m] += 1
            s = ema[m] / (1 - ema_decay ** count[m])
            step_stats[f"{task}/grad_normaliser"] = s
            for k, g in base.items():
                total[k] += weights[m] / M * g / (s + eps)
            hw = weights[m] * (1.0 / M if average_heads else 1.0)
            hw = hw / (s + eps) if normalize_heads else hw
            for k, g in head.items():
                total[k] += hw * g
        stats.append(step_stats)
        if rule == "separate":
            for k in w:
                w[k] = w[k] + total[k]
            continue
        if rule == "sum" or decay_after:
            total = {k: g + decay.get(k, 0.0) * w[k] for k, g in total.items()}
        total = {k: g * (bias_mult if k in ("b", "ca", "cb") else 1.0) for k, g in total.items()}
        for k in w:
            vel[k] = MOMENTUM * vel[k] - _lr(t) * total[k]
            w[k] = w[k] + vel[k]
    return w, stats, ema, count


def _assert_weights_close(got, want, rtol=2e-4):
    for k in want:
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=rtol * scale, err_msg=k)


# --------------------------------------------------------------------------------------------
# Against the NumPy reference.

@pytest.mark.parametrize("variant", [
    dict(),
    dict(decay_after_normalisation=False, normalize_heads=False, average_heads=False,
         task_weights={"a": 2.0, "b": 0.5}),
])
def test_normsgd_matches_numpy_reference_with_warmup_momentum_and_freeze(variant):
    model, rule, _, history = _train("normsgd", freeze_step=5, ema_decay=0.5, **variant)
    weights = variant.get("task_weights", {})
    want, stats, ema, count = _np_train(
        "normsgd", freeze_step=5, ema_decay=0.5,
        normalize_heads=variant.get("normalize_heads", True),
        decay_after=variant.get("decay_after_normalisation", True),
        average_heads=variant.get("average_heads", True),
        weights=(weights.get("a", 1.0), weights.get("b", 1.0)))
    _assert_weights_close(model.weights(), want)
    for got, ref in zip(history, stats):
        for name, value in ref.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, err_msg=name)
    for m, task in enumerate(TASKS):
        assert int(rule.statistic_updates[task].numpy()) == count[m] == 5
        np.testing.assert_allclose(float(rule.statistic_average[task].numpy()), ema[m], rtol=1e-4)
    # The two tasks' raw gradients are uneven (the premise), the normalisers follow them.
    assert history[0]["b/grad_l1_mean"] > 3 * history[0]["a/grad_l1_mean"]


def test_sum_rule_matches_numpy_reference_with_task_weights():
    model, _, _, history = _train("sum", task_weights={"a": 3.0})
    want, stats, _, _ = _np_train("sum", weights=(3.0, 1.0))
    _assert_weights_close(model.weights(), want)
    assert "a/grad_normaliser" not in history[0]
    np.testing.assert_allclose(history[-1]["b/grad_l2"], stats[-1]["b/grad_l2"], rtol=1e-4)
    model, _, _, _ = _train("sum", reduction="sum", average_heads=False, steps=3)
    want, _, _, _ = _np_train("sum", reduction="sum", average_heads=False, steps=3)
    _assert_weights_close(model.weights(), want)


def test_separate_rule_is_the_sum_of_per_task_adam_updates(tmp_path):
    lr = 0.01
    model, rule, _, _ = _train("separate", steps=4, optimizer_fn=lambda: keras.optimizers.Adam(
        learning_rate=lr / len(TASKS)))
    want, _, _, _ = _np_train("separate", steps=4, adam=lr)
    _assert_weights_close(model.weights(), want, rtol=1e-4)
    assert rule.rate_factor == 0.5
    assert int(rule.optimizers["a"].iterations.numpy()) == 4
    # The rule owns the optimizers: its checkpoint holds both tasks' Adam moments.
    path = tf.train.Checkpoint(rule=rule).save(str(tmp_path / "ckpt"))
    names = [n for n, _ in tf.train.list_variables(path)]
    assert any(n.startswith("rule/optimizers/a/") for n in names), names
    assert any(n.startswith("rule/optimizers/b/") for n in names), names


# --------------------------------------------------------------------------------------------
# Properties.

def test_multiplying_one_task_loss_leaves_normsgd_updates_unchanged_but_not_sum():
    base, _, _, _ = _train("normsgd", freeze_step=4, ema_decay=0.5, mults=(1.0, 20.0))
    scaled, _, _, _ = _train("normsgd", freeze_step=4, ema_decay=0.5, mults=(1.0, 20.0 * 300))
    _assert_weights_close(scaled.weights(), base.weights(), rtol=1e-5)
    shrunk, _, _, _ = _train("normsgd", freeze_step=4, ema_decay=0.5, mults=(1e-3, 20.0))
    _assert_weights_close(shrunk.weights(), base.weights(), rtol=1e-5)
    # The same change moves joint SGD: the test can tell.
    sgd, _, _, _ = _train("sum", mults=(1.0, 20.0))
    sgd_scaled, _, _, _ = _train("sum", mults=(1.0, 20.0 * 300))
    diff = max(np.abs(sgd.weights()[k] - sgd_scaled.weights()[k]).max() for k in ("W", "Ha"))
    assert diff > 0.1


def test_normsgd_with_one_task_is_sgd_on_the_normalised_gradient():
    """Hand-written step: full gradient, divided by mean |g| over the base, + wd * w, x2 on
    biases, then the same SGD optimizer. ema_decay=0: the statistic of eq. 4.11 per step."""
    steps = 4
    init = _initial()
    strategy = tf.distribute.get_strategy()
    one = Toy(init, strategy, mults=(7.0, 1.0))
    rule = gr.NormSGDRule(["a"], one.base, {"a": one.heads["a"]}, _opt_config(),
                          freeze_step=None, ema_decay=0.0)
    opt = keras.optimizers.SGD(learning_rate=Warmup(), momentum=MOMENTUM)
    ref = Toy(init, strategy, mults=(7.0, 1.0))
    ref_opt = keras.optimizers.SGD(learning_rate=Warmup(), momentum=MOMENTUM)
    ref_vars = ref.base + ref.heads["a"]
    for t, (x, ta, tb) in enumerate(_batches(steps)):
        with tf.GradientTape(persistent=True) as tape:
            losses = one.losses(x, ta, tb, ("a",))
        tg, hg = gr.task_gradients(tape, losses, one.base, {"a": one.heads["a"]})
        rule.apply(tg, hg, tf.constant(t), opt)

        with tf.GradientTape() as tape:
            loss = ref.losses(x, ta, tb, ("a",))["a"]
        grads = [g.numpy() for g in tape.gradient(loss, ref_vars)]
        s = (np.abs(grads[0]).sum() + np.abs(grads[1]).sum()) / (D * K + K)
        decays = [1e-2, 0.0, 1e-3, 0.0]
        mult = [1.0, 2.0, 1.0, 2.0]
        grads = [(g / s + d * v.numpy()) * m for g, d, v, m in zip(grads, decays, ref_vars, mult)]
        ref_opt.apply(grads, ref_vars)
    for k in ("W", "b", "Ha", "ca"):
        np.testing.assert_allclose(one.weights()[k], ref.weights()[k], rtol=1e-5, atol=1e-6)


def test_sum_rule_with_one_task_is_the_single_task_update_rule():
    """One task through SumRule = today's step (weight decay as a loss term, UpdateRule)."""
    init = _initial()
    strategy = tf.distribute.get_strategy()
    cfg = _opt_config(clip_norm=0.5)
    one = Toy(init, strategy)
    rule = gr.SumRule(["b"], one.base, {"b": one.heads["b"]}, cfg)
    opt = keras.optimizers.SGD(learning_rate=Warmup(), momentum=MOMENTUM)
    ref = Toy(init, strategy)
    ref_vars = ref.base + ref.heads["b"]
    update_rule = step_lib.UpdateRule(cfg, ref_vars, ref.heads["b"])
    ref_opt = keras.optimizers.SGD(learning_rate=Warmup(), momentum=MOMENTUM)
    for t, (x, ta, tb) in enumerate(_batches(4)):
        with tf.GradientTape(persistent=True) as tape:
            losses = one.losses(x, ta, tb, ("b",))
        tg, hg = gr.task_gradients(tape, losses, one.base, {"b": one.heads["b"]})
        rule.apply(tg, hg, tf.constant(t), opt)
        with tf.GradientTape() as tape:
            loss = ref.losses(x, ta, tb, ("b",))["b"] + update_rule.weight_decay()
        ref_opt.apply(update_rule.gradients(tape, loss, ref_vars, ref_opt), ref_vars)
    for k in ("W", "b", "Hb", "cb"):
        np.testing.assert_allclose(one.weights()[k], ref.weights()[k], rtol=1e-5, atol=1e-6)


@needs_two_cpus
@pytest.mark.parametrize("rule_name", ["normsgd", "sum"])
def test_two_replicas_give_the_same_updates_as_one(rule_name):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    two = tf.distribute.MirroredStrategy(devices,
                                         cross_device_ops=tf.distribute.ReductionToOneDevice())
    kw = dict(freeze_step=3, ema_decay=0.5) if rule_name == "normsgd" else {}
    one_model, one_rule, _, one_hist = _train(rule_name, steps=5, **kw)
    two_model, two_rule, _, two_hist = _train(rule_name, steps=5, strategy=two, **kw)
    _assert_weights_close(two_model.weights(), one_model.weights(), rtol=1e-5)
    for name, value in one_hist[-1].items():
        np.testing.assert_allclose(two_hist[-1][name], value, rtol=1e-5, err_msg=name)
    if rule_name == "normsgd":
        for task in TASKS:
            for replica_value in two.experimental_local_results(
                    two_rule.statistic_average[task]):
                np.testing.assert_allclose(replica_value.numpy(),
                                           one_rule.statistic_average[task].numpy(), rtol=1e-5)


def test_mixed_precision_matches_float32_within_float16_tolerance():
    """float16 compute + LossScaleOptimizer vs float32; the statistic must be of unscaled
    gradients (a scaled one would be 2**10 times larger and the updates 2**10 times smaller)."""
    def lso():
        return keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(learning_rate=Warmup(), momentum=MOMENTUM),
            initial_scale=2.0 ** 10)

    steps, kw = 4, dict(freeze_step=3, ema_decay=0.5, mults=(1.0, 5.0))
    f32, r32, _, _ = _train("normsgd", steps=steps, **kw)
    f16, r16, opt, _ = _train("normsgd", steps=steps, compute_dtype=tf.float16, optimizer_fn=lso,
                              **kw)
    assert float(opt.dynamic_scale.numpy()) == 2.0 ** 10  # no step was skipped
    init = _initial()
    # Tolerance from the values: float16 keeps 11 significant bits (unit roundoff 2**-11); every
    # gradient element goes through a handful of float16 roundings (inputs, weights, products,
    # sums over D=5 and K=4 terms, tanh), so allow 64 roundoffs of the largest update.
    u = 2.0 ** -11
    for k in init:
        delta32 = f32.weights()[k] - init[k]
        delta16 = f16.weights()[k] - init[k]
        tol = 64 * u * np.abs(delta32).max()
        np.testing.assert_allclose(delta16, delta32, rtol=0, atol=tol, err_msg=k)
    for task in TASKS:
        np.testing.assert_allclose(r16.statistic(task).numpy(), r32.statistic(task).numpy(),
                                   rtol=64 * u)


def test_statistic_is_frozen_after_the_freeze_step_and_survives_a_checkpoint(tmp_path):
    freeze = 3
    model, rule, opt, history = _train("normsgd", steps=freeze, freeze_step=freeze, ema_decay=0.5)
    frozen = {t: float(rule.statistic(t).numpy()) for t in TASKS}
    assert history[1]["a/grad_normaliser"] != history[2]["a/grad_normaliser"]  # it was moving
    path = tf.train.Checkpoint(rule=rule).save(str(tmp_path / "ckpt"))
    # Continue past the freeze: the statistic and its count no longer change, while the raw
    # gradients do.
    _, _, _, later = _train("normsgd", steps=3, start=freeze, model=model, rule=rule,
                            optimizer=opt, freeze_step=freeze)
    for task in TASKS:
        assert int(rule.statistic_updates[task].numpy()) == freeze
        assert float(rule.statistic(task).numpy()) == frozen[task]
        assert all(h[f"{task}/grad_normaliser"] == frozen[task] for h in later)
        assert later[0][f"{task}/grad_l1_mean"] != later[-1][f"{task}/grad_l1_mean"]
    # Round trip: a fresh rule restores the averages and the counts.
    fresh_model = Toy(_initial(), tf.distribute.get_strategy())
    fresh = gr.NormSGDRule(TASKS, fresh_model.base, fresh_model.heads, _opt_config(),
                           freeze_step=freeze, ema_decay=0.5)
    tf.train.Checkpoint(rule=fresh).restore(path).assert_consumed()
    for task in TASKS:
        assert float(fresh.statistic(task).numpy()) == frozen[task]
        assert int(fresh.statistic_updates[task].numpy()) == freeze
    # The rule's checkpoint holds its own state only, not the model's variables.
    names = [n for n, _ in tf.train.list_variables(path)]
    assert not any("kernel" in n or "bias" in n for n in names), names


def test_non_finite_gradients_leave_the_statistic_unchanged():
    model = Toy(_initial(), tf.distribute.get_strategy())
    rule = gr.NormSGDRule(TASKS, model.base, model.heads, _opt_config(), freeze_step=10,
                          ema_decay=0.0)
    finite = {t: [tf.ones_like(v) for v in model.base] for t in TASKS}
    heads = {t: [tf.ones_like(v) for v in model.heads[t]] for t in TASKS}
    rule.gradients(finite, heads, tf.constant(0))
    before = {t: float(rule.statistic(t).numpy()) for t in TASKS}
    bad = dict(finite, a=[tf.fill(v.shape, np.inf) for v in model.base])
    grads_and_vars, norms = rule.gradients(bad, heads, tf.constant(1), loss_scale=2.0 ** 15)
    assert not np.isfinite(grads_and_vars[0][0].numpy()).all()  # the loss-scale optimizer skips
    assert float(rule.statistic("a").numpy()) == before["a"]
    assert int(rule.statistic_updates["a"].numpy()) == 1
    assert int(rule.statistic_updates["b"].numpy()) == 2
    np.testing.assert_allclose(norms["b/grad_normaliser"], 1.0 / 2.0 ** 15, rtol=1e-6)


def test_round_robin_step_updates_only_the_active_task():
    """A task missing from a step's gradients: its head is not moved, its statistic not
    updated, and M counts the active tasks only (one active task = its normalised gradient)."""
    model, rule, _, history = _train("normsgd", steps=2, freeze_step=None, ema_decay=0.0,
                                     tasks_per_step=lambda t: ("a",))
    init = _initial()
    for k in ("Hb", "cb"):
        np.testing.assert_array_equal(model.weights()[k], np.asarray(init[k], np.float32))
    assert int(rule.statistic_updates["b"].numpy()) == 0
    assert int(rule.statistic_updates["a"].numpy()) == 2
    assert set(history[0]) == {"a/grad_l1_mean", "a/grad_l2", "a/grad_normaliser"}


def test_task_gradients_gives_zeros_for_unreached_variables():
    model = Toy(_initial(), tf.distribute.get_strategy())
    x, ta, tb = _batches(1)[0]
    with tf.GradientTape(persistent=True) as tape:
        losses = model.losses(x, ta, tb)
        losses["c"] = tf.constant(1.0)
    tg, hg = gr.task_gradients(tape, losses, model.base, model.heads, {"a": 4.0})
    assert all(not np.any(g.numpy()) for g in tg["c"]) and hg["c"] == []
    want = _np_grads(_initial(), x, ta, tb, (1.0, 20.0))
    np.testing.assert_allclose(tg["a"][0].numpy(), 4.0 * want["a"][0]["W"], rtol=1e-5)
    np.testing.assert_allclose(hg["b"][0].numpy(), want["b"][1]["Hb"], rtol=1e-5)


def test_bad_arguments_give_one_line_errors():
    model = Toy(_initial(), tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="unknown gradient rule 'adam'"):
        gr.make_rule("adam", TASKS, model.base, model.heads)
    with pytest.raises(ValueError, match="task weight of 'a'"):
        gr.SumRule(TASKS, model.base, model.heads, task_weights={"a": -1.0})
    with pytest.raises(ValueError, match="freeze_step"):
        gr.NormSGDRule(TASKS, model.base, model.heads, freeze_step=-1)
    with pytest.raises(ValueError, match="belongs to one place"):
        gr.SumRule(TASKS, model.base, {"a": model.base[:1]})
    with pytest.raises(ValueError, match="one optimizer per task"):
        gr.SeparateRule(TASKS, model.base, model.heads, optimizers={"a": keras.optimizers.Adam()})
    rule = gr.SumRule(TASKS, model.base, model.heads)
    with pytest.raises(ValueError, match="expected 2 base and 2 head"):
        rule.gradients({"a": [tf.zeros([1])]}, {"a": []}, 0)


def test_default_freeze_step_lies_after_the_warmup_and_before_the_first_drop():
    assert gr.default_freeze_step(1000, 1_000_000) == 2000
    assert gr.default_freeze_step(100, 180) == 140
    assert gr.default_freeze_step(0, 100) == 50
    with pytest.raises(ValueError, match="must come after the warm-up"):
        gr.default_freeze_step(100, 100)
