"""Tests of tfcolor.models.multitask (one trunk shared by several task models) and of the
colorizer's RGB-encoded grey input (``Colorizer(input_channels=3)``).

References: variable identity (every sub-model holds the trunk's variables; base and heads
partition the trainable variables), a tf.train.Checkpoint save / modify / restore round trip, the
architecture's tap-stride table, and for the 3-channel colorizer the 1-channel colorizer whose
first kernel is the sum of the 3-channel kernel over its input channels (the grey value repeated
in three channels meets the three channel slices of the kernel).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.models import multitask
from tfcolor.models import trunk as trunk_lib
from tfcolor.models.colorizer import Colorizer
from tfcolor.models.jigsaw import JigsawNet

SMALL_TAPS = ["data", "conv1_1", "conv1_2"]


@pytest.fixture(scope="module")
def shared():
    keras.utils.set_random_seed(3)
    return multitask.build_shared_trunk("vgg_tiny")


def _colorizer_on(trunk, taps=("conv1_2", "conv2_1", "fc7")):
    return Colorizer(trunk=trunk.model, tap_strides=trunk.tap_strides(list(taps)),
                     output_sizes=(5,), hidden=8, dropout=0.0,
                     input_channels=trunk.input_channels)


def _model(trunk):
    subs = {"colorization": _colorizer_on(trunk),
            "jigsaw": JigsawNet(trunk=trunk.model, tap="fc7", reduce_channels=4,
                                init_stddev=0.1)}
    return multitask.MultiTaskModel(trunk, subs), subs


def _ids(variables):
    return [id(v) for v in variables]


def test_shared_trunk_outputs_every_tap_with_the_architectures_strides(shared):
    table = trunk_lib.tap_strides("vgg_tiny", trunk_lib.resolve_taps("vgg_tiny", None))
    assert shared.taps == list(dict(table))
    assert shared.tap_strides() == dict(table)
    assert shared.tap_strides(["conv2_1", "data"]) == {"data": 1, "conv2_1": 2}  # hypercolumn order
    assert shared.tap_strides("conv3_1-conv4_1") == {"conv3_1": 4, "conv3_2": 4, "conv3_3": 4,
                                                     "conv4_1": 8}
    assert shared.input_channels == 3 and shared.model.input.shape[-1] == 3
    assert shared.arch == "vgg_tiny" and not shared.fov


def test_tap_strides_errors_name_the_missing_or_unknown_taps():
    small = multitask.SharedTrunk(model=trunk_lib.build_trunk("vgg_tiny", taps=SMALL_TAPS,
                                                              input_channels=3),
                                  arch="vgg_tiny")
    assert small.tap_strides(SMALL_TAPS) == {"data": 1, "conv1_1": 1, "conv1_2": 1}
    with pytest.raises(ValueError, match=r"does not output taps \['fc7'\]"):
        small.tap_strides(["conv1_1", "fc7"])
    with pytest.raises(ValueError, match=r"does not output taps \[.*'conv2_1'"):
        small.tap_strides(None)   # every tap of the architecture: most are missing
    with pytest.raises(ValueError, match="conv9_9"):
        small.tap_strides(["conv9_9"])


def test_base_and_head_variables_partition_the_trainable_variables(shared):
    model, subs = _model(shared)
    assert model.task_names == ["colorization", "jigsaw"]
    base = model.base_variables()
    assert _ids(base) == _ids(shared.model.trainable_variables) and base
    heads = {n: model.head_variables(n) for n in subs}
    assert _ids(heads["colorization"]) == _ids(subs["colorization"].head.trainable_variables)
    assert _ids(heads["jigsaw"]) == _ids(subs["jigsaw"].head.trainable_variables)
    pieces = [base, heads["colorization"], heads["jigsaw"]]
    flat = [i for p in pieces for i in _ids(p)]
    assert len(flat) == len(set(flat))   # disjoint
    union = {id(v) for s in subs.values() for v in s.trainable_variables}
    assert set(flat) == union == set(_ids(model.trainable_variables))
    # Calling the multi-task model runs the trunk.
    maps = model(tf.zeros([1, 8, 8, 3]))
    assert set(maps) == set(shared.taps)


def test_a_sub_model_not_built_on_the_trunk_is_refused(shared):
    own = JigsawNet("vgg_tiny", tap="conv1_2", reduce_channels=4)   # a trunk of its own
    with pytest.raises(ValueError, match="'jigsaw' is not built on the shared trunk"):
        multitask.MultiTaskModel(shared, {"colorization": _colorizer_on(shared), "jigsaw": own})
    with pytest.raises(TypeError, match="SharedTrunk"):
        multitask.MultiTaskModel(shared.model, {"jigsaw": own})
    with pytest.raises(ValueError, match="at least one sub-model"):
        multitask.MultiTaskModel(shared, {})


def test_checkpoint_restores_the_trunk_and_every_head(shared, tmp_path):
    model, subs = _model(shared)
    saved = [v.numpy().copy() for v in model.variables]
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    # The shared trunk is written once: one tensor per distinct variable.
    stored = [name for name, _ in tf.train.list_variables(path)
              if name.startswith("model/") and name.endswith("VARIABLE_VALUE")]
    assert len(stored) == len({id(v) for v in model.variables})
    for v in model.variables:
        v.assign(tf.fill(v.shape, tf.cast(7, v.dtype)))
    tf.train.Checkpoint(model=model).restore(path).assert_consumed()
    for v, want in zip(model.variables, saved):
        np.testing.assert_array_equal(v.numpy(), want, err_msg=v.path)
    # A new model of the same structure (its own initial weights) gets every value too.
    fresh_trunk = multitask.build_shared_trunk("vgg_tiny")
    fresh, fresh_subs = _model(fresh_trunk)
    tf.train.Checkpoint(model=fresh).restore(path).assert_consumed()
    for name in subs:
        for a, b in zip(subs[name].variables, fresh_subs[name].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name}: {a.path}")
    for a, b in zip(shared.model.variables, fresh_trunk.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def _rgb_and_grey_colorizers():
    """A 3-channel colorizer and the 1-channel one it equals: conv1_1's kernel summed over its
    input channels, and, since the hypercolumn's ``data`` tap (first) is the trunk's input
    (three equal channels instead of one), the first three rows of h_fc1's kernel summed too."""
    kw = dict(taps="data-conv2_1", output_sizes=(6, 3), hidden=8, dropout=0.0)
    keras.utils.set_random_seed(5)
    rgb = Colorizer("vgg_tiny", input_channels=3, **kw)
    grey = Colorizer("vgg_tiny", input_channels=1, **kw)
    assert rgb.tap_channels[0] == 3 and grey.tap_channels[0] == 1   # the data tap
    assert len(rgb.weights) == len(grey.weights)
    summed = []
    for a, b in zip(rgb.weights, grey.weights):
        value = a.numpy()
        if a.path == "conv1_1/kernel":   # (3, 3, 3, C) -> (3, 3, 1, C)
            value = value.sum(axis=2, keepdims=True)
            summed.append(a.path)
        elif a.path == "head/h_fc1/kernel":   # rows: data (3), conv1_1, ... -> data (1), ...
            value = np.concatenate([value[:3].sum(axis=0, keepdims=True), value[3:]])
            summed.append(a.path)
        assert b.shape == value.shape, (a.path, b.path)
        b.assign(value)
    assert len(summed) == 2, summed
    return rgb, grey


