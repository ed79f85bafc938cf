#!/usr/bin/env python3
"""The controlled multi-task experiments of the method's last chapter (Tables 4.5 and 4.6) at CPU
scale, on ``fmnist_digits20`` (the 20-class stand-in for CIFAR-100), resumable.

    python tools/multitask_cifar_experiments.py --table 4.5 --columns c4,c6   # multi-task splits
    python tools/multitask_cifar_experiments.py --table 4.6 --columns c4,c6   # round-robin

Each command writes its part of ``results/multitask_cifar.json`` after every finished run and, run
again with the same settings, reuses every finished run (the single-task nets' weights are kept in
``--work_dir``); ``--columns`` may grow between invocations (the columns are not settings), and ``--rows``
restricts what an invocation runs (e.g. two rows of one column); the summary holds every
finished run of the table, whichever invocation made it.
Different settings for a table that holds runs are refused (one line) unless ``--fresh``.
The results store, the nets, the distillation student, the rate choice and the linear probe are
those of ``tools/distill_experiments.py`` (imported; its docstring states the shared protocol).

Columns (METHOD_CH4.md §8.4, Table 4.5 read as there): the ``pretrain`` part (first 80% of the
train split, "first 40,000") split by :func:`tfcolor.corpus.fmnist_digits20.task_subsets`
(seed 0, the same tasks for every seed) into M tasks: ``c1`` 4 tasks, disjoint 25% by sample;
``c2`` 4 tasks, overlapping 50% by class; ``c3`` 2 tasks, 50% by class; ``c4`` 4 tasks,
disjoint 25% by class; ``c5`` 10 tasks, disjoint 10% by class; ``c6`` ``c4``'s tasks with
Mixed losses. A by-class task's head outputs its own classes; a by-sample task's all 20.
Mixed (task m gets loss m, on the head's logits z, K outputs, one-hot target e; each the batch
mean of a sum over the K outputs) **[interpretation]**, the encodings are not specified:
``softmax`` cross-entropy; ``l2`` ``sum_k (z_k - e_k)^2``; ``sigmoid`` (multi-label)
``sum_k BCE(sigmoid(z_k), e_k)``; ``hinge`` (multi-label) ``sum_k max(0, 1 - t_k z_k)`` with
``t = 2e - 1`` (±1). The other columns use ``softmax`` for every task.

Rows (each a representation evaluated by the linear probe, ``de.linear_probe``: a new task
layer on the ReLU of the top layer trained on ``probe`` alone, no end-to-end fine-tuning, test
accuracy on ``test``):

* ``single_mean`` / ``single_max``: each task's *Deep* net trained alone (trunk + its head);
* ``distill``: Table 4.4's feature subset: the M single nets' tops concatenated, a random
  subset of F of the M·F features (per seed), a *Deep* student distilled with D_AB^(1/4,0)
  on all of ``pretrain`` (``de.fit_distill``, Adam);
* ``split_act``: M nets 1/M as wide (``width_divisor * M``) trained alone on their tasks,
  combined by :func:`tfcolor.models.split.concatenate_columns` (cross-weights 0: the probe
  reads the block-diagonal combination, nothing is trained further);
* ``split_weights``: one full-width trunk, task m's head on column m of the top layer
  (:func:`tfcolor.models.split.top_columns`), :class:`~tfcolor.train.gradient_rules.
  SplitWeightsRule` with :func:`tfcolor.models.split.column_masks`, momentum SGD
  (the optimizer is not specified **[interpretation]**);
* ``adam`` (SumRule + Adam), ``multi_adam`` (SeparateRule: one Adam per task at the rate
  times 1/M, eq. 4.10), ``sgd`` (SumRule + momentum SGD), ``normsgd`` (NormSGDRule + momentum
  SGD): one full-width trunk, every head on the whole top layer;
* ``full``: *Deep* trained on all of ``pretrain`` (20 classes), the upper bound.

Offline rows and split-weights are not run on ``c6`` (the paper's dashes).

Training (all but ``distill``): a loop over NumPy arrays, one ``tf.function`` step per
iteration; per-task gradients by :func:`~tfcolor.train.gradient_rules.task_gradients` (each
task's batch goes through the trunk on its own), the rules as
:class:`tfcolor.train.multitask_step.MultiTaskStep` drives them. Every trained net runs
``--steps`` S iterations; a joint step draws ``batch // M`` samples from each task (the total
batch is ``--batch`` **[interpretation]**: not specified), a single-task or split-activations
column net ``batch // M`` from its task (exactly its task's share of a joint run), ``full``
``batch`` from ``pretrain`` (the images a joint run sees); each task's samples in shuffled
epochs. The rate: a linear warm-up over the first ``--warmup`` of the steps (NormSGD's "brief
warm-up", given to every row), ×0.1 at 50% and 75% (the paper's 100k and 150k of 200k); no
weight decay, no bias multiplier (not specified); momentum 0.9; Table 4.1's dropout (the heads
read ReLU(top) through the last conv's dropout, 0.3). NormSGD's statistic: EMA 0.99, frozen at
:func:`~tfcolor.train.gradient_rules.default_freeze_step` of the warm-up and the first drop.

Table 4.6: NormSGD round-robin: one task active per step, switching in circular order every Q
steps, Q = 0.5% and 5% of S (``rr_q0.5``, ``rr_q5``: the paper's 1,000 and 10,000 of 200,000);
a step draws ``batch // M`` samples of the active task, so the iterations are the joint run's
and every task sees 1/M of its joint data. Momentum and the NormSGD statistic are per task
**[interpretation]** (§8.3.5: part of the swapped task state): one momentum-SGD optimizer per
task over the trunk and its head, and the rule's per-task statistic. The ``joint`` row is
Table 4.5's ``normsgd`` run (reused from that part when its settings match).

Learning rates: one per family, chosen on ``c4``, seed 0, trained on ``pretrain`` minus its
last 10% and scored by the mean over tasks of each head's accuracy on that 10% (a task's head
on the samples of its classes), from a grid that must hold the choice strictly inside
(``de.choose``), then used for every column and seed: ``adam`` (Joint Adam; Multi-Adam at it
times 1/M), ``sgd`` (Joint SGD), ``normsgd`` (Joint NormSGD and round-robin),
``split_weights``, and ``single`` (momentum SGD on one task: the single, split-activations
column and full nets; chosen on ``c4``'s first task alone, a batch of ``batch // 4``: a task
alone takes about M times the joint mean's step, and at the joint SGD rate the single nets
died).
The student's rate is Table 4.4's (``results/distill.json``, Deep student, D_AB^(1/4,0),
chosen there on validation); ``--lr family=value`` fixes a rate without a grid (recorded so).

Statistics: per cell the test accuracies (percent) of each seed, mean and 95% Student-t
interval over seeds; the paired differences named in ``CONTRASTS`` (before any run) with their
t-interval, two-sided paired t-test p and Holm-adjusted p over the table's contrasts.
``compute_seconds`` sums every run (rate grids included).
"""
import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import distill_experiments as de  # noqa: E402  (sets one TF thread before TensorFlow starts)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcolor.config import OptimizerConfig  # noqa: E402
from tfcolor.corpus import fmnist_digits20 as fd  # noqa: E402
from tfcolor.models import split  # noqa: E402
from tfcolor.models.cifar_nets import DEEP_ROWS, cifar_net  # noqa: E402
from tfcolor.paired_statistics import holm, t_test_p  # noqa: E402
from tfcolor.train import gradient_rules as gr  # noqa: E402

