"""Checkpoints: save, find the latest, validate before restoring, multi-worker temporary copies.

A checkpoint holds the model, the optimizer (slots, iteration count, loss scale), the global step
and, where possible, the state of the input iterator (so that a resumed run sees the same data
order as an uninterrupted one).

Validation: before restoring, every tensor of the checkpoint is read once through
``tf.train.load_checkpoint``; TensorFlow's tensor-bundle format stores a CRC32C per tensor in the
``.index`` file, so a truncated or altered ``.data`` shard, a missing ``.index`` or a missing shard
raises :class:`CorruptCheckpointError` naming the files, instead of being silently reused. The
run then stops; the message says how to go back to an earlier checkpoint. (TensorFlow writes a
checkpoint to temporary files and renames them, then updates the ``checkpoint`` state file, so a
run killed while saving leaves the previous checkpoint as the latest one.)

Iterator state: saved for single-worker strategies (``one_device``, ``mirrored``). Not saved for
``multi_worker`` (each worker has its own input shard but only the chief's files are kept, so
restoring the chief's iterator into other workers would be wrong) nor for ``tpu``; nor when the
dataset cannot be serialized (e.g. it uses stateful random ops or ``py_function``). In these cases a
resumed run continues with a freshly started (reshuffled) input pipeline.
"""
import os
import shutil

import tensorflow as tf
from absl import logging


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint exists but is incomplete or damaged."""


def _has_iterator(path):
    try:
        return any(name.startswith("iterator/") for name, _ in tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError):
        return False


def validate_checkpoint(path):
    """Reads every tensor of the checkpoint at ``path`` (a prefix like ``.../ckpt-100``).

    Raises:
        CorruptCheckpointError: the ``.index`` file is missing or unreadable, a data shard is
            missing, truncated, or fails its checksum.
    """
    index = path + ".index"
    if not tf.io.gfile.exists(index):
        raise CorruptCheckpointError(
            f"checkpoint {path} is incomplete: its index file {index} is missing. "
            + _advice(path))
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
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. " + _advice(path)) from e


def _advice(path):
    directory = os.path.dirname(path)
    return (f"It was not used. Delete its files (and point the 'checkpoint' file in {directory} "
            "at an earlier checkpoint, or remove it to start from scratch), then rerun.")


class Checkpointer:
    """Saves and restores training state under ``directory`` with a ``tf.train.CheckpointManager``.

    Args:
        directory: where checkpoints live (``model_dir``).
        max_to_keep: number of recent checkpoints kept.
        is_chief: False on non-chief multi-worker workers: they write to a temporary directory
            (the save is collective, so they must take part) which is removed after each save.
        worker_name: used in the temporary directory name of non-chief workers.
        iterator: the input iterator to include, or None.
        **trackables: the objects to save (model=..., optimizer=..., step=...).
    """

    def __init__(self, directory, *, max_to_keep=5, is_chief=True, worker_name="worker_0",
                 iterator=None, **trackables):
        self.directory = directory
        self.is_chief = is_chief
        self._trackables = dict(trackables)
        self._iterator = iterator
        self._write_dir = directory if is_chief else os.path.join(
            directory, ".tmp_workers", worker_name)
        self._max_to_keep = max_to_keep
        self._make_manager()

    def _make_manager(self):
        objects = dict(self._trackables)
        if self._iterator is not None:
            objects["iterator"] = self._iterator
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=self._max_to_keep)

    @property
    def saves_iterator(self):
        return self._iterator is not None

    def latest(self):
        """Path of the latest checkpoint in ``directory`` (the chief's), or None."""
        try:
            # Not tf.train.latest_checkpoint: it returns None when the named checkpoint's files
            # are missing, which would silently restart training from scratch.
            state = tf.train.get_checkpoint_state(self.directory)
            if state is None or not state.model_checkpoint_path:
                return None
            path = state.model_checkpoint_path
            if not os.path.isabs(path) and "://" not in path:
                path = os.path.join(self.directory, path)
            return path
        except (tf.errors.OpError, ValueError) as e:
            raise CorruptCheckpointError(
                f"the checkpoint state file {os.path.join(self.directory, 'checkpoint')} cannot be "
                f"read ({e}); delete it to start from scratch or fix the path it names.") from e

    def restore_latest(self):
        """Restores the latest checkpoint if there is one; returns its path or None.

        Raises:
            CorruptCheckpointError: the latest checkpoint is damaged (see module docstring).
            CheckpointError: it does not match the model/optimizer being trained.
        """
        path = self.latest()
        if path is None:
            state = os.path.join(self.directory, "checkpoint")
            stray = tf.io.gfile.glob(os.path.join(self.directory, "ckpt-*.index"))
            if stray and not tf.io.gfile.exists(state):
                raise CorruptCheckpointError(
                    f"{self.directory} holds checkpoint files ({len(stray)}) but no 'checkpoint' "
                    "state file naming the latest one; refusing to start from scratch over them. "
                    "Restore the state file or use an empty model_dir.")
            if tf.io.gfile.exists(state):
                raise CorruptCheckpointError(
                    f"the checkpoint state file {state} names no checkpoint; delete it to start "
                    "from scratch.")
            return None
        validate_checkpoint(path)
        objects = dict(self._trackables)
        with_iterator = self._iterator is not None and _has_iterator(path)
        if with_iterator:
            objects["iterator"] = self._iterator
        elif self._iterator is not None:
            logging.warning("checkpoint %s has no input-iterator state: the data pipeline "
                            "restarts from its beginning", path)
        try:
            status = tf.train.Checkpoint(**objects).restore(path)
            if _has_iterator(path) and not with_iterator:
                # The saved iterator state is deliberately left unused.
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

    def save(self, step):
        """Writes a checkpoint numbered ``step``; returns the chief's checkpoint path."""
        try:
            path = self.manager.save(checkpoint_number=int(step))
        except tf.errors.OpError as e:
            if self._iterator is None:
                raise
            logging.warning("the input iterator cannot be checkpointed (%s); saving without it: "
                            "a resumed run restarts the data pipeline.", str(e).splitlines()[0])
            self._iterator = None
            self._make_manager()
            path = self.manager.save(checkpoint_number=int(step))
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            path = os.path.join(self.directory, os.path.basename(path))
        return path
