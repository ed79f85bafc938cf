#!/usr/bin/env python3
"""Runs the README's quick start and its evaluation, and records what they give.

    python tools/quickstart_results.py        # ~4 min on 2 idle cores; writes results/quickstart.json
    python tools/results_tables.py            # then regenerates the README's quick-start table

In a copy of the checkout's tracked files (so nothing of the checkout's own ``runs/`` is used
or touched), it runs the README's two commands on its relative paths::

    binaries/pretrain --flagfile=configs/quickstart.flags
    binaries/evaluate --model_dir=runs/quickstart --data=embedded:validation --output_dir=eval

and records the wall and CPU time of each, the held-out curve (``heldout.jsonl``), the kept best
model's record, the no-learning baseline on the same held-out crops (the marginal prior of the
training photos, scored with the training loss: the held-out loss a network gets without
reading the image), ``evaluate``'s per-method means and paired intervals (model - grey,
model - prior; bootstrap over the 8 photos), the machine and the package versions.

The 8 validation photos are the only held-out photos the package ships: they chose the quick
start's recipe and its kept checkpoint, and they are what ``evaluate`` scores here, so these
numbers describe the demonstration, not the method (the reproduction measures the method on
photos that chose nothing: docs/reproduction.md).
"""
import argparse
import importlib.metadata
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfcolor import prior as prior_lib
from tfcolor import run_dir
from tfcolor.tasks import colorization
from tfcolor.train import heldout as heldout_lib
from tfcolor.train import pretraining

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "quickstart.json"
COMMANDS = (["binaries/pretrain", "--flagfile=configs/quickstart.flags"],
            ["binaries/evaluate", "--model_dir=runs/quickstart", "--data=embedded:validation",
             "--output_dir=eval"])
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy")


class _PriorModel:
    """The marginal prior as a sparse colorizer: the same log-histogram at every point."""

    def __init__(self, prior):
        self.logits = tf.math.log(tf.maximum(tf.constant(prior.probabilities(), tf.float32),
                                             np.finfo(np.float32).tiny))

    def sparse(self, gray, centers, training=False):  # pylint: disable=unused-argument
        shape = tf.concat([tf.shape(centers)[:2], tf.shape(self.logits)], 0)
        return tf.broadcast_to(self.logits, shape)


def prior_heldout_loss(model_dir):
    """The held-out loss of the run's marginal prior on the run's own held-out crops, with the
    training loss (as ``HeldOutLoss`` scores the network)."""
    config = run_dir.read_config(model_dir)
    task = colorization.ColorizationTask.from_config(config)
    batches = colorization.heldout_batches(config)
    source, data_config, loss_config, options = prior_lib.data_config_from_run_config(config)
    prior = prior_lib.marginal_prior(source, data_config, loss_config,
                                     max_images=pretraining.PRIOR_BIAS_IMAGES, **options)
    loss, terms = heldout_lib.HeldOutLoss(batches, task).evaluate(_PriorModel(prior))
    return {"loss": loss, "terms": terms, "prior_images": prior.images}


def _copy_checkout(dest):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def _run(command, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(command), "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1)}, proc


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(RESULTS), help="the results file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="tfcolor-quickstart-"))
    try:
        _copy_checkout(work)
        steps = []
        for command in COMMANDS:
            step, _ = _run(command, work)
            steps.append(step)
            print(f"{step['command']}: {step['wall_seconds']} s wall, {step['cpu_seconds']} s CPU")
        model_dir = str(work / "runs" / "quickstart")
        with open(work / "eval" / "metrics.json", encoding="utf-8") as f:
            metrics = json.load(f)
        record = {
            "commands": steps,
            "heldout_curve": [{"step": r["step"], "loss": r["loss"]}
                              for r in map(json.loads, open(run_dir.heldout_curve_path(model_dir)))],
            "best": run_dir.read_best(model_dir),
            "prior_heldout": prior_heldout_loss(model_dir),
            "evaluate": {"metrics": {name: {k: m[k] for k in ("images", "alphabeta_mean",
                                                              "alphabeta_rms", "psnr", "auc")}
                                     for name, m in metrics["metrics"].items()},
                         "paired": metrics["paired"]},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}",
            "packages": _versions(),
        }
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
