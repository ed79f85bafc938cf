#!/usr/bin/env python3
"""The controlled distillation experiments of the method's last chapter (Tables 4.3 and 4.4) at
CPU scale, on ``fmnist_digits20`` (the 20-class stand-in for CIFAR-100), resumable.

    python tools/distill_experiments.py --table 4.3     # distillation losses
    python tools/distill_experiments.py --table 4.4     # distillation methods (4 teachers)

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
* Task-Ensemble (six teachers, augmentation) is not run.

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
interval over seeds; the paired differences named in ``CONTRASTS`` (before any run) as mean and
95% t-interval over seeds. Every run's seconds are recorded; ``compute_seconds`` sums all runs
of the table, learning-rate grids and runs left out (``discarded``: e.g. made at a rate that a
later choice replaced) included.
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
from tfcolor.paired_statistics import t_interval  # noqa: E402

RESULTS = ROOT / "results" / "distill.json"
DEFAULT_DATA = os.path.expanduser("~/.cache/tfcolor-corpus/labeled/fmnist_digits20.npz")
TABLES = ("4.3", "4.4")
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
}
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
                     shuffle=True, verbose=0)
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
    for table, part in store.payload.get("tables", {}).items():
        choice = part.get(key) if sub is None else part.get(key, {}).get(sub)
        if table != store.table and choice and part.get("settings") == store.part["settings"]:
            return dict(choice, from_table=table)
    return None


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
    p.add_argument("--fresh", action="store_true", help="discard this table's earlier runs")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds must be >= 2 (intervals over seeds)")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    try:  # one core: the runs were sized for it (possible only before TensorFlow starts)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print("TensorFlow is running already: its thread pools stay as they are",
              file=sys.stderr)
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
    command = "python tools/distill_experiments.py " + " ".join(argv)
    store = Store(args.output, args.table, settings, command, args.work_dir, fresh=args.fresh)
    start = time.time()
    problems = [q for q in args.problems.split(",") if q]
    if set(problems) - set(PROBLEMS):
        raise Failure(f"unknown problems {sorted(set(problems) - set(PROBLEMS))}; known: "
                      f"{', '.join(PROBLEMS)}")
    run_settings = dict(settings, problems=problems)
    summary = (table_43 if args.table == "4.3" else table_44)(store, data, run_settings)
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(f"table {args.table}: {store.computed} runs computed, "
          f"{len(store.runs) - store.computed} reused, {time.time() - start:.0f} s")
    return store


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        sys.exit(f"distill_experiments: {e}")
