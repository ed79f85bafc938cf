#!/usr/bin/env python3
"""The multi-task experiments of the method's last chapter at CPU scale, resumable.

    python tools/multitask_experiments.py --corpus ~/.cache/tfcolor-corpus \
        --output_dir runs/multitask_experiments            # writes results/multitask.json
    python tools/results_tables.py                          # the README's multi-task tables

Colorization (C) and jigsaw (J) on one ``vgg_tiny`` trunk (3-channel: RGB-encoded grey for C,
colour for J) on the corpus's train photos (``binaries/build_corpus``), 1,000 steps, 4 images per
task per step (the thesis: 4 per task jointly, 8 alone), warm-up 50 steps, drops x0.1 at 50% and
80%. Every stage reuses what a previous invocation finished:

1. **grid**: the learning rate of joint SGD (``sum``) and of NormSGD, each from its own grid,
   chosen on the colorizer's held-out loss on the ``val`` photos after 400 steps (seed 0). The
   choice must be inside its grid (not at an edge), or the stage fails and says so.
2. **runs** (each pretraining seed):
   - ``C`` (colorization alone, grey trunk: the chapter 2-3 network), ``J`` (jigsaw alone);
   - ``CJ_sum`` and ``CJ_normsgd``: the uneven-gradients comparison of Fig. 4.4 (per-task
     gradient norms ``||g_m||_1 / P`` over the run, from ``train.jsonl``);
   - ``CJx100_sum`` and ``CJx100_normsgd``: the "contrived" case, jigsaw's loss x100
     (``multitask.loss_scales``): joint SGD follows the scaled task, NormSGD's update does not
     change (so its run equals ``CJ_normsgd`` up to float rounding, a check of the claim);
   - ``CJ_rr_q5`` and ``CJ_rr_q50``: round-robin NormSGD with quanta of 5 and 50 of 1,000
     steps, the thesis' 1,000 and 10,000 of 200,000 in proportion (Table 4.6 analogue; the joint
     reference is ``CJ_normsgd``).
3. **filters**: the first-layer filters of C, J, C+J (SGD) and C+J (NormSGD) as one image
   (Fig. 4.6; ``vgg_tiny``'s conv1_1 has 8 3x3 filters: a small picture of the same question,
   whose filters look like which task's).
4. **downstream**: a linear probe (frozen trunk) on the corpus's labelled set (``debphoto15``)
   for random and every C+J trunk, at the one learning rate 1.0 (random's and a colorization
   seed's choice in the reproduction's grid; with one rate nothing is chosen on val), several
   probe seeds (:func:`tfcolor.reproduce.runner.downstream_cell`). C and J are fine-tuned in the
   Table 4.7 run (``configs/reproduce_multitask.flags``).
5. **report**: ``results/multitask.json`` (commands, seeds, times, grids and choices, gradient
   curves, final losses, held-out losses, the downstream table with paired differences).

What varies independently here is the pretraining seed (the unit of analysis for pretrained
comparisons) and, downstream, the probe seed; with few pretraining seeds the intervals cover
probe-seed variation only, and the report says so.
"""
import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tools"))
import results_io  # noqa: E402
from tfcolor import config as cfg  # noqa: E402
from tfcolor.reproduce import corpus as corpus_lib  # noqa: E402

RESULTS = ROOT / "results" / "multitask.json"
FILTERS_PNG = ROOT / "results" / "multitask_filters.png"

STEPS = 1000
GRID_STEPS = 400
WARMUP = 50
BATCH_JOINT = 4
BATCH_ALONE = 8
SUM_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
NORMSGD_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
PROBE_RATES = (1.0,)
#: name -> (tasks, gradient rule, schedule, quantum, loss scales)
RUNS = {
    "C": (("colorization",), "sum", "joint", None, {}),
    "J": (("jigsaw",), "sum", "joint", None, {}),
    "CJ_sum": (("colorization", "jigsaw"), "sum", "joint", None, {}),
    "CJ_normsgd": (("colorization", "jigsaw"), "normsgd", "joint", None, {}),
    "CJx100_sum": (("colorization", "jigsaw"), "sum", "joint", None, {"jigsaw": 100.0}),
    "CJx100_normsgd": (("colorization", "jigsaw"), "normsgd", "joint", None, {"jigsaw": 100.0}),
    "CJ_rr_q5": (("colorization", "jigsaw"), "normsgd", "round_robin", 5, {}),
    "CJ_rr_q50": (("colorization", "jigsaw"), "normsgd", "round_robin", 50, {}),
}
FILTER_RUNS = ("C", "J", "CJ_sum", "CJ_normsgd")
#: The paired comparisons of the report (named before running; the first two are the ones the
#: chapter's claim is about).
COMPARISONS = (("CJ_normsgd", "CJ_sum"), ("CJx100_normsgd", "CJx100_sum"),
               ("CJx100_sum", "CJ_sum"), ("CJx100_normsgd", "CJ_normsgd"),
               ("CJ_rr_q5", "CJ_normsgd"), ("CJ_rr_q50", "CJ_normsgd"),
               ("CJ_normsgd", "random"), ("CJ_sum", "random"))
