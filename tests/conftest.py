"""Test-wide setup: quiet TensorFlow and split the CPU into two logical devices.

Two logical CPUs let MirroredStrategy tests run on a machine without accelerators. This must
happen before TensorFlow initialises its devices, hence here, at collection time.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # devices already initialised (e.g. by a plugin); strategy tests will skip
    pass
