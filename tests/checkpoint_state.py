"""Test helper: checkpoint state files as other tools write them."""
import os

import tensorflow as tf


def absolute_state_file(directory):
    """Rewrites ``directory``'s state file with the absolute paths of its checkpoints (what older
    tools and ``tf.compat.v1.train.update_checkpoint_state`` write for an absolute directory)."""
    state = tf.train.get_checkpoint_state(directory)
    tf.compat.v1.train.update_checkpoint_state(
        directory, os.path.abspath(state.model_checkpoint_path),
        all_model_checkpoint_paths=[os.path.abspath(p)
                                    for p in state.all_model_checkpoint_paths],
        all_model_checkpoint_timestamps=list(state.all_model_checkpoint_timestamps),
        last_preserved_timestamp=state.last_preserved_timestamp)
    text = open(os.path.join(directory, "checkpoint"), encoding="utf-8").read()
    assert f'"{os.path.abspath(directory)}/ckpt-' in text  # really absolute
