"""Child process of the multi-process training tests (tests/test_train.py).

Trains the stand-in model of tests/train_standins.py with tfcolor.train.Trainer and writes the
final losses and weights to ``--out`` (``.npz``). Options make it kill itself with SIGKILL after a
given step (a crash between checkpoints) or run as one worker of a MultiWorkerMirroredStrategy.
The input is a dataset function (``--input=position``, default: the checkpoint holds the input
position) or a plain dataset (``--input=iterator``: the serialized iterator; always for
multi-worker).

``--task=multitask`` trains the joint NormSGD colorization + jigsaw step of
:func:`multitask_step` instead (tests/train/test_multitask_multiworker.py, which imports this
module for its single-process reference) and writes the initial and final weights.
"""
import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import train_standins as si  # noqa: E402
from tfcolor import config  # noqa: E402
from tfcolor import train  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402
from tfcolor.models import multitask as multitask_lib  # noqa: E402
from tfcolor.models import trunk as trunk_lib  # noqa: E402
from tfcolor.models.colorizer import Colorizer  # noqa: E402
from tfcolor.tasks import jigsaw as jigsaw_task  # noqa: E402
from tfcolor.train.multitask_step import MultiTaskStep  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--checkpoint_every", type=int, default=3)
    parser.add_argument("--kill_at", type=int, default=0, help="SIGKILL self after this step")
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--input", default="position", choices=["position", "iterator"],
                        help="position: a dataset function (input position checkpointed); "
                             "iterator: a plain dataset (serialized iterator checkpointed)")
    parser.add_argument("--task", default="colorization", choices=["colorization", "multitask"],
                        help="multitask: the joint NormSGD colorization + jigsaw step of "
                             "multitask_step() (tests/train/test_multitask_multiworker.py)")
    args = parser.parse_args()
    if args.task == "multitask":
        return multitask_main(args)

    if args.deterministic:
        train.set_deterministic(7)
    strategy = train.make_strategy(args.strategy)
    if args.input == "position" and args.strategy != "multi_worker":
        dataset = si.make_dataset_fn(batch_size=4, size=8, points=5, drop_every=5)
    else:
        dataset = si.make_dataset(batch_size=4, size=8, points=5)
    if args.strategy == "multi_worker":
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)

    def model_fn():
        tf.keras.utils.set_random_seed(3)
        return si.StandInColorizer(sync_batch_norm=True, dropout=0.25)

    def kill(trainer, step, losses):
        if args.kill_at and step >= args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    task = ColorizationTask(model_fn=model_fn, loss_fn=si.per_point_loss, dataset=dataset)
    trainer = train.Trainer(
        task, strategy=strategy, model_dir=args.model_dir, train_steps=args.steps, steps_per_loop=1,
        checkpoint_every=args.checkpoint_every, summary_every=args.steps,
        optimizer_config=config.OptimizerConfig(learning_rate=0.05, lr_drops=[0.5],
                                                weight_decay=1e-3),
        hooks=[kill])
    result = trainer.train()
    weights = {f"w{i}": np.asarray(v.value if hasattr(v, "value") else v)
               for i, v in enumerate(trainer.model.weights)}
    np.savez(args.out, **weights)
    with open(args.out + ".json", "w") as f:
        json.dump({"step": result.step, "losses": result.losses,
                   "history": [s for s, _ in result.history],
                   "checkpoint": result.checkpoint}, f)


# --------------------------------------------------------------------------------------------
# The multi-task run (--task=multitask): colorization (the stand-in point dataset) and jigsaw
# (array photos through the pretraining pipeline) on vgg_tiny's first two convolutions, as in
# tests/train/test_multitask_step.py, each task with a global batch of MT_BATCH. The test module
# imports these functions to build its single-process reference.