#: Probed in this order (the comparisons that matter first).
PROBE_RUNS = ("CJ_normsgd", "CJ_sum", "CJx100_normsgd", "CJx100_sum", "CJ_rr_q5", "CJ_rr_q50")


_read, _write = results_io.read_json, results_io.write_json


def pretrain_config(name, seed, learning_rate, folders, model_dir, steps=STEPS):
    """The :class:`tfcolor.config.PretrainConfig` of run ``name``."""
    tasks, rule, schedule, quantum, scales = RUNS[name]
    joint = len(tasks) > 1 and schedule == "joint"
    batch = BATCH_JOINT if joint else BATCH_ALONE
    side = {"crop_size": 128, "min_side": 128, "max_side": 160, "batch_size": batch}
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=None, hidden=64, dropout=0.5),
        data=cfg.DataConfig(data=folders["train"], batch_size=batch, crop_size=128, points=64,
                            heldout_data=folders["val"], heldout_images=14,
                            validation_images=0),
        optimizer=cfg.OptimizerConfig(learning_rate=learning_rate, lr_drops=(0.5, 0.8),
                                      weight_decay=5e-4, warmup_steps=WARMUP),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=steps, steps_per_loop=10,
                              checkpoint_every=steps // 2, keep_checkpoints=1,
                              summary_every=10, image_every=0, seed=seed, export=False,
                              eval_every=100),
        multitask=cfg.MultiTaskConfig(
            tasks=tasks, gradient_rule=rule, schedule=schedule, quantum=quantum or 1000,
            loss_scales=dict(scales),
            task_data={"jigsaw": dict(side)} if "jigsaw" in tasks else {},
            task_options={"jigsaw": {"piece_size": 56}} if "jigsaw" in tasks else {}))


