"""Markdown tables of a reproduction's ``results.json`` (``results.md``, and the README section
that ``tools/results_tables.py`` generates from the committed copy)."""
import copy

from tfcolor.baselines import split_brain
from tfcolor.downstream import comparison

__all__ = ["markdown", "pretraining_table", "colorizer_table", "downstream_tables", "grid_table",
           "multitask_table", "THESIS_TABLE_4_7"]

#: The thesis' Table 4.7 (AlexNet; METHOD_CH4.md §8.5.3): ``{arm: (row, VOC 2007 classification
#: %mAP, VOC 2012 segmentation %mIU)}``. C+J with plain SGD is described there (its conv1 filters
#: look like J's) but has no number.
THESIS_TABLE_4_7 = {"random": ("No Pretraining", 46.2, 23.5),
                    "colorization": ("C (Colorization)", 61.1, 36.3),
                    "jigsaw": ("J (Jigsaw)", 60.0, 33.7),
                    "video": ("V (Video)", 60.6, 35.9),
                    "cj": ("C+J", 59.2, 35.5),
                    "cjv": ("C+J+V", 60.2, 36.1),
                    "cj_sgd": ("C+J with plain SGD", None, None)}

_PROTOCOL_TITLES = {"linear_probe": "Linear probe (frozen trunk)",
                    "finetune": "Full fine-tuning"}


def _interval(pair):
    return f"[{pair[0]:+.3f}, {pair[1]:+.3f}]" if pair else "-"


def _objective(arm):
    """The report's name of an arm's objective: its loss kind, or its tasks and gradient rule."""
    tasks = arm.get("tasks") or ()
    if not tasks:
        return arm["objective"]
    letters = {"colorization": "C", "jigsaw": "J", "video": "V", "denoising": "D"}
    return "+".join(letters.get(t, t) for t in tasks) + f" ({arm['gradient_rule']})"


def _final_loss(arm, losses):
    """The final training loss; per task for a multi-proxy arm (with the jigsaw's and video's
    accuracy)."""
    if not arm.get("tasks"):
        loss = losses.get("loss")
        return "-" if loss is None else f"{loss:.4f}"
    parts = []
    for task in arm["tasks"]:
        if task in losses:
            text = f"{task} {losses[task]:.4f}"
            if f"{task}/accuracy" in losses:
                text += f" (acc {losses[f'{task}/accuracy']:.2f})"
            parts.append(text)
    return ", ".join(parts) or "-"


def pretraining_table(results):
    lines = ["| trunk | objective | LR drop | seconds | final training loss | held-out loss "
             "(first -> best @ step -> last) |", "| --- | --- | --- | ---: | ---: | --- |"]
    arms = results["arms"]
    for name, p in results["pretrain"].items():
        curve = p.get("heldout_curve") or []
        if curve:
            best = min(curve, key=lambda c: c[1])
            held = f"{curve[0][1]:.3f} -> {best[1]:.3f} @ {best[0]} -> {curve[-1][1]:.3f}"
        else:
            held = "-"
        arm = arms[p["arm"]]
        objective, drop = _objective(arm), "yes" if arm["lr_drop"] else "no"
        if arm.get("untrained"):  # the control: no learning, hence no learning rate
            objective, drop = f"{objective} at step 0, untrained (control)", "-"
        lines.append(f"| {name} | {objective} | {drop} | "
                     f"{p['seconds']:.0f} | {_final_loss(arm, p['final_losses'])} | "
                     f"{held} |")
    return "\n".join(lines)


def _arm_of(results, init):
    return "random" if init == "random" else results["pretrain"][init]["arm"]


