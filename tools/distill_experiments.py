#!/usr/bin/env python3
"""The controlled distillation experiments of the method's last chapter (Tables 4.3, 4.4 and
Fig. 4.5) at CPU scale, on ``fmnist_digits20`` (the 20-class stand-in for CIFAR-100), resumable.

    python tools/distill_experiments.py --table 4.3     # distillation losses
    python tools/distill_experiments.py --table 4.4     # distillation methods (4 teachers)
    python tools/distill_experiments.py --table 4.3e    # Table 4.3's Task-Ensemble column
    python tools/distill_experiments.py --table fig4.5  # the loss scan of Fig. 4.5

(the results file's runs were made with ``--teacher_epochs 4 --student_epochs 4 --task_epochs
8``; a table shares teachers, runs and rate choices with the tables of the same settings).

Each command writes its part of ``results/distill.json`` after every finished run and, when run
again with the same settings, reuses every finished run (teachers' weights are kept in
``--work_dir``); different settings for a table that already holds runs are refused (one line)
unless ``--fresh`` discards that table's runs.

The nets are *Deep* and *Shallow* of Table 4.1 (:mod:`tfcolor.models.cifar_nets`, three poolings,
``--width_divisor`` M: every layer 1/M as wide, so that a table fits in about half an hour on
one core), all trained with Adam on NumPy arrays (``model.fit``), images scaled to [0, 1].

Protocol (METHOD_CH4.md §8.4, Table 4.2; :func:`tfcolor.corpus.fmnist_digits20.protocol_split`):
"all 50,000" = the train split, "first 40,000" / "last 10,000" = its first 80% (``pretrain``) /
last 20% (``probe``), the test set = ``test``. Table 4.3's problems:

* ``task_copy``: *Deep* teacher on ``all``, *Deep* student distilled at the task layer (logits)
  on ``all``; test accuracy of the student's task layer.
* ``task_compress``: the same teacher, *Shallow* student.
* ``top_copy`` / ``top_compress``: *Deep* teacher on ``pretrain``; *Deep* / *Shallow* student
  distilled at the (pre-ReLU) top layer on ``pretrain``; a linear classifier (a new task layer
  on the ReLU of the top layer, the nets' own task-layer input; the features standardised with
  the probe set's statistics) trained on ``probe`` alone, tested on ``test``.
* losses: ``l2`` = D_AB^(0,0) and ``ab`` = D_AB^(1/4,0), both on teacher-RMS-normalised
  activations with per-feature s (:func:`tfcolor.distill.losses.teacher_scale` over the
  distillation data); students keep Table 4.1's dropout (§8.1.6); no augmentation.

Table ``4.3e``, Task-Ensemble (the table's first column): ``--ensemble_size`` (6) *Deep*
teachers on ``all`` (seeds 100 + k, so the first three are Table 4.3's ``teacher_all/s*``, whose
weights are reused), fixed for every seed; their target at the task layer is the mean of their
logits (``--ensemble_target logits``, §8.1.1 [interpretation]) or the log of their mean
probability (``logprob``); a *Deep* student **without dropout** distilled on ``all`` with the
FractalNet augmentation (§8.1.6 [interpretation], :func:`augment`): a random translation by up
to ``--aug_shift`` (4) pixels with zero (``--aug_pad``) padding, and no horizontal flip unless
``--aug_flip`` (the set has digits, which a mirror changes). Each epoch sees a new augmented
copy of ``all`` and the ensemble's target on it; a seed is the student's init (600 + seed),
data order and augmentation draws, shared by the two losses (paired). The student rates are
chosen in this setting (augmented, no dropout; Table 4.3's were chosen with dropout): the
Task-Copy analogue of ``student_lr`` with the seed-0 grid teacher as the one member.
Cells: ``ensemble`` (its own test accuracy, one number), ``single`` (the six teachers: interval
over teachers), ``l2``, ``ab`` (interval over student seeds; the teachers are fixed, so their
spread is not in it).

Fig. 4.5 (table ``fig4.5``): Task-Compress with D_AB on the three lines (t, 0) KL, (t, t)
symmetric and (t, -t) scale-invariant (``--scan_lines``), t in ``--scan_t`` (1/16 ... 2);
Table 4.3's teachers, seeds and *Shallow* student with dropout, the rate fixed at Table 4.3's
D_AB^(1/4,0) Shallow choice for every point; t = 0 (L2) and (1/4, 0) are Table 4.3's runs.
A run with a non-finite loss or outputs is recorded as ``diverged`` (accuracy None, the measured
one kept) and left out of its point, never raised. Each line's best t is chosen on validation
(one run per point: the seed-0 grid teacher, ``all`` minus its last 10%, as ``student_lr``),
and its test accuracy compared with L2 (paired by seed, t-test, Holm over the lines); the best
t on test is reported too, marked optimistic. The figure: ``results/distill_fig45.png``
(mean and 95% t-interval per line, L2 as a band, crosses where a seed diverged).

Table 4.4 (the ∪̇25% column): the ``pretrain`` part split by class into 4 disjoint tasks of 5
classes (:func:`~tfcolor.corpus.fmnist_digits20.task_subsets`, seed 0); one *Deep* teacher per
task (5 outputs) trained on its task's samples; the teacher is the concatenation of the 4 top
layers (4F features); a *Deep* student (top F) distilled on all of ``pretrain`` with
D_AB^(1/4,0) by

* ``subset``: a random subset of F of the 4F teacher features, drawn once per seed (uniform over
  all 4F) before distillation, per-feature s of the subset;
* ``aux``: the auxiliary layer: ReLU of the student's top, a Dense layer with 4F outputs, the
  loss against all 4F teacher features (per-feature s), the layer discarded afterwards;
* ``*_warm``: the student initialised from the seed's first task teacher (every layer but the
  task layer);

evaluated by the linear probe as above. ``single`` is the probe on each task teacher's top
(mean and max over the four tasks): the single-task baseline of Table 4.5's caption.

Learning rates: chosen on a validation split carved from the training data (never ``test``),
each from a grid that must hold the choice strictly inside (a choice at an edge extends the grid
by one step that way, at most twice; the record says which grid was used): the supervised
teachers' on the last 10% of ``all`` (trained on the rest, seed 0); each loss's student rate for
each student architecture on a Task-Compress (Shallow) or Task-Copy (Deep) analogue (the seed-0
grid teacher, distilled on the rest, the student's task accuracy on that 10%), used for every
problem and method with that loss and student (Table 4.4: Deep, D_AB^(1/4,0)); each
linear probe's on the last 20% of its training data (then refitted on all of it). A table reuses
a choice that another table of the file made with the same settings (``from_table``).

Statistics: per cell the test accuracies (percent) of each seed, their mean and a 95% Student-t
interval over seeds; the paired differences named in ``CONTRASTS`` (before any run; for the
scan, each line's validation-chosen t against L2) as mean and 95% t-interval over seeds.
Every run's seconds are recorded; ``compute_seconds`` sums all runs of the table,
learning-rate grids and runs left out (``discarded``: e.g. made at a rate that a later choice
replaced) included; a run borrowed from another table counts 0 here (``seconds_there``).
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcolor.corpus import fmnist_digits20 as fd  # noqa: E402
from tfcolor.distill import losses as dl  # noqa: E402
from tfcolor.models.cifar_nets import cifar_net  # noqa: E402
from tfcolor.paired_statistics import holm, t_interval, t_test_p  # noqa: E402

RESULTS = ROOT / "results" / "distill.json"
DEFAULT_DATA = os.path.expanduser("~/.cache/tfcolor-corpus/labeled/fmnist_digits20.npz")
TABLES = ("4.3", "4.4", "4.3e", "fig4.5")
PROBLEMS = ("task_copy", "task_compress", "top_copy", "top_compress")
LOSSES = {"l2": (0.0, 0.0), "ab": (0.25, 0.0)}
METHODS = ("aux", "aux_warm", "subset", "subset_warm")
#: The paired differences of each table (named before any run): (name, minuend, subtrahend).
CONTRASTS = {
    "4.3": [(f"{p}: ab - l2", f"{p}/ab", f"{p}/l2") for p in PROBLEMS],
    "4.4": [("subset - aux", "subset", "aux"),
            ("subset_warm - subset", "subset_warm", "subset"),
            ("aux_warm - aux", "aux_warm", "aux"),
            ("subset - single (mean)", "subset", "single_mean")],
    "4.3e": [("ab - l2", "ab", "l2"), ("ab - single teacher (mean)", "ab", "single_mean")],
}
#: Fig. 4.5's lines in the (alpha, beta) plane: t -> (alpha, beta).
SCAN_LINES = {"kl": lambda t: (t, 0.0), "sym": lambda t: (t, t), "si": lambda t: (t, -t)}
SCAN_LABELS = {"kl": "(t, 0) KL", "sym": "(t, t) symmetric", "si": "(t, -t) scale-invariant"}
#: Keys of a table's settings that extend the shared ones (tables equal apart from them share
#: learning-rate choices, runs and teachers).
EXTENSIONS = ("ensemble", "scan")
#: The dissertation's numbers (METHOD_CH4.md §8.4), CIFAR-100 test accuracy % (± as printed:
#: std or s.e.m. and the number of runs are not stated).
PAPER = {
    "4.3": {"task_copy/l2": "57.8 ± 0.2", "task_copy/ab": "58.6 ± 0.4",
            "task_copy/teacher": "59.7 ± 0.3", "task_compress/l2": "36.1 ± 0.3",
            "task_compress/ab": "38.0 ± 0.3", "task_compress/teacher": "59.7 ± 0.3",
            "top_copy/l2": "52.5 ± 0.1", "top_copy/ab": "52.6 ± 0.2",
            "top_copy/teacher": "52.2 ± 0.5", "top_compress/l2": "38.4 ± 0.3",
            "top_compress/ab": "39.0 ± 0.6", "top_compress/teacher": "52.2 ± 0.5"},
    "4.4": {"aux": "40.9", "aux_warm": "41.7", "subset": "43.6", "subset_warm": "43.7",
            "single_mean": "32.4", "single_max": "33.3"},
    "4.3e": {"l2": "61.7 ± 0.1", "ab": "62.5 ± 0.1", "ensemble": "66.0",
             "single_mean": "59.7 ± 0.3", "l2_with_dropout": "57.2 ± 0.1",
             "ab_with_dropout": "59.0 ± 0.2"},
    "fig4.5": {"l2": "36.1 ± 0.3", "kl/t0.25": "38.0 ± 0.3",
               "best points": "38.0 ± 0.3, 37.9 ± 0.3, 37.9 ± 0.4 (lines not attributed)",
               "shape": "every t shown beats L2; training becomes abruptly unstable far from "
                        "the origin; differences between the lines' best points not "
                        "significant; KL's peak is broader"},
}
VAL_FRACTION = 0.1
#: How often a learning-rate grid grows by one step when its best value is at an edge.
MAX_EXTENSIONS = 2
PROBE_VAL_FRACTION = 0.2


class Failure(Exception):
    """A one-line error for the command line."""


# -- results file ----------------------------------------------------------------------------

def _read(path):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def _write(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class Store:
    """One table's part of the results file; a run is computed once and then reused."""

    def __init__(self, path, table, settings, command, work_dir, fresh=False):
        self.path, self.table, self.work_dir = str(path), table, pathlib.Path(work_dir) / table
        self.payload = _read(self.path)
        part = self.payload.setdefault("tables", {}).get(table)
        if part and part.get("settings") != settings:
            if not fresh and (part["runs"] or part.get("discarded")):
                raise Failure(f"results for table {table} in {self.path} were made with other "
                              f"settings; pass --fresh to discard them")
            part = None   # (a part without runs holds nothing to keep)
        if part is None:
            part = {"runs": {}, "commands": []}
        part["settings"] = settings
        if command not in part["commands"]:
            part["commands"].append(command)
        self.payload["tables"][table] = part
        self.part = part
        self.computed = 0
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.save()

    @property
    def runs(self):
        return self.part["runs"]

    def save(self):
        left_out = [r for rs in self.part.get("discarded", {}).values() for r in rs]
        self.part["compute_seconds"] = round(
            sum(r["seconds"] for r in list(self.runs.values()) + left_out), 1)
        on_disk = _read(self.path)   # another table's command may have written since
        on_disk.setdefault("tables", {})[self.table] = self.part
        self.payload = on_disk
        self.payload["environment"] = {"python": platform.python_version(),
                                       "tensorflow": tf.__version__, "keras": keras.__version__,
                                       "threads": "1 intra-op, 1 inter-op"}
        _write(self.path, self.payload)

    def run(self, name, fn):
        """The record of run ``name``, computing ``fn() -> dict`` once."""
        if name in self.runs:
            return self.runs[name]
        print(f"[{self.table}] {name} ...", flush=True)
        start = time.time()
        record = fn()
        record["seconds"] = round(time.time() - start, 2)
        self.runs[name] = record
        self.computed += 1
        self.save()
        print(f"[{self.table}] {name}: {json.dumps(record, sort_keys=True)[:200]}", flush=True)
        return record

    def discard(self, name, why):
        """Leaves run ``name`` out of the table (kept under ``discarded``, its seconds counted
        in ``compute_seconds``)."""
        record = dict(self.runs.pop(name), why=why)
        self.part.setdefault("discarded", {}).setdefault(name, []).append(record)
        self.save()

    def weights(self, name):
        return self.work_dir / (name.replace("/", "__") + ".weights.h5")

    def model(self, name, build, train):
        """A trained model: rebuilt and loaded when run ``name`` finished and its weights are
        kept, else ``train(model) -> record`` (and the weights are saved)."""
        model = build()
        path = self.weights(name)
        if name in self.runs and path.exists():
            model.load_weights(path)
            return model, self.runs[name]
        self.runs.pop(name, None)

        def fit():
            record = train(model)
            model.save_weights(path)
            return record
        return model, self.run(name, fit)


