"""Tests for tfcolor.train.step (the update rule shared by the trainer and Keras fit)."""
import keras
import numpy as np
import tensorflow as tf

from tfcolor.config import OptimizerConfig
from tfcolor.train import step


def test_variables_the_loss_does_not_reach_get_zero_gradients():
    # E.g. a trunk's layers after the tap a downstream head reads: the tape returns None for
    # them, and the rule must give zeros (TF's UnconnectedGradients.ZERO fails on Keras 3
    # variables) so that the optimizer can apply one list over every variable.
    used, unused = keras.layers.Dense(2), keras.layers.Dense(2)
    x = tf.ones([1, 3])
    used(x), unused(x)
    variables = used.trainable_variables + unused.trainable_variables
    rule = step.UpdateRule(OptimizerConfig(bias_lr_multiplier=1.0), variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(used(x))
    grads = rule.gradients(tape, loss, variables, keras.optimizers.SGD(0.1))
    np.testing.assert_allclose(grads[0], np.ones((3, 2)))       # d sum(xW + b) / dW = x
    np.testing.assert_allclose(grads[1], np.ones(2))
    for g, v in zip(grads[2:], unused.trainable_variables):
        assert g.shape == v.shape
        np.testing.assert_array_equal(g, np.zeros(v.shape))
