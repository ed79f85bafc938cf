"""Tests for tfcolor.train.task_step.InputStream: where a rebuilt input stream starts."""
import numpy as np
import tensorflow as tf

from tfcolor.train import task_step


class _ShuffledTask:
    """A task whose stream is a seeded shuffle that reshuffles on every iteration (as tf.data's
    default does), with each element's position as ``index``."""

    def build_inputs(self, start=0):
        order = tf.data.Dataset.range(64).shuffle(64, seed=7, reshuffle_each_iteration=True)
        data = order.enumerate().map(lambda i, x: {"index": i, "x": x}).skip(start)
        return data.batch(4, drop_remainder=True)

    def batch_size(self, element_spec):
        return element_spec["x"].shape[0]


def _first(iterator):
    return next(iterator)["x"].numpy()


def test_a_restart_at_position_zero_replays_the_first_order():
    task = _ShuffledTask()
    stream = task_step.InputStream(task, task.build_inputs(0), tf.distribute.get_strategy(),
                                   host_split=True)
    first = _first(stream.get())
    # Nothing consumed is recorded (position 0): a restart must give the stream's first batch
    # again, not a second iteration of the same dataset (which reshuffles).
    again = _first(stream.get(restart=True))
    np.testing.assert_array_equal(again, first)
    # The control: iterating the built dataset a second time gives another order.
    data = task.build_inputs(0)
    one, two = _first(iter(data)), _first(iter(data))
    assert not np.array_equal(one, two)
