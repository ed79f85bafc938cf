"""Checkpoints: save, find the latest, validate before restoring, multi-worker temporary copies.

A checkpoint holds the model, the optimizer (slots, iteration count, loss scale), the global step,
the dropout RNG state and the *input position*: the number of records of the input stream
consumed so far, one int64 (``input_position``). Given a ``dataset_fn(start)`` (see
:class:`tfcolor.train.Trainer`), a resumed run rebuilds the deterministic pipeline from its seed
and fast-forwards it to that position at the record level, so it sees exactly the data an
uninterrupted run would. The checkpoint is therefore about the size of the variables and
optimizer slots whatever the batch size and tf.data buffer depths. (Serializing the tf.data
iterator instead, as earlier versions did, saved every prefetch and parallel-map buffer of
decoded images: 15x the model at the quick start, gigabytes at the paper's setting. The
serialized iterator is still used for a plain ``tf.data.Dataset`` passed to the Trainer, which
has no other way to resume its position.)

Validation: before restoring, every tensor of the checkpoint is read once through
``tf.train.load_checkpoint``; TensorFlow's tensor-bundle format stores a CRC32C per tensor in the
``.index`` file, so a truncated or altered ``.data`` shard, a missing ``.index`` or a missing shard
raises :class:`CorruptCheckpointError` naming the files, instead of being silently reused. The
run then stops; the message says how to go back to an earlier checkpoint.

Crash consistency: TensorFlow writes a checkpoint into ``ckpt-N_temp/``, merges it into
``ckpt-N.index`` / ``ckpt-N.data-*`` and only then atomically rewrites the ``checkpoint`` state
file (write to a temporary file, rename). A run killed at any moment (SIGKILL, power loss of the
process) therefore leaves the state file naming the previous complete checkpoint; the restart
restores that one, removes the temporary files, logs the newer files it ignored and overwrites
them when it saves step N again. A run killed while saving its *first* checkpoint, after the
merge but before the state file, leaves one complete ``ckpt-N`` and no state file: that single
checkpoint is validated and adopted (several unnamed checkpoints are refused, not guessed at).
``tests/programs/test_pretrain.py`` kills the real program during checkpoint writes.

Where checkpoints are: always in the run directory. The state file names them relative to
it (``ckpt-N``), but older or hand-made state files may hold absolute paths, or paths of a
directory that was moved or copied since. Every entry is therefore resolved to the file of that
name *inside the directory the state file was read from* (:func:`state_checkpoint`,
:func:`state_checkpoints`), whatever working directory the program runs in; a relative
``model_dir`` works like an absolute one. Before training resumes, the chief rewrites such a
state file with plain names, so that the ``tf.train.CheckpointManager`` keeps and prunes the
checkpoints of this directory (never those of the directory a run was copied from).

Storage errors: a save that fails because of the disk (full, read-only, no permission, an I/O
error) raises :class:`CheckpointWriteError`, whose one-line message names the last complete
checkpoint, which such a failure never touches, and says what to do (free space or make the
directory writable, then rerun the same command: the half-written files are removed at the next
start). :func:`storage_error` tells those errors from others (Python's ``OSError`` and
TensorFlow's); :func:`storage_reason` gives their short cause (``No space left on device``).

Input position: tracked for single-worker strategies (``one_device``, ``mirrored``). Not for
``multi_worker`` (each worker has its own input shard but only the chief's files are kept) nor
``tpu``: there a resumed run continues with a freshly started (reshuffled) input pipeline.
"""
import errno
import os
import re
import shutil

import tensorflow as tf
from absl import logging

