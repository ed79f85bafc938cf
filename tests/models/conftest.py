"""Fixtures shared by the model tests."""
import pytest
import tensorflow as tf


@pytest.fixture
def two_replica_strategy():
    """A MirroredStrategy over the two logical CPUs (tests/conftest.py), reducing on one device.

    ReductionToOneDevice rather than the default collective all-reduce: synchronized BN keys its
    collective instances per strategy object, so several strategies in one process (as in a test
    session) can collide ("Shape mismatch in the collective instance").
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (tests/conftest.py)")
    return tf.distribute.MirroredStrategy(
            [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice())


def _replica_training_step(strategy, model, optimizer, loss_fn):
    """A ``tf.function`` doing one SGD step on every replica of ``strategy``.

    ``loss_fn(outputs)`` gives the replica's loss from the model's output dict. The step returns
    the per-replica ``(loss, outputs)`` of ``strategy.run``.
    """
    @tf.function
    def step(batch):
        def replica_step(b):
            with tf.GradientTape() as tape:
                outputs = model(b, training=True)
                loss = loss_fn(outputs)
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            return loss, outputs
        return strategy.run(replica_step, args=(batch,))
    return step


@pytest.fixture
def replica_training_step():
    """The factory ``(strategy, model, optimizer, loss_fn) -> step`` (see above)."""
    return _replica_training_step
