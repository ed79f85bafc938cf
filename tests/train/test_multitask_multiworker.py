"""The multi-task step (tfcolor.train.multitask_step.MultiTaskStep) under
MultiWorkerMirroredStrategy: two worker processes on this machine (tests/train_child.py
``--task=multitask``, a cluster of two local ports in ``TF_CONFIG``) train the joint NormSGD
colorization + jigsaw step of ``train_child.multitask_step`` for a few steps, each task's global
batch split across the workers by the distributed dataset.

Reference: the same step in this process on one device (default strategy), from the chief's
initial weights, on the same global batches (both streams are deterministic functions of the
record position). Restore: a fresh step object restores the chief's last checkpoint.
"""
import json
import os
import signal
import sys

import numpy as np
import pytest
import tensorflow as tf

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.dirname(_TESTS)
_CHILD = os.path.join(_TESTS, "train_child.py")
sys.path.insert(0, _TESTS)
import child_processes  # noqa: E402
import train_child  # noqa: E402

from tfcolor import train  # noqa: E402

EPS32 = 2.0 ** -24
STEPS, CHECKPOINT_EVERY = 4, 2


_free_ports = child_processes.free_ports


def _spawn(args, tf_config):
    return child_processes.spawn(_CHILD, args, {"TF_CONFIG": tf_config})


def _result(path):
    with open(path + ".json") as f:
        meta = json.load(f)
    arrays = np.load(path)
    count = sum(k.startswith("w") for k in arrays.files)
    return meta, [arrays[f"i{k}"] for k in range(count)], [arrays[f"w{k}"] for k in range(count)]


def _values(variables):
    return [np.array(tf.convert_to_tensor(v)) for v in variables]


def _travel(a, b):
    return float(np.abs(a - b).max()) if a.size else 0.0


