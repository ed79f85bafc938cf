"""Tests of tfcolor.train.lock (one run per model_dir) and its use by the Trainer.

Owners are real processes started here (a sleeping child is a live owner; a child that has exited
is a dead one), so liveness is checked against the operating system, not against a mock.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import train_standins as si  # noqa: E402

from tfcolor import run_dir  # noqa: E402
from tfcolor.train import lock  # noqa: E402


def _write_lock(model_dir, **fields):
    os.makedirs(model_dir, exist_ok=True)
    record = dict(lock.owner_record(), **fields)
    with open(os.path.join(model_dir, run_dir.LOCK_FILE), "w") as f:
        json.dump(record, f)
    return record


def _read_lock(model_dir):
    with open(os.path.join(model_dir, run_dir.LOCK_FILE)) as f:
        return json.load(f)


@pytest.fixture
def live_pid():
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_holds_this_process_and_is_released(tmp_path):
    d = str(tmp_path / "run")
    with lock.hold(d):
        record = _read_lock(d)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["started"].endswith("+00:00")
        with lock.hold(d):  # re-entrant within the process
            pass
        assert os.path.exists(os.path.join(d, run_dir.LOCK_FILE))  # still held by the outer hold
    assert not os.path.exists(os.path.join(d, run_dir.LOCK_FILE))
    assert os.listdir(d) == []  # no temporary files left behind


def test_live_owner_on_this_host_is_refused_with_its_pid_and_host(tmp_path, live_pid):
    d = str(tmp_path)
    _write_lock(d, pid=live_pid, start_ticks=lock._start_ticks(live_pid))
    with pytest.raises(lock.ModelDirLockedError,
                       match=rf"in use by another run \(pid {live_pid} on host "):
        lock.acquire(d)
    assert _read_lock(d)["pid"] == live_pid  # untouched


def test_dead_owner_is_stale_and_taken_over_with_a_warning(tmp_path, dead_pid, caplog):
    d = str(tmp_path)
    _write_lock(d, pid=dead_pid, start_ticks=12345)
    with lock.hold(d):
        assert _read_lock(d)["pid"] == os.getpid()
    assert any(f"process {dead_pid} is not running" in r.getMessage() for r in caplog.records)


def test_reused_pid_is_stale(tmp_path, live_pid):
    """The recorded pid runs, but it is another process than the one that took the lock (its
    start time differs): stale."""
    ticks = lock._start_ticks(live_pid)
    if ticks is None:
        pytest.skip("no /proc start times on this system")
    record = dict(lock.owner_record(), pid=live_pid, start_ticks=ticks - 1)
    assert lock.stale_reason(record) == f"pid {live_pid} now belongs to a different process"
    assert lock.stale_reason(dict(record, start_ticks=ticks)) is None


def test_other_host_is_refused_unless_forced(tmp_path):
    d = str(tmp_path)
    _write_lock(d, pid=1, host="elsewhere.example")
    with pytest.raises(lock.ModelDirLockedError, match="host 'elsewhere.example'.*--force_unlock"):
        lock.acquire(d)
    with lock.hold(d, force=True):
        assert _read_lock(d)["host"] == socket.gethostname()


def test_garbled_lock_file_is_stale(tmp_path):
    d = str(tmp_path)
    path = os.path.join(d, run_dir.LOCK_FILE)
    with open(path, "w") as f:
        f.write("{not json")
    # Just written: possibly a racing run still writing it -> not taken over yet.
    with pytest.raises(lock.ModelDirLockedError, match="could not take the lock"):
        lock.acquire(d, attempts=2)
    old = os.path.getmtime(path) - 60
    os.utime(path, (old, old))
    with lock.hold(d):
        assert _read_lock(d)["pid"] == os.getpid()


def test_release_leaves_another_owners_lock_alone(tmp_path, live_pid):
    d = str(tmp_path)
    lock.acquire(d)
    _write_lock(d, pid=live_pid)  # replaced behind our back (e.g. by --force_unlock elsewhere)
    lock.release(d)
    assert _read_lock(d)["pid"] == live_pid


@pytest.mark.slow  # racing processes (about 15-25 s); one takeover stays in the default run
def test_racing_takeovers_of_one_stale_lock_leave_exactly_one_owner(tmp_path, dead_pid):
    """Several processes start at once on a directory with a stale lock: exactly one of them
    gets it, the others are refused (none silently shares the directory)."""
    d = str(tmp_path)
    _write_lock(d, pid=dead_pid, start_ticks=1)
    # The lock module loaded by path: no TensorFlow import, so the four start together.
    code = ("import importlib.util, sys, time\n"
            f"spec = importlib.util.spec_from_file_location('lock', {lock.__file__!r})\n"
            "lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock)\n"
            "try:\n    lock.acquire(sys.argv[1])\nexcept lock.ModelDirLockedError:\n"
            "    print('refused'); sys.exit(0)\nprint('owner'); sys.stdout.flush(); time.sleep(8)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, d], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outs) == ["owner", "refused", "refused", "refused"], outs


def test_trainer_refuses_a_model_dir_in_use_and_keeps_its_checkpoints(tmp_path, live_pid):
    from tfcolor import config
    from tfcolor import train
    from tfcolor.tasks.colorization import ColorizationTask

    def trainer(steps):
        task = ColorizationTask(model_fn=si.StandInColorizer, loss_fn=si.per_point_loss,
                                dataset=si.make_dataset_fn())
        return train.Trainer(
            task, strategy=train.make_strategy("default"), model_dir=str(tmp_path),
            train_steps=steps, steps_per_loop=2, checkpoint_every=2, summary_every=2,
            optimizer_config=config.OptimizerConfig(learning_rate=0.1, lr_drops=[]))

    trainer(2).train()
    assert not os.path.exists(os.path.join(tmp_path, run_dir.LOCK_FILE))  # released at the end
    before = sorted(os.listdir(tmp_path))
    data = [f for f in before if f.startswith("ckpt-2.data")][0]
    content = open(tmp_path / data, "rb").read()
    _write_lock(str(tmp_path), pid=live_pid, start_ticks=None)
    before.append(run_dir.LOCK_FILE)
    with pytest.raises(train.ModelDirLockedError, match=f"pid {live_pid}"):
        trainer(4).train()
    assert sorted(os.listdir(tmp_path)) == sorted(before)
    np.testing.assert_array_equal(np.frombuffer(open(tmp_path / data, "rb").read(), np.uint8),
                                  np.frombuffer(content, np.uint8))