RESULTS = ROOT / "results" / "multitask_cifar.json"
DISTILL_RESULTS = ROOT / "results" / "distill.json"
TABLES = ("4.5", "4.6")
#: Table 4.5's columns: (M, by, fraction, disjoint, mixed losses).
COLUMNS = {"c1": (4, "sample", 0.25, True, False), "c2": (4, "class", 0.5, False, False),
           "c3": (2, "class", 0.5, True, False), "c4": (4, "class", 0.25, True, False),
           "c5": (10, "class", 0.1, True, False), "c6": (4, "class", 0.25, True, True)}
MIXED = ("softmax", "l2", "sigmoid", "hinge")
JOINT = ("split_weights", "adam", "multi_adam", "sgd", "normsgd")
ROWS = ("single_mean", "single_max", "distill", "split_act") + JOINT + ("full",)
OFFLINE = ("distill", "split_act", "split_weights")   # not run on Mixed (the paper's dashes)
QUANTA = {"rr_q0.5": 0.005, "rr_q5": 0.05}
FAMILIES = ("adam", "sgd", "normsgd", "split_weights", "single")
#: Which family's rate each method uses.
FAMILY_OF = {"adam": "adam", "multi_adam": "adam", "sgd": "sgd", "normsgd": "normsgd",
             "split_weights": "split_weights", "single": "single", "split_act": "single",
             "full": "single", "rr": "normsgd"}
DEFAULT_GRIDS = {"adam": "3e-4,1e-3,3e-3", "sgd": "3e-3,1e-2,3e-2",
                 "normsgd": "1e-4,3e-4,1e-3", "split_weights": "3e-3,1e-2,3e-2",
                 "single": "3e-3,1e-2,3e-2"}