MT_TAPS = ["data", "conv1_1", "conv1_2"]
MT_BATCH = 4                      # global batch of each task (2 per worker with 2 workers)
MT_FREEZE, MT_EMA = 2, 0.5        # NormSGD statistics: updated at steps 0 and 1, then frozen
MT_IMAGES = (np.random.default_rng(0).uniform(0, 1, (6, 40, 40, 3)) * 255).astype(np.uint8)
MT_OPTIMIZER = dict(learning_rate=1e-3, lr_drops=[], momentum=0.9, weight_decay=1e-3,
                    head_weight_decay=2e-2, bias_lr_multiplier=2.0)


def multitask_tasks():
    """[ColorizationTask, JigsawTask] of the multi-task run (deterministic input streams)."""
    head = dict(output_sizes=(si.DEPTH,), hidden=8, dropout=0.0)

    def model_on(trunk):
        return Colorizer(trunk=trunk.model, tap_strides=trunk.tap_strides(MT_TAPS),
                         input_channels=trunk.input_channels, **head)

    def model_fn():
        return Colorizer("vgg_tiny", taps=MT_TAPS, sync_batch_norm=True, **head)

    colorization = ColorizationTask(
        loss_fn=si.per_point_loss, model_fn=model_fn, model_on_fn=model_on,
        dataset=si.make_dataset_fn(batch_size=MT_BATCH, size=16, points=5))
    data = jigsaw_task.default_data_config(batch_size=MT_BATCH, crop_size=32, min_side=32,
                                           max_side=36, validation_images=0)
    jigsaw = jigsaw_task.JigsawTask(data, source=MT_IMAGES, piece_size=12,
                                    pipeline_options={"shuffle": False},
                                    model_kwargs=dict(tap="conv1_2", reduce_channels=8,
                                                      init_stddev=0.1))
    return [colorization, jigsaw]


def multitask_step(strategy, train_steps, seed=0):
    """The joint NormSGD MultiTaskStep of :func:`multitask_tasks` on ``strategy``."""
    def trunk_fn():
        model = trunk_lib.build_trunk("vgg_tiny", taps=MT_TAPS, input_channels=3,
                                      sync_batch_norm=True)
        return multitask_lib.SharedTrunk(model=model, arch="vgg_tiny", input_channels=3)

    tf.keras.utils.set_random_seed(seed)
    return MultiTaskStep(multitask_tasks(), trunk_fn=trunk_fn, strategy=strategy,
                         train_steps=train_steps,
                         optimizer_config=config.OptimizerConfig(**MT_OPTIMIZER),
                         gradient_rule="normsgd",
                         rule_options=dict(freeze_step=MT_FREEZE, ema_decay=MT_EMA))


def multitask_statistics(step):
    """``{task: [debiased statistic, updates]}`` of a NormSGD step."""
    return {n: [float(step.rule.statistic(n).numpy()),
                int(step.rule.statistic_updates[n].numpy())] for n in step.task_names}


def _weights(variables, prefix):
    return {f"{prefix}{i}": np.asarray(tf.convert_to_tensor(v)) for i, v in enumerate(variables)}


def multitask_main(args):
    """Trains :func:`multitask_step`; ``--out`` gets the model's initial (``i<k>``) and final
    (``w<k>``) weights, ``--out.json`` the losses, history, NormSGD statistics, checkpoint."""
    strategy = train.make_strategy(args.strategy)
    step = multitask_step(strategy, args.steps)
    initial = _weights(step.model.weights, "i")
    trainer = train.Trainer(step, strategy=strategy, model_dir=args.model_dir,
                            train_steps=args.steps, steps_per_loop=1,
                            checkpoint_every=args.checkpoint_every, summary_every=args.steps)
    result = trainer.train()
    np.savez(args.out, **initial, **_weights(step.model.weights, "w"))
    with open(args.out + ".json", "w") as f:
        json.dump({"step": result.step, "losses": result.losses,
                   "history": [s for s, _ in result.history], "checkpoint": result.checkpoint,
                   "statistics": multitask_statistics(step),
                   "replicas": strategy.num_replicas_in_sync,
                   "chief": trainer.is_chief}, f)


if __name__ == "__main__":
    main()