def test_rgb_encoded_grey_colorizer_is_the_grey_colorizer_with_the_summed_first_kernel():
    rgb, grey = _rgb_and_grey_colorizers()
    assert rgb.trunk.input.shape[-1] == 3 and grey.trunk.input.shape[-1] == 1
    gray = tf.random.stateless_uniform([2, 20, 20, 1], (0, 1))
    centers = tf.random.stateless_uniform([2, 7, 2], (0, 2), 0, 20, dtype=tf.int32)
    # Tolerance: the first convolution sums 27 products instead of 9 (reassociated float32
    # sums), a relative difference of a few 1e-7 of the output scale after three layers.
    for a, b in ((rgb.dense(gray), grey.dense(gray)),
                 (rgb.sparse(gray, centers), grey.sparse(gray, centers))):
        a, b = a.numpy(), b.numpy()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    # The control: without the summed kernel (one channel slice only) the outputs differ.
    kernel = rgb.trunk.get_layer("conv1_1").kernel
    grey.trunk.get_layer("conv1_1").kernel.assign(kernel.numpy()[:, :, :1])
    assert not np.allclose(rgb.dense(gray).numpy(), grey.dense(gray).numpy(), rtol=1e-3)


def test_rgb_encoded_grey_colorizer_config_round_trip_and_errors():
    rgb, _ = _rgb_and_grey_colorizers()
    config = rgb.get_config()
    assert config["input_channels"] == 3
    assert "input_channels" not in config["trunk_options"]
    copy = Colorizer.from_config(config)
    assert copy.input_channels == 3 and copy.trunk.input.shape[-1] == 3
    copy.set_weights(rgb.get_weights())
    gray = tf.random.stateless_uniform([1, 12, 12, 1], (1, 1))
    np.testing.assert_array_equal(copy.dense(gray).numpy(), rgb.dense(gray).numpy())
    with pytest.raises(ValueError, match="input_channels must be 1 or 3"):
        Colorizer("vgg_tiny", input_channels=2)
    grey_trunk = trunk_lib.build_trunk("vgg_tiny", taps=SMALL_TAPS)
    with pytest.raises(ValueError, match="input_channels=3 needs a trunk taking 3 channels"):
        Colorizer(trunk=grey_trunk, tap_strides={"data": 1, "conv1_1": 1}, input_channels=3)