#: The paired differences of each table, named before any run: (name, minuend, subtrahend).
CONTRASTS = {
    "4.5": [("Mixed: NormSGD - SGD", "c6/normsgd", "c6/sgd"),
            ("Mixed: Multi-Adam - Adam", "c6/multi_adam", "c6/adam"),
            ("C25%: split-weights - split-activations", "c4/split_weights", "c4/split_act"),
            ("C25%: NormSGD - single (mean)", "c4/normsgd", "c4/single_mean"),
            ("C25%: distillation - single (mean)", "c4/distill", "c4/single_mean"),
            ("C25%: SGD - Adam", "c4/sgd", "c4/adam")],
    "4.6": [(f"{label}: RR Q={q} - joint", f"{col}/rr_q{q}", f"{col}/joint")
            for col, label in (("c4", "C25%"), ("c6", "Mixed")) for q in ("0.5", "5")],
}
#: The dissertation's numbers (METHOD_CH4.md §8.4), CIFAR-100 test accuracy %.
_PAPER_45 = {"single_mean": (38.4, 42.1, 41.6, 32.4, 24.4, 16.8),
             "single_max": (38.8, 43.0, 42.1, 33.3, 26.5, 32.2),
             "distill": (44.0, 46.7, 54.2, 47.2, 42.2, None),
             "split_act": (29.4, 39.8, 47.3, 33.0, 1.0, None),
             "split_weights": (47.0, 50.3, 52.3, 46.0, 25.5, None),
             "adam": (52.1, 49.2, 51.7, 49.3, 45.2, 46.6),
             "multi_adam": (52.9, 50.7, 52.8, 49.5, 44.3, 44.3),
             "sgd": (54.1, 52.2, 54.0, 51.3, 46.5, 38.5),
             "normsgd": (54.4, 51.4, 54.1, 51.5, 47.9, 51.1),
             "full": (55.5,) * 6}
_PAPER_46 = {"joint": (54.4, 51.4, 54.1, 51.5, 47.9, 51.1),
             "rr_q0.5": (54.4, 52.7, 53.6, 52.2, 47.7, 51.5),
             "rr_q5": (54.2, 51.3, 52.2, 51.0, 48.2, 51.2)}
PAPER = {table: {f"c{i + 1}/{row}": v for row, vs in rows.items()
                 for i, v in enumerate(vs) if v is not None}
         for table, rows in (("4.5", _PAPER_45), ("4.6", _PAPER_46))}
VAL_FRACTION = 0.1
#: Table 4.1's dropout of the last conv: the heads read ReLU(top) through it (as cifar_net's
#: ``top_dropout``).
HEAD_DROPOUT = [r for r in DEEP_ROWS if r[0] == "conv"][-1][3]
MOMENTUM = 0.9
NORMSGD_EMA = 0.99


# -- tasks and losses --------------------------------------------------------------------------

def make_tasks(column, y, num_classes):
    """The column's tasks on labels ``y``: a list of ``{"index", "classes", "labels", "loss"}``
    (``labels``: the head's targets, the class's position among the task's classes, or the class
    itself by sample)."""
    m, by, fraction, disjoint, mixed = COLUMNS[column]
    subsets = fd.task_subsets(y, m, fraction, by=by, disjoint=disjoint, seed=0)
    tasks = []
    for i, index in enumerate(subsets):
        classes = np.unique(y[index]) if by == "class" else np.arange(num_classes)
        tasks.append({"index": index, "classes": classes,
                      "labels": np.searchsorted(classes, y[index]),
                      "loss": MIXED[i % len(MIXED)] if mixed else "softmax"})
    return tasks


