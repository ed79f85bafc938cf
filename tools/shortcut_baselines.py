#!/usr/bin/env python3
"""The no-learning baselines of the labelled sets (``tfcolor.downstream.shortcuts``), with
95% bootstrap intervals over the test images, into ``results/shortcut_baselines.json``:

    python tools/shortcut_baselines.py [--labeled ~/.cache/tfcolor-corpus/labeled]

Sets (``binaries/build_corpus`` writes them):

* ``debphoto15``: 15 folder classes from three packages; its own train / val / test splits;
* ``debphoto15_tuxpaint``: the classes of its largest package alone (the source predicts
  nothing; the style still may);
* ``fashion_mnist_100``: Fashion-MNIST with 100 labelled training images per class (the first
  100 of each class in file order), a 1,000-image val split (the next 100 per class), and its
  whole 10,000-image test split.

For each: chance (1 / classes), the commonest training class, the commonest training class of
the image's source package (debphoto sets), and the softmax regression on the eleven hand-made
style features with its L2 strength chosen on val. Every accuracy is on the test split, with a
95% percentile bootstrap interval over test images (it covers the choice of test images only:
these baselines have no seed).
"""
import argparse
import hashlib
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results_io import write_json  # noqa: E402
from tfcolor.downstream import shortcuts  # noqa: E402
from tfcolor.paired_statistics import bootstrap_mean_ci  # noqa: E402

RESULTS = os.path.join(ROOT, "results", "shortcut_baselines.json")
DEFAULT_LABELED = os.path.expanduser("~/.cache/tfcolor-corpus/labeled")
SETS = ("debphoto15", "debphoto15_tuxpaint", "fashion_mnist_100")
PER_CLASS = 100


class Failure(Exception):
    """A one-line error for the command line."""


def _sha256(path):
    with open(path, "rb") as f:  # the sets are tens of megabytes at most
        return hashlib.sha256(f.read()).hexdigest()


def _load(labeled, name):
    """``(splits, classes, sources, path)``: splits maps train/val/test to (images, labels)."""
    if name == "fashion_mnist_100":
        path = os.path.join(labeled, "fashion_mnist.npz")
        d = _open(path)
        y = d["y_train"].astype(np.int64)
        first = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
        train = np.sort(np.concatenate([f[:PER_CLASS] for f in first]))
        val = np.sort(np.concatenate([f[PER_CLASS:2 * PER_CLASS] for f in first]))
        splits = {"train": (d["x_train"][train], y[train]), "val": (d["x_train"][val], y[val]),
                  "test": (d["x_test"], d["y_test"].astype(np.int64))}
        return splits, len(first), None, path
    path = os.path.join(labeled, name + ".npz")
    d = _open(path)
    splits = {s: (d[f"x_{s}"], d[f"y_{s}"].astype(np.int64)) for s in ("train", "val", "test")}
    sources = None
    if "package" in d.files:
        sources = {s: d["package"][d["split"] == s] for s in ("train", "val", "test")}
    return splits, len(d["classes"]), sources, path


def _open(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise Failure(f"cannot read {path} ({e}); build it with binaries/build_corpus") from None


def _score(correct):
    correct = np.asarray(correct, np.float64)
    low, high = bootstrap_mean_ci(correct, seed=0)
    return {"accuracy": float(correct.mean()), "ci95": [low, high], "n": int(correct.size)}


def evaluate(labeled, name):
    """The baselines of one set (module docstring)."""
    start = time.time()
    splits, num_classes, sources, path = _load(labeled, name)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (splits[s] for s in ("train", "val", "test"))
    out = {"data": os.path.basename(path), "sha256": _sha256(path), "classes": num_classes,
           "sizes": {s: int(len(splits[s][1])) for s in splits},
           "chance": 1.0 / num_classes,
           "majority": _score(shortcuts.majority(y_tr, len(y_te)) == y_te)}
    if sources is not None:
        predicted = shortcuts.source_majority(sources["train"], y_tr, sources["test"])
        out["source_majority"] = _score(predicted == y_te)
        out["sources"] = sorted(set(sources["train"]) | set(sources["test"]))
    f_tr, f_va, f_te = (shortcuts.style_features(x) for x in (x_tr, x_va, x_te))
    model, choice = shortcuts.fit_on_val((f_tr, y_tr), (f_va, y_va), num_classes)
    out["style_logistic"] = dict(_score(model.predict(f_te) == y_te), choice=choice,
                                 features=list(shortcuts.STYLE_FEATURES))
    out["seconds"] = round(time.time() - start, 1)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labeled", default=DEFAULT_LABELED,
                   help="folder of the labelled .npz sets (binaries/build_corpus writes them)")
    p.add_argument("--output", default=RESULTS)
    p.add_argument("--sets", default=",".join(SETS))
    args = p.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise Failure(f"unknown sets {unknown}; known: {', '.join(SETS)}")
    payload = {"command": "python tools/shortcut_baselines.py"
                          + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
               "sets": {n: evaluate(args.labeled, n) for n in names}}
    write_json(args.output, payload)
    for n, r in payload["sets"].items():
        cells = [f"{k} {r[k]['accuracy']:.3f}" for k in ("majority", "source_majority",
                                                         "style_logistic") if k in r]
        print(f"{n}: chance {r['chance']:.3f}, " + ", ".join(cells))
    return payload


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        sys.exit(f"shortcut_baselines: {e}")