def _train_log(model_dir):
    rows = {}
    path = os.path.join(model_dir, "train.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


def pretrain(name, seed, learning_rate, folders, out, steps=STEPS, tag="runs"):
    """Trains (or reuses) one run; returns its record."""
    from tfcolor.train import heldout, pretraining  # pylint: disable=import-outside-toplevel
    model_dir = os.path.join(out, tag, f"{name}_s{seed}" + (
        f"_lr{learning_rate:g}" if tag == "grid" else ""))
    done = os.path.join(model_dir, "done.json")
    if os.path.exists(done):
        return dict(_read(done), model_dir=model_dir)
    config = pretrain_config(name, seed, learning_rate, folders, model_dir, steps)
    start = time.perf_counter()
    result = pretraining.pretrain(config)
    if result.stopped != "completed":
        raise SystemExit(f"{model_dir} stopped early ({result.stopped}): rerun to resume")
    log = _train_log(model_dir)
    curve = [[int(s), float(v)] for s, v, _ in heldout.read_curve(model_dir)]
    record = {
        "name": name, "seed": seed, "learning_rate": learning_rate, "steps": steps,
        "seconds": time.perf_counter() - start, "heldout_curve": curve,
        "final_heldout": curve[-1][1] if curve else None,
        "final_losses": {k: float(v) for k, v in result.train.losses.items()},
        "gradient_curves": {
            key: [[r["step"], r[key]] for r in log if key in r]
            for key in sorted({k for r in log for k in r if k.startswith("grad/")})},
        "loss_curves": {
            key: [[r["step"], r[key]] for r in log if key in r]
            for key in sorted({k for r in log for k in r if k.startswith("loss/")
                               and k.count("/") == 1})},
    }
    _write(done, record)
    return dict(record, model_dir=model_dir)


def choose(records, grid):
    """The rate with the lowest final held-out loss; refuses a choice at the grid's edge."""
    scored = sorted((r["final_heldout"], r["learning_rate"]) for r in records
                    if r["final_heldout"] is not None and np.isfinite(r["final_heldout"]))
    if not scored:
        raise SystemExit("no grid run has a finite held-out loss")
    best = scored[0][1]
    if best in (min(grid), max(grid)):
        raise SystemExit(f"the chosen rate {best:g} is at the edge of the grid {grid}: "
                         "extend the grid")
    return best


def filters_image(runs, path):
    """First-layer filters of ``runs`` ({name: model_dir}), one row each, each set scaled
    symmetrically on its own so that mid-grey is 0 (Fig. 4.6's convention)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor import run_dir  # pylint: disable=import-outside-toplevel
    from tfcolor.train import summaries  # pylint: disable=import-outside-toplevel
    rows = []
    for name, model_dir in runs.items():
        config = run_dir.read_config(model_dir)
        if config.multitask.single_colorization:
            model, _ = run_dir.load_model(model_dir)
            trunk = model.trunk
        else:
            trunk = run_dir.load_shared_trunk(model_dir)[0].model
        conv = next(l for l in trunk.layers if isinstance(l, tf.keras.layers.Conv2D)
                    or type(l).__name__ == "Conv2D")
        kernel = np.asarray(conv.kernel)            # (kh, kw, cin, cout)
        if kernel.shape[2] == 1:
            kernel = np.repeat(kernel, 3, axis=2)
        kernel = kernel / (2 * np.abs(kernel).max() + 1e-12) + 0.5
        kh, kw, _, cout = kernel.shape
        scale = 8
        tiles = [np.kron(kernel[..., i], np.ones((scale, scale, 1))) for i in range(cout)]
        pad = np.ones((kh * scale, 2, 3))
        rows.append(np.concatenate([x for t in tiles for x in (t, pad)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0)
            for r in rows]
    return summaries.write_png(np.clip(np.concatenate(rows, axis=0), 0, 1), str(path))


def downstream(records, out, corpus, probe_seeds, finished_only=False):
    """Linear-probe cells for random and each run's trunk; returns (cells, chosen). With
    ``finished_only`` nothing is trained: initialisations with a missing cell are left out."""
    from tfcolor.reproduce import config as rconfig  # pylint: disable=import-outside-toplevel
    from tfcolor.reproduce import runner  # pylint: disable=import-outside-toplevel
    rc = rconfig.ReproduceConfig(corpus=corpus, output_dir=out, finetune_seeds=probe_seeds,
                                 protocols=("linear_probe",), probe_learning_rates=PROBE_RATES,
                                 taps=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                       "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3",
                                       "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"))
    data = runner._labeled(rc)  # pylint: disable=protected-access
    inits = {"random": "random"}
    order = {name: i for i, name in enumerate(PROBE_RUNS)}
    for r in sorted(records, key=lambda r: (order[r["name"]], r["seed"])):
        inits[f"{r['name']}_s{r['seed']}"] = r["model_dir"]
    from tfcolor.downstream import comparison  # pylint: disable=import-outside-toplevel
    deepest = rc.taps[-1]   # every classifier pools the same layer (the runner's convention)
    cells = {}
    for init, value in inits.items():
        paths = [os.path.join(out, "downstream", "linear_probe", init, f"lr{rate:g}",
                              runner.RESULTS_FILE) for rate in PROBE_RATES]
        if finished_only and not all(os.path.exists(p) for p in paths):
            continue
        cells[init] = {rate: runner.downstream_cell(
            rc, "linear_probe", init, value, rate, data,
            feature_tap=None if value == "random" else deepest) for rate in PROBE_RATES}
    grid = {init: {f"{lr:g}": comparison.grid_cell(r) for lr, r in by_lr.items()}
            for init, by_lr in cells.items()}
    return cells, grid, comparison.choose_learning_rates(grid)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=os.path.expanduser("~/.cache/tfcolor-corpus"))
    parser.add_argument("--output_dir", default="runs/multitask_experiments")
    parser.add_argument("--seeds", default="0", help="pretraining seeds, comma-separated")
    parser.add_argument("--probe_seeds", default="0,1,2")
    parser.add_argument("--stages", default="grid,runs,filters,downstream,report")
    parser.add_argument("--runs", default=",".join(RUNS))
    args = parser.parse_args(argv)
    stages = set(args.stages.split(","))
    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    folders = corpus_lib.split_folders(args.corpus, os.path.join(out, "photos"))
    seeds = [int(s) for s in args.seeds.split(",")]
    probe_seeds = tuple(int(s) for s in args.probe_seeds.split(","))
    names = [n for n in args.runs.split(",") if n]
    started = time.time()

    grid = {"sum": [], "normsgd": []}
    rates = {}
    if stages & {"grid", "runs", "filters", "downstream", "report"}:
        for rule, values in (("sum", SUM_GRID), ("normsgd", NORMSGD_GRID)):
            name = "CJ_sum" if rule == "sum" else "CJ_normsgd"
            for lr in values:
                grid[rule].append(pretrain(name, 0, lr, folders, out, GRID_STEPS, tag="grid"))
            if "grid" not in stages and not grid[rule]:
                continue
            rates[rule] = choose(grid[rule], values)
        print("chosen rates:", rates, flush=True)
    records = []
    if stages & {"runs", "filters", "downstream", "report"}:
        for seed in seeds:
            for name in names:
                rule = RUNS[name][1]
                done = os.path.join(out, "runs", f"{name}_s{seed}", "done.json")
                if "runs" not in stages and not os.path.exists(done):
                    continue   # a report of what is finished
                records.append(pretrain(name, seed, rates[rule], folders, out))
                print(f"{name} seed {seed}: {records[-1]['seconds']:.0f} s, held-out "
                      f"{records[-1]['final_heldout']}", flush=True)
    png = None
    if stages & {"filters", "report"}:
        dirs = {r["name"]: r["model_dir"] for r in records
                if r["seed"] == seeds[0] and r["name"] in FILTER_RUNS}
        if len(dirs) == len(FILTER_RUNS):
            png = filters_image({n: dirs[n] for n in FILTER_RUNS}, FILTERS_PNG)
    cells, grid_cells, chosen = {}, {}, {}
    if stages & {"downstream", "report"}:
        probed = [r for r in records if r["name"] in PROBE_RUNS]
        cells, grid_cells, chosen = downstream(probed, out, args.corpus, probe_seeds,
                                               finished_only="downstream" not in stages)
    if "report" in stages:
        from tfcolor.downstream import comparison  # pylint: disable=import-outside-toplevel
        comparisons = {}
        for a, b in COMPARISONS:
            left = [f"{a}_s{seed}" for seed in seeds if f"{a}_s{seed}" in chosen]
            right = (["random"] if b == "random" else
                     [f"{b}_s{seed}" for seed in seeds if f"{b}_s{seed}" in chosen])
            if left and all(r in chosen for r in right) and right:
                comparisons[f"{a} - {b}"] = comparison.paired_difference(chosen, left, right)
        payload = {
            # The command that runs everything (a later --stages report only rewrites this file).
            "command": ["python", "tools/multitask_experiments.py",
                        "--corpus", args.corpus.replace(os.path.expanduser("~"), "~"),
                        "--output_dir", "runs/multitask_experiments",
                        "--seeds", args.seeds, "--probe_seeds", args.probe_seeds],
            "seeds": seeds, "probe_seeds": list(probe_seeds),
            "recipe": {"arch": "vgg_tiny", "steps": STEPS, "warmup": WARMUP,
                       "batch_joint": BATCH_JOINT, "batch_alone": BATCH_ALONE,
                       "grid_steps": GRID_STEPS, "lr_drops": [0.5, 0.8],
                       "colorization_crop": 128, "jigsaw_source": 128, "jigsaw_piece": 56},
            "grids": {rule: [{"learning_rate": r["learning_rate"],
                              "final_heldout": r["final_heldout"],
                              "final_losses": r["final_losses"]} for r in grid[rule]]
                      for rule in grid},
            "chosen_rates": rates,
            "runs": [{k: v for k, v in r.items() if k != "model_dir"} for r in records],
            "filters_png": os.path.relpath(png, ROOT) if png else None,
            "downstream": {
                "protocol": "linear_probe", "labeled_set": "debphoto15",
                "rates": list(PROBE_RATES),
                "grid": grid_cells, "chosen": chosen,
                "comparisons": comparisons,
                "intervals_cover": ("probe seeds only (one pretraining seed per run)"
                                    if len(seeds) == 1 else
                                    "probe seeds, per pretraining seed")},
            "compute_seconds": {
                "grid": sum(r["seconds"] for g in grid.values() for r in g),
                "runs": sum(r["seconds"] for r in records),
                "downstream": sum(c.get("seconds", 0.0) for cs in cells.values()
                                  for c in cs.values())},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "platform": platform.platform()},
            "invocation_seconds": time.time() - started,
        }
        RESULTS.parent.mkdir(exist_ok=True)
        _write(RESULTS, payload)
        print(f"wrote {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
