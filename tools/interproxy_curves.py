#!/usr/bin/env python3
"""Inter-proxy training curves (the method's Fig. 4.7) at CPU scale, resumable.

    binaries/reproduce --flagfile=configs/reproduce_multitask.flags \
        --output_dir=runs/reproduce_multitask           # the source trunks (C, J, V, C+J+V)
    python tools/interproxy_curves.py --sources runs/reproduce_multitask/pretrain \
        --output_dir runs/interproxy                     # writes results/interproxy.json
    python tools/results_tables.py                      # the docs table

It writes ``results/interproxy.json`` and the curves, ``results/interproxy_curves.png``.

Each *target* proxy task (colorization C, jigsaw J, video V) is trained for a few hundred steps
from each *initialisation*: a fresh trunk (``random``) and the trunks the other single tasks and
the joint C+J+V run (NormSGD) trained (``runs/reproduce_multitask/pretrain/<arm>_s0``), either
end to end (``ft``, the figure's "(ft)") or with the trunk fixed and only the task layers
trained (``fixed``; ``--train_trunk=false``). Every run of one target uses that target's
pretraining recipe (its ``config.json`` in the sources: data, crops, batch, heads) with one
optimizer for all: Adam (``gradient_rule=separate``; the thesis does not say which optimizer
its curves used, and the tasks' gradients differ by orders of magnitude, which Adam's step is
invariant to, as NormSGD's is, while NormSGD needs a trunk to normalise over) at
``--learning_rate``, no warm-up, no drops, the same seeds, so the runs of one target see the
same data in the same order (the figure's "sample randomisation switched off").

The measure: each run's training loss curve (``train.jsonl``, every ``--log_every`` steps) and
its mean over the last ``--tail`` steps; the comparisons named before the run are each
initialisation's tail loss minus ``random``'s with the same mode and seed (negative: the other
task's trunk helps), each with a t-interval and a two-sided t-test whose p-values are
Holm-adjusted over the whole family. Seeds (``--seeds``) vary the target run's head initialisation and data order
over one source trunk per task, so an interval covers that, not the variation of pretraining.
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
from tfcolor import paired_statistics  # noqa: E402
from tfcolor import run_dir  # noqa: E402

RESULTS = ROOT / "results" / "interproxy.json"
CURVES_PNG = ROOT / "results" / "interproxy_curves.png"
#: Short names of the figure -> the source arm of the multi-task reproduction.
SOURCES = {"C": "colorization", "J": "jigsaw", "V": "video", "CJV": "cjv"}
TASKS = {"C": "colorization", "J": "jigsaw", "V": "video"}


_read, _write = results_io.read_json, results_io.write_json


def target_config(sources, target, init, mode, seed, model_dir, args):
    """The :class:`tfcolor.config.PretrainConfig` of one curve: ``target``'s recipe from its
    source run, started from ``init`` (a key of :data:`SOURCES` or ``"random"``)."""
    recipe = run_dir.read_config(os.path.join(sources, f"{SOURCES[target]}_s0"))
    task = TASKS[target]
    task_data = {k: v for k, v in recipe.multitask.task_data.items() if k == task}
    task_options = {k: v for k, v in recipe.multitask.task_options.items() if k == task}
    init_dir = "" if init == "random" else os.path.join(sources, f"{SOURCES[init]}_s0")
    return dataclasses.replace(
        recipe,
        data=dataclasses.replace(recipe.data, heldout_data=None, validation_images=0),
        optimizer=dataclasses.replace(recipe.optimizer, learning_rate=args.learning_rate,
                                      lr_drops=(), warmup_steps=0),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=args.steps,
                              steps_per_loop=args.log_every, checkpoint_every=args.steps,
                              keep_checkpoints=1, summary_every=args.log_every, image_every=0,
                              seed=seed, export=False),
        multitask=cfg.MultiTaskConfig(
            tasks=(task,), gradient_rule="separate", separate_optimizer="adam",
            task_data=task_data, task_options=task_options,
            input_channels=3, init=init_dir, train_trunk=(mode == "ft")))


def _loss_curve(model_dir, task):
    rows = {}
    with open(os.path.join(model_dir, "train.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if f"loss/{task}" in row:
                rows[row["step"]] = row[f"loss/{task}"]
    return [[s, float(rows[s])] for s in sorted(rows)]


def run_one(sources, target, init, mode, seed, out, args):
    """Trains (or reuses) one curve; returns its record."""
    from tfcolor.train import pretraining  # pylint: disable=import-outside-toplevel
    name = f"{target}_from_{init}_{mode}_s{seed}"
    model_dir = os.path.join(out, name)
    done = os.path.join(model_dir, "done.json")
    if os.path.exists(done):
        return _read(done)
    config = target_config(sources, target, init, mode, seed, model_dir, args)
    start = time.perf_counter()
    result = pretraining.pretrain(config, export=False)
    if result.stopped != "completed":
        raise SystemExit(f"{model_dir} stopped early ({result.stopped}): rerun to resume")
    curve = _loss_curve(model_dir, TASKS[target])
    tail = [v for s, v in curve if s > args.steps - args.tail]
    record = {"target": target, "init": init, "mode": mode, "seed": seed,
              "seconds": time.perf_counter() - start, "curve": curve,
              "tail_loss": float(np.mean(tail)), "first_loss": curve[0][1]}
    _write(done, record)
    return record


def summarize(records, targets, inits, modes, target_seeds):
    """Tail losses and the differences to ``random`` (same target, mode and seed) over the
    seeds ``target_seeds[target]``."""
    table = []
    by_key = {(r["target"], r["init"], r["mode"], r["seed"]): r for r in records}
    for target in targets:
        seeds = target_seeds[target]
        for mode in modes:
            for init in inits:
                if init == target:
                    continue
                rows = [by_key.get((target, init, mode, s)) for s in seeds]
                if any(r is None for r in rows):
                    continue
                entry = {"target": target, "init": init, "mode": mode,
                         "tail_loss": float(np.mean([r["tail_loss"] for r in rows])),
                         "seeds": len(rows)}
                if init != "random":
                    base = [by_key.get((target, "random", mode, s)) for s in seeds]
                    if all(b is not None for b in base):
                        diffs = [r["tail_loss"] - b["tail_loss"] for r, b in zip(rows, base)]
                        entry["minus_random"] = float(np.mean(diffs))
                        if len(diffs) > 1:
                            entry["minus_random_ci95"] = list(
                                paired_statistics.t_interval(diffs))
                            entry["minus_random_p"] = paired_statistics.t_test_p(diffs)
                table.append(entry)
    # Every "minus random" named before the run is one test of the family: Holm keeps the
    # family-wise error at 5%.
    tested = [e for e in table if "minus_random_p" in e]
    for e, adjusted in zip(tested, paired_statistics.holm([e["minus_random_p"] for e in tested])):
        e["minus_random_p_holm"] = adjusted
    return table


#: Line colours of the initialisations in the curves image.
COLOURS = {"random": (0, 0, 0), "C": (214, 39, 40), "J": (31, 119, 180), "V": (44, 160, 44),
           "CJV": (148, 103, 189)}


def curves_image(records, path, targets, modes, size=(320, 200), margin=36):
    """One panel per target (rows) and mode (columns): the training loss of every
    initialisation, averaged over seeds, with the y range of the panel written at its left."""
    from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
    w, h = size
    image = Image.new("RGB", (len(modes) * (w + margin) + margin, len(targets) * (h + margin)
                              + margin + 16), "white")
    draw = ImageDraw.Draw(image)
    for i, target in enumerate(targets):
        for j, mode in enumerate(modes):
            x0, y0 = margin + j * (w + margin), margin + i * (h + margin)
            curves = {}
            for init in COLOURS:
                rows = [r["curve"] for r in records
                        if (r["target"], r["init"], r["mode"]) == (target, init, mode)]
                if rows:
                    steps = [s for s, _ in rows[0]]
                    curves[init] = (steps, np.mean([[v for _, v in c] for c in rows], axis=0))
            draw.rectangle([x0, y0, x0 + w, y0 + h], outline=(128, 128, 128))
            draw.text((x0 + 4, y0 - 14), f"{target} from ... ({mode})", fill="black")
            if not curves:
                continue
            lo = min(float(v.min()) for _, v in curves.values())
            hi = max(float(v.max()) for _, v in curves.values())
            last = max(s[-1] for s, _ in curves.values())
            draw.text((x0 - margin + 2, y0), f"{hi:.3g}", fill="black")
            draw.text((x0 - margin + 2, y0 + h - 10), f"{lo:.3g}", fill="black")
            draw.text((x0 + w - 60, y0 + h + 2), f"step {last}", fill="black")
            for init, (steps, values) in curves.items():
                points = [(x0 + w * s / last, y0 + h - h * (v - lo) / max(hi - lo, 1e-9))
                          for s, v in zip(steps, values)]
                draw.line(points, fill=COLOURS[init], width=2)
    x = margin
    for init, colour in COLOURS.items():
        draw.rectangle([x, image.height - 14, x + 10, image.height - 4], fill=colour)
        draw.text((x + 14, image.height - 15), init, fill="black")
        x += 70
    image.save(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default="runs/reproduce_multitask/pretrain")
    parser.add_argument("--output_dir", default="runs/interproxy")
    parser.add_argument("--targets", default="J,C,V")
    parser.add_argument("--inits", default="random,C,J,V,CJV")
    parser.add_argument("--modes", default="ft,fixed")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--target_seeds", default="",
                        help="TARGET:SEED;SEED,... overriding --seeds for a target (J:0)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--tail", type=int, default=50)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--image", default=str(CURVES_PNG))
    args = parser.parse_args(argv)
    targets, inits = args.targets.split(","), args.inits.split(",")
    modes, seeds = args.modes.split(","), [int(s) for s in args.seeds.split(",")]
    target_seeds = {t: seeds for t in targets}
    for item in filter(None, args.target_seeds.split(",")):
        target, _, values = item.partition(":")
        target_seeds[target] = [int(v) for v in values.split(";")]
    os.makedirs(args.output_dir, exist_ok=True)
    records, start = [], time.perf_counter()
    for seed in seeds:
        for target in [t for t in targets if seed in target_seeds[t]]:
            for mode in modes:
                for init in inits:
                    if init == target:
                        continue
                    record = run_one(args.sources, target, init, mode, seed, args.output_dir,
                                     args)
                    records.append(record)
                    print(f"{target} from {init} ({mode}, seed {seed}): tail loss "
                          f"{record['tail_loss']:.4f} ({record['seconds']:.0f} s)", flush=True)
    payload = {
        "command": "python tools/interproxy_curves.py " + " ".join(argv or sys.argv[1:]),
        "settings": {k: getattr(args, k) for k in ("steps", "log_every", "tail",
                                                   "learning_rate", "sources")},
        "seeds": seeds, "machine": platform.platform(), "processor_count": os.cpu_count(),
        "seconds_this_invocation": time.perf_counter() - start,
        "compute_seconds": sum(r["seconds"] for r in records),
        "target_seeds": target_seeds,
        "runs": records, "table": summarize(records, targets, inits, modes, target_seeds)}
    _write(args.results, payload)
    print(f"wrote {args.results}")
    if args.image:
        print(f"wrote {curves_image(records, args.image, targets, modes)}")


if __name__ == "__main__":
    main()