# The checkpoint files of a run directory (tfcolor.run_dir lists every file of a run).
CHECKPOINT_STATE_FILE = "checkpoint"  # TensorFlow's state file naming the latest checkpoint
CHECKPOINT_PREFIX = "ckpt"  # checkpoints are ckpt-N.index / ckpt-N.data-*
WORKER_TEMP_DIR = ".tmp_workers"  # non-chief multi-worker saves, removed after each save


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint exists but is incomplete or damaged."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint cannot be written: the disk is full, read-only or not writable.

    Attributes:
        last_good: the latest complete checkpoint of the directory (None if there is none).
    """

    def __init__(self, message, last_good=None):
        super().__init__(message)
        self.last_good = last_good


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO,
                   errno.EFBIG, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
_STORAGE_TEXT = ("no space left", "read-only file system", "disk quota", "permission denied",
                 "input/output error", "file too large", "not a directory")


def storage_error(error):
    """True if ``error`` (an ``OSError`` or a TensorFlow error) comes from the storage: a full,
    read-only or unwritable disk, an I/O error."""
    if isinstance(error, OSError):
        return error.errno in _STORAGE_ERRNOS or isinstance(error, PermissionError)
    if isinstance(error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)):
        return True
    text = str(error).lower()
    return isinstance(error, tf.errors.OpError) and any(t in text for t in _STORAGE_TEXT)


def storage_reason(error):
    """The short cause of a storage error: ``No space left on device`` (an ``OSError``: with
    its file), else the first line of the message without TensorFlow's function and op names."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    text = re.sub(r"\{\{[^}]*\}\}", "", str(error)).strip()
    text = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text.splitlines()[0] if text else "").strip()
    cause = text.rsplit("; ", 1)[-1]  # TensorFlow's "PATH; No space left on device"
    if cause != text and any(marker in cause.lower() for marker in _STORAGE_TEXT):
        return cause
    return text or type(error).__name__


def _has_object(path, name):
    """True when the checkpoint at ``path`` holds the top-level object ``name``."""
    try:
        return any(key.startswith(name + "/") for key, _ in tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError):
        return False


def checkpoint_number(path):
    """N of a checkpoint prefix ``.../ckpt-N`` (None if it has no number)."""
    match = re.search(r"-(\d+)$", os.path.basename(path or ""))
    return int(match.group(1)) if match else None


_TEMPORARY = re.compile(rf"({CHECKPOINT_PREFIX}-\d+_temp.*"
                        rf"|{CHECKPOINT_PREFIX}-\d+\..*\.tempstate.*"
                        rf"|{CHECKPOINT_STATE_FILE}\.tmp.*)$")
_ORPHAN = re.compile(rf"{CHECKPOINT_PREFIX}-(\d+)(\.index|\.data-.*)$")


def half_written(directory, latest=None):
    """Leftovers of interrupted saves in ``directory``: ``(temporary, orphans)``, sorted names.

    ``temporary``: TensorFlow's temporary files and directories of a save (``ckpt-N_temp/``,
    ``*.tempstate*``, ``checkpoint.tmp*``), never part of a complete checkpoint. ``orphans``:
    ``ckpt-N`` files numbered after ``latest`` (written, but the run died before the state
    file named them; the next save of step N overwrites them).
    """
    newest = checkpoint_number(latest) if latest else None
    temporary, orphans = [], []
    names = tf.io.gfile.listdir(directory) if tf.io.gfile.isdir(directory) else []
    for name in (n.rstrip("/") for n in names):
        if _TEMPORARY.match(name):
            temporary.append(name)
        else:
            match = _ORPHAN.match(name)
            if match and newest is not None and int(match.group(1)) > newest:
                orphans.append(name)
    return sorted(temporary), sorted(orphans)


def _short(names):
    return ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")


