#!/usr/bin/env python3
"""Collects a linear-probe grid (binaries/finetune results.json files) into one results file.

    python tools/collect_linear_probe.py --grid=/work/exp/probe_pilot/grid \
        --out=results/linear_probe_debphoto15.json

The grid folder holds ``INIT_lrLR/results.json`` for every initialisation and learning rate
(``INIT`` ``random`` or ``colorization_sK`` for pretraining seed K). For each initialisation the
learning rate with the best mean *validation* score (``best_val``, the set's own val split) is
chosen; its test scores over the fine-tuning seeds are reported, with the paired difference
colorization - random per fine-tuning seed (both pretraining seeds pooled: 2 x 5 pairs) and a
95% t-interval and percentile bootstrap interval of the mean difference
(``tfcolor.downstream.comparison``); and, since those pairs
share the random runs, the same over the 5 fine-tuning seeds with the colorization score averaged
over the pretraining seeds (the conservative interval).
"""
import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.downstream import comparison  # noqa: E402  pylint: disable=wrong-import-position


def collect(grid):
    table = {}
    for path in sorted(glob.glob(os.path.join(grid, "*_lr*", "results.json"))):
        name, lr = re.match(r"(.+)_lr([0-9.e-]+)$", os.path.basename(os.path.dirname(path))).groups()
        with open(path, encoding="utf-8") as f:
            table.setdefault(name, {})[lr] = comparison.grid_cell(json.load(f))
    chosen = comparison.choose_learning_rates(table)
    colour = sorted(n for n in chosen if n.startswith("colorization"))
    d = comparison.paired_difference(chosen, colour, ["random"])

    def old_keys(s):
        return {"n": s["n"], "mean": s["mean"], "t_interval_95": s["t_interval"],
                "bootstrap_95": s["bootstrap"], "fraction_improved": s["fraction_improved"],
                "values": s["values"]}

    # The 2 x 5 pairs share the random runs, so they are not independent: the conservative
    # interval averages the pretraining seeds per fine-tuning seed (5 pairs).
    return {"grid": table, "chosen": chosen,
            "paired_averaged_over_pretraining_seeds": old_keys(d),
            "paired_colorization_minus_random": old_keys(d["pooled"])}


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
