"""Tests of the multi-task step (tfcolor.train.multitask_step.MultiTaskStep) through the host loop.

Set-up (the cheapest faithful one): the real ColorizationTask (a Colorizer on the shared trunk, the
stand-in point dataset of tests/train_standins.py with stream positions) and the real JigsawTask
(array photos through the pretraining pipeline), on a SharedTrunk of vgg_tiny's first two
convolutions (``build_trunk(taps=...)``), so a step object builds and traces in seconds.

References: the single-task path (TaskStep) for one task under the sum rule; loss-scale
invariance of NormSGD with joint SGD as the control; gradients taken independently with a
GradientTape for the logged statistics and an EMA written out here; an uninterrupted run for
exact resume; one device for two replicas; the float32 run for mixed precision. Tolerances are
derived where they are used (float32 unit roundoff EPS32 = 2**-24, float16 EPS16 = 2**-11).
"""
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import train_standins as si  # noqa: E402

from tfcolor import config  # noqa: E402
from tfcolor import train  # noqa: E402
from tfcolor.models import multitask as multitask_lib  # noqa: E402
from tfcolor.models import trunk as trunk_lib  # noqa: E402
from tfcolor.models.colorizer import Colorizer  # noqa: E402
from tfcolor.tasks import base as task_base  # noqa: E402
from tfcolor.tasks import jigsaw as jigsaw_task  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402
from tfcolor.train.multitask_step import MultiTaskStep  # noqa: E402

EPS32 = 2.0 ** -24
EPS16 = 2.0 ** -11
TAPS = ["data", "conv1_1", "conv1_2"]
IMAGES = (np.random.default_rng(0).uniform(0, 1, (6, 40, 40, 3)) * 255).astype(np.uint8)
FREEZE, EMA = 3, 0.5   # the NormSGD fixture's statistics: frozen after 3 updates

needs_two_cpus = pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2,
                                    reason="needs 2 logical CPU devices (tests/conftest.py)")


# --------------------------------------------------------------------------------------------
# Set-up.

def _trunk_fn(channels=3):
    def build():
        model = trunk_lib.build_trunk("vgg_tiny", taps=TAPS, input_channels=channels,
                                      sync_batch_norm=True)
        return multitask_lib.SharedTrunk(model=model, arch="vgg_tiny", input_channels=channels)
    return build


def _colorization():
    head = dict(output_sizes=(si.DEPTH,), hidden=8, dropout=0.0)

    def model_on(trunk):
        return Colorizer(trunk=trunk.model, tap_strides=trunk.tap_strides(TAPS),
                         input_channels=trunk.input_channels, **head)

    def model_fn():   # the single-task model: its own trunk of the same structure
        return Colorizer("vgg_tiny", taps=TAPS, sync_batch_norm=True, **head)

    return ColorizationTask(loss_fn=si.per_point_loss, model_fn=model_fn, model_on_fn=model_on,
                            dataset=si.make_dataset_fn(batch_size=2, size=16, points=5))


def _jigsaw():
    data = jigsaw_task.default_data_config(batch_size=2, crop_size=32, min_side=32, max_side=36,
                                           validation_images=0)
    # No shuffle: a second iterator over a shuffled pipeline's dataset object reshuffles
    # (reshuffle_each_iteration), and the tests reset one step object to its start several
    # times; crops and puzzles are still drawn per record.
    return jigsaw_task.JigsawTask(data, source=IMAGES, piece_size=12,
                                  pipeline_options={"shuffle": False},
                                  model_kwargs=dict(tap="conv1_2", reduce_channels=8,
                                                    init_stddev=0.1))


