"""Where a run's checkpoints are found: the state file's entries resolve inside the directory it
was read from, whatever the working directory, and wherever the directory was when they were
written (moved or copied since); a resumed copy keeps and prunes its own checkpoints only; the
messages name what the directory actually holds.

The trainer's resume from damaged or half-written checkpoints is tested in
``tests/train/test_trainer.py``, the read-only ``latest_checkpoint`` in ``tests/test_run_dir.py``.
"""
import os
import shutil
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from checkpoint_state import absolute_state_file  # noqa: E402

from tfcolor import run_dir  # noqa: E402
from tfcolor.train import checkpointing  # noqa: E402


def _save(directory, steps, max_to_keep=5, offset=0):
    """Checkpoints of one variable (value = step + offset) saved by a CheckpointManager in
    ``directory`` (as given: relative or absolute)."""
    var = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=var), directory, max_to_keep,
                                         checkpoint_name=checkpointing.CHECKPOINT_PREFIX)
    for step in steps:
        var.assign(float(step + offset))
        manager.save(checkpoint_number=step)


def _value(path):
    return float(tf.train.load_checkpoint(path).get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE"))


def _names(directory):
    return sorted(n[:-len(".index")] for n in os.listdir(directory) if n.endswith(".index"))


def _state_entries(directory):
    """The entries of the state file as written (not as TensorFlow joins them)."""
    lines = open(os.path.join(directory, "checkpoint"), encoding="utf-8").read().splitlines()
    return [line.split('"')[1] for line in lines if "checkpoint_path" in line]


def test_a_relative_directory_resolves_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _save(os.path.join("runs", "q"), [1, 2])
    expected = os.path.join("runs", "q", "ckpt-2")
    assert checkpointing.state_checkpoint("runs/q") == expected
    assert checkpointing.state_checkpoints("runs/q") == (
            expected, [os.path.join("runs", "q", "ckpt-1"), expected])
    assert os.path.exists(expected + ".index")  # relative to the working directory
    assert run_dir.latest_checkpoint("runs/q") == expected
    assert os.path.exists(run_dir.latest_checkpoint("./runs/q/") + ".index")
    assert _value(run_dir.latest_checkpoint("runs/q")) == 2.0
    # The same run read through its absolute path: the same files.
    assert run_dir.latest_checkpoint(str(tmp_path / "runs" / "q")) == str(
            tmp_path / "runs" / "q" / "ckpt-2")


def test_absolute_entries_of_a_moved_directory_resolve_inside_it(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _save(str(old), [1, 2])
    absolute_state_file(str(old))
    shutil.move(str(old), str(new))
    assert checkpointing.state_checkpoints(str(new)) == (
            str(new / "ckpt-2"), [str(new / "ckpt-1"), str(new / "ckpt-2")])
    assert run_dir.latest_checkpoint(new) == str(new / "ckpt-2")
    assert _value(run_dir.latest_checkpoint(new)) == 2.0


def test_a_copied_directory_reads_its_own_files_not_the_originals(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    _save(str(original), [1, 2])
    absolute_state_file(str(original))
    shutil.copytree(original, copy)
    # The copy's ckpt-2 holds another value than the original's.
    _save(str(tmp_path / "other"), [2], offset=100)
    for name in os.listdir(tmp_path / "other"):
        if name.startswith("ckpt-2."):
            shutil.copy(tmp_path / "other" / name, copy / name)
    assert run_dir.latest_checkpoint(copy) == str(copy / "ckpt-2")
    assert _value(run_dir.latest_checkpoint(copy)) == 102.0
    assert tf.train.latest_checkpoint(str(copy)) == str(original / "ckpt-2")  # TensorFlow's


def _checkpointer(directory, max_to_keep=2):
    var = tf.Variable(-1.0)
    return checkpointing.Checkpointer(directory, max_to_keep=max_to_keep, v=var), var


def test_a_resumed_copy_keeps_and_prunes_only_its_own_checkpoints(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    _save(str(original), [1, 2], max_to_keep=2)
    absolute_state_file(str(original))
    shutil.copytree(original, copy)
    before = {n: (original / n).read_bytes() for n in os.listdir(original)}
    ckpt, var = _checkpointer(str(copy))
    assert ckpt.restore_latest() == str(copy / "ckpt-2")
    assert var.numpy() == 2.0
    assert _state_entries(copy) == ["ckpt-2", "ckpt-1", "ckpt-2"]  # plain names now
    for step in (3, 4):
        var.assign(float(step))
        ckpt.save(step)
    assert _names(copy) == ["ckpt-3", "ckpt-4"]  # max_to_keep=2 pruned the copy's 1 and 2
    assert {n: (original / n).read_bytes() for n in os.listdir(original)} == before
    assert _value(run_dir.latest_checkpoint(copy)) == 4.0


def test_a_moved_run_resumes_from_a_relative_directory_and_prunes(tmp_path, monkeypatch):
    _save(str(tmp_path / "a" / "run"), [1, 2], max_to_keep=2)
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    monkeypatch.chdir(tmp_path / "b")
    ckpt, var = _checkpointer("run")
    assert ckpt.restore_latest() == os.path.join("run", "ckpt-2")
    for step in (3, 4, 5):
        var.assign(float(step))
        ckpt.save(step)
    assert _names("run") == ["ckpt-4", "ckpt-5"]
    assert _state_entries("run") == ["ckpt-5", "ckpt-4", "ckpt-5"]
    assert checkpointing.state_checkpoint("run") == os.path.join("run", "ckpt-5")
    ckpt, var = _checkpointer(str(tmp_path / "b" / "run"))  # and again through its full path
    assert ckpt.restore_latest() == str(tmp_path / "b" / "run" / "ckpt-5")
    assert var.numpy() == 5.0


def test_a_state_file_naming_a_missing_checkpoint_says_what_is_there(tmp_path):
    _save(str(tmp_path), [1, 2])
    for name in os.listdir(tmp_path):
        if name.startswith("ckpt-2."):
            os.remove(tmp_path / name)
    for read in (run_dir.latest_checkpoint, lambda d: _checkpointer(str(d))[0].restore_latest()):
        with pytest.raises(checkpointing.CorruptCheckpointError) as info:
            read(tmp_path)
        message = str(info.value)
        assert "ckpt-2 is not in" in message and "ckpt-1" in message, message
        assert "delete" not in message.lower(), message
    assert _names(tmp_path) == ["ckpt-1"]  # nothing was removed
    for name in os.listdir(tmp_path):
        if name.startswith("ckpt-1."):
            os.remove(tmp_path / name)
    with pytest.raises(checkpointing.CorruptCheckpointError, match="holds no checkpoint") as info:
        run_dir.latest_checkpoint(tmp_path)
    assert "delete" not in str(info.value).lower()


def test_half_written_and_damaged_checkpoints_name_the_others(tmp_path):
    _save(str(tmp_path), [1, 2])
    os.remove(tmp_path / "ckpt-2.index")
    with pytest.raises(checkpointing.CorruptCheckpointError) as info:
        run_dir.latest_checkpoint(tmp_path)
    message = str(info.value)
    assert "index file" in message and "data files" in message, message
    assert 'model_checkpoint_path: "ckpt-1"' in message, message
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == str(tmp_path / "ckpt-2")  # nothing was changed


def test_a_garbled_state_file_names_the_checkpoints_found(tmp_path):
    _save(str(tmp_path), [1, 2])
    (tmp_path / "checkpoint").write_text("garbled {")
    with pytest.raises(checkpointing.CorruptCheckpointError, match="names no checkpoint") as info:
        run_dir.latest_checkpoint(tmp_path)
    assert "ckpt-1, ckpt-2" in str(info.value)
    # The advice works: the line it gives makes the directory readable again.
    line = str(info.value).split("by the line '")[1].split("'")[0]
    (tmp_path / "checkpoint").write_text(line + "\n")
    assert _value(run_dir.latest_checkpoint(tmp_path)) == 2.0


def test_found_checkpoints_are_sorted_by_number(tmp_path):
    _save(str(tmp_path), [2, 10, 9])
    assert checkpointing.found_checkpoints(str(tmp_path)) == ["ckpt-2", "ckpt-9", "ckpt-10"]


def test_a_checkpoint_asked_by_name_or_path_is_found_in_the_run(tmp_path, monkeypatch):
    _save(str(tmp_path / "work" / "runs" / "q"), [1, 2])
    monkeypatch.chdir(tmp_path / "work")
    inside = os.path.join("runs", "q", "ckpt-1")
    assert checkpointing.checkpoint_in("runs/q", "ckpt-1") == inside
    assert checkpointing.checkpoint_in("runs/q", inside) == inside  # a path that exists
    shutil.move(str(tmp_path / "work" / "runs"), str(tmp_path / "moved"))
    monkeypatch.chdir(tmp_path)
    # The path it had before the move names the checkpoint of the moved run.
    assert checkpointing.checkpoint_in("moved/q", str(tmp_path / "work" / inside)) == (
            os.path.join("moved", "q", "ckpt-1"))
    assert _value(checkpointing.checkpoint_in("moved/q", "ckpt-2")) == 2.0
    with pytest.raises(checkpointing.CorruptCheckpointError,
                       match=r"ckpt-7 is not in moved/q .*checkpoints ckpt-1, ckpt-2\)\.$"):
        checkpointing.checkpoint_in("moved/q", "ckpt-7")


def test_an_adopted_first_checkpoint_is_named_by_its_name(tmp_path, monkeypatch):
    """A run stopped while saving its first checkpoint left no state file: the adopted one is
    written into a new state file by name, so the directory can still be moved."""
    _save(str(tmp_path / "a"), [3])
    os.remove(tmp_path / "a" / "checkpoint")
    ckpt, var = _checkpointer(str(tmp_path / "a"))
    assert ckpt.restore_latest() == str(tmp_path / "a" / "ckpt-3") and var.numpy() == 3.0
    assert _state_entries(tmp_path / "a") == ["ckpt-3", "ckpt-3"]
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    monkeypatch.chdir(tmp_path)
    assert _value(run_dir.latest_checkpoint("b")) == 3.0


# --------------------------------------------------------------------------------------------
# The disk refuses a save.

def _full_disk_at_step(monkeypatch, fail_step, error):
    """Makes the checkpoint write of step ``fail_step`` fail the way a full disk does: part of
    ``ckpt-N_temp/`` is written, then the write raises ``error``."""
    real = tf.train.Checkpoint._write  # pylint: disable=protected-access

    def write(self, file_prefix, *args, **kwargs):
        if file_prefix.endswith(f"-{fail_step}"):
            os.makedirs(file_prefix + "_temp")
            with open(os.path.join(file_prefix + "_temp", "part-00000-of-00001.data"), "wb") as f:
                f.write(b"\0" * 100)
            raise error
        return real(self, file_prefix, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "_write", write)


def test_a_full_disk_mid_save_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    var = tf.Variable(1.0)
    ckpt = checkpointing.Checkpointer(str(tmp_path), model=var)
    first = ckpt.save(2)
    _full_disk_at_step(monkeypatch, 4, tf.errors.ResourceExhaustedError(
            None, None, f"{{{{function_node __wrapped__SaveV2}}}} {tmp_path}/ckpt-4_temp/part; "
            "No space left on device [Op:SaveV2]"))
    var.assign(2.0)
    with pytest.raises(checkpointing.CheckpointWriteError) as info:
        ckpt.save(4)
    message = str(info.value)
    assert "\n" not in message and info.value.last_good == first
    assert message.startswith(f"cannot write checkpoint 4 in {tmp_path}: No space left on "
                              f"device; the last good checkpoint, {first}, is complete")
    assert "rerun the same command to resume from it" in message
    monkeypatch.undo()
    # The next start removes the half-written save and resumes from the last good one.
    var.assign(0.0)
    again = checkpointing.Checkpointer(str(tmp_path), model=var)
    assert again.restore_latest() == first and float(var.numpy()) == 1.0
    assert not os.path.exists(str(tmp_path / "ckpt-4_temp"))


def test_storage_errors_are_told_from_others(tmp_path):
    import errno
    full = OSError(errno.ENOSPC, "No space left on device", "/x/y")
    assert checkpointing.storage_error(full)
    assert checkpointing.storage_reason(full) == "No space left on device (/x/y)"
    assert checkpointing.storage_error(PermissionError(errno.EACCES, "Permission denied"))
    assert checkpointing.storage_error(tf.errors.PermissionDeniedError(
            None, None, "/m/run; Read-only file system"))
    assert checkpointing.storage_reason(tf.errors.PermissionDeniedError(
            None, None, "/m/run; Read-only file system")) == "Read-only file system"
    assert not checkpointing.storage_error(FileNotFoundError(errno.ENOENT, "missing"))
    assert not checkpointing.storage_error(tf.errors.InvalidArgumentError(None, None, "bad"))
    assert not checkpointing.storage_error(ValueError("no"))
    # Without the storage at fault, an error is not turned into a CheckpointWriteError.
    ckpt = checkpointing.Checkpointer(str(tmp_path), model=tf.Variable(1.0))
    real = tf.train.Checkpoint._write  # pylint: disable=protected-access
    try:
        tf.train.Checkpoint._write = lambda *a, **k: (_ for _ in ()).throw(  # noqa: E731
                tf.errors.InternalError(None, None, "something else"))
        with pytest.raises(tf.errors.InternalError):
            ckpt.save(1)
    finally:
        tf.train.Checkpoint._write = real