def multitask_table(results, protocol):
    """Table 4.7's rows at this scale: per arm, the test score at the rate chosen on val (mean
    over fine-tuning seeds, then over pretraining seeds), its difference from random with the
    95% t-interval (paired by fine-tuning seed), next to the thesis' numbers and both orderings.
    """
    d = results["downstream"][protocol]
    by_arm = {}
    for init, c in d["chosen"].items():
        by_arm.setdefault(_arm_of(results, init), []).append(c["test_mean"])
    rows = [a for a in THESIS_TABLE_4_7 if a in by_arm]
    ours = {a: sum(v) / len(v) for a, v in by_arm.items()}
    rank = {a: i + 1 for i, a in enumerate(sorted(rows, key=lambda a: -ours[a]))}
    thesis = [a for a in rows if THESIS_TABLE_4_7[a][1] is not None]
    trank = {a: i + 1 for i, a in enumerate(sorted(thesis, key=lambda a: -THESIS_TABLE_4_7[a][1]))}
    lines = [f"| Table 4.7 row | arm | ours: test {d['metric']} | rank | minus random, 95% t | "
             "thesis: VOC07 cls %mAP | VOC12 seg %mIU | thesis rank (cls) |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for a in rows:
        row, cls, seg = THESIS_TABLE_4_7[a]
        comp = d["comparisons"].get(f"{a} - random")
        diff = (f"{comp['mean']:+.3f} {_interval(comp['t_interval'])}" if comp else "-")
        lines.append(f"| {row} | {a} | {ours[a]:.3f} | {rank[a]} | {diff} | "
                     f"{'-' if cls is None else f'{cls:.1f}'} | "
                     f"{'-' if seg is None else f'{seg:.1f}'} | {trank.get(a, '-')} |")
    return "\n".join(lines)


def normsgd_grid_table(grid):
    """The NormSGD learning-rate grid (``results["normsgd_grid"]``): per rate, the C+J
    colorizer's val held-out loss (last and best) and the jigsaw's final training loss and
    accuracy; the chosen rate (the lowest last held-out loss) in bold."""
    rows = grid["results"]
    chosen = min(rows, key=lambda r: rows[r]["heldout_curve"][-1][1])
    lines = [f"| NormSGD rate ({grid['arm']}, {grid['steps']} steps, seed {grid['seed']}) | "
             "val held-out loss, last | best @ step | jigsaw training loss (accuracy) | "
             "seconds |", "| --- | ---: | ---: | ---: | ---: |"]
    for rate in sorted(rows, key=float):
        r = rows[rate]
        curve, losses = r["heldout_curve"], r["final_losses"]
        best = min(curve, key=lambda c: c[1])
        mark = "**" if rate == chosen else ""
        lines.append(f"| {mark}{rate}{mark} | {mark}{curve[-1][1]:.3f}{mark} | "
                     f"{best[1]:.3f} @ {best[0]} | {losses['jigsaw']:.3f} "
                     f"({losses['jigsaw/accuracy']:.2f}) | {r['seconds']:.0f} |")
    return "\n".join(lines)


def _multitask_notes(results):
    arms = results["arms"]
    multi = [a for a, arm in arms.items() if arm.get("tasks")]
    if not multi:
        return []
    cfg = results["config"]
    n = sum(len(d["comparisons"]) for d in results["downstream"].values())
    return [
        "Table 4.7 next to ours: the thesis' numbers are AlexNet pretrained for 2M iterations on "
        "ImageNet + Places (and Hollywood2 for V), evaluated on PASCAL VOC (mAP, mIU); ours are "
        f"{cfg['arch']} pretrained for {cfg['pretrain_steps']} steps on the corpus' photos (and "
        f"the video corpus for V), evaluated by {cfg['labeled_set']} top-1. The levels are not "
        "comparable; only the orderings (the rank columns) and the signs of the differences are.",
        "",
        "Trunk input: every multi-proxy arm trains a shared 3-channel conv1 (colour for jigsaw "
        "and video, RGB-encoded grey for colorization); the colorization arm is the "
        "reproduction's grey recipe with a 1-channel conv1. Downstream input is grey: a "
        "3-channel conv1 is summed over its channels (exact for RGB-encoded grey), and every "
        f"initialisation's classifier pools {cfg['taps'][-1]}.",
        "",
        "Intervals: each is a 95% interval for that one comparison, not simultaneous: the tables "
        f"hold {n} comparisons, so a few could exclude zero by chance alone (the Holm p-values, "
        "where given, correct for that). Batch: a task alone sees "
        f"{cfg['batch_size']} images per step, each task of a joint arm "
        f"{max(1, cfg['batch_size'] // 2)}. NormSGD arms: rate "
        f"{cfg.get('normsgd_learning_rate')} with a {cfg.get('normsgd_warmup_steps')}-step "
        f"warm-up; cj_sgd: rate {cfg['learning_rate']}.",
        ""]


def _diff(paired, metric, db=False):
    p = paired[metric]
    unit = " dB" if db else ""
    fmt = "+.2f" if db else "+.4f"
    return (f"{p['mean_difference']:{fmt}}{unit} [{p['ci_low']:{fmt}}, {p['ci_high']:{fmt}}], "
            f"better on {p['fraction_improved']:.0%}")


def colorizer_table(results):
    lines = ["| colorizer | images | alpha-beta mean: model / grey / prior | PSNR: model / grey "
             "/ prior | model - grey, alpha-beta | model - prior, alpha-beta | model - grey, "
             "PSNR | model - prior, PSNR |", "| --- | ---: | --- | --- | --- | --- | --- | --- |"]
    for name, c in results["colorizer"].items():
        m, p = c["metrics"], c["paired"]
        ab = " / ".join(f"{m[k]['alphabeta_mean']:.4f}" for k in ("model", "gray", "prior"))
        psnr = " / ".join(f"{m[k]['psnr']:.2f}" for k in ("model", "gray", "prior"))
        lines.append(f"| {name} | {c['images']} | {ab} | {psnr} | "
                     f"{_diff(p['model-gray'], 'alphabeta_mean')} | "
                     f"{_diff(p['model-prior'], 'alphabeta_mean')} | "
                     f"{_diff(p['model-gray'], 'psnr', True)} | "
                     f"{_diff(p['model-prior'], 'psnr', True)} |")
    return "\n".join(lines)


def grid_table(results, protocol):
    """The validation score of every cell of a protocol's grid: one row per initialisation, one
    column per learning rate (ascending), the mean over fine-tuning seeds; the rate chosen for
    the initialisation in bold (so a reader sees whether it lies inside the grid)."""
    d = results["downstream"][protocol]
    rates = sorted({float(lr) for by_lr in d["grid"].values() for lr in by_lr})
    lines = ["| val by learning rate | " + " | ".join(f"{r:g}" for r in rates) + " |",
             "| --- |" + " ---: |" * len(rates)]
    for init, by_lr in d["grid"].items():
        cells = {float(lr): c for lr, c in by_lr.items()}
        chosen = d["chosen"][init]["learning_rate"]
        row = []
        for r in rates:
            if r not in cells:
                row.append("-")
                continue
            val = cells[r]["val"]
            text = f"{sum(val.values()) / len(val):.3f}"
            row.append(f"**{text}**" if r == chosen else text)
        lines.append(f"| {init} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def downstream_tables(results, protocol):
    d = results["downstream"][protocol]
    seeds = len(results["config"]["finetune_seeds"])
    rates = {lr for by_lr in d["grid"].values() for lr in by_lr}
    how = ("LR chosen per initialisation on the val split" if len(rates) > 1 else
           f"one learning rate, {next(iter(rates))}: nothing is chosen on val")
    lines = [f"**{_PROTOCOL_TITLES.get(protocol, protocol)}** ({d['metric']}, {seeds} "
             f"fine-tuning seeds; {how})", "",
             "| initialisation | LR | val | test (mean +- std) |", "| --- | --- | ---: | ---: |"]
    for init, c in d["chosen"].items():
        edge = " (grid edge)" if c["at_edge"] else ""
        lines.append(f"| {init} | {c['learning_rate']:g}{edge} | {c['val_mean']:.3f} | "
                     f"{c['test_mean']:.3f} +- {c['test_std']:.3f} |")
    lines += ["", grid_table(results, protocol)]
    lines += ["", "| paired difference (A - B) | n | mean | 95% t over fine-tuning seeds "
              "(runs averaged) | Holm p | over runs and images: 95% | A better in |",
              "| --- | ---: | ---: | --- | ---: | --- | ---: |"]
    comparisons = d["comparisons"]
    primary = d.get("primary", "colorization - random")
    if not any("p" in c for c in comparisons.values()):  # results collected before the p-values
        comparisons = comparison.with_holm(copy.deepcopy(comparisons), primary)
    for name, c in comparisons.items():
        holm_p = f"{c['p_holm']:.3f}" if "p_holm" in c else (
                f"{c['p']:.3f} (primary)" if c.get("primary") and "p" in c else "-")
        both = c.get("runs_and_images")
        both = (f"[{both['ci_low']:+.3f}, {both['ci_high']:+.3f}] ({both['covers']})"
                if both else "-")
        title = f"**{name}** (primary)" if c.get("primary") else name
        lines.append(f"| {title} | {c['n']} | {c['mean']:+.3f} | {_interval(c['t_interval'])} "
                     f"| {holm_p} | {both} | {c['fraction_improved']:.0%} |")
    if primary in comparisons:
        named = ("was named before the runs" if "primary" in d else
                 "is the reproduction's headline")
        lines += ["", f"The primary comparison, {primary}, {named} and is "
                  "read at its own level; Holm corrects the others together. The t-interval "
                  "pairs fine-tuning seeds with each recipe averaged over its pretraining runs, "
                  "so it holds no pretraining variance; the interval over runs and images "
                  "resamples both (tfcolor.paired_statistics.seed_image_bootstrap)."]
    return "\n".join(lines)


def _run_lines(run):
    """How the run went, when the results record it (``results["run"]``: wall time, CPU time
    of the units, parallel processes)."""
    if not run:
        return []
    cpu = run.get("cpu_seconds_of_the_units", {})
    return [f"Run: {run['wall_minutes']:.0f} min of wall time ({run['started']} to "
            f"{run['finished']}), {sum(cpu.values()) / 60:.0f} min of CPU time in its units "
            f"(pretraining {cpu.get('pretraining', 0) / 60:.0f}, downstream "
            f"{cpu.get('downstream', 0) / 60:.0f}); {run['note']}"]


def markdown(results, level=1):
    """The whole report; ``level`` is the Markdown level of its title (sections one below)."""
    h1, h2 = "#" * level, "#" * (level + 1)
    cfg, s = results["config"], results["seconds"]
    total = s["pretrain"] + s["colorizer"] + s["downstream"]
    sizes = results["data"]
    lines = [f"{h1} tfcolor reproduction", ""]
    if results.get("argv"):
        lines += [f"Command: `{' '.join(results['argv'])}`  "]
    m = results["machine"]
    lines += [f"Machine: {m['processor']}, {m['cpus']} CPUs, Python {m['python']}, TensorFlow "
              f"{m['tensorflow']}, Keras {m['keras']}  ",
              f"Compute: {total / 60:.1f} min (pretraining {s['pretrain'] / 60:.1f}, colorizer "
              f"evaluation {s['colorizer'] / 60:.1f}, downstream {s['downstream'] / 60:.1f})"
              + ("" if not results.get("run") else "  "), *_run_lines(results.get("run")), "",
              f"Photos: {sizes['train_photos']} train, {sizes['val_photos']} val (held-out "
              f"loss), {sizes['holdout_photos']} holdout (colorizer evaluation). Downstream: "
              f"{cfg['labeled_set']}, {sizes['classes']} classes, "
              f"{sizes[cfg['labeled_set'] + '_train']} train / "
              f"{sizes[cfg['labeled_set'] + '_val']} val / "
              f"{sizes[cfg['labeled_set'] + '_test']} test images. Trunk {cfg['arch']}, "
              f"{cfg['pretrain_steps']} pretraining steps, pretraining seeds "
              f"{cfg['pretrain_seeds']}.", "", f"{h2} Pretraining", "", pretraining_table(results),
              ""]
    if results["colorizer"]:
        lines += [f"{h2} Colorizer on the holdout photos (95% bootstrap CI over images)", "",
                  colorizer_table(results), ""]
    lines += [f"{h2} Downstream", ""]
    for protocol in results["downstream"]:
        lines += [downstream_tables(results, protocol), ""]
    if any(a.get("tasks") for a in results["arms"].values()):
        lines += [f"{h2} Multi-proxy pretraining next to the thesis' Table 4.7", ""]
        for protocol in results["downstream"]:
            lines += [f"**{_PROTOCOL_TITLES.get(protocol, protocol)}**", "",
                      multitask_table(results, protocol), ""]
        lines += _multitask_notes(results)
    if results.get("normsgd_grid"):
        lines += [f"{h2} The NormSGD learning rate", "",
                  "Chosen before the run on the C+J colorizer's val held-out loss (the lowest "
                  "last loss; the downstream sets were not looked at):", "",
                  normsgd_grid_table(results["normsgd_grid"]), ""]
    if "split_brain" in results["arms"]:
        lines += [f"The downstream input is grey, so {split_brain.grey_input_handicap('lab')}: "
                  "the split-brain numbers understate that method (its authors fine-tune on "
                  "colour input).", ""]
    return "\n".join(lines)
