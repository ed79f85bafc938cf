"""Child process of the multi-process training tests (tests/test_train.py).

Trains the stand-in model of tests/train_standins.py with tfcolor.train.Trainer and writes the
final losses and weights to ``--out`` (``.npz``). Options make it kill itself with SIGKILL after a
given step (a crash between checkpoints) or run as one worker of a MultiWorkerMirroredStrategy.
The input is a dataset function (``--input=position``, default: the checkpoint holds the input
position) or a plain dataset (``--input=iterator``: the serialized iterator; always for
multi-worker).
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