# -- training pieces ---------------------------------------------------------------------------

def net(arch, num_classes, settings, input_shape, seed, dropout=True):
    keras.utils.set_random_seed(seed)
    return cifar_net(arch, input_shape=input_shape, num_classes=num_classes,
                     poolings=settings["poolings"], width_divisor=settings["width_divisor"],
                     dropout=dropout)


def _images(x):
    return np.asarray(x, np.float32) / 255.0


def outputs(model, x, key):
    return np.asarray(model.predict(_images(x), batch_size=256, verbose=0)[key], np.float32)


def accuracy(logits, y):
    return round(100.0 * float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y))), 3)


def fit_supervised(model, x, y, lr, epochs, batch, seed):
    keras.utils.set_random_seed(seed)
    head = keras.Model(model.input, model.output["task"])
    head.compile(keras.optimizers.Adam(lr),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = head.fit(_images(x), np.asarray(y), batch_size=batch, epochs=epochs, shuffle=True,
                    verbose=0)
    return float(hist.history["loss"][-1])


def fit_distill(student, x, target, key, loss, lr, epochs, batch, seed, aux_width=None):
    """Distils ``target`` (N, C) into the student's ``key`` output (or, with ``aux_width``,
    into a Dense(aux_width) auxiliary layer on the ReLU of the student's top)."""
    keras.utils.set_random_seed(seed)
    out = student.output[key]
    if aux_width:
        out = keras.layers.Dense(aux_width, name="aux")(keras.layers.ReLU()(out))
    model = keras.Model(student.input, out)
    model.compile(keras.optimizers.Adam(lr), loss)
    hist = model.fit(_images(x), np.asarray(target, np.float32), batch_size=batch, epochs=epochs,
                     shuffle=True, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])
    return float(hist.history["loss"][-1])


