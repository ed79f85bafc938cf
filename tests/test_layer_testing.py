"""Tests of the layer test harness (tests/layer_testing.py): it passes correct layers and fails
each kind of broken layer it exists to catch, and it restores the global dtype policy."""
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import layer_testing  # noqa: E402

X = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")


class Scale(keras.layers.Layer):
    """A correct layer: ``x * w + bias`` with one weight per channel and an optional offset."""

    def __init__(self, init=2.0, bias=0.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init
        self.bias = bias

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],),
                                 initializer=keras.initializers.Constant(self.init))

    def call(self, x, offset=None):
        y = x * self.w + self.bias
        return y if offset is None else y + offset

    def get_config(self):
        return {**super().get_config(), "init": self.init, "bias": self.bias}


class ForgetsConfig(Scale):
    def get_config(self):
        config = super().get_config()
        del config["bias"]  # from_config falls back to the default
        return config


class Float32Output(Scale):
    def call(self, x, offset=None):
        return tf.cast(super().call(x, offset), tf.float32)  # ignores the compute dtype


class DeadWeight(Scale):
    def build(self, input_shape):
        super().build(input_shape)
        self.unused = self.add_weight(shape=(1,), initializer="ones")


class WrongStatic(Scale):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)

    def compute_output_spec(self, x, offset=None):
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype=self.compute_dtype)


class Float16Variables(Scale):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                 dtype=self.compute_dtype)


class Sublayer(keras.layers.Layer):
    """Wraps a Dense built with the float32 policy whatever the layer's own policy is."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, dtype="float32")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return tf.cast(self.dense(x), self.compute_dtype)


def _register():
    for cls in (Scale, ForgetsConfig, Float32Output, DeadWeight, WrongStatic, Float16Variables,
                Sublayer):
        keras.saving.register_keras_serializable(package="test_layer_testing")(cls)


_register()


def test_correct_layer_passes_and_returns_layer_and_output():
    result = layer_testing.run_layer_test(
            Scale, {"init": 3.0}, X, expected_output_shape=(2, 3, 5),
            expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
            expected_output=X * 3.0)
    assert isinstance(result.layer, Scale)
    np.testing.assert_allclose(result.output.numpy(), X * 3.0, rtol=1e-6)
    assert keras.config.dtype_policy().name == "float32"


def test_tuple_and_dict_inputs_and_call_kwargs():
    offset = np.ones((2, 3, 5), "float32")
    layer_testing.run_layer_test(Scale, {}, (X, offset), expected_output=X * 2 + 1)
    layer_testing.run_layer_test(Scale, {}, {"x": X, "offset": offset}, expected_output=X * 2 + 1)
    layer_testing.run_layer_test(Scale, {}, X, call_kwargs={"offset": 1.0},
                                 expected_output=X * 2 + 1, run_mixed_precision_check=False)


@pytest.mark.parametrize("cls, kwargs, message", [
        (Scale, {"expected_output_shape": (2, 3, 4)}, "output shape"),
        (Scale, {"expected_num_trainable_weights": 2}, "trainable weights"),
        (Scale, {"expected_output": X * 2.5}, "eager output"),
        (ForgetsConfig, {}, "serialized copy"),
        (Float32Output, {}, "output dtype"),
        (DeadWeight, {}, "no gradient"),
        (WrongStatic, {}, "symbolic shape"),
        (Float16Variables, {}, "variable"),
        (Sublayer, {}, "sublayer"),
])
def test_broken_layers_fail(cls, kwargs, message):
    init = {"init": 3.0, "bias": 1.0} if cls is not Sublayer else {}
    with pytest.raises(AssertionError, match=message):
        layer_testing.run_layer_test(cls, init, X, **kwargs)


def test_float32_read_out_by_design():
    layer_testing.run_layer_test(Float32Output, {}, X, expected_output_dtype="float32")
    with pytest.raises(AssertionError, match="output dtype"):
        layer_testing.run_layer_test(Scale, {}, X, expected_output_dtype="float32")


def test_global_policy_restored_after_a_failure():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with pytest.raises(AssertionError):
            layer_testing.run_layer_test(Float32Output, {}, X)
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")


def test_mixed_precision_tolerance_is_relative():
    """A float16 value of 2 ** 11 + 1 rounds to 2 ** 11: error 1 on a scale of 2049."""
    x = np.full((1, 1, 1), 2.0 ** 11 + 1, "float32")
    with pytest.raises(AssertionError, match="differs from float32"):
        layer_testing.run_layer_test(Scale, {"init": 1.0}, x, dtypes=("mixed_float16",),
                                     mixed_precision_tolerance={"mixed_float16": 1e-4},
                                     run_training_check=False)
    layer_testing.run_layer_test(Scale, {"init": 1.0}, x, dtypes=("mixed_float16",),
                                 mixed_precision_tolerance={"mixed_float16": 1e-3},
                                 run_training_check=False)


def test_serialization_test_of_a_loss():
    loss = keras.losses.MeanSquaredError(reduction="sum")
    y = np.arange(6, dtype="float32").reshape(2, 3)
    copies = layer_testing.run_serialization_test(loss, call_args=(y, y + 1))
    assert all(type(c) is type(loss) for c in copies)
