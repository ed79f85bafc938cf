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
