"""Tests of tfcolor.train.optimizers: the linear warm-up before Caffe's multistep schedule.

References are hand-computed tables (Caffe's convention: update ``d`` is the first at the dropped
rate when ``d`` is a drop step; warm-up update ``d < W`` uses ``lr * (d + 1) / W``), the schedule
without warm-up (``PiecewiseConstantDecay`` shifted by one), and ``get_config`` round trips.
"""
import dataclasses

import keras
import numpy as np
import pytest

from tfcolor import config
from tfcolor.train import optimizers


def _rates(schedule, steps):
    if not callable(schedule):
        return [float(schedule)] * len(steps)
    return [float(schedule(s)) for s in steps]


def test_warmup_multistep_follows_the_hand_computed_table():
    # W = 4, drops at 6 and 9, base 0.1, factor 0.1.
    schedule = optimizers.WarmupMultistep(4, [6, 9], [0.1, 0.01, 0.001])
    want = {0: 0.025, 1: 0.05, 2: 0.075, 3: 0.1, 4: 0.1, 5: 0.1,   # warm-up, then the base rate
            6: 0.01, 7: 0.01, 8: 0.01,                             # d == 6: first dropped update
            9: 0.001, 10: 0.001, 1000: 0.001}
    got = dict(zip(want, _rates(schedule, list(want))))
    for step, rate in want.items():
        np.testing.assert_allclose(got[step], rate, rtol=1e-6, err_msg=f"update {step}")


def test_make_schedule_reads_the_config_with_warmup():
    opt = config.OptimizerConfig(learning_rate=0.2, lr_drops=[0.5, 0.75], lr_drop_factor=0.5,
                                 warmup_steps=5)
    schedule = optimizers.make_schedule(opt, 20)   # drops at 10 and 15
    assert isinstance(schedule, optimizers.WarmupMultistep)
    steps = [0, 4, 5, 9, 10, 14, 15, 19]
    want = [0.2 / 5, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    np.testing.assert_allclose(_rates(schedule, steps), want, rtol=1e-6)
    # A drop exactly at the end of the warm-up is allowed: update W is the first dropped one.
    at_end = optimizers.make_schedule(dataclasses.replace(opt, lr_drops=[5]), 20)
    np.testing.assert_allclose(_rates(at_end, [3, 4, 5]), [0.2 * 4 / 5, 0.2, 0.1], rtol=1e-6)


@pytest.mark.parametrize("drops", [[3], [0.1], [2, 12]])
def test_drops_inside_the_warmup_are_a_config_error(drops):
    opt = config.OptimizerConfig(learning_rate=0.1, lr_drops=drops, warmup_steps=4)
    with pytest.raises(config.ConfigError, match="warm-up") as info:
        optimizers.make_schedule(opt, 20)   # 0.1 * 20 = 2 < 4
    assert info.value.field == "warmup_steps"


@pytest.mark.parametrize("drops, steps", [([], 10), ([3, 7], 10), ([0.5, 0.75], 8), ([1], 4)])
def test_no_warmup_is_the_old_piecewise_constant_schedule(drops, steps):
    opt = config.OptimizerConfig(learning_rate=0.3, lr_drops=drops, lr_drop_factor=0.1)
    schedule = optimizers.make_schedule(opt, steps)
    boundaries, values = opt.learning_rates(steps)
    if not boundaries:
        assert schedule == 0.3   # a constant, as before the warm-up existed
        return
    old = keras.optimizers.schedules.PiecewiseConstantDecay([b - 1 for b in boundaries], values)
    assert isinstance(schedule, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert schedule.get_config() == old.get_config()
    # Caffe's convention, by hand: update d uses values[number of boundaries <= d].
    for d in range(steps + 2):
        want = values[sum(b <= d for b in boundaries)]
        np.testing.assert_allclose(float(schedule(d)), want, rtol=1e-6, err_msg=f"update {d}")


def test_schedules_round_trip_through_get_config_and_keras_serialisation():
    warm = optimizers.WarmupMultistep(3, [5], [0.1, 0.01])
    again = optimizers.WarmupMultistep.from_config(warm.get_config())
    steps = list(range(8))
    assert _rates(again, steps) == _rates(warm, steps)
    scaled = optimizers.ScaledSchedule(warm, 0.5)
    for obj in (warm, scaled):
        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(copy) is type(obj)
        np.testing.assert_allclose(_rates(copy, steps), _rates(obj, steps), rtol=1e-7)
    copy = optimizers.ScaledSchedule.from_config(scaled.get_config())
    assert isinstance(copy.schedule, optimizers.WarmupMultistep)
    np.testing.assert_allclose(_rates(copy, steps), _rates(scaled, steps), rtol=1e-7)


def test_scaled_schedule_and_rate_factor_multiply_every_rate():
    warm = optimizers.WarmupMultistep(2, [4], [0.1, 0.01])
    scaled = optimizers.ScaledSchedule(warm, 0.25)
    steps = list(range(7))
    np.testing.assert_allclose(_rates(scaled, steps), [0.25 * r for r in _rates(warm, steps)],
                               rtol=1e-6)
    opt = config.OptimizerConfig(learning_rate=0.1, lr_drops=[4], warmup_steps=2)
    sgd = optimizers.make_optimizer(opt, 8, rate_factor=0.5)
    adam = optimizers.make_adam(opt, 8, rate_factor=0.5)
    for o in (sgd, adam):
        rates = []
        for d in steps:
            o.iterations.assign(d)
            rates.append(optimizers.current_learning_rate(o))
        np.testing.assert_allclose(rates, [0.5 * r for r in _rates(warm, steps)], rtol=1e-6)
    # A constant rate is multiplied directly.
    const = optimizers.make_optimizer(config.OptimizerConfig(learning_rate=0.1, lr_drops=[]), 8,
                                      rate_factor=0.5)
    np.testing.assert_allclose(optimizers.current_learning_rate(const), 0.05, rtol=1e-6)
    assert sgd.momentum == opt.momentum
    mixed = optimizers.make_optimizer(opt, 8, mixed_precision=True)
    assert isinstance(mixed, keras.optimizers.LossScaleOptimizer)
    np.testing.assert_allclose(optimizers.current_learning_rate(mixed), 0.05, rtol=1e-6)