def task_loss(kind, logits, labels):
    """The batch mean of a task's loss on its head's ``logits`` (B, K) for int ``labels`` (B,)."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if kind == "softmax":
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=tf.float32)
    if kind == "l2":
        per = tf.reduce_sum(tf.square(logits - onehot), axis=-1)
    elif kind == "sigmoid":
        per = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(onehot, logits), axis=-1)
    elif kind == "hinge":
        per = tf.reduce_sum(tf.nn.relu(1.0 - (2.0 * onehot - 1.0) * logits), axis=-1)
    else:
        raise ValueError(f"unknown task loss {kind!r}; known: {', '.join(MIXED)}")
    return tf.reduce_mean(per)


# -- nets --------------------------------------------------------------------------------------

def build(settings, shape, num_classes, seed, width_divisor=None, own_columns=False):
    """A *Deep* trunk and one head per task: ``image -> {"top", "task<m>": logits}``."""
    keras.utils.set_random_seed(seed)
    trunk = cifar_net("deep", input_shape=shape, num_classes=None,
                      poolings=settings["poolings"],
                      width_divisor=width_divisor or settings["width_divisor"])
    top = trunk.output["top"]
    h = keras.layers.Dropout(HEAD_DROPOUT, name="top_dropout")(
        keras.layers.ReLU(name="top_relu")(top))
    columns = split.top_columns(trunk, len(num_classes)) if own_columns else None
    outputs = {"top": top}
    for m, n in enumerate(num_classes):
        x = h if columns is None else keras.ops.take(h, np.flatnonzero(columns == m), axis=-1)
        outputs[f"task{m}"] = keras.layers.Dense(int(n), kernel_initializer="he_normal",
                                                 name=f"head_task{m}")(x)
    return keras.Model(trunk.input, outputs), trunk


def learning_rate(settings, lr, step):
    """The rate of 0-based step ``step``: warm-up, then x0.1 at 50% and 75% of the steps."""
    config = OptimizerConfig(learning_rate=lr, lr_drops=(0.5, 0.75), warmup_steps=_warmup(
        settings))
    boundaries, values = config.learning_rates(settings["steps"])
    rate = values[sum(step >= b for b in boundaries)]
    return rate * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else rate


def _warmup(settings):
    return int(round(settings["warmup"] * settings["steps"]))


def train(model, trunk, x, tasks, method, lr, settings, seed, quantum=None, batch=None):
    """Trains ``model`` (heads ``task<m>`` for ``tasks``) for ``settings["steps"]`` steps with
    ``method`` (``sgd``, ``adam``, ``multi_adam``, ``normsgd``, ``split_weights``; ``quantum``:
    NormSGD round-robin). Returns the mean loss of each task over its last 10% of steps and
    whether every loss stayed finite."""
    steps = settings["steps"]
    names = [f"task{m}" for m in range(len(tasks))]
    batch = batch or max(1, settings["batch"] // len(tasks))
    base = trunk.trainable_variables
    heads = {n: model.get_layer(f"head_{n}").trainable_variables for n in names}
    config = OptimizerConfig(learning_rate=lr, momentum=MOMENTUM, weight_decay=0.0,
                             bias_lr_multiplier=1.0)
    factor = 1.0

    def sgd():
        return keras.optimizers.SGD(lr, momentum=MOMENTUM)
    if method == "multi_adam":
        rule = gr.SeparateRule(names, base, heads, config,
                               optimizers={n: keras.optimizers.Adam(lr) for n in names})
        factor = rule.rate_factor
        optimizers = dict(rule.optimizers)
    elif method == "normsgd":
        drop = int(round(0.5 * steps))
        freeze = gr.default_freeze_step(_warmup(settings), max(drop, _warmup(settings) + 1))
        rule = gr.NormSGDRule(names, base, heads, config, freeze_step=freeze,
                              ema_decay=NORMSGD_EMA)
        # Round-robin: momentum per task, as part of the task's state.
        optimizers = ({n: sgd() for n in names} if quantum else {"all": sgd()})
    elif method == "split_weights":
        rule = gr.SplitWeightsRule(names, base, heads, config, masks=split.column_masks(
            trunk, len(names)))
        optimizers = {"all": sgd()}
    elif method in ("sgd", "adam"):
        rule = gr.SumRule(names, base, heads, config)
        optimizers = {"all": sgd() if method == "sgd" else keras.optimizers.Adam(lr)}
    else:
        raise ValueError(f"unknown training method {method!r}")
    if quantum and method != "normsgd":
        raise ValueError("round-robin is run with NormSGD only")
    for key, opt in optimizers.items():
        if method != "multi_adam":
            opt.build(base + (heads[key] if key in heads else [v for n in names
                                                               for v in heads[n]]))
    kinds = {n: t["loss"] for n, t in zip(names, tasks)}
    functions = {}

    def step_fn(active):
        if active in functions:
            return functions[active]

        @tf.function
        def step(xs, ys, index):
            with tf.GradientTape(persistent=len(active) > 1) as tape:
                losses = {}
                for n in active:
                    out = model(tf.cast(xs[n], tf.float32) / 255.0, training=True)
                    losses[n] = task_loss(kinds[n], out[n], ys[n])
            task_grads, head_grads = gr.task_gradients(tape, losses, base,
                                                       {n: heads[n] for n in active})
            del tape
            if method == "multi_adam":
                rule.apply(task_grads, head_grads, index)
            elif quantum:
                pairs, _ = rule.gradients(task_grads, head_grads, index)
                optimizers[active[0]].apply([g for g, _ in pairs], [v for _, v in pairs])
            else:
                rule.apply(task_grads, head_grads, index, optimizers["all"])
            return losses
        functions[active] = step
        return step

    rng = np.random.default_rng(seed)
    streams = {n: [] for n in names}

    def draw(n, t):
        while len(streams[n]) < batch:
            streams[n].extend(rng.permutation(t["index_in_x"]).tolist())
        picked, streams[n][:] = streams[n][:batch], streams[n][batch:]
        return np.asarray(picked)

    keras.utils.set_random_seed(seed)
    history = {n: [] for n in names}
    current = None
    for s in range(steps):
        rate = learning_rate(settings, lr, s) * factor
        if rate != current:
            for opt in optimizers.values():
                opt.learning_rate = rate
            current = rate
        if quantum:
            active = (names[(s // quantum) % len(names)],)
        else:
            active = tuple(names)
        xs, ys = {}, {}
        for n in active:
            t = tasks[names.index(n)]
            picked = draw(n, t)
            xs[n] = x[picked]
            ys[n] = t["target_of"][picked]
        losses = step_fn(active)(xs, ys, tf.constant(s, tf.int64))
        for n in active:
            history[n].append(float(losses[n]))
    tail = {n: float(np.mean(h[-max(1, len(h) // 10):])) for n, h in history.items() if h}
    return {"train_loss": tail, "finite": bool(all(np.isfinite(v) for v in tail.values()))}


def _with_targets(tasks, size):
    """Each task with ``index_in_x`` (its samples) and ``target_of`` (a label per sample of
    ``x``; -1 outside the task) for :func:`train`."""
    out = []
    for t in tasks:
        target = np.full(size, -1, np.int64)
        target[t["index"]] = t["labels"]
        out.append(dict(t, index_in_x=t["index"], target_of=target))
    return out


def probe(features_model, data, num_classes, settings, seed):
    x_probe, y_probe = fd.protocol_split(data, "probe")
    x_test, y_test = fd.protocol_split(data, "test")
    return de.linear_probe(de.outputs(features_model, x_probe, "top"), y_probe,
                           de.outputs(features_model, x_test, "top"), y_test, num_classes,
                           settings, seed)


def head_accuracy(model, tasks, x, y):
    """Mean over tasks of each head's accuracy on the samples of ``(x, y)`` in its classes."""
    logits = model.predict(np.asarray(x, np.float32) / 255.0, batch_size=256, verbose=0)
    scores = []
    for m, t in enumerate(tasks):
        inside = np.isin(y, t["classes"])
        scores.append(de.accuracy(np.asarray(logits[f"task{m}"])[inside],
                                  np.searchsorted(t["classes"], y[inside])))
    return round(float(np.mean(scores)), 3)


