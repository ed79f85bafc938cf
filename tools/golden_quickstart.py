#!/usr/bin/env python3
"""Records the quick start's golden trajectory: the recipe's first 50 steps, run with several seeds.

``tests/test_golden_quickstart.py`` runs ``configs/quickstart.flags`` for 50 deterministic steps
and compares its loss trajectory with ``tests/golden/quickstart.json``, which this tool writes::

    python tools/golden_quickstart.py            # 13 runs of 50 steps, ~10 min on 2 idle cores
    python tools/golden_quickstart.py --check --extra=--momentum=0.8    # one run against it
    python tools/golden_quickstart.py --rescore --k_std=6               # no training

Regenerate after a deliberate change of the recipe (the test names the flags that differ from
the recorded ones) or of what its 50 steps compute, and say why in the commit. The file records
the command, the seeds, the machine and the package versions.

No loss value is pinned: CPU kernels differ between machines (oneDNN or Eigen, AVX-512 or AVX2,
thread count), the losses differ in the third digit already at step 10 (6.3149, 6.3232, 6.3069)
and 50 steps at a high learning rate amplify that to the size of the seed-to-seed spread. The
seed-to-seed standard deviation of each step is the unit: the recipe seed's run on any machine
must lie within ``K_STD`` of them from the recorded run (:func:`check` states the whole rule).
The recording holds the evidence for ``K_STD``: the recipe seed under this machine's other kernel
paths (:data:`KERNEL_VARIANTS`, stand-ins for other machines), which must stay inside the band,
and deliberate recipe regressions (:data:`REGRESSIONS`), which must leave it; the tool prints
every run's distance and exits 1 when either fails. A 50-step run cannot see every change: a
halved learning rate, a lower momentum, dropout or moving the rate drops by a few steps can move
it less than another machine's kernels do (``--check --extra=FLAG`` measures one).
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tfcolor.run_dir import load_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "quickstart.flags"
GOLDEN = ROOT / "tests" / "golden" / "quickstart.json"
STEPS = 50
#: The test's changes to the recipe: 50 steps, a loss summary every 10, held-out loss at steps
#: 10, 30 and 50 (first loop, then every 25 steps rounded up to a loop), deterministic ops and
#: data order, no image grid or export.
OVERRIDES = (f"--train_steps={STEPS}", "--steps_per_loop=10", "--summary_every=10",
             f"--checkpoint_every={STEPS}", "--eval_every=25", "--image_every=0",
             "--deterministic", "--export=false")
#: Recipe flags that do not change the 50-step trajectory (the run's directory and the number of
#: photos in the colorization grid, which the test does not draw).
IRRELEVANT = ("model_dir", "validation_images")
#: Tolerance, in seed-to-seed standard deviations (see :func:`check`).
K_STD = 5.0
#: The recipe seed is also run under this machine's other CPU kernel paths, as stand-ins for
#: other machines: each must lie inside the band.
KERNEL_VARIANTS = {
    "oneDNN off (Eigen kernels)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN limited to AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "one intra-op thread": {"TF_NUM_INTRAOP_THREADS": "1"},
}
#: Deliberate recipe regressions (flags added after the recipe's): each must leave the band.
REGRESSIONS = ("--hue_weight=2.5", "--learning_rate=0.02", "--lightness_weight=true",
               "--taps=conv1_2-fc7")
CURVES = ("train_loss", "heldout_loss")
#: The program that runs the recipe.
PROGRAM = ("-m", "binaries.pretrain")


def _flag_name(line):
    return line.lstrip("-").split("=", 1)[0]


def recipe_flags(path=RECIPE):
    """The recipe's flag lines that the golden run uses (comments, overridden flags left out)."""
    overridden = {_flag_name(f) for f in OVERRIDES} | set(IRRELEVANT)
    lines = [line.strip() for line in pathlib.Path(path).read_text().splitlines()]
    return [line for line in lines
            if line.startswith("--") and _flag_name(line) not in overridden]


