#!/usr/bin/env python3
"""Collects a linear-probe grid (binaries/finetune results.json files) into one results file.

    python tools/collect_linear_probe.py --grid=/work/exp/probe_pilot/grid \
        --out=results/linear_probe_debphoto15.json

The grid folder holds ``INIT_lrLR/results.json`` for every initialisation and learning rate
(``INIT`` ``random`` or ``colorization_sK`` for pretraining seed K). For each initialisation the
learning rate with the best mean *validation* score (``best_val``, the set's own val split) is
chosen; its test scores over the fine-tuning seeds are reported, with the paired difference
colorization - random per fine-tuning seed (both pretraining seeds pooled: 2 x 5 pairs) and a
95% t-interval and percentile bootstrap interval of the mean difference; and, since those pairs
share the random runs, the same over the 5 fine-tuning seeds with the colorization score averaged
over the pretraining seeds (the conservative interval).
"""
import argparse
import glob
import json
import os
import re

import numpy as np


def _t_interval(d):
    from scipy import stats  # pylint: disable=import-outside-toplevel
    m, se = float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(len(d)))
    t = float(stats.t.ppf(0.975, len(d) - 1))
    return [m - t * se, m + t * se]


def _bootstrap(d, resamples=10000, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.choice(d, size=(resamples, len(d)), replace=True).mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def collect(grid):
    table = {}
    for path in sorted(glob.glob(os.path.join(grid, "*_lr*", "results.json"))):
        name, lr = re.match(r"(.+)_lr([0-9.e-]+)$", os.path.basename(os.path.dirname(path))).groups()
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        runs = {int(x["seed"]): x for x in r["runs"]}
        table.setdefault(name, {})[lr] = {
            "val": {s: float(x["best_val"]) for s, x in runs.items()},
            "test": {s: float(x["test"][r["metric"]]) for s, x in runs.items()},
            "stop_step": {s: int(x["stop_step"]) for s, x in runs.items()}}
    chosen = {}
    for name, by_lr in table.items():
        lr = max(by_lr, key=lambda k: np.mean(list(by_lr[k]["val"].values())))
        test = by_lr[lr]["test"]
        chosen[name] = {"learning_rate": float(lr), "test_mean": float(np.mean(list(test.values()))),
                        "test_std": float(np.std(list(test.values()), ddof=1)),
                        "val_mean": float(np.mean(list(by_lr[lr]["val"].values()))),
                        "test": test}
    diffs = []
    for name in chosen:
        if name.startswith("colorization"):
            for seed, value in chosen[name]["test"].items():
                diffs.append(value - chosen["random"]["test"][seed])
    diffs = np.array(diffs)
    # The 2 x 5 pairs share the random runs, so they are not independent: the conservative
    # interval averages the pretraining seeds per fine-tuning seed (5 pairs).
    colour = [n for n in chosen if n.startswith("colorization")]
    seeds = sorted(chosen["random"]["test"], key=int)
    averaged = np.array([np.mean([chosen[n]["test"][s] for n in colour])
                         - chosen["random"]["test"][s] for s in seeds])
    return {"grid": table, "chosen": chosen,
            "paired_averaged_over_pretraining_seeds": {
                "n": int(len(averaged)), "mean": float(averaged.mean()),
                "t_interval_95": _t_interval(averaged), "bootstrap_95": _bootstrap(averaged),
                "fraction_improved": float(np.mean(averaged > 0)),
                "values": averaged.tolist()},
            "paired_colorization_minus_random": {
                "n": int(len(diffs)), "mean": float(diffs.mean()),
                "t_interval_95": _t_interval(diffs), "bootstrap_95": _bootstrap(diffs),
                "fraction_improved": float(np.mean(diffs > 0)), "values": diffs.tolist()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--description", default="")
    args = parser.parse_args(argv)
    out = collect(args.grid)
    out["description"] = args.description
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out["chosen"], indent=1), json.dumps(out["paired_colorization_minus_random"]))


if __name__ == "__main__":
    main()