# -- rates -------------------------------------------------------------------------------------

def rate(store, data, settings, family):
    """The family's learning rate (see the module docstring)."""
    lrs = store.part.setdefault("lr", {})
    if family not in lrs:
        shared = de._shared(store, "lr", family)   # pylint: disable=protected-access
        if shared:
            lrs[family] = shared
        elif family in settings["lr_given"]:
            lrs[family] = {"chosen": settings["lr_given"][family], "given": True}
        else:
            lrs[family] = _choose_rate(store, data, settings, family)
        store.save()
    return lrs[family]["chosen"]


def _choose_rate(store, data, settings, family):
    x, y = fd.protocol_split(data, "pretrain")
    n_val = int(round(len(y) * VAL_FRACTION))
    num_classes = settings["num_classes"]
    tasks = make_tasks("c4", y[:-n_val], num_classes)
    shape = tuple(x.shape[1:])
    batch = max(1, settings["batch"] // len(tasks))
    method = "sgd" if family == "single" else family
    if family == "single":   # c4's first task alone, at its share of a joint batch
        tasks = tasks[:1]

    def score(lr):
        def run():
            model, trunk = build(settings, shape, [len(t["classes"]) for t in tasks], 0,
                                 own_columns=method == "split_weights")
            record = train(model, trunk, x[:-n_val], _with_targets(tasks, len(y) - n_val),
                           method, lr, settings, 0, batch=batch)
            record.update(val_accuracy=head_accuracy(model, tasks, x[-n_val:], y[-n_val:]),
                          lr=lr)
            return record
        return store.run(f"lr/{family}/{lr!r}", run)["val_accuracy"]
    choice = de.choose(score, settings["grids"][family])
    choice["chosen_on"] = ("c4, seed 0, trained on pretrain minus its last 10%, mean head "
                           "accuracy on that 10%")
    return choice


def distill_rate(path, settings, given=None):
    """Table 4.4's student rate from ``results/distill.json`` (Deep student, D_AB^(1/4,0))."""
    if given is not None:
        return {"chosen": float(given), "given": True}
    try:
        with open(path, encoding="utf-8") as f:
            part = json.load(f)["tables"]["4.4"]
        choice = part["lr_student"]["deep_ab"]
    except (OSError, KeyError, ValueError):
        raise de.Failure(f"no Table 4.4 student rate in {path}: run tools/distill_experiments.py "
                         "--table 4.4 or pass --distill_lr") from None
    theirs = part["settings"]
    for key in ("width_divisor", "poolings", "batch"):
        if theirs[key] != settings[key]:
            raise de.Failure(f"{path}'s Table 4.4 used {key}={theirs[key]}, here "
                             f"{settings[key]}: pass --distill_lr")
    return dict(choice, source=f"{os.path.basename(path)} table 4.4 lr_student deep_ab")


# -- the tables --------------------------------------------------------------------------------

def _other_run(store, table, name):
    """Run ``name`` of another table of the file made with the same settings, or None."""
    part = store.payload.get("tables", {}).get(table)
    if part and part.get("settings") == store.part["settings"]:
        return part["runs"].get(name)
    return None


def _joint_run(store, data, settings, column, tasks, method, seed, quantum=None):
    x, y = fd.protocol_split(data, "pretrain")
    shape = tuple(x.shape[1:])
    family = FAMILY_OF["rr" if quantum else method]
    lr = rate(store, data, settings, family)

    def run():
        model, trunk = build(settings, shape, [len(t["classes"]) for t in tasks], 100 + seed,
                             own_columns=method == "split_weights")
        record = train(model, trunk, x, _with_targets(tasks, len(y)), method, lr, settings,
                       100 + seed, quantum=quantum)
        record.update(probe(keras.Model(model.input, {"top": model.output["top"]}), data,
                            settings["num_classes"], settings, seed))
        record.update(lr=lr, seed=seed, quantum=quantum)
        return record
    return run


def _single(store, data, settings, column, tasks, seed):
    """The M single-task nets (models kept) and their records."""
    x, y = fd.protocol_split(data, "pretrain")
    shape = tuple(x.shape[1:])
    lr = rate(store, data, settings, FAMILY_OF["single"])
    nets, records = [], []
    for m, task in enumerate(tasks):
        def fit(model, task=task, m=m):
            trunk = keras.Model(model.input, {"top": model.output["top"]})
            record = train(model, trunk, x, _with_targets([task], len(y)), "sgd", lr,
                           settings, 200 + 10 * seed + m,
                           batch=max(1, settings["batch"] // len(tasks)))
            record.update(probe(trunk, data, settings["num_classes"], settings, seed))
            record.update(lr=lr, seed=seed, loss=task["loss"])
            return record
        model, record = store.model(
            f"{column}/single{m}/s{seed}",
            lambda task=task, m=m: build(settings, shape, [len(task["classes"])],
                                         200 + 10 * seed + m)[0], fit)
        nets.append(keras.Model(model.input, {"top": model.output["top"]}))
        records.append(record)
    return nets, records


def table_45(store, data, settings, columns, rows=ROWS):
    x, y = fd.protocol_split(data, "pretrain")
    num_classes = settings["num_classes"]
    for column in columns:
        tasks = make_tasks(column, y, num_classes)
        store.part.setdefault("tasks", {})[column] = _describe(tasks)
        mixed = COLUMNS[column][4]
        for seed in settings["seeds"]:
            if {"single_mean", "single_max", "distill"} & set(rows):
                nets, _ = _single(store, data, settings, column, tasks, seed)
            if not mixed and "distill" in rows:
                store.run(f"{column}/distill/s{seed}", _distill_run(data, settings, nets, seed))
            if not mixed and "split_act" in rows:
                store.run(f"{column}/split_act/s{seed}",
                          _split_act_run(store, data, settings, tasks, seed))
            for method in JOINT:
                if method in rows and not (mixed and method in OFFLINE):
                    store.run(f"{column}/{method}/s{seed}",
                              _joint_run(store, data, settings, column, tasks, method, seed))
            if "full" in rows:
                store.run(f"full/s{seed}", _full_run(store, data, settings, seed))
            summarize(store, cells_45(store, settings), CONTRASTS["4.5"])
    return summarize(store, cells_45(store, settings), CONTRASTS["4.5"])


def cells_45(store, settings):
    """``{cell: {seed: test accuracy}}`` of every finished Table 4.5 run (whichever invocation
    made it); ``full`` counts in every column that has runs."""
    runs, cells = store.runs, {}
    for column, (num_tasks, *_) in COLUMNS.items():
        if not any(name.startswith(f"{column}/") for name in runs):
            continue
        for seed in settings["seeds"]:
            singles = [runs.get(f"{column}/single{m}/s{seed}") for m in range(num_tasks)]
            if all(singles):
                accs = [r["test_accuracy"] for r in singles]
                cells.setdefault(f"{column}/single_mean", {})[seed] = float(np.mean(accs))
                cells.setdefault(f"{column}/single_max", {})[seed] = float(np.max(accs))
            for row, name in [(r, f"{column}/{r}/s{seed}") for r in ("distill", "split_act")
                              + JOINT] + [("full", f"full/s{seed}")]:
                if name in runs:
                    cells.setdefault(f"{column}/{row}", {})[seed] = runs[name]["test_accuracy"]
    return cells


def _describe(tasks):
    return [{"classes": [int(c) for c in t["classes"]], "samples": int(len(t["index"])),
             "loss": t["loss"]} for t in tasks]


def _distill_run(data, settings, nets, seed):
    def run():
        x, _ = fd.protocol_split(data, "pretrain")
        tops = np.concatenate([de.outputs(n, x, "top") for n in nets], axis=1)
        width = tops.shape[1] // len(nets)
        subset = np.sort(np.random.default_rng(seed).choice(tops.shape[1], width, replace=False))
        target = tops[:, subset]
        student = de.net("deep", settings["num_classes"], settings, tuple(x.shape[1:]),
                         500 + seed)
        lr = settings["distill_lr"]["chosen"]
        loss = de.fit_distill(student, x, target, "top", de.distill_loss("ab", target), lr,
                              settings["student_epochs"], settings["batch"], 500 + seed)
        record = {"train_loss": loss, "lr": lr, "seed": seed, "subset_size": int(width),
                  "teacher_features": int(tops.shape[1])}
        record.update(probe(student, data, settings["num_classes"], settings, seed))
        return record
    return run


def _split_act_run(store, data, settings, tasks, seed):
    x, y = fd.protocol_split(data, "pretrain")
    lr = rate(store, data, settings, FAMILY_OF["split_act"])

    def run():
        columns, losses = [], []
        for m, task in enumerate(tasks):
            model, trunk = build(settings, tuple(x.shape[1:]), [len(task["classes"])],
                                 300 + 10 * seed + m,
                                 width_divisor=settings["width_divisor"] * len(tasks))
            losses.append(train(model, trunk, x, _with_targets([task], len(y)), "sgd", lr,
                                settings, 300 + 10 * seed + m,
                                batch=max(1, settings["batch"] // len(tasks)))["train_loss"])
            columns.append(trunk)
        combined = split.concatenate_columns(columns)
        record = {"train_loss": losses, "lr": lr, "seed": seed,
                  "top_size": int(combined.output["top"].shape[-1])}
        record.update(probe(combined, data, settings["num_classes"], settings, seed))
        return record
    return run


def _full_run(store, data, settings, seed):
    x, y = fd.protocol_split(data, "pretrain")
    lr = rate(store, data, settings, FAMILY_OF["full"])
    task = {"index": np.arange(len(y)), "classes": np.arange(settings["num_classes"]),
            "labels": y, "loss": "softmax"}

    def run():
        model, trunk = build(settings, tuple(x.shape[1:]), [settings["num_classes"]], 400 + seed)
        record = train(model, trunk, x, _with_targets([task], len(y)), "sgd", lr, settings,
                       400 + seed, batch=settings["batch"])
        record.update(probe(trunk, data, settings["num_classes"], settings, seed))
        record.update(lr=lr, seed=seed)
        return record
    return run


def table_46(store, data, settings, columns):
    _, y = fd.protocol_split(data, "pretrain")
    for column in columns:
        tasks = make_tasks(column, y, settings["num_classes"])
        store.part.setdefault("tasks", {})[column] = _describe(tasks)
        for seed in settings["seeds"]:
            name = f"{column}/normsgd/s{seed}"
            if _other_run(store, "4.5", name) is None:
                store.run(name, _joint_run(store, data, settings, column, tasks, "normsgd",
                                           seed))
            for row, fraction in QUANTA.items():
                quantum = max(1, int(round(fraction * settings["steps"])))
                store.run(f"{column}/{row}/s{seed}", _joint_run(
                    store, data, settings, column, tasks, "normsgd", seed, quantum=quantum))
            summarize(store, cells_46(store, settings), CONTRASTS["4.6"])
    return summarize(store, cells_46(store, settings), CONTRASTS["4.6"])


def cells_46(store, settings):
    """The cells of every finished Table 4.6 run; ``joint`` is Table 4.5's NormSGD run when
    that part (same settings) holds it."""
    cells = {}
    for column in COLUMNS:
        for seed in settings["seeds"]:
            if not any(f"{column}/{row}/s{seed}" in store.runs for row in QUANTA):
                continue
            name = f"{column}/normsgd/s{seed}"
            joint = _other_run(store, "4.5", name) or store.runs.get(name)
            for row, rec in [("joint", joint)] + [(r, store.runs.get(f"{column}/{r}/s{seed}"))
                                                   for r in QUANTA]:
                if rec:
                    cells.setdefault(f"{column}/{row}", {})[seed] = rec["test_accuracy"]
    return cells


# -- statistics --------------------------------------------------------------------------------

def contrasts(cells, planned):
    """The planned paired differences: ``{name: cell of the differences + seeds, p, p_holm}``
    (Holm over the contrasts with at least two paired seeds)."""
    out = {}
    for name, a, b in planned:
        seeds = sorted(set(cells.get(a, {})) & set(cells.get(b, {})))
        diffs = [cells[a][s] - cells[b][s] for s in seeds]
        out[name] = dict(de.cell(diffs), seeds=seeds)
        if len(diffs) >= 2:
            out[name]["p"] = round(t_test_p(diffs), 4)
    tested = [n for n in out if "p" in out[n]]
    for name, p in zip(tested, holm([out[n]["p"] for n in tested])):
        out[name]["p_holm"] = round(p, 4)
    return out


def summarize(store, cells, planned):
    summary = {"cells": {k: de.cell([v[s] for s in sorted(v)]) for k, v in cells.items()},
               "contrasts": contrasts(cells, planned), "paper": PAPER[store.table]}
    store.part["summary"] = summary
    store.part["contrasts_planned"] = [list(c) for c in planned]
    store.save()
    return summary


# -- command line ------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--columns", default="c4,c6",
                   help=f"Table 4.5's columns to run, in order ({', '.join(COLUMNS)})")
    p.add_argument("--rows", default=",".join(ROWS),
                   help="Table 4.5's rows to run (default all; the table shows every finished run)")
    p.add_argument("--data", default=de.DEFAULT_DATA, help="fmnist_digits20.npz (or its directory)")
    p.add_argument("--output", default=str(RESULTS))
    p.add_argument("--work_dir", default=str(ROOT / "runs" / "multitask_cifar_experiments"))
    p.add_argument("--distill_results", default=str(DISTILL_RESULTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--width_divisor", type=int, default=4)
    p.add_argument("--poolings", type=int, default=3)
    p.add_argument("--batch", type=int, default=128, help="the total batch of a joint step")
    p.add_argument("--steps", type=int, default=200, help="iterations of every trained net")
    p.add_argument("--warmup", type=float, default=0.05, help="warm-up, a fraction of --steps")
    p.add_argument("--student_epochs", type=int, default=4)
    p.add_argument("--probe_epochs", type=int, default=30)
    p.add_argument("--probe_grid", default="1e-3,3e-3,1e-2")
    for family in FAMILIES:
        p.add_argument(f"--{family}_grid", default=DEFAULT_GRIDS[family])
    p.add_argument("--lr", default="", help="family=rate,... fixed rates (no grid)")
    p.add_argument("--distill_lr", type=float, default=None,
                   help="the student's rate (default: Table 4.4's in --distill_results)")
    p.add_argument("--fresh", action="store_true", help="discard this table's earlier runs")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds must be >= 2 (intervals over seeds)")
    if args.steps < 4 or not 0 <= args.warmup < 0.5:
        p.error("need --steps >= 4 and 0 <= --warmup < 0.5 (before the first drop)")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    de.one_core()
    columns = [c for c in args.columns.split(",") if c]
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown or not columns:
        raise de.Failure(f"unknown columns {unknown}; known: {', '.join(COLUMNS)}")
    rows = [r for r in args.rows.split(",") if r]
    if sorted(set(rows) - set(ROWS)) or not rows:
        raise de.Failure(f"unknown rows {sorted(set(rows) - set(ROWS))}; known: {', '.join(ROWS)}")
    try:
        data = fd.load(args.data)
        grids = {f: [float(v) for v in getattr(args, f"{f}_grid").split(",")] for f in FAMILIES}
        probe_grid = [float(v) for v in args.probe_grid.split(",")]
        given = {}
        for item in filter(None, args.lr.split(",")):
            family, value = item.split("=")
            if family not in FAMILIES:
                raise ValueError(f"--lr: unknown family {family!r}; known: {', '.join(FAMILIES)}")
            given[family] = float(value)
    except (OSError, ValueError) as e:
        raise de.Failure(str(e).splitlines()[0]) from None
    settings = {"seeds": list(range(args.seeds)), "width_divisor": args.width_divisor,
                "poolings": args.poolings, "batch": args.batch, "steps": args.steps,
                "warmup": args.warmup, "lr_drops": [0.5, 0.75], "momentum": MOMENTUM,
                "normsgd_ema": NORMSGD_EMA, "student_epochs": args.student_epochs,
                "probe_epochs": args.probe_epochs, "probe_grid": probe_grid, "grids": grids,
                "lr_given": given, "data": os.path.basename(args.data),
                "train_size": int(len(data["y_train"])), "test_size": int(len(data["y_test"])),
                "num_classes": int(max(data["y_train"].max(), data["y_test"].max()) + 1)}
    if args.table == "4.5":
        settings["distill_lr"] = distill_rate(args.distill_results, settings, args.distill_lr)
    else:   # the same settings as Table 4.5's, so its rates and joint runs are reused
        settings["distill_lr"] = _table_45_distill_lr(args, settings)
    command = "python tools/multitask_cifar_experiments.py " + " ".join(argv)
    store = de.Store(args.output, args.table, settings, command, args.work_dir, fresh=args.fresh)
    start = time.time()
    if args.table == "4.5":
        summary = table_45(store, data, settings, columns, rows)
    else:
        summary = table_46(store, data, settings, columns)
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(f"table {args.table}: {store.computed} runs computed, "
          f"{len(store.runs) - store.computed} reused, {time.time() - start:.0f} s")
    return store


def _table_45_distill_lr(args, settings):
    try:
        return distill_rate(args.distill_results, settings, args.distill_lr)
    except de.Failure:
        return None   # Table 4.6 trains no student


if __name__ == "__main__":
    try:
        main()
    except de.Failure as e:
        sys.exit(f"multitask_cifar_experiments: {e}")