def _scalars(event_dir, tag):
    out = {}
    for name in sorted(os.listdir(event_dir)):
        for record in tf.data.TFRecordDataset(os.path.join(event_dir, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    out[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return out


def run(model_dir, seed=None, extra=(), env=None):
    """Runs the recipe for 50 steps into ``model_dir``; returns its trajectory.

    Args:
        model_dir: a new directory for the run.
        seed: ``--seed`` (default: the recipe's).
        extra: further flags, after the recipe's (a changed flag overrides it).
        env: the subprocess environment (default: this process's).

    Returns:
        ``{"train_loss": {step: loss}, "heldout_loss": {step: loss}, "num_weights": n}`` with
        string steps; the training loss of a step is the mean over the 10 steps ending there.
    """
    cmd = [sys.executable, *PROGRAM, f"--flagfile={RECIPE}", f"--model_dir={model_dir}",
           *OVERRIDES, *([f"--seed={seed}"] if seed is not None else []), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n"
                           f"{proc.stderr[-3000:]}")
    model, _ = load_model(model_dir)
    with open(os.path.join(model_dir, "heldout.jsonl")) as f:
        heldout = [json.loads(line) for line in f]
    train = _scalars(os.path.join(model_dir, "train"), "loss/loss")
    return {"train_loss": {str(k): train[k] for k in sorted(train)},
            "heldout_loss": {str(r["step"]): r["loss"] for r in heldout},
            "num_weights": int(sum(np.size(w) for w in model.get_weights()))}


def machine():
    """One line naming the CPU, its vector extensions, the CPU count, the OS and Python."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    isa = ("avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags
           else "no avx2" if flags else "unknown ISA")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return (f"{model} ({isa}, {os.cpu_count()} CPUs), {platform.platform()}, "
            f"Python {platform.python_version()}"
            + (f", TF_ENABLE_ONEDNN_OPTS={onednn}" if onednn is not None else ""))


def packages():
    """Versions of the packages whose kernels or code compute the trajectory."""
    out = {}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def spread(runs):
    """Per-step sample standard deviation over seeds: ``{curve: {step: std}}``."""
    first = next(iter(runs.values()))
    return {curve: {step: float(np.std([r[curve][step] for r in runs.values()], ddof=1))
                    for step in first[curve]}
            for curve in CURVES}


def check(result, golden):
    """Where ``result`` (a :func:`run` of the recipe's seed) departs from the golden recording.

    The rule, for the training and the held-out loss curve alike:

    * at every recorded step, ``|loss - reference| <= k_std * std``: ``reference`` is the recorded
      run of the recipe's seed, ``std`` the seed-to-seed standard deviation of that step;
    * if every recorded seed's loss fell from the first to the last recorded step, the run's
      falls too, by more than the seeds' mean drop less 3 standard deviations of it (and more
      than 0): the recipe learns within 50 steps (a held-out loss that starts at the colour
      prior may not, and is then not required to);

    and the parameter count is exact. Returns one line per departure (empty: none).
    """
    failures = []
    if result["num_weights"] != golden["num_weights"]:
        failures.append(f"parameter count {result['num_weights']} != {golden['num_weights']}")
    reference, std, k = golden["reference"], golden["spread"], golden["k_std"]
    for curve in CURVES:
        if sorted(result[curve], key=int) != sorted(reference[curve], key=int):
            failures.append(f"{curve}: steps {sorted(result[curve], key=int)} != "
                            f"{sorted(reference[curve], key=int)}")
            continue
        for step, ref in reference[curve].items():
            deviation = (result[curve][step] - ref) / std[curve][step]
            if abs(deviation) > k:
                failures.append(f"{curve} at step {step}: {result[curve][step]:.4f}, recorded "
                                f"{ref:.4f} +- {k} x {std[curve][step]:.4f} ({deviation:+.1f} "
                                "std)")
        if not all(_drop(r[curve]) > 0 for r in golden["runs"].values()):
            continue
        drop, needed = _drop(result[curve]), max(0.0, golden["drop"][curve]["mean"]
                                                  - 3.0 * golden["drop"][curve]["std"])
        if drop <= needed:
            failures.append(f"{curve} falls {drop:.4f} from step {min(result[curve], key=int)} "
                            f"to {max(result[curve], key=int)}; the seeds' drop less 3 std "
                            f"is {needed:.4f}")
    return failures


def deviations(result, golden):
    """``{curve: {step: (loss - reference) / std}}``: the run's distance from the recording."""
    return {curve: {step: (result[curve][step] - ref) / golden["spread"][curve][step]
                    for step, ref in golden["reference"][curve].items() if step in result[curve]}
            for curve in CURVES}


def _drop(curve):
    return curve[min(curve, key=int)] - curve[max(curve, key=int)]


def _curves(result):
    return {**{c: result[c] for c in CURVES}, "num_weights": result["num_weights"]}


def record(seeds, recipe_seed, k_std=K_STD, variants=None, regressions=REGRESSIONS):
    """Runs every seed, kernel variant and regression; returns the golden dictionary."""
    variants = KERNEL_VARIANTS if variants is None else variants
    runs, other, broken = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            print(f"seed {seed} ...", flush=True)
            runs[str(seed)] = _curves(run(os.path.join(tmp, f"seed{seed}"), seed=seed))
        for i, (name, env) in enumerate(variants.items()):
            print(f"{name} ...", flush=True)
            other[name] = _curves(run(os.path.join(tmp, f"variant{i}"),
                                      env={**os.environ, **env}))
            other[name]["env"] = env
        for i, flags in enumerate(regressions):
            print(f"{flags} ...", flush=True)
            broken[flags] = _curves(run(os.path.join(tmp, f"regression{i}"),
                                        extra=flags.split()))
    counts = {r["num_weights"] for r in runs.values()}
    assert len(counts) == 1, counts
    curves = {s: {c: r[c] for c in CURVES} for s, r in runs.items()}
    drops = {c: [_drop(r[c]) for r in runs.values()] for c in CURVES}
    return {
        "command": "python tools/golden_quickstart.py --seeds=" + ",".join(map(str, seeds)),
        "recipe": recipe_flags(),
        "overrides": list(OVERRIDES),
        "machine": machine(),
        "packages": packages(),
        "seeds": list(seeds),
        "recipe_seed": recipe_seed,
        "num_weights": counts.pop(),
        "k_std": k_std,
        "reference": curves[str(recipe_seed)],
        "spread": spread(curves),
        "drop": {c: {"mean": float(np.mean(d)), "std": float(np.std(d, ddof=1))}
                 for c, d in drops.items()},
        "runs": curves,
        "kernel_variants": other,
        "regressions": broken,
    }


def report(golden):
    """Lines showing every recorded run's distance from the band, and the problems: a kernel
    variant outside the band or a regression inside it."""
    lines, problems = [], []
    rows = [(f"seed {s}", r) for s, r in golden["runs"].items()]
    rows += [(f"kernels: {n}", r) for n, r in golden["kernel_variants"].items()]
    rows += [(f"regression: {f}", r) for f, r in golden["regressions"].items()]
    for name, result in rows:
        devs = deviations(result, golden)
        worst = max(abs(d) for c in CURVES for d in devs[c].values())
        lines.append(f"{name:40s} " + "  ".join(
            c.split("_")[0] + " " + " ".join(f"{d:+5.1f}" for d in devs[c].values())
            for c in CURVES) + f"   max {worst:.1f} std")
    for name, result in golden["kernel_variants"].items():
        problems += [f"kernels {name}: {f}" for f in check(result, golden)]
    for flags, result in golden["regressions"].items():
        if not check(result, golden):
            problems.append(f"regression {flags} stays inside the band")
    return lines, problems


def _recipe_seed():
    seeds = [line.split("=", 1)[1] for line in recipe_flags() if _flag_name(line) == "seed"]
    return int(seeds[-1]) if seeds else 0


def _parse_seeds(text):
    if "," in text:
        return [int(s) for s in text.split(",")]
    return list(range(int(text)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seeds", default="6",
                        help="a count N (seeds 0..N-1) or a comma list; must include the "
                             "recipe's seed")
    parser.add_argument("--k_std", type=float, default=K_STD,
                        help="the band's half-width in seed-to-seed standard deviations")
    parser.add_argument("--check", action="store_true",
                        help="run the recipe's seed once and compare it with the golden file "
                             "instead of writing it")
    parser.add_argument("--extra", action="append", default=[],
                        help="with --check: a flag added after the recipe's (repeatable)")
    parser.add_argument("--rescore", action="store_true",
                        help="no training: apply --k_std to the recorded runs and rewrite the "
                             "file if every kernel variant stays inside and every regression "
                             "outside")
    parser.add_argument("--out", default=str(GOLDEN), help="the golden file")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.check:
        golden = json.loads(out.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            result = run(os.path.join(tmp, "run"), extra=args.extra)
        for curve, values in deviations(result, golden).items():
            print(curve, " ".join(f"{s}:{result[curve][s]:.4f}({d:+.1f} std)"
                                  for s, d in values.items()))
        failures = check(result, golden)
        print("\n".join(failures) if failures else "within the golden band")
        return 1 if failures else 0
    if args.rescore:
        golden = dict(json.loads(out.read_text()), k_std=args.k_std)
    else:
        seeds, recipe_seed = _parse_seeds(args.seeds), _recipe_seed()
        if recipe_seed not in seeds:
            parser.error(f"--seeds must include the recipe's seed {recipe_seed}")
        golden = record(seeds, recipe_seed, k_std=args.k_std)
    lines, problems = report(golden)
    print(f"distance from the recipe seed's run, in seed-to-seed std (band: {args.k_std}):")
    print("\n".join(lines))
    if problems and args.rescore:
        print("\n".join(problems) + f"\n{out} left unchanged")
        return 1
    text = json.dumps(golden, indent=2, sort_keys=True) + "\n"
    out.write_text(text)
    print(f"wrote {out} (sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]})")
    if problems:
        print("\n".join(problems) + "\nthe golden test will fail: choose --k_std (see "
              "--rescore) or the recipe again")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
