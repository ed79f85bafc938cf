"""The optimizer of a :class:`tfcolor.config.OptimizerConfig`: SGD with momentum, Caffe's
multistep learning-rate schedule and an optional linear warm-up.

:func:`make_optimizer` is what the trainer, the multi-task step and Keras ``fit`` users build;
:func:`current_learning_rate` reads the rate an optimizer uses now (for summaries).

Step convention (Caffe's): the update with 0-based index ``d`` (``optimizer.iterations == d``
when it is applied) is the first at the dropped rate when ``d`` is a drop step. With
``warmup_steps = W`` the updates ``d < W`` use ``learning_rate * (d + 1) / W`` (the last one of the
warm-up reaches the base rate), the linear warm-up of Goyal et al. that NormSGD asks for
(METHOD_CH4.md §8.3.4: "a brief learning-rate warm-up", length not specified).
"""
import keras
import numpy as np
import tensorflow as tf

from tfcolor.config import ConfigError

__all__ = ["make_optimizer", "make_schedule", "current_learning_rate", "WarmupMultistep"]


@keras.saving.register_keras_serializable(package="tfcolor")
class WarmupMultistep(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up over ``warmup_steps`` updates, then a piecewise-constant rate.

    Args:
        warmup_steps: updates of the warm-up (> 0).
        boundaries: drop steps, each >= ``warmup_steps`` (update ``d == boundary`` is the first
            at the next value).
        values: ``len(boundaries) + 1`` rates.
    """

    def __init__(self, warmup_steps, boundaries, values):
        super().__init__()
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"{len(boundaries)} boundaries need {len(boundaries) + 1} values, "
                             f"got {len(values)}")
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.values[0], tf.float32)
        for boundary, value in zip(self.boundaries, self.values[1:]):
            rate = tf.where(step >= float(boundary), tf.constant(value, tf.float32), rate)
        warm = tf.minimum((step + 1.0) / float(self.warmup_steps), 1.0)
        return rate * warm

    def get_config(self):
        return {"warmup_steps": self.warmup_steps, "boundaries": list(self.boundaries),
                "values": list(self.values)}


def make_schedule(config, train_steps):
    """The learning rate (a float or a ``LearningRateSchedule``) of ``config`` for a run of
    ``train_steps`` updates.

    Raises:
        tfcolor.config.ConfigError: a drop falls inside the warm-up.
    """
    boundaries, values = config.learning_rates(train_steps)
    warmup = int(getattr(config, "warmup_steps", 0) or 0)
    if warmup:
        early = [b for b in boundaries if b < warmup]
        if early:
            raise ConfigError(f"learning-rate drops {early} fall inside the {warmup}-step "
                              "warm-up; drop later or warm up for fewer steps", "warmup_steps")
        return WarmupMultistep(warmup, boundaries, values)
    if boundaries:
        # PiecewiseConstantDecay switches *after* a boundary: shift by one for Caffe's rule.
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [b - 1 for b in boundaries], values)
    return values[0]


def make_optimizer(config, train_steps, *, mixed_precision=False, rate_factor=1.0):
    """SGD with momentum and the config's schedule (loss-scaled if ``mixed_precision``).

    Args:
        config: a :class:`tfcolor.config.OptimizerConfig`.
        train_steps: the run's length (fractional drops are read against it).
        mixed_precision: wrap it in a ``keras.optimizers.LossScaleOptimizer``.
        rate_factor: multiplies every rate (e.g. eq. 4.10's 1/M for one optimizer per task).
    """
    rate = make_schedule(config, train_steps)
    if rate_factor != 1.0:
        rate = _scaled(rate, rate_factor)
    optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=config.momentum)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_adam(config, train_steps, *, mixed_precision=False, rate_factor=1.0, epsilon=1e-7):
    """Adam with the config's schedule (``momentum`` is not used); for one adaptive optimizer
    per task (:class:`tfcolor.train.gradient_rules.SeparateRule`)."""
    rate = make_schedule(config, train_steps)
    if rate_factor != 1.0:
        rate = _scaled(rate, rate_factor)
    optimizer = keras.optimizers.Adam(learning_rate=rate, epsilon=epsilon)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


@keras.saving.register_keras_serializable(package="tfcolor")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``factor * schedule(step)``."""

    def __init__(self, schedule, factor):
        super().__init__()
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        self.schedule = schedule
        self.factor = float(factor)

    def __call__(self, step):
        return self.factor * tf.cast(self.schedule(step), tf.float32)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "factor": self.factor}


def _scaled(rate, factor):
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return ScaledSchedule(rate, factor)
    return float(rate) * factor


def current_learning_rate(optimizer):
    """The rate ``optimizer`` applies at its current ``iterations`` (a float)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = inner.learning_rate
    if callable(getattr(inner, "_learning_rate", None)):
        rate = inner._learning_rate(inner.iterations)  # pylint: disable=protected-access
    return float(np.asarray(rate))