@pytest.mark.slow
def test_two_worker_multitask_run_equals_one_process_on_the_global_batches(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    model_dir = tmp_path / "run"
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    procs = []
    try:
        for i in range(2):
            tf_config = json.dumps({"cluster": {"worker": workers},
                                    "task": {"type": "worker", "index": i}})
            procs.append(_spawn(["--task=multitask", "--strategy=multi_worker",
                                 f"--steps={STEPS}", f"--checkpoint_every={CHECKPOINT_EVERY}",
                                 "--model_dir", str(model_dir), "--out", outs[i]], tf_config))
        logs = child_processes.finish(procs, timeout=600)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    (meta0, init0, w0), (meta1, init1, w1) = _result(outs[0]), _result(outs[1])
    # Really two workers of one strategy (one replica each), the first of them the chief.
    assert meta0["replicas"] == meta1["replicas"] == 2
    assert (meta0["chief"], meta1["chief"]) == (True, False)
    assert meta0["step"] == meta1["step"] == STEPS
    assert meta0["history"] == list(range(1, STEPS + 1))
    # Bit-identical on purpose: the chief's initial values are broadcast, and synchronous
    # workers apply the same all-reduced update and the same NormSGD statistics.
    for a, b in zip(init0 + w0, init1 + w1):
        np.testing.assert_array_equal(a, b)
    assert meta0["losses"] == meta1["losses"]
    assert meta0["statistics"] == meta1["statistics"]

    # The reference: one process, one device, the whole global batches, the chief's start.
    reference = train_child.multitask_step(train.make_strategy("default"), STEPS)
    variables = reference.model.weights
    assert [tuple(v.shape) for v in variables] == [x.shape for x in init0]
    for v, x in zip(variables, init0):
        v.assign(x)
    result = train.Trainer(reference, strategy=reference.strategy,
                           model_dir=str(tmp_path / "reference"), train_steps=STEPS,
                           steps_per_loop=1, checkpoint_every=STEPS, summary_every=STEPS,
                           handle_sigterm=False).train()
    assert result.step == STEPS
    paths = [v.path for v in variables]
    ref = _values(variables)
    trainable = [k for k, v in enumerate(variables) if v.trainable]
    frozen = [k for k, v in enumerate(variables) if not v.trainable]
    # The trunk's convolution biases feed batch normalization, which removes any constant
    # shift: their gradient is zero in exact arithmetic and their computed one is cancellation
    # noise (~sqrt(n) EPS32 of the summed terms), different in the two runs. They are checked to
    # stay at that level (< 1e-3 of the trunk kernels' travel in both runs; 7e-5 measured), not
    # against each other.
    noise = [k for k in trainable if paths[k].endswith("/bias")
             and paths[k][:-len("/bias")] + "_bn/moving_mean" in paths]
    kernels = [k for k in trainable if paths[k].endswith("/kernel")
               and paths[k][:-len("/kernel")] + "_bn/moving_mean" in paths]
    assert len(noise) == len(kernels) == 2, paths   # conv1_1 and conv1_2 of vgg_tiny
    trunk_travel = max(_travel(ref[k], init0[k]) for k in kernels)
    for k in noise:
        assert max(_travel(ref[k], init0[k]), _travel(w0[k], init0[k])) < 1e-3 * trunk_travel
    # Every other weight: the workers sum two half-batch gradients (and the synchronized batch
    # norm two half-batch moments) where the reference sums once; each sum has at most 4 images
    # x 4 pieces x 12 x 12 = 2304 terms, so a gradient, a moment and the NormSGD statistic (an
    # l1 mean of gradients) differ by ~sqrt(2304) EPS32 = 3e-6 relative, the normalised update
    # likewise; over 4 steps of momentum 0.9, 1e-5 .. 2e-5 of the distance the weight
    # travelled (2e-5 at most, conv1_2's kernel, on the machine this was written on). 1e-4 of
    # it leaves a margin of 5, plus the rounding of the stored weights. A reference stepping
    # on half of each global batch (what one worker sees) is off by 2e3 .. 1e4 of this
    # tolerance.
    for k in trainable:
        if k in noise:
            continue
        travel = _travel(ref[k], init0[k])
        assert travel > 0, paths[k]   # every weight moved: not two untouched models
        tol = 1e-4 * travel + 4 * EPS32 * np.abs(ref[k])
        assert np.all(np.abs(w0[k] - ref[k]) <= tol), (
            f"{paths[k]}: max |diff| {np.abs(w0[k] - ref[k]).max():.3g}, travel {travel:.3g}")
    # The moving BN statistics see the same activations up to that rounding, plus, for a
    # moving mean, the noise of its convolution's bias (a batch mean moves one for one with the
    # bias, so by at most the bias' travel in either run). The variances do not see a bias;
    # without the synchronized batch norm they would lack the spread between the workers'
    # half batches.
    assert len(frozen) == 4, [paths[k] for k in frozen]
    for k in frozen:
        atol = 1e-6
        if paths[k].endswith("_bn/moving_mean"):
            bias = paths.index(paths[k][:-len("_bn/moving_mean")] + "/bias")
            atol += _travel(ref[bias], init0[bias]) + _travel(w0[bias], init0[bias])
        np.testing.assert_allclose(w0[k], ref[k], rtol=1e-4, atol=atol, err_msg=paths[k])
    # NormSGD: the same statistic per task (an EMA of l1 means: ~3e-6 relative, see above),
    # updated FREEZE times, then frozen, in both runs.
    want = train_child.multitask_statistics(reference)
    assert set(meta0["statistics"]) == set(want) == {"colorization", "jigsaw"}
    for name, (statistic, updates) in want.items():
        assert updates == meta0["statistics"][name][1] == train_child.MT_FREEZE
        np.testing.assert_allclose(meta0["statistics"][name][0], statistic, rtol=1e-4)
        assert statistic > 0
    # The last step's logged values likewise; accuracies (a count of arg-max hits, which a
    # near tie could flip under rounding) are left to the weights.
    assert set(meta0["losses"]) == set(result.losses)
    for key, value in result.losses.items():
        if not key.endswith("/accuracy"):
            np.testing.assert_allclose(meta0["losses"][key], value, rtol=1e-4, err_msg=key)

    # Checkpoints: the chief's only. The other worker's saves go to temporary copies that are
    # removed, and it writes no summaries.
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert latest is not None and latest.endswith(f"ckpt-{STEPS}")
    assert meta0["checkpoint"] == latest
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        f"ckpt-{s}" for s in range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY)]
    assert not os.listdir(model_dir / ".tmp_workers")
    events = [f for f in os.listdir(model_dir / "train") if "tfevents" in f]
    assert len(events) == 1, events
    # Restore: a fresh step object with other initial weights resumes at the last step with the
    # chief's weights and statistics, bit for bit (restoring copies values).
    restored = train_child.multitask_step(train.make_strategy("default"), STEPS, seed=1)
    assert any(np.any(a != b) for a, b in zip(_values(restored.model.weights), w0))
    again = train.Trainer(restored, strategy=restored.strategy, model_dir=str(model_dir),
                          train_steps=STEPS, steps_per_loop=1, checkpoint_every=STEPS,
                          summary_every=STEPS, handle_sigterm=False).train()
    assert again.step == STEPS and again.history == [] and again.checkpoint == latest
    assert int(restored.step.numpy()) == STEPS
    for a, b in zip(_values(restored.model.weights), w0):
        np.testing.assert_array_equal(a, b)
    assert train_child.multitask_statistics(restored) == meta0["statistics"]
