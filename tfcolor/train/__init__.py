"""Training: a generic trainer for any task under ``tf.distribute``, checkpoints, summaries.

* :class:`Trainer` (:mod:`tfcolor.train.trainer`): the custom loop for any
  :class:`tfcolor.tasks.base.Task` (strategy, replica step, optimizer, weight decay, clipping,
  mixed precision, checkpoints, resume, preemption, NaN guard, summaries).
* step objects (:mod:`tfcolor.train.task_step`): what one step is, for the host loop:
  :class:`~tfcolor.train.task_step.TaskStep` (one task) and :class:`MultiTaskStep`
  (:mod:`tfcolor.train.multitask_step`: several tasks on one shared trunk, with a gradient rule
  of :mod:`tfcolor.train.gradient_rules` -- sum, NormSGD, separate optimizers -- and a schedule
  of :mod:`tfcolor.train.task_sampler` -- joint or round-robin).
* :mod:`tfcolor.train.optimizers`: SGD with momentum, multistep schedule, linear warm-up.
* :func:`run` (:mod:`tfcolor.train.experiment`): the one entry point that trains a task.
* :class:`TaskModel` (:mod:`tfcolor.train.keras_fit`): any task as a ``keras.Model`` for
  ``compile()`` + ``fit()`` with Keras callbacks; its step is the trainer's
  (:mod:`tfcolor.train.step`: weight decay, gradient sum, clipping, bias multiplier).
* :func:`pretrain` (:mod:`tfcolor.train.pretraining`): a whole colorization pretraining run from
  a :class:`tfcolor.config.PretrainConfig` (the task, held-out loss, preview PNG, export).
* :func:`make_strategy` (:mod:`tfcolor.train.strategy`): strategies by name.
* :mod:`tfcolor.train.checkpointing`: checkpoint validation and multi-worker saving.
* :mod:`tfcolor.train.lock`: one run per ``model_dir`` (:class:`ModelDirLockedError`).
* :mod:`tfcolor.train.heldout`: the held-out loss curve hook.
* :mod:`tfcolor.train.summaries`: TensorBoard scalars/images, progress lines, PNG files.
"""
from tfcolor.train.checkpointing import (  # noqa: F401
        CheckpointError, Checkpointer, CorruptCheckpointError, validate_checkpoint)
from tfcolor.train.lock import ModelDirLockedError  # noqa: F401
from tfcolor.train.trainer import (  # noqa: F401
        NonFiniteLossError, Trainer, TrainResult, current_learning_rate, make_optimizer,
        set_deterministic)
from tfcolor.train.task_step import TaskStep, TrainStep  # noqa: F401
from tfcolor.train.multitask_step import MultiTaskStep  # noqa: F401
from tfcolor.train.experiment import RunResult, run, seed_everything  # noqa: F401
from tfcolor.train.keras_fit import TaskModel  # noqa: F401
from tfcolor.train.strategy import STRATEGY_NAMES, is_chief, make_strategy  # noqa: F401
from tfcolor.train.summaries import write_png  # noqa: F401
from tfcolor.train.pretraining import PretrainResult, pretrain  # noqa: F401
