"""Checkpoint size vs the bytes that must be saved (variables + optimizer slots), one setting.

Builds the pretraining run of ``binaries/pretrain`` flags exactly as :func:`tfcolor.train.pretrain`
does (data pipeline, colorizer, loss, Trainer), advances it, writes one checkpoint and prints
the bytes of the model variables, the optimizer variables (momentum slots, iteration count), and
of the checkpoint files (``ckpt-N.index`` + ``ckpt-N.data-*``), and their ratio. Works on this
tree and on an older checkout (``git worktree add /tmp/old <commit>``, run with
``PYTHONPATH=/tmp/old``), whose Trainer took a plain dataset and saved the tf.data iterator.

Modes:

* ``--mode=train --steps=N``: N real training steps (quick start);
* ``--mode=pull --steps=N``: N batches drawn from the input without training, then
  ``--settle`` seconds for the tf.data buffers to fill (the paper's VGG-16 / batch 32 / 352^2
  setting, whose steps take minutes and tens of GB of activations on a CPU; the checkpoint
  holds the same variables and, before, the same kind of buffers).

``--mode=restart``: the cost of resuming the input at a late position, for ``--files`` file names
(default: ImageNet's 1,281,167) at ``--position`` (default 16,000,000 = 2M steps x batch 8):
time to the first 8 records of the position-keyed order of ``tfcolor.data.pretrain`` at 0 and at
the position, and the time ``skip`` takes through a seeded ``shuffle`` of the list (the
fast-forward without a position-keyed order) for ``--skip_epochs`` epochs.

    python benchmarks/checkpoint_size.py --mode=restart
    python benchmarks/checkpoint_size.py --mode=train --steps=50 -- \
        --flagfile=configs/quickstart.flags
    python benchmarks/checkpoint_size.py --mode=pull --steps=3 -- --arch=vgg16 \
        --batch_size=32 --crop_size=352 --data=/tmp/images
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from binaries import pretrain as program  # noqa: E402
from tfcolor.tasks import colorization  # noqa: E402
from tfcolor.train import experiment  # noqa: E402
from tfcolor.train import trainer as trainer_lib  # noqa: E402


def _nbytes(variables):
    return sum(np.asarray(v.value if hasattr(v, "value") else v).nbytes for v in variables)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["train", "pull", "restart"], default="train")
    parser.add_argument("--files", type=int, default=1_281_167)
    parser.add_argument("--position", type=int, default=16_000_000)
    parser.add_argument("--skip_epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("flags", nargs="*", help="binaries/pretrain flags (after --)")
    args = parser.parse_args()
    if args.mode == "restart":
        return restart_cost(args)
    fv = flags.FlagValues()
    program.define_flags(fv)
    model_dir = tempfile.mkdtemp(prefix="ckpt_size_")
    fv(["pretrain"] + args.flags + [f"--model_dir={model_dir}", "--noexport",
                                    "--validation_images=0", "--image_every=0"])
    config = program.build_config(fv)
    t = config.train
    experiment.seed_everything(t.seed, t.deterministic)
    task = colorization.ColorizationTask.from_config(config)
    steps = args.steps if args.mode == "train" else 1
    trainer = trainer_lib.Trainer(
        task, strategy=tf.distribute.get_strategy(), model_dir=model_dir,
        train_steps=max(steps, 1), optimizer_config=config.optimizer,
        steps_per_loop=min(t.steps_per_loop, steps), checkpoint_every=10 ** 9,
        summary_every=max(steps, 1), keep_checkpoints=1)
    start = time.perf_counter()
    if args.mode == "train":
        trainer.train()
    else:
        iterator = trainer._input()  # pylint: disable=protected-access
        for _ in range(args.steps):
            next(iterator)
        time.sleep(args.settle)
    saved_at = time.perf_counter()
    path = trainer.checkpointer.save(int(trainer.step.numpy()))
    save_seconds = time.perf_counter() - saved_at
    files = tf.io.gfile.glob(path + ".*")
    ckpt = sum(os.path.getsize(f) for f in files)
    model = _nbytes(trainer.model.variables)
    optimizer = _nbytes(trainer.optimizer.variables)
    print(f"code: input position checkpoints; mode {args.mode}, "
          f"{args.steps} steps/batches in {saved_at - start:.0f} s")
    print(f"setting: {config.model.arch}, batch {config.data.batch_size}, crop "
          f"{config.data.crop_size}, data {config.data.data}")
    print(f"model variables {model / 1e6:.2f} MB + optimizer {optimizer / 1e6:.2f} MB = "
          f"{(model + optimizer) / 1e6:.2f} MB")
    print(f"checkpoint {os.path.basename(path)}: {ckpt / 1e6:.2f} MB "
          f"({ckpt / (model + optimizer):.2f}x), written in {save_seconds:.2f} s")
    shutil.rmtree(model_dir, ignore_errors=True)


def restart_cost(args):
    from tfcolor.data import pretrain as data_pretrain  # pylint: disable=import-outside-toplevel
    from tfcolor.data import sources  # pylint: disable=import-outside-toplevel
    files = [f"/data/imagenet/train/n{i // 1300:08d}/{i:08d}.JPEG" for i in range(args.files)]
    for position in (0, args.position):
        start = time.perf_counter()
        list(data_pretrain._position_keyed_files(  # pylint: disable=protected-access
            files, 0, True, True, position).take(8))
        print(f"position-keyed order, {args.files} files, first 8 records at position "
              f"{position}: {time.perf_counter() - start:.2f} s")
    skip = args.skip_epochs * args.files
    start = time.perf_counter()
    list(sources.FileSource(files).records(shuffle=True, seed=0, repeat=True).skip(skip).take(1))
    print(f"skip through a seeded shuffle: {skip} records ({args.skip_epochs} epoch(s)) in "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
