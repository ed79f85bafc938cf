"""Tests of the generic trainer (tfcolor.train.trainer) on a tiny stand-in model and dataset.

The stand-ins (tests/train_standins.py) follow the DESIGN.md contracts but are independent of
tfcolor.models / losses / data; they are trained as a ColorizationTask (tfcolor.tasks), so these
tests exercise only the loop and the task's loss normalisation. References: a hand-computed
SGD update, a single device for the distributed step, an uninterrupted run for resumption.
"""
import dataclasses
import os
import signal
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import child_processes  # noqa: E402
import layer_testing  # noqa: E402
import train_standins as si  # noqa: E402

from tfcolor import config  # noqa: E402
from tfcolor import train  # noqa: E402
from tfcolor.tasks import base as tfcolor_tasks_base  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402
from tfcolor.train import checkpointing  # noqa: E402

needs_two_cpus = pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2,
                                    reason="needs 2 logical CPU devices (tests/conftest.py)")


def _opt(**kw):
    base = dict(learning_rate=0.1, lr_drops=[], weight_decay=1e-3, bias_lr_multiplier=2.0)
    base.update(kw)
    return config.OptimizerConfig(**base)


def _trainer(model_dir, *, strategy="default", steps=4, seed=1, sync=True, dropout=0.0,
             dataset=None, opt=None, **kw):
    def model_fn():
        keras.utils.set_random_seed(seed)
        return si.StandInColorizer(sync_batch_norm=sync, dropout=dropout)

    args = dict(steps_per_loop=2, checkpoint_every=2, summary_every=2)
    args.update(kw)
    task_args = {k: args.pop(k) for k in ("target_builder", "preview_images",
                                          "preview_fn") if k in args}
    task = ColorizationTask(model_fn=model_fn, loss_fn=args.pop("loss_fn", si.per_point_loss),
                            dataset=dataset if dataset is not None else si.make_dataset(),
                            **task_args)
    return train.Trainer(task, strategy=train.make_strategy(strategy), model_dir=str(model_dir),
                         train_steps=steps, optimizer_config=opt or _opt(), **args)


def _weights(trainer):
    return [np.array(v.value if hasattr(v, "value") else v) for v in trainer.model.weights]


# --------------------------------------------------------------------------------------------
# The step itself.

def test_single_step_matches_hand_computed_sgd_update(tmp_path):
    """One step = w - lr * (grad of mean point loss + wd * w on kernels) * (2 for biases)."""
    lr, wd = 0.1, 1e-3
    t = _trainer(tmp_path, steps=1, steps_per_loop=1, opt=_opt(learning_rate=lr, weight_decay=wd))
    w0 = [v.numpy() for v in t.model.trainable_variables]
    batch = next(iter(si.make_dataset()))
    # Reference: a fresh copy of the model, plain GradientTape on the whole batch.
    keras.utils.set_random_seed(1)
    ref = si.StandInColorizer(sync_batch_norm=True)
    ref.sparse(batch["gray"][:1], batch["centers"][:1])
    for v, w in zip(ref.trainable_variables, w0):
        v.assign(w)
    with tf.GradientTape() as tape:
        logits = ref.sparse(batch["gray"], batch["centers"], training=True)
        loss = tf.reduce_mean(si.per_point_loss(batch["targets"], logits))
    grads = tape.gradient(loss, ref.trainable_variables)
    expected = []
    for v, g, w in zip(ref.trainable_variables, grads, w0):
        g = g.numpy()
        if w.ndim >= 2:
            g = g + wd * w
        else:
            g = 2.0 * g
        expected.append(w - lr * g)
    result = t.train()
    assert result.step == 1
    for v, e in zip(t.model.trainable_variables, expected):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.losses["colorization"], loss.numpy(), rtol=1e-5)