class ScaledLoss(task_base.Task):
    """Delegates everything to ``inner``; its data loss is multiplied by :attr:`scale` (a
    variable, so one traced step serves every scale)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.scale = tf.Variable(1.0, trainable=False)

    def build_model(self):
        return self.inner.build_model()

    def build_model_on(self, trunk):
        return self.inner.build_model_on(trunk)

    def build_inputs(self, start=0):
        return self.inner.build_inputs(start)

    def check_inputs(self, element_spec):
        return self.inner.check_inputs(element_spec)

    def batch_size(self, element_spec):
        return self.inner.batch_size(element_spec)

    def head_variables(self, model):
        return self.inner.head_variables(model)

    def preview(self, model):
        return self.inner.preview(model)

    def dummy_batch(self, element_spec):
        return self.inner.dummy_batch(element_spec)

    def compute_loss(self, model, batch, *, training, global_batch_size):
        loss, terms = self.inner.compute_loss(model, batch, training=training,
                                              global_batch_size=global_batch_size)
        return loss * self.scale, terms


def _opt(**kw):
    base = dict(learning_rate=1e-3, lr_drops=[], momentum=0.9, weight_decay=1e-3,
                head_weight_decay=2e-2, bias_lr_multiplier=2.0)
    base.update(kw)
    return config.OptimizerConfig(**base)


def _step(tasks, *, rule="normsgd", strategy=None, seed=0, opt=None, channels=3, train_steps=8,
          **kw):
    train.set_deterministic(seed)
    if rule == "normsgd":
        kw.setdefault("rule_options", dict(freeze_step=FREEZE, ema_decay=EMA))
    return MultiTaskStep(tasks, trunk_fn=_trunk_fn(channels),
                         strategy=strategy or train.make_strategy("default"),
                         train_steps=train_steps, optimizer_config=opt or _opt(),
                         gradient_rule=rule, **kw)


def _trainer(step, model_dir, steps, *, steps_per_loop=1, checkpoint_every=1000, hooks=()):
    return train.Trainer(step, strategy=step.strategy, model_dir=str(model_dir), train_steps=steps,
                         steps_per_loop=steps_per_loop, checkpoint_every=checkpoint_every,
                         summary_every=1000, hooks=hooks, handle_sigterm=False)


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _state(step):
    """Every variable of the run's state: model, optimizer(s), rule, step, input positions."""
    return _unique(list(step.variables()) + [step.step] + list(step.input_positions.values()))


def _values(variables):
    return [np.array(tf.convert_to_tensor(v)) for v in variables]


def _reset(step, values):
    """Puts ``step`` back to a state recorded with ``_values(_state(step))``."""
    for v, x in zip(_state(step), values):
        v.assign(x)
    step.restart_inputs(True)


def _copy_model(src_values, dst):
    for v, x in zip(dst, src_values):
        assert tuple(v.shape) == x.shape, v.path
        v.assign(x)


def _close_to(got, want, start, rel, name="", floor=3e-4):
    """Per variable, ``|got - want| <= rel * travel + floor * largest travel + 4 EPS32 |want|``:
    ``rel`` of the distance the variable travelled (``max |want - start|``), plus a noise floor
    for gradients that are zero in exact arithmetic (a convolution bias before batch
    normalization: BN removes any constant shift, and its computed gradient is a cancellation
    of ~sqrt(n) EPS32 of the activations' gradients, 1e-5 .. 1e-4 of a step), plus rounding of
    the stored weights."""
    travels = [np.abs(w - s).max() if w.size else 0.0 for w, s in zip(want, start)]
    largest = max(travels)
    for g, w, travel in zip(got, want, travels):
        tol = rel * travel + floor * largest + 4 * EPS32 * np.abs(w)
        assert np.all(np.abs(g - w) <= tol), (
            f"{name}: max |diff| {np.abs(g - w).max():.3g} > tol {np.max(tol):.3g} "
            f"(travel {travel:.3g}, largest {largest:.3g})")


@pytest.fixture(scope="module")
def tasks():
    return {"colorization": _colorization(), "jigsaw": ScaledLoss(_jigsaw())}


@pytest.fixture(autouse=True)
def _unscaled(tasks):
    tasks["jigsaw"].scale.assign(1.0)
    yield
    tasks["jigsaw"].scale.assign(1.0)


@pytest.fixture(scope="module")
def normsgd(tasks):
    """A joint NormSGD step on colorization + jigsaw (statistics frozen after FREEZE updates)
    and its initial state; tests reset it before use."""
    step = _step(list(tasks.values()))
    return step, _values(_state(step))


def _fresh(normsgd_fixture, scale=1.0):
    step, initial = normsgd_fixture
    _reset(step, initial)
    step.tasks["jigsaw"].scale.assign(scale)
    return step


# --------------------------------------------------------------------------------------------
# 1. One task through the multi-task path is the single-task path.

