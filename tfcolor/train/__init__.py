"""Pretraining: the custom training loop under ``tf.distribute``, checkpoints, summaries.

* :class:`Trainer` (:mod:`tfcolor.train.loop`): the loop itself, for any model with a
  ``sparse(gray, centers, training)`` method, any per-point loss and any dataset of batches.
* :func:`pretrain` (:mod:`tfcolor.train.pretraining`): a whole run from a
  :class:`tfcolor.config.PretrainConfig`: builds the strategy, data, model, loss, trains, writes
  the final checkpoint, a PNG grid of colorizations and the export.
* :func:`make_strategy` (:mod:`tfcolor.train.strategy`): strategies by name.
* :mod:`tfcolor.train.checkpointing`: checkpoint validation and multi-worker saving.
* :mod:`tfcolor.train.lock`: one run per ``model_dir`` (:class:`ModelDirLockedError`).
* :mod:`tfcolor.train.summaries`: TensorBoard scalars/images, progress lines, image grids.
"""
from tfcolor.train.checkpointing import (  # noqa: F401
        CheckpointError, Checkpointer, CorruptCheckpointError, validate_checkpoint)
from tfcolor.train.lock import ModelDirLockedError  # noqa: F401
from tfcolor.train.loop import (  # noqa: F401
        NonFiniteLossError, Trainer, TrainResult, current_learning_rate, make_optimizer,
        set_deterministic)
from tfcolor.train.strategy import STRATEGY_NAMES, is_chief, make_strategy  # noqa: F401
from tfcolor.train.summaries import image_grid, write_png  # noqa: F401
from tfcolor.train.pretraining import (  # noqa: F401
        PretrainResult, build_dataset, build_loss, build_model, pretrain)