@needs_two_cpus
@pytest.mark.parametrize("clip_norm", [None, 0.05])
def test_mirrored_step_equals_single_device_step(tmp_path, clip_norm):
    """2 replicas x 2 images == 1 device x 4 images (tolerance: rtol 1e-5, atol 1e-6).

    Covers the global-point loss scaling, the single cross-replica gradient sum, clipping of the
    *global* gradient (0.05 is well below the gradient norm, so clipping is active) and
    synchronized batch normalization (moving statistics included).
    """
    opt = _opt(clip_norm=clip_norm)
    single = _trainer(tmp_path / "one", steps=1, steps_per_loop=1, opt=opt)
    mirrored = _trainer(tmp_path / "two", strategy="mirrored", steps=1, steps_per_loop=1, opt=opt)
    assert mirrored.strategy.num_replicas_in_sync == 2
    for a, b in zip(_weights(single), _weights(mirrored)):
        np.testing.assert_array_equal(a, b)
    r1, r2 = single.train(), mirrored.train()
    np.testing.assert_allclose(r1.losses["loss"], r2.losses["loss"], rtol=1e-5)
    for a, b in zip(_weights(single), _weights(mirrored)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The weights did move (the comparison is not between two untouched models).
    assert not np.allclose(_weights(single)[0], _weights(_trainer(tmp_path / "x", steps=1))[0])


@needs_two_cpus
def test_unsynchronized_batch_norm_differs_from_global_batch(tmp_path):
    """Control for the test above: per-replica BN statistics give a different step."""
    single = _trainer(tmp_path / "one", steps=1, steps_per_loop=1)
    local = _trainer(tmp_path / "two", strategy="mirrored", steps=1, steps_per_loop=1, sync=False)
    single.train()
    local.train()
    diffs = [np.abs(a - b).max() for a, b in zip(_weights(single), _weights(local))]
    assert max(diffs) > 1e-4


def test_on_device_targets_equal_precomputed_targets(tmp_path):
    a = _trainer(tmp_path / "a", steps=2)
    b = _trainer(tmp_path / "b", steps=2, dataset=si.make_dataset(on_device=True),
                 target_builder=si.targets_from_rgb)
    ra, rb = a.train(), b.train()
    np.testing.assert_allclose(ra.losses["loss"], rb.losses["loss"], rtol=1e-6)
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_learning_rate_drops_at_the_configured_steps(tmp_path):
    opt = _opt(learning_rate=0.1, lr_drops=[2, 3], lr_drop_factor=0.5)
    t = _trainer(tmp_path, steps=4, steps_per_loop=1, opt=opt)
    seen = []
    t.hooks.append(lambda tr, step, losses: seen.append(
        (step, train.current_learning_rate(tr.optimizer))))
    t.train()
    # Keras' PiecewiseConstantDecay: rate for the *next* step after `step` updates.
    assert seen == [(1, pytest.approx(0.1)), (2, pytest.approx(0.05)),
                    (3, pytest.approx(0.025)), (4, pytest.approx(0.025))]


def test_loss_terms_are_logged_and_sum_to_the_loss(tmp_path):
    t = _trainer(tmp_path, steps=2, loss_fn=si.per_point_parts)
    r = t.train()
    terms = r.losses["colorization/low"] + r.losses["colorization/high"]
    np.testing.assert_allclose(terms, r.losses["colorization"], rtol=1e-5)
    np.testing.assert_allclose(r.losses["colorization"] + r.losses["weight_decay"],
                               r.losses["loss"], rtol=1e-6)


def test_mixed_precision_trains_with_loss_scaling(tmp_path):
    with layer_testing.global_dtype_policy("mixed_float16"):
        t = _trainer(tmp_path, steps=4, mixed_precision=True, opt=_opt(clip_norm=1.0))
        assert isinstance(t.optimizer, keras.optimizers.LossScaleOptimizer)
        assert t.model.conv.compute_dtype == "float16"
        w0 = _weights(t)
        r = t.train()
    assert np.isfinite(r.losses["loss"])
    assert any(not np.allclose(a, b) for a, b in zip(w0, _weights(t)))


# --------------------------------------------------------------------------------------------
# Checkpoints, resumption, preemption, failures.

def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full", steps=6, dropout=0.3)
    r_full = full.train()
    first = _trainer(tmp_path / "cut", steps=4, dropout=0.3)
    first.train()
    second = _trainer(tmp_path / "cut", steps=6, dropout=0.3, seed=99)  # init overwritten
    r_second = second.train()
    assert r_second.history[0][0] == 6 and len(r_second.history) == 1  # resumed at step 4
    np.testing.assert_allclose(r_second.losses["loss"], r_full.losses["loss"], rtol=1e-6)
    for a, b in zip(_weights(full), _weights(second)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_completed_run_does_nothing_on_restart(tmp_path):
    _trainer(tmp_path, steps=2).train()
    again = _trainer(tmp_path, steps=2).train()
    assert again.step == 2 and again.history == []
    assert again.checkpoint.endswith("ckpt-2")


def test_sigterm_writes_a_checkpoint_and_stops(tmp_path):
    def preempt(trainer, step, losses):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    t = _trainer(tmp_path, steps=10, steps_per_loop=1, checkpoint_every=5, hooks=[preempt])
    r = t.train()
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert r.stopped == "preempted" and r.step == 2
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    resumed = _trainer(tmp_path, steps=10, steps_per_loop=1, checkpoint_every=5).train()
    assert resumed.stopped == "completed" and resumed.history[0][0] == 3


def test_request_stop_from_a_hook_is_an_early_stop_not_a_preemption(tmp_path):
    def stop(trainer, step, losses):
        if step == 3:
            trainer.request_stop()

    r = _trainer(tmp_path, steps=10, steps_per_loop=1, checkpoint_every=5, hooks=[stop]).train()
    assert r.stopped == "early_stop" and r.step == 3
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    # Batches of 4: step 4 reads elements 12..15, whose targets are NaN.
    t = _trainer(tmp_path, steps=8, steps_per_loop=1, checkpoint_every=2,
                 dataset=si.make_dataset(nan_from=12))
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite between steps 3 and 4.*ckpt-2"):
        t.train()
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest.endswith("ckpt-2")
    reader = tf.train.load_checkpoint(latest)
    floats = [n for n, d in reader.get_variable_to_dtype_map().items() if d.is_floating]
    assert any(n.startswith("model/") for n in floats)
    for name in floats:
        assert np.all(np.isfinite(reader.get_tensor(name))), name
    # And the NaN state itself is refused by save().
    with pytest.raises(train.NonFiniteLossError, match="not saving"):
        t.save()


def _keys(path):
    return {name for name, _ in tf.train.list_variables(path)}


def test_dataset_function_resume_reaches_the_same_state_and_saves_only_the_position(tmp_path):
    """With a dataset function the checkpoint holds the input position, not the iterator; the
    resumed pipeline is rebuilt at that position (records dropped on the way, like unreadable
    images, make it differ from step x batch) and the run ends where an uninterrupted one does."""
    fn = si.make_dataset_fn(drop_every=3)
    full = _trainer(tmp_path / "full", steps=6, dropout=0.3, dataset=fn)
    r_full = full.train()
    first = _trainer(tmp_path / "cut", steps=4, dropout=0.3, dataset=fn)
    first.train()
    ckpt4 = tf.train.latest_checkpoint(str(tmp_path / "cut"))
    keys = _keys(ckpt4)
    assert not any(k.startswith("iterator/") for k in keys)
    # 16 elements in 4 batches of 4, every 3rd record (0, 3, 6, ...) dropped: the kept ones
    # are 1, 2, 4, 5, ..., 22, 23 (16 of them), so the next record to read is 24.
    position = tf.train.load_checkpoint(ckpt4).get_tensor(
        "input_position/.ATTRIBUTES/VARIABLE_VALUE")
    assert position == 24
    second = _trainer(tmp_path / "cut", steps=6, dropout=0.3, seed=99, dataset=fn)
    r_second = second.train()
    assert r_second.history[0][0] == 6 and len(r_second.history) == 1
    np.testing.assert_allclose(r_second.losses["loss"], r_full.losses["loss"], rtol=1e-6)
    for a, b in zip(_weights(full), _weights(second)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(second.input_position.numpy()) == int(full.input_position.numpy())


@needs_two_cpus
def test_mirrored_input_position_equals_single_device(tmp_path):
    fn = si.make_dataset_fn(drop_every=4)
    one = _trainer(tmp_path / "one", steps=4, dataset=fn)
    one.train()
    two = _trainer(tmp_path / "two", strategy="mirrored", steps=4, dataset=fn)
    two.train()
    assert int(two.input_position.numpy()) == int(one.input_position.numpy()) == 22
    for a, b in zip(_weights(one), _weights(two)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_first_checkpoint_without_state_file_is_adopted_but_several_are_refused(tmp_path):
    """Killed after the first checkpoint's files were complete but before the state file was
    written: the single (validated) checkpoint is used; with two unnamed checkpoints (e.g. a
    deleted state file) the run refuses instead of guessing."""
    fn = si.make_dataset_fn()
    _trainer(tmp_path / "one", steps=2, dataset=fn).train()
    os.remove(tmp_path / "one" / "checkpoint")
    resumed = _trainer(tmp_path / "one", steps=4, dataset=fn)
    r = resumed.train()
    assert [s for s, _ in r.history] == [4]  # continued after step 2
    assert tf.train.latest_checkpoint(str(tmp_path / "one")).endswith("ckpt-4")
    full = _trainer(tmp_path / "full", steps=4, dataset=fn)
    full.train()
    for a, b in zip(_weights(full), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    os.remove(tmp_path / "one" / "checkpoint")  # now ckpt-2 and ckpt-4 are unnamed
    with pytest.raises(checkpointing.CorruptCheckpointError, match="no 'checkpoint' state file"):
        _trainer(tmp_path / "one", steps=6, dataset=fn).train()


def test_without_input_checkpointing_the_index_is_dropped_and_not_saved(tmp_path):
    """checkpoint_iterator=False (what multi-worker and TPU get): batches go through the
    distributed-dataset path without their "index", and no input position is saved."""
    t = _trainer(tmp_path, steps=2, dataset=si.make_dataset_fn(), checkpoint_iterator=False)
    assert t.train().step == 2
    keys = _keys(tf.train.latest_checkpoint(str(tmp_path)))
    assert not any(k.startswith(("input_position/", "iterator/")) for k in keys)


def test_dataset_function_must_yield_the_stream_index(tmp_path):
    with pytest.raises(ValueError, match="must yield batches with 'index'"):
        _trainer(tmp_path, dataset=lambda start: si.make_dataset())


def _tiny_pretrain_config(tmp_path, batch_size):
    from tfcolor import config as cfg
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv3_3", "fc7"), hidden=64,
                              dropout=0.0),
        data=cfg.DataConfig(data=str(tmp_path / "images"), batch_size=batch_size, crop_size=32,
                            points=8, validation_images=0, targets_on_device=False),
        loss=cfg.LossConfig(kind="hue_chroma"), optimizer=cfg.OptimizerConfig(lr_drops=[]),
        train=cfg.TrainConfig(model_dir=str(tmp_path / f"run{batch_size}"), train_steps=3,
                              steps_per_loop=1, checkpoint_every=3, summary_every=3,
                              image_every=0, export=False, deterministic=True)).validate()


# The larger batch and buffer (about 30-50 s) run with -m slow; the small one in the default run.
@pytest.mark.parametrize("batch_size,prefetch",
                         [(2, 1), pytest.param(16, 8, marks=pytest.mark.slow)])
def test_checkpoint_is_at_most_1_2x_the_variables_at_any_batch_size_and_buffer_depth(
        tmp_path, batch_size, prefetch):
    """The real pretraining pipeline (files, parallel decode, prefetch) after a few steps: the
    checkpoint's files weigh at most 1.2x the bytes of what must be saved (model variables,
    optimizer slots, step, RNG state, input position)."""
    from PIL import Image
    from tfcolor import data as data_lib
    from tfcolor.models import build_colorizer
    from tfcolor.tasks import colorization
    os.makedirs(tmp_path / "images")
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (48 + i, 56, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"{i}.png")
    config = _tiny_pretrain_config(tmp_path, batch_size)
    loss_fn = colorization.build_loss(config.loss)

    def dataset_fn(start):
        data = dataclasses.replace(config.data, targets_on_device=False)
        return data_lib.pretrain_dataset(
            data, config.loss, seed=0, deterministic=True, include_index=True, start=start,
            prefetch=prefetch, num_parallel_calls=4, skip_counter=False)

    task = ColorizationTask(model_fn=lambda: build_colorizer(config),
                            loss_fn=loss_fn, dataset=dataset_fn)
    t = train.Trainer(task, strategy=train.make_strategy("default"),
                      model_dir=config.train.model_dir, train_steps=3,
                      steps_per_loop=1, checkpoint_every=3, summary_every=3)
    result = t.train()
    import time
    time.sleep(1.0)  # let the prefetch buffers fill before saving again
    path = t.save()
    assert result.step == 3 and path.endswith("ckpt-3")
    ckpt_bytes = sum(os.path.getsize(f) for f in tf.io.gfile.glob(path + ".*"))
    saved = (list(t.model.variables) + list(t.optimizer.variables) + [t.step, t.input_position])
    var_bytes = sum(np.asarray(v.value if hasattr(v, "value") else v).nbytes for v in saved)
    assert var_bytes > 100_000  # a real model, so that 1.2x is a meaningful bound
    assert ckpt_bytes <= 1.2 * var_bytes, (ckpt_bytes, var_bytes)
    assert not any(k.startswith("iterator/") for k in _keys(path))


def _checkpoint_files(tmp_path):
    path = tf.train.latest_checkpoint(str(tmp_path))
    return path, tf.io.gfile.glob(path + ".data-*")[0], path + ".index"


def test_truncated_data_file_is_detected(tmp_path):
    _trainer(tmp_path, steps=2).train()
    path, data, _ = _checkpoint_files(tmp_path)
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(checkpointing.CorruptCheckpointError, match="corrupt or half-written"):
        _trainer(tmp_path, steps=4).train()


def test_altered_data_file_fails_its_checksum(tmp_path):
    _trainer(tmp_path, steps=2).train()
    _, data, _ = _checkpoint_files(tmp_path)
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(data, "wb").write(bytes(raw))
    with pytest.raises(checkpointing.CorruptCheckpointError):
        _trainer(tmp_path, steps=4).train()


def test_missing_index_file_is_detected(tmp_path):
    _trainer(tmp_path, steps=2).train()
    path, _, index = _checkpoint_files(tmp_path)
    os.remove(index)
    with pytest.raises(checkpointing.CorruptCheckpointError, match="index file .* is missing"):
        _trainer(tmp_path, steps=4).train()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _trainer(tmp_path, steps=2).train()

    def other():
        return si.StandInColorizer(batch_norm=False)

    task = ColorizationTask(model_fn=other, loss_fn=si.per_point_loss,
                            dataset=si.make_dataset())
    t = train.Trainer(task, strategy=train.make_strategy("default"),
                      model_dir=str(tmp_path), train_steps=4, optimizer_config=_opt())
    with pytest.raises(checkpointing.CheckpointError, match="does not match"):
        t.train()


# --------------------------------------------------------------------------------------------
# Summaries and previews.

def _events(directory):
    tags = {}
    for path in tf.io.gfile.glob(os.path.join(directory, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_summaries_hold_losses_learning_rate_speed_and_images(tmp_path):
    rgb = tf.random.stateless_uniform([2, 8, 8, 3], [0, 1])

    def preview(model, images):
        return tf.sigmoid(model.dense(tf.reduce_mean(images, -1, keepdims=True))[..., :3])

    t = _trainer(tmp_path, steps=4, image_every=4, loss_fn=si.per_point_parts,
                 preview_images=rgb, preview_fn=preview)
    t.train()
    tags = _events(str(tmp_path / "train"))
    for tag in ("loss/loss", "loss/colorization", "loss/weight_decay", "loss/colorization/low",
                "learning_rate", "images_per_second"):
        assert tags.get(tag) == [2, 4], tag
    assert tags["colorization"] == [4]
    grid = t.preview()
    assert grid.shape == (2 * 8 + 2, 3 * 8 + 2 * 2, 3)


def test_progress_line_has_step_loss_speed_and_eta():
    from tfcolor.train import summaries
    line = summaries.progress_line(50, 200, {"loss": 1.5, "colorization": 1.4}, 1e-3, 20.0, 3725)
    assert line.startswith("step 50/200 (25.0%) loss 1.5000")
    assert "20.0 img/s" in line and "ETA 1h 02m" in line


# --------------------------------------------------------------------------------------------
# Arguments and strategies.

def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="train_steps must be a positive integer"):
        _trainer(tmp_path, steps=0)
    unbatched = si.make_dataset().unbatch().batch(4)  # no static batch size
    with pytest.raises(ValueError, match="static batch size"):
        _trainer(tmp_path, dataset=unbatched)
    with pytest.raises(ValueError, match="lack \\['centers'\\]"):
        _trainer(tmp_path, dataset=si.make_dataset().map(lambda d: {"gray": d["gray"]}))
    with pytest.raises(ValueError, match="pass target_builder"):
        _trainer(tmp_path, dataset=si.make_dataset(on_device=True))


@needs_two_cpus
def test_batch_must_split_evenly_across_replicas(tmp_path):
    with pytest.raises(ValueError, match="not divisible by the 2 replicas"):
        _trainer(tmp_path, strategy="mirrored", dataset=si.make_dataset(batch_size=3))


def test_make_strategy_by_name(monkeypatch):
    assert isinstance(train.make_strategy("default"), tf.distribute.OneDeviceStrategy)
    assert isinstance(train.make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match="unknown strategy 'gpu'"):
        train.make_strategy("gpu")
    with pytest.raises(ValueError, match="no TPU found"):
        train.make_strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"index": 3}}')
    with pytest.raises(ValueError, match="malformed TF_CONFIG.*index 3"):
        train.make_strategy("multi_worker")


# --------------------------------------------------------------------------------------------
# Multi-process: crash and resume, multi-worker. Child processes always killed in `finally`.

_CHILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "train_child.py")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spawn(args, env_extra=None):
    return child_processes.spawn(_CHILD, args, env_extra)


_finish = child_processes.finish


def _result(path):
    import json
    with open(path + ".json") as f:
        meta = json.load(f)
    weights = np.load(path)
    return meta, [weights[k] for k in sorted(weights.files, key=lambda k: int(k[1:]))]


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_matches_an_uninterrupted_run(tmp_path):
    """Deterministic mode: crash (SIGKILL) after step 7 of 12, checkpoints every 3 steps; the
    restart resumes from ckpt-6 (model, optimizer, dropout RNG and data iterator) and ends with
    exactly the same losses and weights as an uninterrupted run."""
    full_out, cut_out = str(tmp_path / "full.npz"), str(tmp_path / "cut.npz")
    common = ["--deterministic", "--steps=12", "--checkpoint_every=3"]
    full = _spawn(common + ["--model_dir", str(tmp_path / "full"), "--out", full_out])
    cut = _spawn(common + ["--model_dir", str(tmp_path / "cut"), "--out", cut_out,
                           "--kill_at=7"])
    outs = _finish([full, cut], timeout=240)
    assert full.returncode == 0, outs[0]
    assert cut.returncode == -signal.SIGKILL, outs[1]
    assert not os.path.exists(cut_out)
    ckpt6 = tf.train.latest_checkpoint(str(tmp_path / "cut"))
    assert ckpt6.endswith("ckpt-6")
    # The child's dataset function drops every 5th record: 24 kept records are 1..29 minus
    # 5, 10, 15, 20, 25, so the input position after 6 batches of 4 is 30. No iterator state.
    assert not any(k.startswith("iterator/") for k in _keys(ckpt6))
    assert tf.train.load_checkpoint(ckpt6).get_tensor(
        "input_position/.ATTRIBUTES/VARIABLE_VALUE") == 30
    resumed = _spawn(common + ["--model_dir", str(tmp_path / "cut"), "--out", cut_out])
    out = _finish([resumed], timeout=180)[0]
    assert resumed.returncode == 0, out
    meta_full, w_full = _result(full_out)
    meta_cut, w_cut = _result(cut_out)
    assert meta_cut["history"] == list(range(7, 13))  # resumed after step 6
    assert meta_cut["losses"] == meta_full["losses"]
    # Bit-identical on purpose: both runs are on this machine in --deterministic mode, so any
    # difference is resume state that was lost (not BLAS / CPU rounding).
    for a, b in zip(w_full, w_cut):
        np.testing.assert_array_equal(a, b)


_free_ports = child_processes.free_ports


@pytest.mark.slow
def test_two_workers_multi_worker_mirrored_end_with_identical_weights(tmp_path):
    import json
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    try:
        for i in range(2):
            tf_config = json.dumps({"cluster": {"worker": workers},
                                    "task": {"type": "worker", "index": i}})
            procs.append(_spawn(["--strategy=multi_worker", "--steps=6", "--checkpoint_every=3",
                                 "--model_dir", str(tmp_path / "run"),
                                 "--out", str(tmp_path / f"w{i}.npz")],
                                env_extra={"TF_CONFIG": tf_config}))
        outs = _finish(procs, timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    meta0, w0 = _result(str(tmp_path / "w0.npz"))
    meta1, w1 = _result(str(tmp_path / "w1.npz"))
    assert meta0["step"] == meta1["step"] == 6
    assert meta0["losses"] == meta1["losses"]
    # Bit-identical on purpose: synchronous workers apply the same all-reduced update.
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    # Only the chief's checkpoints remain; the other worker's temporary copies are removed.
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-6")
    assert not os.listdir(tmp_path / "run" / ".tmp_workers")


# --------------------------------------------------------------------------------------------
# The trainer knows nothing of colour: any Task trains.

class _RegressionTask(tfcolor_tasks_base.Task):
    """A least-squares task with batches {"x", "y"}: nothing the trainer could special-case."""

    name = "regression"

    def __init__(self, x, y):
        self.x, self.y = x, y

    def build_model(self):
        keras.utils.set_random_seed(5)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        return model

    def build_inputs(self, start=0):
        return tf.data.Dataset.from_tensors({"x": self.x, "y": self.y}).repeat()

    def compute_loss(self, model, batch, *, training, global_batch_size):
        err = tf.reduce_sum(tf.square(model(batch["x"], training=training) - batch["y"]), -1)
        return (tf.reduce_sum(err) / global_batch_size,
                {"first": tf.reduce_sum(err[:1]) / global_batch_size})


@pytest.mark.parametrize("strategy", ["default", pytest.param("mirrored", marks=needs_two_cpus)])
def test_any_task_trains_and_one_step_is_the_hand_computed_sgd_update(tmp_path, strategy):
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), tf.float32)
    y = tf.constant(np.random.default_rng(1).normal(size=(4, 2)), tf.float32)
    lr, wd = 0.1, 1e-2
    t = train.Trainer(_RegressionTask(x, y), strategy=train.make_strategy(strategy),
                      model_dir=str(tmp_path), train_steps=1, steps_per_loop=1,
                      optimizer_config=_opt(learning_rate=lr, weight_decay=wd))
    kernel, bias = [v.numpy().astype(np.float64) for v in t.model.trainable_variables]
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    residual = xn @ kernel + bias - yn                     # (4, 2)
    grad_kernel = 2 * xn.T @ residual / 4 + wd * kernel    # mean over the 4 rows + L2 on kernels
    grad_bias = 2 * residual.sum(0) / 4
    result = t.train()
    assert t.loss_names == ["loss", "regression", "weight_decay", "regression/first"]
    assert set(result.losses) == set(t.loss_names)
    np.testing.assert_allclose(result.losses["regression"],
                               np.mean(np.sum(residual ** 2, -1)), rtol=1e-5)
    new_kernel, new_bias = [v.numpy() for v in t.model.trainable_variables]
    np.testing.assert_allclose(new_kernel, kernel - lr * grad_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bias, bias - lr * 2.0 * grad_bias, rtol=1e-5, atol=1e-6)


def test_trainer_refuses_what_is_not_a_task(tmp_path):
    with pytest.raises(TypeError, match="must be a tfcolor.tasks.base.Task"):
        train.Trainer(object(), strategy=train.make_strategy("default"),
                      model_dir=str(tmp_path), train_steps=1)