def test_one_task_under_the_sum_rule_equals_the_single_task_step(tmp_path):
    task = _colorization()
    opt = _opt(learning_rate=0.05)
    steps = 5
    multi = _step([task], rule="sum", channels=1, opt=opt, schedule="joint")
    train.set_deterministic(0)
    single = train.task_step.TaskStep(task, strategy=train.make_strategy("default"),
                                      train_steps=8, optimizer_config=opt)
    sub = multi.model.sub_models["colorization"]
    assert [v.path for v in sub.weights] == [v.path for v in single.model.weights]
    _copy_model(_values(sub.weights), single.model.weights)
    start = _values(sub.trainable_variables)
    r_multi = _trainer(multi, tmp_path / "multi", steps, steps_per_loop=2).train()
    r_single = _trainer(single, tmp_path / "single", steps, steps_per_loop=2).train()
    assert r_multi.step == r_single.step == steps
    # The two paths add the same terms in other orders (weight decay: a loss term there, a
    # gradient term here): each update differs by a few EPS32 of its terms, over 5 steps with
    # momentum 0.9; 1e-4 of the distance travelled is a margin of > 100 over that, while a
    # wrong head decay, bias multiplier or share would change it by O(1).
    _close_to(_values(sub.trainable_variables), _values(single.model.trainable_variables), start,
              1e-4, "weights")
    # The BN statistics see the same activations up to that rounding.
    for a, b in zip(_values(sub.non_trainable_variables),
                    _values(single.model.non_trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r_multi.losses["colorization"], r_single.losses["colorization"],
                               rtol=1e-5)
    for name in ("loss", "weight_decay"):
        np.testing.assert_allclose(r_multi.losses[name], r_single.losses[name], rtol=1e-5)
    # Every trainable weight moved (the comparison is not between two untouched models).
    for v, w, s in zip(sub.trainable_variables, _values(sub.trainable_variables), start):
        assert np.any(w != s), v.path


# --------------------------------------------------------------------------------------------
# 2. NormSGD is loss-scale invariant; joint SGD is not.

def _run_weights(step, model_dir, steps):
    result = _trainer(step, model_dir, steps).train()
    return _values(step.model.trainable_variables), result


def test_normsgd_updates_do_not_change_when_a_loss_is_scaled_but_sum_updates_do(tmp_path,
                                                                               normsgd, tasks):
    steps = 4   # past the freeze (3): frozen statistics are scale-invariant too
    step = _fresh(normsgd)
    start = _values(step.model.trainable_variables)
    w1, r1 = _run_weights(step, tmp_path / "n1", steps)
    _fresh(normsgd)
    again, _ = _run_weights(step, tmp_path / "n1b", steps)
    for a, b in zip(w1, again):   # the reset reproduces the run exactly (deterministic)
        np.testing.assert_array_equal(a, b)
    _fresh(normsgd, scale=100.0)
    w100, r100 = _run_weights(step, tmp_path / "n100", steps)
    # The scale took effect: the jigsaw gradient is 100 times larger (first step, same data).
    np.testing.assert_allclose(r100.history[0][1]["grad/jigsaw/l1_mean"],
                               100 * r1.history[0][1]["grad/jigsaw/l1_mean"], rtol=1e-4)
    # Tolerance: x100 is not a power of two, so each backward op rounds differently: a relative
    # difference of some 10 EPS32 (~1e-6) in every normalised gradient, over 4 steps; 1e-4 of
    # the distance travelled keeps a margin of ~100 and is far below the control's change.
    _close_to(w100, w1, start, 1e-4, "normsgd x100")

    summed = _step(list(tasks.values()), rule="sum", opt=_opt(learning_rate=0.01))
    s_state = _values(_state(summed))
    s_start = _values(summed.model.trainable_variables)
    base = summed.model.base_variables()
    base_start = _values(base)
    tasks["jigsaw"].scale.assign(1.0)
    s1, _ = _run_weights(summed, tmp_path / "s1", steps)
    base1 = _values(base)
    _reset(summed, s_state)
    tasks["jigsaw"].scale.assign(100.0)
    s100, _ = _run_weights(summed, tmp_path / "s100", steps)
    with pytest.raises(AssertionError):
        _close_to(s100, s1, s_start, 1e-4, "sum x100")
    # Not a rounding matter: the trunk's steps change by a good fraction of their size.
    ratios = [np.abs(a - b).max() / np.abs(b - s).max()
              for a, b, s in zip(_values(base), base1, base_start)]
    assert max(ratios) > 0.1, ratios


# --------------------------------------------------------------------------------------------
# 3. The logged gradient statistics.

def test_logged_gradient_statistics_are_the_tasks_base_gradients_and_the_frozen_ema(tmp_path,
                                                                                    normsgd):
    step = _fresh(normsgd)
    initial = normsgd[1]
    base = step.model.base_variables()
    num_base = sum(int(np.prod(v.shape)) for v in base)
    assert num_base == 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 8 + 8   # conv1_1 and conv1_2 of vgg_tiny
    want = {}
    for name, task in step.tasks.items():
        batch = dict(next(iter(task.build_inputs(0))))
        batch.pop("index")
        size = task.batch_size(batch)
        with tf.GradientTape() as tape:
            loss, _ = task.compute_loss(step.model.sub_models[name], batch, training=True,
                                        global_batch_size=size)
        grads = [np.asarray(g, np.float64) for g in tape.gradient(loss, base)]
        want[name] = (sum(np.abs(g).sum() for g in grads) / num_base,
                      np.sqrt(sum(np.square(g).sum() for g in grads)))
    _reset(step, initial)   # the tape's forward pass moved the BN statistics
    steps = 6
    result = _trainer(step, tmp_path, steps).train()
    assert [s for s, _ in result.history] == list(range(1, steps + 1))
    for name, (l1_mean, l2) in want.items():
        first = result.history[0][1]
        # The same gradient in graph and eager mode: sums of <= 1152 products in other
        # orders, ~sqrt(1152) EPS32 = 2e-6 relative; 1e-4 leaves a margin of 50.
        np.testing.assert_allclose(first[f"grad/{name}/l1_mean"], l1_mean, rtol=1e-4)
        np.testing.assert_allclose(first[f"grad/{name}/l2"], l2, rtol=1e-4)
        # The normaliser: the debiased EMA of the logged l1 means, frozen after FREEZE updates.
        logged = [h[f"grad/{name}/l1_mean"] for _, h in result.history]
        used = [h[f"grad/{name}/normaliser"] for _, h in result.history]
        average, expected = 0.0, []
        for t, value in enumerate(logged):
            if t < FREEZE:
                average = EMA * average + (1 - EMA) * value
                expected.append(average / (1 - EMA ** (t + 1)))
            else:
                expected.append(expected[-1])
        np.testing.assert_allclose(used, expected, rtol=1e-5)
        assert len(set(np.round(logged, 12))) == steps   # the raw values kept changing
        assert int(step.rule.statistic_updates[name].numpy()) == FREEZE


# --------------------------------------------------------------------------------------------
# 4. Round-robin.

def _momentum(optimizer, variable):
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner.momentums[inner._get_variable_index(variable)]  # pylint: disable=protected-access


def _round_robin_run(tasks, model_dir, state, *, quantum=2, steps=8, steps_per_loop=5):
    step = _step(list(tasks.values()), schedule="round_robin", quantum=quantum,
                 round_robin_state=state)
    names = step.task_names
    base = step.model.base_variables()
    heads = {n: step.model.head_variables(n) for n in names}
    optimizers = {n: step.task_optimizers.get(n, step.optimizer) for n in names}
    snaps = []

    def record(trainer, at, losses):
        del trainer
        snaps.append(dict(
            step=at, losses=dict(losses), base=_values(base),
            heads={n: _values(heads[n]) for n in names},
            positions={n: int(p.numpy()) for n, p in step.input_positions.items()},
            slots={n: _values([_momentum(optimizers[n], v) for v in base + heads[n]])
                   for n in names},
            iterations={n: int(getattr(o, "inner_optimizer", o).iterations.numpy())
                        for n, o in optimizers.items()}))

    first = dict(base=_values(base), heads={n: _values(heads[n]) for n in names})
    _trainer(step, model_dir, steps, steps_per_loop=steps_per_loop, hooks=[record]).train()
    return step, first, snaps


def _changed(a, b):
    return any(np.any(x != y) for x, y in zip(a, b))


def test_round_robin_trains_one_task_per_quantum_with_its_own_momentum(tmp_path, tasks):
    quantum, steps = 2, 8
    step, first, snaps = _round_robin_run(tasks, tmp_path / "per_task", "per_task")
    names = step.task_names
    # Loops end at every switch although steps_per_loop (5) is larger than the quantum.
    assert [s["step"] for s in snaps] == [2, 4, 6, 8]
    previous = dict(first, positions={n: 0 for n in names}, slots=None)
    for k, snap in enumerate(snaps):
        active, idle = names[k % 2], names[(k + 1) % 2]
        assert f"grad/{active}/l1_mean" in snap["losses"] and active in snap["losses"]
        assert not any(key.startswith(idle) or f"/{idle}/" in key for key in snap["losses"])
        assert _changed(snap["base"], previous["base"])                 # the trunk moves
        assert _changed(snap["heads"][active], previous["heads"][active])
        for a, b in zip(snap["heads"][idle], previous["heads"][idle]):
            np.testing.assert_array_equal(a, b)                       # the idle head does not
        assert snap["positions"][idle] == previous["positions"][idle]
        assert snap["positions"][active] == previous["positions"][active] + quantum * 2
        # Each task's optimizer moves in its own turns only, and its step counter is the run's.
        assert snap["iterations"][active] == snap["step"]
        if previous["slots"] is not None:
            for a, b in zip(snap["slots"][idle], previous["slots"][idle]):
                np.testing.assert_array_equal(a, b)
        before = (previous["slots"][active] if previous["slots"] else
                  [np.zeros_like(x) for x in snap["slots"][active]])
        assert _changed(snap["slots"][active], before)
        previous = snap
    assert step.schedule.steps_of(names[0], 0, steps) == steps // 2
    # Called directly, a run that would cross a switch is refused (it would train the wrong
    # task after the switch); up to the switch is fine.
    with pytest.raises(ValueError, match="task switch at step 10"):
        step.run(3)
    assert step.next_boundary(int(step.step.numpy())) == 10

    # One shared momentum: equal to the per-task run over the first turn, different after the
    # switch (the jigsaw's first updates carry the colorization's trunk momentum).
    _, _, shared = _round_robin_run(tasks, tmp_path / "shared", "shared")
    assert [s["step"] for s in shared] == [2, 4, 6, 8]
    for a, b in zip(shared[0]["base"], snaps[0]["base"]):
        np.testing.assert_array_equal(a, b)
    assert _changed(shared[1]["base"], snaps[1]["base"])
    # With a shared optimizer the trunk's momentum moves in every turn (per task, it stays
    # with its task: checked above).
    nb = len(step.model.base_variables())
    assert _changed(shared[1]["slots"][names[0]][:nb], shared[0]["slots"][names[0]][:nb])


# --------------------------------------------------------------------------------------------
# 5. Exact resume.

# Round-robin resume (three step objects, two traces each) is in the slow run; the default run
# keeps the joint one (the same checkpoint plumbing) and the round-robin switching test.
@pytest.mark.parametrize("schedule", ["joint",
                                      pytest.param("round_robin", marks=pytest.mark.slow)])
def test_resumed_run_equals_the_uninterrupted_run(tmp_path, tasks, schedule):
    """k steps, a new step object and Trainer on the same model_dir, N - k more == N steps:
    weights, optimizer slots (per task under round-robin), NormSGD statistics, positions."""
    n, k = 6, 3   # round-robin with quantum 2: the resumed part switches at 4
    kw = dict(schedule=schedule, quantum=2 if schedule == "round_robin" else None)
    whole = _step(list(tasks.values()), **kw)
    initial = _values(_state(whole))
    _trainer(whole, tmp_path / "whole", n, steps_per_loop=4).train()
    part = _step(list(tasks.values()), **kw)
    for a, b in zip(_values(_state(part)), initial):   # the same start
        np.testing.assert_array_equal(a, b)
    _trainer(part, tmp_path / "resumed", k, steps_per_loop=4).train()
    restarted = _step(list(tasks.values()), seed=1, **kw)   # other initial weights
    result = _trainer(restarted, tmp_path / "resumed", n, steps_per_loop=4).train()
    assert result.step == n and result.history[0][0] == (4 if schedule == "round_robin" else n)
    names = [v.path if hasattr(v, "path") else v.name for v in _state(whole)]
    for name, a, b in zip(names, _values(_state(restarted)), _values(_state(whole))):
        np.testing.assert_array_equal(a, b, err_msg=name)
    if schedule == "round_robin":
        assert set(restarted.task_optimizers) == {"colorization", "jigsaw"}
    assert all(int(p.numpy()) > 0 for p in restarted.input_positions.values())


# --------------------------------------------------------------------------------------------
# 6. Two replicas.

@pytest.mark.slow   # 10 s on a quiet machine, 2 min at load 19: two replicas' threads wait
@needs_two_cpus
def test_mirrored_step_equals_single_device_step(normsgd, tasks):
    devices = tf.config.list_logical_devices("CPU")[:2]
    strategy = tf.distribute.MirroredStrategy(
            [d.name for d in devices], cross_device_ops=tf.distribute.ReductionToOneDevice())
    mirrored = _step(list(tasks.values()), strategy=strategy)
    single = _fresh(normsgd)
    _copy_model(_values(single.model.weights), mirrored.model.weights)
    start = _values(single.model.trainable_variables)
    out_m = {k: float(v) for k, v in mirrored.run(1).items()}
    out_s = {k: float(v) for k, v in single.run(1).items()}
    assert set(out_m) == set(out_s)
    # Two half-batch sums instead of one: the gradients differ by ~sqrt(1152) EPS32 relative
    # (2e-6), the normalised update likewise; 1e-4 keeps a margin of 50.
    for key in out_s:
        np.testing.assert_allclose(out_m[key], out_s[key], rtol=1e-4, err_msg=key)
    _close_to(_values(mirrored.model.trainable_variables),
              _values(single.model.trainable_variables), start, 1e-4, "mirrored")
    for a, b in zip(_values(mirrored.model.non_trainable_variables),
                    _values(single.model.non_trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for name in single.task_names:
        np.testing.assert_allclose(mirrored.rule.statistic(name).numpy(),
                                   single.rule.statistic(name).numpy(), rtol=1e-4)
    assert all(int(p.numpy()) == 2 for p in mirrored.input_positions.values())


# --------------------------------------------------------------------------------------------
# 7. Mixed precision.

@pytest.mark.slow  # two runs under two dtype policies (a minute on a busy machine)
def test_mixed_precision_trains_and_logs_unscaled_gradient_norms(tmp_path, normsgd, tasks):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = _step(list(tasks.values()), mixed_precision=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    single = _fresh(normsgd)
    start = _values(single.model.weights)
    _copy_model(start, mixed.model.weights)
    steps = 4
    result = _trainer(mixed, tmp_path / "mixed", steps).train()
    reference = _trainer(single, tmp_path / "float32", 1).train()
    assert result.step == steps
    assert all(np.isfinite(x).all() for x in _values(mixed.model.weights))
    assert all(np.isfinite(v) for _, h in result.history for v in h.values())
    assert _changed(_values(mixed.model.weights), start)
    scale = float(tf.convert_to_tensor(mixed.optimizer.dynamic_scale))
    assert scale > 1000   # the gradients really were scaled
    # Step 1 from the same weights and data: float16 activations and weights round to EPS16
    # (4.9e-4) in each of the ~4 layers of the forward and backward passes, ~8 EPS16 = 4e-3 in
    # a gradient; 4e-2 leaves a margin of 10 and is far from the loss scale (>= 1000).
    for key, value in reference.history[0][1].items():
        if key.startswith("grad/"):
            np.testing.assert_allclose(result.history[0][1][key], value, rtol=80 * EPS16,
                                       err_msg=key)


# --------------------------------------------------------------------------------------------
# 8. Split-weights: each trunk column follows its own task.

def test_split_weights_trunk_columns_follow_their_own_task_only(tasks):
    """Scaling the jigsaw's loss by 10 scales the first update of the jigsaw's trunk column
    (column 1: the upper half of every layer's units) by 10 and leaves colorization's column
    (the lower half) unchanged (plain SGD, no decay: the update is the masked gradient)."""
    from tfcolor.models import split  # pylint: disable=import-outside-toplevel
    opt = _opt(momentum=0.0, weight_decay=0.0, head_weight_decay=0.0)
    step = _step(list(tasks.values()), rule="split_weights", opt=opt)
    trunk = step.model.base_variables()
    masks = split.column_masks(step.model.trunk, 2)
    initial = _values(_state(step))
    before = _values(trunk)
    deltas = []
    for scale in (1.0, 10.0):
        _reset(step, initial)
        tasks["jigsaw"].scale.assign(scale)
        step.run(1)
        deltas.append([a - b for a, b in zip(_values(trunk), before)])
    largest = max(np.abs(d).max() for d in deltas[0])
    for v, w, d1, d10 in zip(trunk, before, *deltas):
        own, other = masks[v.path]
        # The stored weights round to EPS32 |w| (before and after the update); a bias before
        # batch normalization has a zero gradient in exact arithmetic, computed as a
        # cancellation (the noise floor of _close_to).
        atol = 4 * EPS32 * np.abs(w).max() + 3e-4 * largest
        np.testing.assert_allclose(d10 * own, d1 * own, rtol=1e-4, atol=atol, err_msg=v.path)
        np.testing.assert_allclose(d10 * other, 10 * d1 * other, rtol=1e-4, atol=10 * atol,
                                   err_msg=v.path)
        if v.path.endswith("kernel"):
            assert np.abs(d10 * other).max() > 30 * atol, v.path   # both columns moved
            assert np.abs(d1 * own).max() > 30 * atol, v.path
