"""Tests for tfcolor.tasks.distillation: distillation as a task of the trainer."""
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distill_nets import small_net  # noqa: E402  pylint: disable=wrong-import-position

from tfcolor.config import OptimizerConfig  # noqa: E402
from tfcolor.distill import losses as losses_lib  # noqa: E402
from tfcolor.distill import teachers as teachers_lib  # noqa: E402
from tfcolor.models import multitask as multitask_lib  # noqa: E402
from tfcolor.tasks import distillation  # noqa: E402
from tfcolor.train import multitask_step  # noqa: E402
from tfcolor.train import trainer as trainer_lib  # noqa: E402

IMAGES = np.random.default_rng(0).uniform(size=(64, 4, 4, 3)).astype(np.float32)


def dataset_fn(start):
    data = {"image": IMAGES, "index": np.arange(len(IMAGES), dtype=np.int64)}
    return (tf.data.Dataset.from_tensor_slices(data).repeat().skip(start)
            .batch(8, drop_remainder=True))


def _task(teachers, **kwargs):
    options = dict(student=lambda: small_net(10), dataset_fn=dataset_fn, loss="l2",
                   statistics_batches=4)
    options.update(kwargs)
    return distillation.DistillationTask(teachers, **options)


def _trainer(task, model_dir, steps, lr=0.05, every=None):
    return trainer_lib.Trainer(
        task, strategy=tf.distribute.get_strategy(), model_dir=str(model_dir),
        train_steps=steps, steps_per_loop=every or steps, summary_every=every or steps,
        checkpoint_every=every or steps, handle_sigterm=False,
        optimizer_config=OptimizerConfig(learning_rate=lr, lr_drops=(), weight_decay=0.0))


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return [reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]


def test_teacher_stays_frozen_and_out_of_the_model_and_checkpoint(tmp_path):
    teacher_net = small_net(1)
    before = [w.numpy().copy() for w in teacher_net.weights]
    task = _task([teachers_lib.Teacher(teacher_net, "top")])
    trainer = _trainer(task, tmp_path, 20)
    result = trainer.train()
    for w, b in zip(teacher_net.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    teacher_ids = {id(v) for v in teacher_net.weights}
    assert not teacher_ids & {id(v) for v in trainer.model.variables}
    assert not teacher_ids & {id(v) for v in trainer.train_step.variables()}
    saved = _checkpoint_values(result.checkpoint)
    for b in before:  # no saved tensor is a teacher kernel (biases start at zero: skipped)
        if not np.ptp(b):
            continue
        assert not any(s.shape == b.shape and np.array_equal(s, b) for s in saved)
    student_kernel = trainer.model.get_layer("hidden").kernel.numpy()
    assert any(s.shape == student_kernel.shape and np.array_equal(s, student_kernel)
               for s in saved)
    # A fresh trainer resumes from that checkpoint (the teacher is not needed in it).
    again = _trainer(_task([teachers_lib.Teacher(small_net(1), "top")]), tmp_path, 25)
    assert again.train().step == 25


@pytest.mark.parametrize("kind", ["l2", "ab"])
def test_same_architecture_student_approaches_the_teacher(tmp_path, kind):
    task = _task([teachers_lib.Teacher(small_net(1), "top")], loss=kind)
    result = _trainer(task, tmp_path, 300, lr=0.1, every=50).train()
    losses = [h[1]["distillation"] for h in result.history]
    start = _initial_loss(task)
    assert losses[-1] < 0.1 * start, (start, losses)
    assert all(np.isfinite(losses))


def _initial_loss(task):
    model = task.build_model_on(small_net(10))
    batch = next(iter(task.build_inputs(0)))
    loss, _ = task.compute_loss(model, batch, training=False, global_batch_size=8)
    return float(loss)


def test_loss_is_the_mean_of_the_keras_loss_and_statistics_equal_numpy():
    teacher = teachers_lib.Teacher(small_net(1), "top")
    task = _task([teacher], loss="ab", statistics_batches=3)
    model = task.build_model_on(small_net(10))
    targets = np.concatenate([teacher(IMAGES[i * 8:(i + 1) * 8]).numpy() for i in range(3)])
    np.testing.assert_allclose(task.target_scale, np.sqrt(np.mean(targets ** 2, axis=0)),
                               rtol=1e-5)
    batch = next(iter(task.build_inputs(0)))
    loss, terms = task.compute_loss(model, batch, training=False, global_batch_size=16)
    assert terms == {}
    reference = losses_lib.ABDivergence(alpha=0.25, beta=0.0, scale=task.target_scale)
    rows = reference.call(teacher(batch["image"]), model(batch["image"])["features"])
    np.testing.assert_allclose(float(loss), float(tf.reduce_sum(rows)) / 16, rtol=1e-5)


def test_statistics_are_saved_once_and_checked(tmp_path):
    path = str(tmp_path / teachers_lib.STATISTICS_FILE)
    teacher = teachers_lib.Teacher(small_net(1), "top")
    first = _task([teacher], loss="ab", statistics_path=path)
    first.build_model_on(small_net(10))
    assert os.path.exists(path)
    # Read back, not recomputed: a changed file is what the next build uses.
    teachers_lib.save_statistics(path, np.full(8, 2.0), first.identity(), 1)
    second = _task([teacher], loss="ab", statistics_path=path)
    second.build_model_on(small_net(10))
    np.testing.assert_array_equal(second.target_scale, np.full(8, 2.0, np.float32))
    other = _task([teacher], loss="ab", statistics_path=path, per_feature_scale=False)
    with pytest.raises(teachers_lib.StatisticsMismatch, match="per_feature"):
        other.build_model_on(small_net(10))


def test_auxiliary_layer_is_trained_and_left_out_of_the_student():
    teachers = [teachers_lib.Teacher(small_net(s), "top") for s in (1, 2)]
    task = _task(teachers, combine="auxiliary")
    model = task.build_model_on(small_net(10))
    assert model.output["prediction"].shape[-1] == 16
    aux = task.head_variables(model)
    assert len(aux) == 2 and all(v.path.startswith(teachers_lib.AUXILIARY_NAME) for v in aux)
    student = task.student(model)
    assert not {id(v) for v in aux} & {id(v) for v in student.variables}
    assert not any(l.name.startswith(teachers_lib.AUXILIARY_NAME) for l in student.layers)
    np.testing.assert_allclose(student(IMAGES[:8]).numpy(),
                               model(IMAGES[:8])["features"].numpy(), rtol=1e-6)


def test_subset_target_of_two_teachers():
    teachers = [teachers_lib.Teacher(small_net(s), "top") for s in (1, 2)]
    task = _task(teachers, combine="subset", subset_seed=7, subset_spread="per_teacher")
    task.build_model_on(small_net(10))
    np.testing.assert_array_equal(task.indices, teachers_lib.subset_indices(
        [8, 8], 8, seed=7, spread="per_teacher"))
    both = np.concatenate([t(IMAGES[:8]).numpy() for t in teachers], axis=-1)
    np.testing.assert_allclose(task.target(IMAGES[:8]).numpy(), both[:, task.indices],
                               rtol=1e-6)


def test_warm_start_starts_at_the_teacher():
    teacher = teachers_lib.Teacher(small_net(1), "top")
    task = _task([teacher], warm_start=0)
    assert _initial_loss(task) < 1e-10


def test_resume_equals_uninterrupted(tmp_path):
    def run(model_dir, stops):
        for steps in stops:
            trainer_lib.set_deterministic(0)
            task = _task([teachers_lib.Teacher(small_net(1), "top")], loss="ab",
                         dropout=0.2, augment=True, augment_pad=1)
            trainer = _trainer(task, model_dir, steps, every=5)
            trainer.train()
        return [w.numpy() for w in trainer.model.weights]

    whole = run(tmp_path / "whole", [20])
    resumed = run(tmp_path / "resumed", [10, 20])
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)