def validate_checkpoint(path):
    """Reads every tensor of the checkpoint at ``path`` (a prefix like ``.../ckpt-100``).

    Raises:
        CorruptCheckpointError: the ``.index`` file is missing or unreadable, a data shard is
            missing, truncated, or fails its checksum.
    """
    index = path + ".index"
    if not tf.io.gfile.exists(index):
        raise _no_index_error(path)
    try:
        reader = tf.train.load_checkpoint(path)
        dtypes = reader.get_variable_to_dtype_map()
        names = sorted(dtypes)
        # RestoreV2 reads every tensor (variants such as the iterator state included) and checks
        # each one's CRC32C against the index.
        tf.raw_ops.RestoreV2(prefix=path, tensor_names=names,
                             shape_and_slices=[""] * len(names), dtypes=[dtypes[n] for n in names])
    except (tf.errors.OpError, ValueError) as e:
        shards = tf.io.gfile.glob(path + ".data-*")
        raise CorruptCheckpointError(
            f"checkpoint {path} is corrupt or half-written (data files: "
            f"{[os.path.basename(s) for s in shards] or 'none'}): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            + _advice(path)) from e


def found_checkpoints(directory):
    """Names (``ckpt-N``, by N) of the checkpoints of ``directory`` that have an index file,
    whether or not the state file names them."""
    indexes = tf.io.gfile.glob(os.path.join(directory, f"{CHECKPOINT_PREFIX}-*.index"))
    names = {os.path.basename(p)[:-len(".index")] for p in indexes}
    return sorted(names, key=lambda n: (checkpoint_number(n) is None, checkpoint_number(n), n))


def _found_text(directory, but=None):
    """What checkpoints ``directory`` holds (besides ``but``), for messages."""
    found = [n for n in found_checkpoints(directory) if n != but]
    other = "other " if but else ""
    if not found:
        return f"{directory} holds no {other}checkpoint"
    plural = "s" if len(found) > 1 else ""
    return f"{directory} holds the {other}checkpoint{plural} {_short(found)}"


def _state_line(name):
    return f'model_checkpoint_path: "{name}"'


def _advice(path):
    """What to do about the damaged checkpoint ``path`` (what else its directory holds)."""
    directory, name = os.path.dirname(path), os.path.basename(path)
    others = [n for n in found_checkpoints(directory) if n != name]
    state = os.path.join(directory, CHECKPOINT_STATE_FILE)
    if others:
        return (f"It was not used; {_found_text(directory, but=name)}. To go back to the latest "
                f"of them, delete {name}'s files and replace the content of {state} by the line "
                f"'{_state_line(others[-1])}'; then rerun.")
    return (f"It was not used; {_found_text(directory, but=name)}. Delete {name}'s files and "
            f"{state} to start from scratch, then rerun.")


def _no_index_error(path):
    """``path`` has no ``.index`` file: half-written if data shards exist, else not there."""
    directory, name = os.path.dirname(path), os.path.basename(path)
    shards = tf.io.gfile.glob(path + ".data-*")
    if shards:
        return CorruptCheckpointError(
            f"checkpoint {path} is incomplete: its data files "
            f"({_short(sorted(os.path.basename(s) for s in shards))}) are there but its index "
            f"file {path}.index is missing. " + _advice(path))
    message = (f"checkpoint {name} is not in {directory} (no {name}.index or {name}.data-* "
               f"file; {_found_text(directory)})")
    try:
        named = state_checkpoint(directory)
    except CorruptCheckpointError:
        named = None
    if named is None or os.path.basename(named) != name:
        return CorruptCheckpointError(message + ".")
    others = found_checkpoints(directory)
    return CorruptCheckpointError(
        message + f": its state file {os.path.join(directory, CHECKPOINT_STATE_FILE)} names "
        f"{name}, whose files are missing (left behind when the directory was copied?). "
        + (f"To use the latest checkpoint there instead, replace the state file's content by "
           f"the line '{_state_line(others[-1])}'." if others else "Nothing was changed."))


def _in_directory(directory, entry):
    """The checkpoint a state-file ``entry`` names, inside ``directory``: checkpoints always
    live in their run directory, so only the entry's last component counts (the entry may be
    relative, absolute, or from where the directory was before it was moved or copied)."""
    return os.path.join(directory, os.path.basename(entry.rstrip("/")))


def _read_state(directory):
    """TensorFlow's ``CheckpointState`` of ``directory`` with its entries as written (joined to
    ``directory`` when relative); None without a state file or when it names nothing."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError) as e:
        raise CorruptCheckpointError(
            f"the checkpoint state file {os.path.join(directory, CHECKPOINT_STATE_FILE)} cannot "
            f"be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            f"{_found_text(directory)}: {_state_fix(directory)}") from e
    if state is None or not state.model_checkpoint_path:
        return None
    return state


def _state_fix(directory):
    found = found_checkpoints(directory)
    state = os.path.join(directory, CHECKPOINT_STATE_FILE)
    if found:
        return (f"replace the content of {state} by the line '{_state_line(found[-1])}' to "
                "use the latest, or use another model_dir.")
    return f"delete {state} to start from scratch."


def state_checkpoints(directory):
    """``(latest, kept)``: the checkpoint that ``directory``'s state file names and all those it
    lists (prefixes, oldest first), each resolved inside ``directory`` (see the module
    docstring); ``(None, [])`` without a state file or with one naming nothing. The files of
    those checkpoints are not looked at.

    Raises:
        CorruptCheckpointError: the state file cannot be read.
    """
    state = _read_state(directory)
    if state is None:
        return None, []
    return (_in_directory(directory, state.model_checkpoint_path),
            [_in_directory(directory, p) for p in state.all_model_checkpoint_paths])


def state_checkpoint(directory):
    """The checkpoint that ``directory``'s state file names (a prefix inside ``directory``,
    relative if ``directory`` is), or None (no state file, or one naming nothing). The files of
    that checkpoint are not looked at.

    Not ``tf.train.latest_checkpoint``: it returns None when the named checkpoint's files are
    missing, which would silently restart training from scratch (or load nothing), and it
    follows an absolute entry out of a directory that was moved or copied.

    Raises:
        CorruptCheckpointError: the state file cannot be read.
    """
    return state_checkpoints(directory)[0]


def checkpoint_in(directory, checkpoint):
    """The checkpoint prefix ``checkpoint`` asked of the run in ``directory``: as given when its
    index file exists (from the working directory), else the checkpoint of that name in
    ``directory`` (``ckpt-500`` works from any working directory, and so does the path of a run
    directory that was moved since).

    Raises:
        CorruptCheckpointError: neither exists (the message names what ``directory`` holds).
    """
    checkpoint = str(checkpoint)
    if tf.io.gfile.exists(checkpoint + ".index"):
        return checkpoint
    inside = _in_directory(str(directory), checkpoint)
    if tf.io.gfile.exists(inside + ".index"):
        return inside
    if tf.io.gfile.glob(checkpoint + ".data-*"):
        raise _no_index_error(checkpoint)
    raise _no_index_error(inside)


def _write_state(directory, latest, kept, timestamps=None, last_preserved=None):
    """Atomically writes ``directory``'s state file naming ``latest`` and ``kept`` (prefixes in
    ``directory``) by their names, as ``tf.train.CheckpointManager`` does."""
    kept = list(kept)
    if not kept or kept[-1] != latest:
        kept = [p for p in kept if p != latest] + [latest]
    if timestamps is not None and len(timestamps) != len(kept):
        timestamps = None
    tf.__internal__.train.update_checkpoint_state(
        directory, model_checkpoint_path=latest, all_model_checkpoint_paths=kept,
        all_model_checkpoint_timestamps=timestamps, last_preserved_timestamp=last_preserved,
        save_relative_paths=True)


def unnamed_checkpoints(directory):
    """Sorted prefixes of the ``ckpt-N`` checkpoints (with an ``.index``) of ``directory`` when
    it has no state file; [] when it has one. A run stopped while saving its first checkpoint
    leaves exactly one."""
    if tf.io.gfile.exists(os.path.join(directory, CHECKPOINT_STATE_FILE)):
        return []
    stray = tf.io.gfile.glob(os.path.join(directory, f"{CHECKPOINT_PREFIX}-*.index"))
    return sorted({p[:-len(".index")] for p in stray})


def _unnamed_error(directory, count):
    return CorruptCheckpointError(
        f"{directory} holds checkpoint files ({count}) but no '{CHECKPOINT_STATE_FILE}' state "
        "file naming the latest one; refusing to start from scratch over them. Restore the state "
        "file or use an empty model_dir.")


def _names_nothing_error(directory):
    return CorruptCheckpointError(
        f"the checkpoint state file {os.path.join(directory, CHECKPOINT_STATE_FILE)} names no "
        f"checkpoint (empty or garbled); {_found_text(directory)}: {_state_fix(directory)}")


def latest_complete_checkpoint(directory, *, validate=True):
    """The latest complete checkpoint of ``directory``, read-only (nothing is written or removed):
    the one its state file names, or, without a state file, its only checkpoint; None when it
    has no checkpoint at all. ``validate`` reads every tensor (:func:`validate_checkpoint`); the
    only unnamed checkpoint is always validated. Leftovers of interrupted saves
    (:func:`half_written`) are never returned.

    Raises:
        CorruptCheckpointError: the state file is unreadable or names no checkpoint, the named
            checkpoint is missing or damaged, or several checkpoints exist without a state file.
    """
    path = state_checkpoint(directory)
    if path is None:
        if tf.io.gfile.exists(os.path.join(directory, CHECKPOINT_STATE_FILE)):
            raise _names_nothing_error(directory)
        unnamed = unnamed_checkpoints(directory)
        if not unnamed:
            return None
        if len(unnamed) > 1:
            raise _unnamed_error(directory, len(unnamed))
        validate_checkpoint(unnamed[0])
        return unnamed[0]
    if validate:
        validate_checkpoint(path)
    elif not tf.io.gfile.exists(path + ".index"):
        raise _no_index_error(path)
    return path


class Checkpointer:
    """Saves and restores training state under ``directory`` with a ``tf.train.CheckpointManager``.

    Args:
        directory: where checkpoints live (``model_dir``).
        max_to_keep: number of recent checkpoints kept.
        is_chief: False on non-chief multi-worker workers: they write to a temporary directory
            (the save is collective, so they must take part) which is removed after each save.
        worker_name: used in the temporary directory name of non-chief workers.
        iterator: a tf.data iterator whose full state is saved (buffers included), or None.
        input_position: an int64 ``tf.Variable`` holding the input stream position, or None.
        **trackables: the objects to save (model=..., optimizer=..., step=...).

    ``iterator`` and ``input_position`` are optional parts: a checkpoint without them (e.g. from
    an older version) is restored with a warning, the input then restarts from its beginning.
    """

    def __init__(self, directory, *, max_to_keep=5, is_chief=True, worker_name="worker_0",
                 iterator=None, input_position=None, **trackables):
        self.directory = directory
        self.is_chief = is_chief
        self._trackables = dict(trackables)
        self._iterator = iterator
        self._input_position = input_position
        self._write_dir = directory if is_chief else os.path.join(
            directory, WORKER_TEMP_DIR, worker_name)
        self._max_to_keep = max_to_keep
        self._make_manager()

    def _optional(self):
        parts = {"iterator": self._iterator, "input_position": self._input_position}
        return {k: v for k, v in parts.items() if v is not None}

    def _make_manager(self):
        objects = dict(self._trackables)
        objects.update(self._optional())
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=self._max_to_keep,
            checkpoint_name=CHECKPOINT_PREFIX)

    @property
    def saves_iterator(self):
        return self._iterator is not None

    @property
    def saves_input_position(self):
        return self._input_position is not None

    def latest(self):
        """Path of the latest checkpoint in ``directory`` (the chief's), or None
        (:func:`state_checkpoint`)."""
        return state_checkpoint(self.directory)

    def restore_latest(self):
        """Restores the latest checkpoint if there is one; returns its path or None.

        Raises:
            CorruptCheckpointError: the latest checkpoint is damaged (see module docstring).
            CheckpointError: it does not match the model/optimizer being trained.
        """
        path = self.latest()
        if self.is_chief:
            self._clean_interrupted_saves(path)
        if path is None:
            unnamed = unnamed_checkpoints(self.directory)
            if unnamed:
                path = self._adopt_first(unnamed)
                if path is None:
                    raise _unnamed_error(self.directory, len(unnamed))
            elif tf.io.gfile.exists(os.path.join(self.directory, CHECKPOINT_STATE_FILE)):
                raise _names_nothing_error(self.directory)
            else:
                return None
        validate_checkpoint(path)
        if self.is_chief and self._settle_state_file():
            self._make_manager()  # so that it keeps and prunes this directory's checkpoints
        objects = dict(self._trackables)
        partial = False
        for name, obj in self._optional().items():
            if _has_object(path, name):
                objects[name] = obj
            else:
                logging.warning("checkpoint %s has no %s: the data pipeline restarts from its "
                                "beginning", path, name.replace("_", " "))
        for name in ("iterator", "input_position"):
            if name not in objects and _has_object(path, name):
                partial = True  # saved by another configuration; deliberately left unused
        try:
            status = tf.train.Checkpoint(**objects).restore(path)
            if partial:
                status.assert_existing_objects_matched()
                status.expect_partial()
            else:
                status.assert_consumed()
        except AssertionError as e:
            raise CheckpointError(
                f"checkpoint {path} does not match the model being trained (different "
                f"architecture, taps, loss or optimizer?): {str(e)[:500]}") from e
        except (tf.errors.OpError, ValueError) as e:
            raise CorruptCheckpointError(f"restoring {path} failed: {e}. " + _advice(path)) from e
        return path

    def _adopt_first(self, prefixes):
        """A run killed after writing its *first* checkpoint but before naming it in the state
        file leaves exactly one complete ``ckpt-N``: adopted (state file written) if it validates.
        Several checkpoints without a state file (e.g. the state file was deleted) are not
        guessed at. ``prefixes``: :func:`unnamed_checkpoints`. Returns the adopted path or None."""
        if len(prefixes) != 1:
            return None
        try:
            validate_checkpoint(prefixes[0])
        except CorruptCheckpointError:
            return None
        logging.warning("%s holds one complete checkpoint (%s) that the state file does not name "
                        "yet (the run was stopped while saving it): resuming from it",
                        self.directory, os.path.basename(prefixes[0]))
        if self.is_chief:
            _write_state(self.directory, prefixes[0], [prefixes[0]])
            self._make_manager()  # so that max_to_keep counts it
        return prefixes[0]

    def _settle_state_file(self):
        """Rewrites a state file whose entries are not plain names in this directory (absolute
        paths, or those of the place a moved or copied run came from) with those names; returns
        True if it did. The ``CheckpointManager`` takes its list of checkpoints to keep and
        delete from that file: read as it was, it would prune the files of the directory the
        run was copied from, and never this one's."""
        state = _read_state(self.directory)
        if state is None:
            return False
        entries = [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
        if all(e == _in_directory(self.directory, e) for e in entries):
            return False
        latest, kept = state_checkpoints(self.directory)
        logging.warning("the checkpoint state file of %s names its checkpoints by other paths "
                        "(%s; a moved or copied run directory?): taking the checkpoints of these "
                        "names in %s and rewriting the state file with their names",
                        self.directory, state.model_checkpoint_path, self.directory)
        _write_state(self.directory, latest, kept,
                     list(state.all_model_checkpoint_timestamps) or None,
                     state.last_preserved_timestamp or None)
        return True

    def _clean_interrupted_saves(self, latest):
        """Removes the temporary files of saves that were interrupted (never a complete
        checkpoint) and reports checkpoint files newer than ``latest`` (ignored)."""
        temporary, orphans = half_written(self.directory, latest)
        if temporary:
            logging.warning("ignoring half-written checkpoint files of an interrupted save in %s "
                            "(removed: %s)", self.directory, _short(temporary))
            for name in temporary:
                full = os.path.join(self.directory, name)
                try:
                    if tf.io.gfile.isdir(full):
                        tf.io.gfile.rmtree(full)
                    else:
                        tf.io.gfile.remove(full)
                except tf.errors.OpError as e:
                    logging.warning("could not remove %s: %s", full, e)
        if orphans:
            logging.warning("ignoring half-written checkpoint files of an interrupted save in %s "
                            "(%s, newer than the last complete checkpoint %s, which the run "
                            "resumes from; overwritten when those steps are saved again)",
                            self.directory, _short(orphans),
                            os.path.basename(latest) if latest else "none")

    def _write_error(self, step, error):
        """The :class:`CheckpointWriteError` of a save of ``step`` that the storage refused."""
        try:
            last = state_checkpoint(self.directory)
        except (CheckpointError, tf.errors.OpError, ValueError):
            last = None
        where = self.directory
        if last is not None:
            then = (f"the last good checkpoint, {last}, is complete and untouched: free space on "
                    f"that disk (or make {where} writable) and rerun the same command to resume "
                    "from it")
        else:
            then = (f"no checkpoint was completed before: free space on that disk (or make "
                    f"{where} writable) and rerun the same command to start again")
        return CheckpointWriteError(f"cannot write checkpoint {int(step)} in {where}: "
                                    f"{storage_reason(error)}; {then}", last_good=last)

    def save(self, step):
        """Writes a checkpoint numbered ``step``; returns the chief's checkpoint path.

        Raises:
            CheckpointWriteError: the storage refused the save (full, read-only, ...).
        """
        try:
            path = self.manager.save(checkpoint_number=int(step))
        except (tf.errors.OpError, OSError) as e:
            if storage_error(e):
                raise self._write_error(step, e) from e
            if self._iterator is None or isinstance(e, OSError):
                raise
            logging.warning("the input iterator cannot be checkpointed (%s); saving without it: "
                            "a resumed run restarts the data pipeline.", str(e).splitlines()[0])
            self._iterator = None
            self._make_manager()
            try:
                path = self.manager.save(checkpoint_number=int(step))
            except (tf.errors.OpError, OSError) as e2:
                if storage_error(e2):
                    raise self._write_error(step, e2) from e2
                raise
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            path = os.path.join(self.directory, os.path.basename(path))
        return path
