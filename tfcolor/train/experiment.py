"""One entry point for every task: :func:`run` (TF Model Garden's ``run_experiment``, light).

:func:`run` seeds (with ``deterministic``: TF op determinism and a deterministic data order), picks
the strategy, takes the ``model_dir`` lock, sets the mixed-precision policy while the model is
built and trained, builds the :class:`~tfcolor.train.trainer.Trainer` for the task and trains it
(resuming from the latest checkpoint of ``model_dir``). The pretraining program
(:func:`tfcolor.train.pretrain`), the baselines (:func:`tfcolor.baselines.pretrain`), fine-tuning
(:func:`tfcolor.downstream.protocol.finetune`) and ``binaries/reproduce`` all train through it.
"""
import contextlib
import dataclasses

import keras
import tensorflow as tf

from tfcolor.config import OptimizerConfig, TrainConfig
from tfcolor.tasks import base as task_lib
from tfcolor.train import lock as lock_lib
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import trainer as trainer_lib

__all__ = ["run", "RunResult", "seed_everything"]


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns: the trainer's :class:`~tfcolor.train.trainer.TrainResult` and
    the trainer itself (its ``model``, ``optimizer``, ``writer``, ``preview()``)."""
    train: trainer_lib.TrainResult
    trainer: trainer_lib.Trainer

    @property
    def model(self):
        return self.trainer.model

    @property
    def stopped(self):
        return self.train.stopped


def seed_everything(seed, deterministic=False):
    """Seeds Python, NumPy, TF and Keras; with ``deterministic`` also enables op determinism."""
    if deterministic:
        trainer_lib.set_deterministic(seed)
    else:
        keras.utils.set_random_seed(int(seed))


def run(task, train_config=None, optimizer_config=None, *, strategy=None, hooks=(),
        force_unlock=False, checkpoint_iterator="auto", handle_sigterm=True, seed=True,
        lock_model_dir=True, on_trainer=None):
    """Trains ``task`` as ``train_config`` says; returns a :class:`RunResult`.

    Args:
        task: a :class:`tfcolor.tasks.base.Task`, or ``make_step(strategy)`` returning a step
            object (:class:`tfcolor.train.task_step.TrainStep`, e.g.
            :func:`tfcolor.train.multitask.make_step`), called under the run's mixed-precision
            policy.
        train_config: a :class:`tfcolor.config.TrainConfig` (model_dir, steps, loop sizes,
            strategy, mixed precision, seed, determinism). Its ``export`` and ``eval_every`` are
            for the caller (e.g. :func:`tfcolor.train.pretrain`).
        optimizer_config: a :class:`tfcolor.config.OptimizerConfig`.
        strategy: a ``tf.distribute.Strategy`` (default: ``train_config.strategy`` by name).
        hooks: ``hook(trainer, step, losses)`` callables run after every loop.
        force_unlock: take over the ``model_dir`` lock even if another host's run holds it.
        checkpoint_iterator, handle_sigterm: passed to the trainer.
        seed: seed (and with ``train_config.deterministic`` make deterministic) before building
            anything; False when the caller has seeded already (e.g. to build the task's data).
        lock_model_dir: hold ``model_dir/.lock`` for the run; False when the caller holds it
            already (e.g. to write ``config.json`` first).
        on_trainer: optional ``on_trainer(trainer)`` called once the trainer is built, before
            training (e.g. to attach hooks that need the model).

    Raises:
        tfcolor.train.lock.ModelDirLockedError: another run is using ``model_dir``.
    """
    t = (train_config or TrainConfig()).validate()
    optimizer_config = optimizer_config or OptimizerConfig()
    if seed:
        seed_everything(t.seed, t.deterministic)
    strategy = strategy or strategy_lib.make_strategy(t.strategy, tpu=t.tpu)
    chief = strategy_lib.is_chief(strategy)
    tf.io.gfile.makedirs(t.model_dir)
    held = (lock_lib.hold(t.model_dir, force=force_unlock) if chief and lock_model_dir
            else contextlib.nullcontext())
    previous_policy = keras.mixed_precision.global_policy()
    with held:
        if t.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            if callable(task) and not isinstance(task, task_lib.Task):
                task = task(strategy)
            trainer = trainer_lib.Trainer(
                task, strategy=strategy, model_dir=t.model_dir, train_steps=t.train_steps,
                optimizer_config=optimizer_config, steps_per_loop=t.steps_per_loop,
                checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
                summary_every=t.summary_every, image_every=t.image_every,
                mixed_precision=t.mixed_precision, checkpoint_iterator=checkpoint_iterator,
                hooks=hooks, handle_sigterm=handle_sigterm,
                lock_model_dir=False,  # held above, for the whole run
                force_unlock=force_unlock)
            if on_trainer is not None:
                on_trainer(trainer)
            result = trainer.train()
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
    return RunResult(train=result, trainer=trainer)