def test_augmentation_is_a_function_of_the_position():
    images = tf.constant(IMAGES[:4])
    keys = tf.constant([0, 1, 2, 3], tf.int64)
    augment = tf.function(lambda k: distillation.augment_images(images, k, 5, 1))
    a = augment(keys).numpy()
    np.testing.assert_array_equal(a, augment(keys).numpy())
    c = augment(keys + 10).numpy()
    assert not np.array_equal(a, c)
    # Every output is the input mirrored or not, shifted by at most one pixel (zeros come in).
    for out, image in zip(a, IMAGES[:4]):
        candidates = []
        for flipped in (image, image[:, ::-1]):
            padded = np.pad(flipped, [(1, 1), (1, 1), (0, 0)])
            candidates += [padded[i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(np.array_equal(out, c) for c in candidates)


def test_student_dropout_changes_training_outputs_only():
    task = _task([teachers_lib.Teacher(small_net(1), "top")], dropout=0.5)
    model = task.build_model_on(small_net(10))
    assert any(isinstance(l, keras.layers.Dropout) for l in model.layers)
    x = IMAGES[:8]
    same = teachers_lib.Teacher(small_net(10), "top")  # the same weights, no dropout
    np.testing.assert_allclose(model(x, training=False)["features"].numpy(), same(x).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(x, training=True)["features"].numpy(),
                           model(x, training=False)["features"].numpy())


def test_jointly_with_another_task_on_a_shared_trunk(tmp_path):
    trunk_net = small_net(10)
    a = _task([teachers_lib.Teacher(small_net(1), "top")], name="distill_a")
    b = _task([teachers_lib.Teacher(small_net(2), "top")], name="distill_b", loss="ab")
    step = multitask_step.MultiTaskStep(
        [a, b], trunk_fn=lambda: multitask_lib.SharedTrunk(model=trunk_net, arch="small"),
        strategy=tf.distribute.get_strategy(), train_steps=4, gradient_rule="sum",
        optimizer_config=OptimizerConfig(learning_rate=0.01, lr_drops=(), weight_decay=0.0))
    before = trunk_net.get_layer("hidden").kernel.numpy().copy()
    out = step.run(4)
    assert np.isfinite(float(out["distill_a"])) and np.isfinite(float(out["distill_b"]))
    assert not np.array_equal(before, trunk_net.get_layer("hidden").kernel.numpy())


def test_bad_teacher_path_is_a_one_line_config_error(tmp_path):
    with pytest.raises(teachers_lib.TeacherError) as e:
        _task([str(tmp_path / "missing")])
    assert "\n" not in str(e.value)


def test_mixed_precision_loss_is_float32_and_close_to_float32_training():
    teacher = teachers_lib.Teacher(small_net(1), "top")
    batch = next(iter(dataset_fn(0)))
    reference = _task([teacher], loss="ab", scale=None)
    model = reference.build_model_on(small_net(10))
    want, _ = reference.compute_loss(model, batch, training=False, global_batch_size=8)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        task = _task([teacher], loss="ab", scale=None)
        half = task.build_model_on(small_net(10))
        assert half.output["features"].dtype == "float16"
        got, _ = task.compute_loss(half, batch, training=False, global_batch_size=8)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert got.dtype == tf.float32 and np.isfinite(float(got))
    np.testing.assert_allclose(float(got), float(want), rtol=1e-2)
