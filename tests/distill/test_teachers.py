"""Tests for tfcolor.distill.teachers: frozen teachers, layers, subsets, statistics, warm start."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distill_nets import small_net  # noqa: E402  pylint: disable=wrong-import-position

from tfcolor import config as config_lib  # noqa: E402
from tfcolor.distill import teachers as teachers_lib  # noqa: E402
from tfcolor.models import multitask  # noqa: E402


def _images(n=8, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 4, 4, channels)).astype(np.float32)


def test_teacher_is_frozen_and_reads_the_named_layer():
    net = small_net(0)
    teacher = teachers_lib.Teacher(net, "top")
    assert not net.trainable_variables and not teacher.feature_model.trainable_variables
    x = _images()
    h = np.maximum(x.reshape(8, -1) @ net.get_layer("hidden").kernel.numpy()
                   + net.get_layer("hidden").bias.numpy(), 0)
    top = h @ net.get_layer("top").kernel.numpy() + net.get_layer("top").bias.numpy()
    np.testing.assert_allclose(teacher(x).numpy(), top, rtol=1e-5, atol=1e-5)
    assert (top < 0).any()  # pre-ReLU: negative activations are kept
    post = teachers_lib.Teacher(net, "top", pre_relu=False)  # after "top_relu"
    np.testing.assert_allclose(post(x).numpy(), np.maximum(top, 0), rtol=1e-5, atol=1e-5)
    task = teachers_lib.Teacher(net, "task")
    np.testing.assert_allclose(task(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-5)


def test_pre_relu_of_a_trunk_tap_and_the_top_of_a_trunk():
    trunk = multitask.build_shared_trunk("vgg_tiny", input_channels=1, batch_norm="none").model
    x = tf.constant(_images(2, 1)[:, :, :, :1].repeat(8, 1).repeat(8, 2))
    pre = teachers_lib.Teacher(trunk, "top")(x).numpy()   # fc7, before fc7_relu
    post = trunk(x, training=False)["fc7"].numpy()
    np.testing.assert_allclose(np.maximum(pre, 0), post, rtol=1e-5, atol=1e-5)
    tap = teachers_lib.Teacher(trunk, "conv2_2", pre_relu=False)(x).numpy()
    np.testing.assert_allclose(tap, trunk(x, training=False)["conv2_2"].numpy(), atol=1e-6)
    with pytest.raises(teachers_lib.TeacherError, match="no layer or output 'nope'"):
        teachers_lib.Teacher(trunk, "nope")


def test_fit_channels():
    grey = tf.constant(_images(2, 1))
    np.testing.assert_array_equal(teachers_lib.fit_channels(grey, 3).numpy(),
                                  np.repeat(grey.numpy(), 3, -1))
    rgb = tf.constant(_images(2, 3))
    np.testing.assert_allclose(teachers_lib.fit_channels(rgb, 1).numpy(),
                               rgb.numpy().mean(-1, keepdims=True), rtol=1e-6)


def test_subset_is_deterministic_and_spread_as_documented():
    a = teachers_lib.subset_indices([64, 64, 64, 64], 64, seed=3)
    b = teachers_lib.subset_indices([64, 64, 64, 64], 64, seed=3)
    c = teachers_lib.subset_indices([64, 64, 64, 64], 64, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(set(a.tolist())) == 64 and np.all(np.diff(a) > 0) and a.max() < 256
    # Uniform over all M F: the per-teacher counts vary (not all 16) for most seeds.
    counts = [np.bincount(teachers_lib.subset_indices([64] * 4, 64, seed=s) // 64, minlength=4)
              for s in range(20)]
    assert any(sorted(c) != [16] * 4 for c in counts)
    # Uniform: every feature is equally likely (64/256 = 1/4), checked over many seeds.
    hits = np.zeros(256)
    for s in range(400):
        hits[teachers_lib.subset_indices([64] * 4, 64, seed=s)] += 1
    assert abs(hits.mean() / 400 - 0.25) < 1e-9 and hits.min() > 50 and hits.max() < 150
    # Per teacher: F / M from each, the first F mod M teachers one more.
    p = teachers_lib.subset_indices([10, 10, 10], 8, seed=0, spread="per_teacher")
    np.testing.assert_array_equal(np.bincount(p // 10, minlength=3), [3, 3, 2])
    with pytest.raises(ValueError, match="a subset of 40 features"):
        teachers_lib.subset_indices([10, 10], 40)
    with pytest.raises(ValueError, match="per-teacher subset of 6"):
        teachers_lib.subset_indices([2, 20], 12, spread="per_teacher")


def test_combine():
    a, b = tf.constant([[1.0, 2.0, 3.0]]), tf.constant([[4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(teachers_lib.combine([a, b], "concat").numpy(),
                                  [[1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(teachers_lib.combine([a, b], "average").numpy(),
                                  [[2.5, 3.5, 4.5]])
    np.testing.assert_array_equal(teachers_lib.combine([a, b], "subset", [0, 4, 5]).numpy(),
                                  [[1, 5, 6]])


def test_statistics_equal_numpy():
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(4, 3, 3, 6)) * np.arange(1, 7) for _ in range(5)]
    s, count = teachers_lib.target_statistics(batches, lambda b: b, per_feature=True)
    every = np.concatenate([b.reshape(-1, 6) for b in batches])
    assert count == len(every) == 5 * 4 * 9
    np.testing.assert_allclose(s, np.sqrt(np.mean(every ** 2, axis=0)), rtol=1e-12)
    scalar, _ = teachers_lib.target_statistics(batches, lambda b: b, per_feature=False)
    np.testing.assert_allclose(scalar, np.sqrt(np.mean(every ** 2)), rtol=1e-12)
    dead = [np.concatenate([b, np.zeros(b.shape[:-1] + (1,))], axis=-1) for b in batches]
    s_dead, _ = teachers_lib.target_statistics(dead, lambda b: b)
    assert s_dead[-1] == 1.0  # a dead feature: s = 1, as losses.teacher_scale
    np.testing.assert_allclose(s_dead[:-1], s, rtol=1e-12)


def test_statistics_file_round_trip_and_mismatch(tmp_path):
    path = str(tmp_path / teachers_lib.STATISTICS_FILE)
    identity = {"teachers": ["a", "b"], "combine": "subset"}
    assert teachers_lib.load_statistics(path, identity) is None
    teachers_lib.save_statistics(path, np.array([1.5, 2.25]), identity, 10)
    np.testing.assert_array_equal(teachers_lib.load_statistics(path, identity), [1.5, 2.25])
    with open(path, encoding="utf-8") as f:
        assert json.load(f)["count"] == 10
    with pytest.raises(teachers_lib.StatisticsMismatch, match=r"differs in \['combine'\]"):
        teachers_lib.load_statistics(path, dict(identity, combine="auxiliary"))
    teachers_lib.save_statistics(path, 3.0, identity, 1)
    assert teachers_lib.load_statistics(path, identity) == 3.0


def test_auxiliary_layer_is_relu_then_dense():
    layer = teachers_lib.auxiliary_layer(6)
    x = tf.constant([[-1.0, 2.0, -3.0, 4.0]])
    y = layer(x).numpy()
    dense = layer.get_layer(teachers_lib.AUXILIARY_NAME)
    np.testing.assert_allclose(y, np.maximum(x.numpy(), 0) @ dense.kernel.numpy()
                               + dense.bias.numpy(), rtol=1e-6)


def test_warm_start_copies_by_layer_name_and_converts_the_first_layer():
    teacher, student = small_net(0), small_net(1)
    teachers_lib.warm_start(student, teacher)
    for a, b in zip(student.weights, teacher.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    grey = small_net(2, channels=1)
    with pytest.raises(teachers_lib.TeacherError, match="hidden"):
        teachers_lib.warm_start(small_net(3, hidden=12), teacher)
    # Dense layers are not converted between channel counts: flat inputs differ in size.
    with pytest.raises(teachers_lib.TeacherError, match="not of the student's architecture"):
        teachers_lib.warm_start(grey, teacher)


def test_bad_teacher_path_is_one_line(tmp_path):
    with pytest.raises(config_lib.ConfigError) as e:
        teachers_lib.load_teacher(str(tmp_path / "nowhere"))
    assert "\n" not in str(e.value) and "is not a teacher" in str(e.value)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(teachers_lib.TeacherError, match="is not a teacher"):
        teachers_lib.describe_teacher(str(tmp_path / "empty"))


def test_saved_model_teacher(tmp_path):
    net = small_net(0)

    class Features(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32,
                                                    name="images")])
        def features(self, images):
            return {"logits": self.net(images)}

    module = Features()
    tf.saved_model.save(module, str(tmp_path / "sm"),
                        signatures={"features": module.features.get_concrete_function()})
    teacher = teachers_lib.load_teacher(str(tmp_path / "sm"), "logits")
    x = _images()
    np.testing.assert_allclose(teacher(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-5)
    assert teacher.input_channels == 3
    np.testing.assert_allclose(teacher(x[..., :1]).numpy(),  # grey in: RGB-encoded grey
                               net(np.repeat(x[..., :1], 3, -1)).numpy(), rtol=1e-5, atol=1e-5)