def distill_loss(name, target):
    alpha, beta = LOSSES[name]
    return dl.ABDivergence(alpha=alpha, beta=beta, scale=dl.teacher_scale(target))


def choose(evaluate, grid, max_extensions=MAX_EXTENSIONS):
    """Evaluates ``evaluate(lr) -> score`` over the grid (geometric) and returns the best
    ``{"chosen", "grid", "scores", "inside"}``; a best value at an edge extends the grid."""
    grid = sorted(float(g) for g in grid)
    scores = {}
    for attempt in range(max_extensions + 1):
        for lr in grid:
            if repr(lr) not in scores:
                scores[repr(lr)] = evaluate(lr)
        best = max(grid, key=lambda g: scores[repr(g)])   # ties: the smallest rate
        i = grid.index(best)
        if 0 < i < len(grid) - 1:
            return {"chosen": best, "grid": grid, "scores": scores, "inside": True}
        if attempt == max_extensions:
            break
        step = (grid[1] / grid[0] if i == 0 else grid[-1] / grid[-2]) if len(grid) > 1 else 3.0
        grid = [grid[0] / step] + grid if i == 0 else grid + [grid[-1] * step]
    return {"chosen": best, "grid": grid, "scores": scores, "inside": False}


def linear_probe(f_train, y_train, f_test, y_test, num_classes, settings, seed):
    """A new task layer on ReLU(top) features: rate chosen on the last 20% of the training
    features, refitted on all of them; returns the record."""
    f_train = np.maximum(np.asarray(f_train, np.float32), 0.0)
    f_test = np.maximum(np.asarray(f_test, np.float32), 0.0)
    mean, std = f_train.mean(axis=0), f_train.std(axis=0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    n_val = int(round(len(f_train) * PROBE_VAL_FRACTION))

    def fit(lr, xs, ys):
        keras.utils.set_random_seed(seed)
        layer = keras.Sequential([keras.Input((xs.shape[1],)), keras.layers.Dense(num_classes)])
        layer.compile(keras.optimizers.Adam(lr),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        layer.fit(xs, ys, batch_size=settings["batch"], epochs=settings["probe_epochs"],
                  shuffle=True, verbose=0)
        return layer

    def val_score(lr):
        layer = fit(lr, f_train[:-n_val], y_train[:-n_val])
        return accuracy(layer.predict(f_train[-n_val:], verbose=0), y_train[-n_val:])

    choice = choose(val_score, settings["probe_grid"])
    layer = fit(choice["chosen"], f_train, y_train)
    return {"test_accuracy": accuracy(layer.predict(f_test, verbose=0), y_test),
            "probe_lr": choice}


# -- statistics --------------------------------------------------------------------------------

def cell(values):
    values = [float(v) for v in values]
    out = {"n": len(values), "values": values,
           "mean": round(float(np.mean(values)), 3) if values else None}
    if len(values) >= 2:
        lo, hi = t_interval(values)
        out.update(ci95=[round(lo, 3), round(hi, 3)],
                   sd=round(float(np.std(values, ddof=1)), 3))
    return out


def summarize(store, cells, contrasts):
    """``cells``: {cell name: {seed: accuracy}} -> the summary with paired differences."""
    summary = {"cells": {k: cell([v[s] for s in sorted(v)]) for k, v in cells.items()},
               "contrasts": {}, "paper": PAPER[store.table]}
    for name, a, b in contrasts:
        seeds = sorted(set(cells.get(a, {})) & set(cells.get(b, {})))
        diffs = [cells[a][s] - cells[b][s] for s in seeds]
        summary["contrasts"][name] = dict(cell(diffs), seeds=seeds)
    store.part["summary"] = summary
    store.part["contrasts_planned"] = [list(c) for c in contrasts]
    store.save()
    return summary


# -- shared learning-rate choices ----------------------------------------------------------------

def _shared(store, key, sub=None):
    """A learning-rate choice that another table of the file made with the same settings (its
    runs are counted in that table's compute), marked with ``from_table``."""
    for table, part in _alike(store):
        choice = part.get(key) if sub is None else part.get(key, {}).get(sub)
        if choice:
            return dict(choice, from_table=table)
    return None


def _base(settings):
    return {k: v for k, v in (settings or {}).items() if k not in EXTENSIONS}


def _alike(store):
    """``(table, part)`` of the file's other tables whose settings equal this one's apart from
    the :data:`EXTENSIONS` keys."""
    mine = _base(store.part["settings"])
    return [(table, part) for table, part in store.payload.get("tables", {}).items()
            if table != store.table and _base(part.get("settings")) == mine]


def teacher_lr(store, data, settings, shape):
    """The supervised rate (Deep, trained on ``all`` minus its last 10%, seed 0)."""
    if "lr_teacher" not in store.part and _shared(store, "lr_teacher"):
        store.part["lr_teacher"] = _shared(store, "lr_teacher")
        store.save()
    if "lr_teacher" in store.part:
        return store.part["lr_teacher"]["chosen"]
    x, y = fd.protocol_split(data, "all")
    n_val = int(round(len(y) * VAL_FRACTION))

    def score(lr):
        _, record = store.model(f"lr/teacher/{lr!r}", lambda: net("deep", 20, settings, shape, 0),
                                lambda m: _teacher(m, x[:-n_val], y[:-n_val], lr, settings, 0,
                                                   x[-n_val:], y[-n_val:], "val_accuracy"))
        return record["val_accuracy"]
    store.part["lr_teacher"] = choose(score, settings["lr_grid"])
    store.save()
    return store.part["lr_teacher"]["chosen"]


def _teacher(model, x, y, lr, settings, seed, x_eval, y_eval, key):
    loss = fit_supervised(model, x, y, lr, settings["teacher_epochs"], settings["batch"], seed)
    return {key: accuracy(outputs(model, x_eval, "task"), y_eval), "train_loss": loss, "lr": lr,
            "seed": seed}


def student_lr(store, data, settings, shape, lr_t, loss_name, arch="shallow"):
    """A loss's rate for a student architecture: Task-Compress (``shallow``) or Task-Copy
    (``deep``) on ``all`` minus its last 10% with the seed-0 grid teacher; the student's task
    accuracy on that 10%."""
    name = loss_name if arch == "shallow" else f"{arch}_{loss_name}"
    choices = store.part.setdefault("lr_student", {})
    if name not in choices and _shared(store, "lr_student", name):
        choices[name] = _shared(store, "lr_student", name)
        store.save()
    if name in choices:
        return choices[name]["chosen"]
    x, y = fd.protocol_split(data, "all")
    n_val = int(round(len(y) * VAL_FRACTION))
    teacher, _ = store.model(f"lr/teacher/{lr_t!r}", lambda: net("deep", 20, settings, shape, 0),
                             lambda m: _teacher(m, x[:-n_val], y[:-n_val], lr_t, settings, 0,
                                                x[-n_val:], y[-n_val:], "val_accuracy"))
    target = outputs(teacher, x[:-n_val], "task")

    def score(lr):
        def train():
            student = net(arch, 20, settings, shape, 0)
            loss = fit_distill(student, x[:-n_val], target, "task",
                               distill_loss(loss_name, target), lr,
                               settings["student_epochs"], settings["batch"], 0)
            return {"val_accuracy": accuracy(outputs(student, x[-n_val:], "task"), y[-n_val:]),
                    "train_loss": loss, "lr": lr}
        return store.run(f"lr/student_{name}/{lr!r}", train)["val_accuracy"]
    choices[name] = choose(score, settings["lr_grid"])
    store.save()
    return choices[name]["chosen"]


# -- Table 4.3 ---------------------------------------------------------------------------------

def table_43(store, data, settings):
    shape = tuple(data["x_train"].shape[1:])
    lr_t = teacher_lr(store, data, settings, shape)
    archs = sorted({"deep" if p.endswith("copy") else "shallow"
                    for p in settings.get("problems", PROBLEMS)}, reverse=True)
    lr_s = {(arch, name): student_lr(store, data, settings, shape, lr_t, name, arch)
            for arch in archs for name in LOSSES}
    x_all, y_all = fd.protocol_split(data, "all")
    x_pre, _ = fd.protocol_split(data, "pretrain")
    x_probe, y_probe = fd.protocol_split(data, "probe")
    x_test, y_test = fd.protocol_split(data, "test")
    problems = settings.get("problems", PROBLEMS)
    cells = {}
    for seed in settings["seeds"]:
        teachers = {}
        if any(p.startswith("task") for p in problems):
            teachers["task"], rec = store.model(
                f"teacher_all/s{seed}", lambda: net("deep", 20, settings, shape, 100 + seed),
                lambda m: _teacher(m, x_all, y_all, lr_t, settings, 100 + seed, x_test, y_test,
                                   "test_accuracy"))
            for p in ("task_copy", "task_compress"):
                cells.setdefault(f"{p}/teacher", {})[seed] = rec["test_accuracy"]

        def pre_teacher(m):
            _, y_pre = fd.protocol_split(data, "pretrain")
            record = _teacher(m, x_pre, y_pre, lr_t, settings, 200 + seed, x_test, y_test,
                              "task_test_accuracy")
            record.update(linear_probe(outputs(m, x_probe, "top"), y_probe,
                                       outputs(m, x_test, "top"), y_test, 20, settings, seed))
            return record
        if any(p.startswith("top") for p in problems):
            teachers["top"], rec = store.model(
                f"teacher_pretrain/s{seed}", lambda: net("deep", 20, settings, shape, 200 + seed),
                pre_teacher)
            for p in ("top_copy", "top_compress"):
                cells.setdefault(f"{p}/teacher", {})[seed] = rec["test_accuracy"]
        targets = {}
        for problem in problems:
            task = problem.startswith("task")
            key = "task" if task else "top"
            x_d = x_all if task else x_pre
            arch = "deep" if problem.endswith("copy") else "shallow"
            for loss_name in LOSSES:
                def train(problem=problem, loss_name=loss_name, task=task, key=key, x_d=x_d,
                          arch=arch):
                    if key not in targets:
                        targets[key] = outputs(teachers[key], x_d, key)
                    student = net(arch, 20, settings, shape, 300 + seed)
                    target = targets[key]
                    loss = fit_distill(student, x_d, target, key, distill_loss(loss_name, target),
                                       lr_s[arch, loss_name], settings["student_epochs"],
                                       settings["batch"], 300 + seed)
                    record = {"train_loss": loss, "lr": lr_s[arch, loss_name], "seed": seed,
                              "teacher": f"teacher_{'all' if task else 'pretrain'}/s{seed}"}
                    if task:
                        record["test_accuracy"] = accuracy(outputs(student, x_test, "task"),
                                                           y_test)
                    else:
                        record.update(linear_probe(outputs(student, x_probe, "top"), y_probe,
                                                   outputs(student, x_test, "top"), y_test, 20,
                                                   settings, seed))
                    return record
                name = f"{problem}/{loss_name}/s{seed}"
                if name in store.runs and store.runs[name]["lr"] != lr_s[arch, loss_name]:
                    store.discard(name, "made at another student learning rate")
                rec = store.run(name, train)
                cells.setdefault(f"{problem}/{loss_name}", {})[seed] = rec["test_accuracy"]
        summarize(store, cells, CONTRASTS["4.3"])
    return summarize(store, cells, CONTRASTS["4.3"])


# -- Table 4.4 ---------------------------------------------------------------------------------

def table_44(store, data, settings):
    shape = tuple(data["x_train"].shape[1:])
    lr_t = teacher_lr(store, data, settings, shape)
    lr_s = student_lr(store, data, settings, shape, lr_t, "ab", "deep")
    x_pre, y_pre = fd.protocol_split(data, "pretrain")
    x_probe, y_probe = fd.protocol_split(data, "probe")
    x_test, y_test = fd.protocol_split(data, "test")
    tasks = fd.task_subsets(y_pre, 4, 0.25, by="class", disjoint=True, seed=0)
    store.part["tasks"] = [sorted(int(c) for c in np.unique(y_pre[t])) for t in tasks]
    cells = {}
    for seed in settings["seeds"]:
        teachers, tops, singles = [], [], []
        for m, idx in enumerate(tasks):
            classes = np.unique(y_pre[idx])
            labels = np.searchsorted(classes, y_pre[idx])
            test_in = np.isin(y_test, classes)

            def train(model, idx=idx, labels=labels, classes=classes, test_in=test_in, m=m):
                loss = fit_supervised(model, x_pre[idx], labels, lr_t, settings["task_epochs"],
                                      settings["batch"], 400 + 10 * seed + m)
                record = {"train_loss": loss, "lr": lr_t, "seed": seed, "classes":
                          [int(c) for c in classes],
                          "task_test_accuracy": accuracy(
                              outputs(model, x_test[test_in], "task"),
                              np.searchsorted(classes, y_test[test_in]))}
                record.update(linear_probe(outputs(model, x_probe, "top"), y_probe,
                                           outputs(model, x_test, "top"), y_test, 20, settings,
                                           seed))
                return record
            teacher, rec = store.model(
                f"teacher_task{m}/s{seed}",
                lambda m=m, classes=classes: net("deep", len(classes), settings, shape,
                                                 400 + 10 * seed + m), train)
            teachers.append(teacher)
            singles.append(rec["test_accuracy"])
        cells.setdefault("single_mean", {})[seed] = float(np.mean(singles))
        cells.setdefault("single_max", {})[seed] = float(np.max(singles))
        needed = [f"{meth}/s{seed}" for meth in METHODS]
        if all(n in store.runs for n in needed):
            for meth in METHODS:
                cells.setdefault(meth, {})[seed] = store.runs[f"{meth}/s{seed}"]["test_accuracy"]
            continue
        tops = np.concatenate([outputs(t, x_pre, "top") for t in teachers], axis=1)
        width = tops.shape[1] // len(tasks)
        subset = np.sort(np.random.default_rng(seed).choice(tops.shape[1], width, replace=False))
        for meth in METHODS:
            def train(meth=meth):
                student = net("deep", 20, settings, shape, 500 + seed)
                if meth.endswith("warm"):
                    for layer in student.layers:
                        if layer.weights and layer.name != "task":
                            layer.set_weights(teachers[0].get_layer(layer.name).get_weights())
                target = tops[:, subset] if meth.startswith("subset") else tops
                loss = fit_distill(student, x_pre, target, "top", distill_loss("ab", target),
                                   lr_s, settings["student_epochs"], settings["batch"],
                                   500 + seed,
                                   aux_width=None if meth.startswith("subset") else tops.shape[1])
                record = {"train_loss": loss, "lr": lr_s, "seed": seed,
                          "subset_size": int(width), "teacher_features": int(tops.shape[1])}
                record.update(linear_probe(outputs(student, x_probe, "top"), y_probe,
                                           outputs(student, x_test, "top"), y_test, 20,
                                           settings, seed))
                return record
            rec = store.run(f"{meth}/s{seed}", train)
            cells.setdefault(meth, {})[seed] = rec["test_accuracy"]
        summarize(store, cells, CONTRASTS["4.4"])
    return summarize(store, cells, CONTRASTS["4.4"])


# -- shared runs and teachers --------------------------------------------------------------------

def borrow_run(store, name, as_name=None):
    """Run ``name`` of another table with the same settings (apart from the extensions), copied
    into this table as ``as_name`` (default ``name``) with ``from_table`` and 0 seconds (its
    compute is counted in its own table: ``seconds_there``); None when no table has it."""
    as_name = as_name or name
    if as_name in store.runs:
        return store.runs[as_name]
    for table, part in _alike(store):
        if name in part.get("runs", {}):
            record = dict(part["runs"][name], from_table=table, from_run=name, seconds=0.0,
                          seconds_there=part["runs"][name]["seconds"])
            store.runs[as_name] = record
            store.save()
            return record
    return None


def shared_model(store, name, build, train):
    """:meth:`Store.model`, first looking for the finished model ``name`` (record and weights)
    in another table with the same settings, e.g. Table 4.3's teachers."""
    record = store.runs.get(name)
    if record is None or record.get("from_table"):
        for table, part in _alike(store):
            path = store.work_dir.parent / table / store.weights(name).name
            if name in part.get("runs", {}) and path.exists():
                model = build()
                model.load_weights(path)
                return model, borrow_run(store, name)
        store.runs.pop(name, None)
    return store.model(name, build, train)


# -- augmentation, ensembles, divergence -------------------------------------------------------

def augment(x, rng, shift=4, pad="zero", flip=False):
    """Random translation of each image by up to ``shift`` pixels in each direction (the image
    padded with zeros (``pad="zero"``) or its mirror (``"reflect"``) and cropped back), and with
    ``flip`` a horizontal mirror of a random half: the FractalNet augmentation of Task-Ensemble
    (§8.1.6 [interpretation]). ``x``: (N, H, W, C); the result has its shape and dtype and the
    i-th image is a transform of the i-th input (labels keep their order)."""
    if pad not in ("zero", "reflect"):
        raise Failure(f"unknown padding {pad!r}: zero or reflect")
    x = np.asarray(x)
    n, h, w = x.shape[:3]
    if shift:
        mode = {"mode": "constant"} if pad == "zero" else {"mode": "reflect"}
        padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), **mode)
        dy, dx = rng.integers(0, 2 * shift + 1, (2, n))
        out = np.empty_like(x)
        for i in range(n):
            out[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    else:
        out = x.copy()
    if flip:
        mirror = rng.random(n) < 0.5
        out[mirror] = out[mirror, :, ::-1]
    return out


def ensemble_target(logits, mode="logits"):
    """The ensemble's task-layer target from its members' logits (a list of (N, K)):
    ``"logits"``, the mean of the logits (the normalised geometric mean of the probabilities,
    §8.1.1 [interpretation]), or ``"logprob"``, the log of the mean probability."""
    logits = np.stack([np.asarray(z, np.float64) for z in logits])
    if mode == "logits":
        return logits.mean(axis=0).astype(np.float32)
    if mode == "logprob":
        top = logits.max(axis=-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        m = logp.max(axis=0)
        return (m + np.log(np.exp(logp - m).mean(axis=0))).astype(np.float32)
    raise Failure(f"unknown ensemble target {mode!r}: logits or logprob")


def fit_distill_epochs(student, xs, targets, key, loss, lr, batch, seed):
    """:func:`fit_distill` with one input array and target per epoch (e.g. augmented copies);
    stops at a non-finite loss. Returns the last epoch's mean loss (may be non-finite)."""
    keras.utils.set_random_seed(seed)
    model = keras.Model(student.input, student.output[key])
    model.compile(keras.optimizers.Adam(lr), loss)
    last = float("nan")
    for x, target in zip(xs, targets):
        hist = model.fit(_images(x), np.asarray(target, np.float32), batch_size=batch, epochs=1,
                         shuffle=True, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])
        last = float(hist.history["loss"][-1])
        if not np.isfinite(last):
            break
    return last


def guarded(train):
    """Runs ``train() -> record``; a non-finite loss, non-finite outputs or a numerical error
    gives ``{"diverged": True, ...}`` with the accuracies None, never an exception."""
    try:
        record = train()
    except (tf.errors.InvalidArgumentError, FloatingPointError, ValueError) as e:
        return {"diverged": True, "why": str(e).splitlines()[0][:200], "test_accuracy": None,
                "train_loss": None}
    if record.pop("finite", True) and np.isfinite(record.get("train_loss", 0.0)):
        record["diverged"] = False
        return record
    record.update(diverged=True, why="non-finite loss or outputs",
                  train_loss=None if not np.isfinite(record.get("train_loss", np.nan))
                  else record["train_loss"])
    for k in ("test_accuracy", "val_accuracy"):
        if k in record:
            record[f"{k}_measured"], record[k] = record[k], None
    return record


def _scored(model, x, y, key="task"):
    """(accuracy, whether every output is finite)."""
    logits = outputs(model, x, key)
    return accuracy(np.nan_to_num(logits, nan=-np.inf), y), bool(np.all(np.isfinite(logits)))


# -- Table 4.3, Task-Ensemble column -------------------------------------------------------------

def _bank(teachers, x, epochs, opts, seed):
    """Per epoch an augmented copy of ``x`` and the ensemble's target on it."""
    rng = np.random.default_rng(seed)
    xs = [augment(x, rng, opts["shift"], opts["pad"], opts["flip"]) for _ in range(epochs)]
    return xs, [ensemble_target([outputs(t, xe, "task") for t in teachers], opts["target"])
                for xe in xs]


def ensemble_student_lr(store, data, settings, shape, lr_t, loss_name):
    """A loss's rate for the Task-Ensemble student (*Deep*, no dropout, augmented): the
    Task-Copy analogue of :func:`student_lr` in that setting (the seed-0 grid teacher, one
    member, on ``all`` minus its last 10%; the student's task accuracy on that 10%)."""
    opts = settings["ensemble"]
    choices = store.part.setdefault("lr_student", {})
    name = f"ensemble_{loss_name}"
    if name in choices:
        return choices[name]["chosen"]
    x, y = fd.protocol_split(data, "all")
    n_val = int(round(len(y) * VAL_FRACTION))
    teacher, _ = shared_model(
        store, f"lr/teacher/{lr_t!r}", lambda: net("deep", 20, settings, shape, 0),
        lambda m: _teacher(m, x[:-n_val], y[:-n_val], lr_t, settings, 0, x[-n_val:], y[-n_val:],
                           "val_accuracy"))
    bank = {}

    def score(lr):
        def train():
            if not bank:
                bank["xs"], bank["t"] = _bank([teacher], x[:-n_val], settings["student_epochs"],
                                              opts, 999)
            student = net("deep", 20, settings, shape, 0, dropout=False)
            target = np.concatenate(bank["t"])
            loss = fit_distill_epochs(student, bank["xs"], bank["t"], "task",
                                      distill_loss(loss_name, target), lr, settings["batch"], 0)
            acc, finite = _scored(student, x[-n_val:], y[-n_val:])
            return {"val_accuracy": acc, "train_loss": loss, "lr": lr, "finite": finite}
        rec = store.run(f"lr/student_{name}/{lr!r}", lambda: guarded(train))
        return -1.0 if rec["val_accuracy"] is None else rec["val_accuracy"]
    choices[name] = choose(score, opts["lr_grid"])
    store.save()
    return choices[name]["chosen"]


def table_43e(store, data, settings):
    """Task-Ensemble: ``ensemble["size"]`` *Deep* teachers on ``all`` (seeds 100 + k; the first
    three are Table 4.3's ``teacher_all/s*``), fixed for every seed; a *Deep* student without
    dropout distilled at the task layer on augmented ``all`` (a fresh augmentation draw per
    seed, shared by the two losses); a seed is the student's init, data order and
    augmentation."""
    opts = settings["ensemble"]
    shape = tuple(data["x_train"].shape[1:])
    lr_t = teacher_lr(store, data, settings, shape)
    lr_s = {name: ensemble_student_lr(store, data, settings, shape, lr_t, name)
            for name in LOSSES}
    x_all, y_all = fd.protocol_split(data, "all")
    x_test, y_test = fd.protocol_split(data, "test")
    teachers, singles = [], {}
    for k in range(opts["size"]):
        model, rec = shared_model(
            store, f"teacher_all/s{k}", lambda k=k: net("deep", 20, settings, shape, 100 + k),
            lambda m, k=k: _teacher(m, x_all, y_all, lr_t, settings, 100 + k, x_test, y_test,
                                    "test_accuracy"))
        teachers.append(model)
        singles[k] = rec["test_accuracy"]
    ens = store.run("ensemble", lambda: {"test_accuracy": accuracy(ensemble_target(
        [outputs(t, x_test, "task") for t in teachers], opts["target"]), y_test),
        "members": [f"teacher_all/s{k}" for k in range(opts["size"])]})
    cells = {"ensemble": {0: ens["test_accuracy"]}, "single": dict(singles)}
    for seed in settings["seeds"]:
        cells.setdefault("single_mean", {})[seed] = float(np.mean(list(singles.values())))
        bank = {}
        for loss_name in LOSSES:
            def train(loss_name=loss_name):
                if not bank:
                    bank["xs"], bank["t"] = _bank(teachers, x_all, settings["student_epochs"],
                                                  opts, 700 + seed)
                student = net("deep", 20, settings, shape, 600 + seed, dropout=False)
                target = np.concatenate(bank["t"])
                loss = fit_distill_epochs(student, bank["xs"], bank["t"], "task",
                                          distill_loss(loss_name, target), lr_s[loss_name],
                                          settings["batch"], 600 + seed)
                acc, finite = _scored(student, x_test, y_test)
                return {"test_accuracy": acc, "train_loss": loss, "lr": lr_s[loss_name],
                        "seed": seed, "finite": finite}
            name = f"{loss_name}/s{seed}"
            if name in store.runs and store.runs[name]["lr"] != lr_s[loss_name]:
                store.discard(name, "made at another student learning rate")
            rec = store.run(name, lambda train=train: guarded(train))
            if rec["test_accuracy"] is not None:
                cells.setdefault(loss_name, {})[seed] = rec["test_accuracy"]
        summarize(store, cells, CONTRASTS["4.3e"])
    return summarize(store, cells, CONTRASTS["4.3e"])


# -- Fig. 4.5: the loss scan on Task-Compress ------------------------------------------------------

def _t_name(t):
    return f"t{t:g}"


def table_fig45(store, data, settings):
    """Task-Compress (Table 4.3's teachers and conventions: *Shallow* student with dropout,
    seed 300 + seed, no augmentation) with D_AB on each line of :data:`SCAN_LINES` at every t,
    the student rate fixed at Table 4.3's D_AB^(1/4,0) Shallow choice. t = 0 (L2) and
    (1/4, 0) are Table 4.3's runs. Each line's best t is chosen on validation (the
    :func:`student_lr` analogue: the seed-0 grid teacher, ``all`` minus its last 10%), and its
    test accuracy is compared with L2 (paired by seed, Holm over the lines)."""
    opts = settings["scan"]
    shape = tuple(data["x_train"].shape[1:])
    lr_t = teacher_lr(store, data, settings, shape)
    lr = student_lr(store, data, settings, shape, lr_t, "ab", "shallow")
    store.part["student_lr"] = lr
    x_all, y_all = fd.protocol_split(data, "all")
    x_test, y_test = fd.protocol_split(data, "test")
    n_val = int(round(len(y_all) * VAL_FRACTION))
    lines, grid = opts["lines"], opts["t"]

    def scan_run(name, teacher_fn, x_d, x_eval, y_eval, alpha, beta, seed, key):
        def train():
            teacher = teacher_fn()
            target = outputs(teacher, x_d, "task")
            student = net("shallow", 20, settings, shape, seed)
            loss = fit_distill(
                student, x_d, target, "task",
                dl.ABDivergence(alpha=alpha, beta=beta, scale=dl.teacher_scale(target)), lr,
                settings["student_epochs"], settings["batch"], seed)
            acc, finite = _scored(student, x_eval, y_eval)
            return {key: acc, "train_loss": loss, "lr": lr, "alpha": alpha, "beta": beta,
                    "finite": finite}
        return store.run(name, lambda: guarded(train))

    # validation: one run per (line, t), the seed-0 grid teacher
    grid_teacher = {}

    def val_teacher():
        if not grid_teacher:
            grid_teacher["m"], _ = shared_model(
                store, f"lr/teacher/{lr_t!r}", lambda: net("deep", 20, settings, shape, 0),
                lambda m: _teacher(m, x_all[:-n_val], y_all[:-n_val], lr_t, settings, 0,
                                   x_all[-n_val:], y_all[-n_val:], "val_accuracy"))
        return grid_teacher["m"]
    val = {"l2": borrow_run(store, f"lr/student_l2/{lr!r}", "val/l2")}
    if val["l2"] is None:
        val["l2"] = scan_run("val/l2", val_teacher, x_all[:-n_val], x_all[-n_val:],
                             y_all[-n_val:], 0.0, 0.0, 0, "val_accuracy")
    for line in lines:
        for t in grid:
            alpha, beta = SCAN_LINES[line](t)
            name = f"val/{line}/{_t_name(t)}"
            rec = None
            if (alpha, beta) == LOSSES["ab"]:
                rec = borrow_run(store, f"lr/student_ab/{lr!r}", name)
            val[line, t] = rec or scan_run(name, val_teacher, x_all[:-n_val], x_all[-n_val:],
                                           y_all[-n_val:], alpha, beta, 0, "val_accuracy")
    chosen = {}
    for line in lines:
        scores = {t: val[line, t]["val_accuracy"] for t in grid
                  if val[line, t]["val_accuracy"] is not None}
        if scores:
            chosen[line] = max(sorted(scores), key=lambda t: scores[t])   # ties: smallest t
    store.part["chosen_on_validation"] = {line: chosen.get(line) for line in lines}

    cells = {}
    for seed in settings["seeds"]:
        teacher = {}

        def test_teacher(seed=seed):
            if not teacher:
                teacher["m"], _ = shared_model(
                    store, f"teacher_all/s{seed}",
                    lambda: net("deep", 20, settings, shape, 100 + seed),
                    lambda m: _teacher(m, x_all, y_all, lr_t, settings, 100 + seed, x_test,
                                       y_test, "test_accuracy"))
            return teacher["m"]
        rec = borrow_run(store, f"task_compress/l2/s{seed}", f"l2/s{seed}")
        if rec is None or rec["lr"] != lr:
            store.runs.pop(f"l2/s{seed}", None)
            rec = scan_run(f"l2/s{seed}", test_teacher, x_all, x_test, y_test, 0.0, 0.0,
                           300 + seed, "test_accuracy")
        if rec["test_accuracy"] is not None:
            cells.setdefault("l2", {})[seed] = rec["test_accuracy"]
        for line in lines:
            for t in grid:
                alpha, beta = SCAN_LINES[line](t)
                name = f"{line}/{_t_name(t)}/s{seed}"
                rec = None
                if (alpha, beta) == LOSSES["ab"]:
                    rec = borrow_run(store, f"task_compress/ab/s{seed}", name)
                    if rec is not None and rec["lr"] != lr:
                        store.runs.pop(name)
                        rec = None
                rec = rec or scan_run(name, test_teacher, x_all, x_test, y_test, alpha, beta,
                                      300 + seed, "test_accuracy")
                if rec["test_accuracy"] is not None:
                    cells.setdefault(f"{line}/{_t_name(t)}", {})[seed] = rec["test_accuracy"]
        teacher.clear()
    return summarize_scan(store, cells, lines, grid, chosen)


def summarize_scan(store, cells, lines, grid, chosen):
    """The scan's summary: every (line, t) cell with its diverged seeds; per line the best t on
    validation against L2 (paired by seed, t-test, Holm over the lines) and, for reference, the
    best t on test (optimistic: chosen on the numbers it reports)."""
    contrasts = []
    for line in lines:
        if line in chosen:
            contrasts.append((f"{line} best (validation) - l2", f"{line}/{_t_name(chosen[line])}",
                              "l2"))
    seeds = len(store.part["settings"]["seeds"])
    on_test = {}
    for line in lines:
        full = {t: np.mean(list(cells[f"{line}/{_t_name(t)}"].values())) for t in grid
                if len(cells.get(f"{line}/{_t_name(t)}", {})) == seeds}
        if full:
            on_test[line] = max(sorted(full), key=lambda t: full[t])
            contrasts.append((f"{line} best (test, optimistic) - l2",
                              f"{line}/{_t_name(on_test[line])}", "l2"))
    summary = summarize(store, cells, contrasts)
    for line in lines:
        for t in grid:
            key = f"{line}/{_t_name(t)}"
            bad = [s for s in store.part["settings"]["seeds"]
                   if store.runs.get(f"{key}/s{s}", {}).get("diverged")]
            summary["cells"].setdefault(key, cell([]))["diverged_seeds"] = bad
    planned = [name for name, _, _ in contrasts if "validation" in name]
    ps = {}
    for name in planned:
        c = summary["contrasts"][name]
        if c["n"] >= 2:
            ps[name] = t_test_p(c["values"])
            c["p"] = round(ps[name], 4)
    for name, adj in zip(ps, holm(list(ps.values()))):
        summary["contrasts"][name]["p_holm"] = round(adj, 4)
    diverged = {}
    for name, rec in store.runs.items():
        if rec.get("diverged"):
            diverged[name] = rec.get("why")
    summary.update(chosen_on_validation={k: chosen.get(k) for k in lines},
                   best_on_test=on_test, diverged=diverged, lines=list(lines), t=list(grid))
    store.part["summary"] = summary
    store.save()
    return summary


FIGURE = ROOT / "results" / "distill_fig45.png"
LINE_COLOURS = {"kl": (214, 39, 40), "sym": (31, 119, 180), "si": (44, 160, 44)}


def scan_figure(summary, path, size=(560, 340), margin=56, floor_below_l2=20.0):
    """Fig. 4.5 as a PNG: test accuracy against t (log axis) per line, mean and 95% t-interval
    over seeds, L2 (t = 0) as a grey band; a cross at the bottom marks a t where a seed
    diverged; a mean more than ``floor_below_l2`` points below L2 is drawn at the bottom edge
    as a triangle with its value."""
    from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
    cells, lines, grid = summary["cells"], summary["lines"], summary["t"]
    w, h = size
    image = Image.new("RGB", (w + 2 * margin, h + 2 * margin + 20), "white")
    draw = ImageDraw.Draw(image)
    lows = [c["ci95"][0] for c in cells.values() if c.get("ci95") and c["n"] >= 2]
    highs = [c["ci95"][1] for c in cells.values() if c.get("ci95") and c["n"] >= 2]
    if not lows:
        image.save(path)
        return path
    lo, hi = min(lows) - 0.5, max(highs) + 0.5
    l2 = cells.get("l2")
    if l2 and l2.get("n"):   # collapsed points (e.g. at chance) are clipped to the bottom edge
        lo = max(lo, l2["mean"] - floor_below_l2)
    lx = np.log2(grid)
    x_lo, x_hi = lx.min() - 0.5, lx.max() + 0.5

    def px(t):
        return margin + w * (np.log2(t) - x_lo) / (x_hi - x_lo)

    def py(v):
        return margin + h - h * (v - lo) / (hi - lo)
    draw.rectangle([margin, margin, margin + w, margin + h], outline=(128, 128, 128))
    if l2 and l2.get("ci95"):
        draw.rectangle([margin + 1, py(l2["ci95"][1]), margin + w - 1, py(l2["ci95"][0])],
                       fill=(225, 225, 225))
        draw.line([(margin, py(l2["mean"])), (margin + w, py(l2["mean"]))], fill=(90, 90, 90))
        draw.text((margin + w + 4, py(l2["mean"]) - 6), "L2", fill="black")
    for v in np.linspace(lo, hi, 5):
        draw.text((4, py(v) - 6), f"{v:.1f}", fill="black")
    for t in grid:
        draw.text((px(t) - 12, margin + h + 4), f"{t:g}", fill="black")
    draw.text((margin + w // 2 - 20, margin + h + 18), "t (log scale)", fill="black")
    draw.text((margin, 8), "Task-Compress test accuracy % (mean, 95% t-interval over seeds)",
              fill="black")
    for j, line in enumerate(lines):
        colour = LINE_COLOURS.get(line, (0, 0, 0))
        offset = (j - (len(lines) - 1) / 2) * 5
        points = []
        for t in grid:
            c = cells.get(f"{line}/{_t_name(t)}")
            x = px(t) + offset
            bad = [n for n in summary.get("diverged", {})
                   if n.startswith(f"{line}/{_t_name(t)}/s")]
            if bad:
                draw.line([(x - 4, margin + h - 12), (x + 4, margin + h - 4)], fill=colour, width=2)
                draw.line([(x - 4, margin + h - 4), (x + 4, margin + h - 12)], fill=colour, width=2)
            if not c or not c.get("n"):
                continue
            if c["mean"] < lo:
                y = margin + h - 16 - 12 * j
                points.append((x, y))
                draw.polygon([(x - 4, y - 4), (x + 4, y - 4), (x, y + 4)], fill=colour)
                draw.text((x + 6, y - 6), f"{c['mean']:.0f}", fill=colour)
                continue
            points.append((x, py(c["mean"])))
            if c.get("ci95"):
                draw.line([(x, py(max(c["ci95"][0], lo))), (x, py(c["ci95"][1]))],
                          fill=colour)
            draw.ellipse([x - 3, py(c["mean"]) - 3, x + 3, py(c["mean"]) + 3], fill=colour)
        if len(points) > 1:
            draw.line(points, fill=colour, width=1)
        lx0 = margin + 10 + j * 180
        draw.rectangle([lx0, image.height - 16, lx0 + 10, image.height - 6], fill=colour)
        draw.text((lx0 + 14, image.height - 17), SCAN_LABELS.get(line, line), fill="black")
    image.save(path)
    return path


# -- command line ------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--data", default=DEFAULT_DATA, help="fmnist_digits20.npz (or its directory)")
    p.add_argument("--output", default=str(RESULTS))
    p.add_argument("--work_dir", default=str(ROOT / "runs" / "distill_experiments"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--width_divisor", type=int, default=4)
    p.add_argument("--poolings", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--teacher_epochs", type=int, default=2)
    p.add_argument("--task_epochs", type=int, default=4,
                   help="epochs of each Table 4.4 task teacher (a quarter of the data)")
    p.add_argument("--student_epochs", type=int, default=2)
    p.add_argument("--probe_epochs", type=int, default=30)
    p.add_argument("--lr_grid", default="3e-4,1e-3,3e-3")
    p.add_argument("--probe_grid", default="1e-3,3e-3,1e-2")
    p.add_argument("--problems", default=",".join(PROBLEMS),
                   help="Table 4.3's problems to run (comma-separated; default all four)")
    p.add_argument("--ensemble_size", type=int, default=6, help="Task-Ensemble's teachers")
    p.add_argument("--ensemble_target", default="logits", choices=("logits", "logprob"),
                   help="mean of the teachers' logits, or log of their mean probability")
    p.add_argument("--aug_shift", type=int, default=4,
                   help="Task-Ensemble augmentation: translation by up to this many pixels")
    p.add_argument("--aug_pad", default="zero", choices=("zero", "reflect"))
    p.add_argument("--aug_flip", action="store_true",
                   help="also mirror a random half horizontally (off: the set has digits)")
    p.add_argument("--ensemble_lr_grid", default="1e-3,3e-3,1e-2",
                   help="Task-Ensemble student rates (no dropout, augmented)")
    p.add_argument("--scan_t", default="0.0625,0.125,0.25,0.5,1,2", help="Fig. 4.5's t values")
    p.add_argument("--scan_lines", default="kl,sym,si",
                   help="Fig. 4.5's lines: kl (t, 0), sym (t, t), si (t, -t)")
    p.add_argument("--figure", default=str(FIGURE), help="Fig. 4.5's PNG ('' for none)")
    p.add_argument("--fresh", action="store_true", help="discard this table's earlier runs")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds must be >= 2 (intervals over seeds)")
    if args.ensemble_size < 1 or args.aug_shift < 0:
        p.error("--ensemble_size must be >= 1 and --aug_shift >= 0")
    try:
        args.scan_t = [float(t) for t in args.scan_t.split(",") if t]
        args.ensemble_lr_grid = [float(v) for v in args.ensemble_lr_grid.split(",") if v]
    except ValueError as e:
        p.error(str(e))
    if not args.scan_t or min(args.scan_t) <= 0:
        p.error("--scan_t: positive values (t = 0 is L2, always included)")
    args.scan_lines = [q for q in args.scan_lines.split(",") if q]
    if not args.scan_lines or set(args.scan_lines) - set(SCAN_LINES):
        p.error(f"--scan_lines: some of {', '.join(SCAN_LINES)}")
    return args


def one_core():
    """One TensorFlow thread, as the runs were sized (possible only before TensorFlow starts:
    otherwise the pools stay as they are, said on stderr)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print("TensorFlow is running already: its thread pools stay as they are",
              file=sys.stderr)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    one_core()
    try:
        data = fd.load(args.data)
        grids = {k: [float(v) for v in getattr(args, k).split(",")]
                 for k in ("lr_grid", "probe_grid")}
    except (OSError, ValueError) as e:
        raise Failure(str(e).splitlines()[0]) from None
    settings = {"seeds": list(range(args.seeds)), "width_divisor": args.width_divisor,
                "poolings": args.poolings, "batch": args.batch,
                "teacher_epochs": args.teacher_epochs, "task_epochs": args.task_epochs,
                "student_epochs": args.student_epochs, "probe_epochs": args.probe_epochs,
                "optimizer": "adam", "data": os.path.basename(args.data),
                "train_size": int(len(data["y_train"])), "test_size": int(len(data["y_test"])),
                **grids}
    if args.table == "4.3e":
        settings["ensemble"] = {"size": args.ensemble_size, "target": args.ensemble_target,
                                "shift": args.aug_shift, "pad": args.aug_pad,
                                "flip": args.aug_flip, "lr_grid": args.ensemble_lr_grid,
                                "student_dropout": False}
    if args.table == "fig4.5":
        settings["scan"] = {"t": sorted(args.scan_t), "lines": args.scan_lines,
                            "problem": "task_compress"}
    command = "python tools/distill_experiments.py " + " ".join(argv)
    store = Store(args.output, args.table, settings, command, args.work_dir, fresh=args.fresh)
    start = time.time()
    problems = [q for q in args.problems.split(",") if q]
    if set(problems) - set(PROBLEMS):
        raise Failure(f"unknown problems {sorted(set(problems) - set(PROBLEMS))}; known: "
                      f"{', '.join(PROBLEMS)}")
    run_settings = dict(settings, problems=problems)
    run = {"4.3": table_43, "4.4": table_44, "4.3e": table_43e, "fig4.5": table_fig45}
    summary = run[args.table](store, data, run_settings)
    if args.table == "fig4.5" and args.figure:
        print(f"wrote {scan_figure(summary, args.figure)}")
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(f"table {args.table}: {store.computed} runs computed, "
          f"{len(store.runs) - store.computed} reused, {time.time() - start:.0f} s")
    return store


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        sys.exit(f"distill_experiments: {e}")
