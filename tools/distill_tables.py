"""Markdown tables of ``results/distill.json`` (``tools/distill_experiments.py``) next to the
dissertation's numbers: :func:`distill_table` (every table the file holds), or
:func:`table_43` (with the Task-Ensemble column of table ``4.3e`` when present) /
:func:`table_44` / :func:`fig_45` (the loss scan) alone.

    python tools/distill_tables.py [results/distill.json]
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results", "distill.json")
PROBLEMS = (("task_copy", "Task-Copy"), ("task_compress", "Task-Compress"),
            ("top_copy", "Top-Copy"), ("top_compress", "Top-Compress"))


def _mean_ci(c):
    """``mean [low, high] (n)`` of a summary cell, or a dash."""
    if not c or not c.get("n"):
        return "–"
    text = f"{c['mean']:.1f}"
    if "ci95" in c:
        text += f" [{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}]"
    return f"{text} (n={c['n']})"


def _diff(c):
    if not c or not c.get("n"):
        return "–"
    text = f"{c['mean']:+.2f}"
    if "ci95" in c:
        text += f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]"
    return f"{text} (n={c['n']})"


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _footer(part):
    s = part["settings"]
    return (f"\nfmnist_digits20 test accuracy % (mean [95% t-interval over seeds] (seeds)); "
            f"paper: CIFAR-100. Nets 1/{s['width_divisor']} as wide as Table 4.1, Adam, "
            f"{s['teacher_epochs']} teacher / {s['student_epochs']} student epochs, batch "
            f"{s['batch']}; compute {part.get('compute_seconds', 0) / 60:.0f} min on one core. "
            f"Commands: {'; '.join(f'`{c}`' for c in part['commands'])}.\n")


def _paper_diff(a, b):
    return f"{float(str(a).split()[0]) - float(str(b).split()[0]):+.1f}" if a and b else "–"


def table_43(path=RESULTS):
    """Table 4.3 (distillation losses), ours next to the paper's; the Task-Ensemble column
    (table ``4.3e``) first when the file holds it."""
    tables = _load(path)["tables"]
    part = tables["4.3"]
    summary = part.get("summary", {})
    cells, paper = summary.get("cells", {}), summary.get("paper", {})
    ens = tables.get("4.3e", {}).get("summary")
    columns = ([("ensemble", "Task-Ensemble")] if ens else []) + list(PROBLEMS)
    lines = ["| Loss | " + " | ".join(f"{label} (ours) | {label} (paper)"
                                       for _, label in columns) + " |",
             "|---" * (1 + 2 * len(columns)) + "|"]
    rows = (("l2", "D_AB^(0,0) (L2)"), ("ab", "D_AB^(1/4,0)"), ("teacher", "Teacher"))
    for key, label in rows + ((("single", "Single teacher (mean)"),) if ens else ()):
        row = [label]
        if ens:
            ekey = {"teacher": "ensemble"}.get(key, key)
            pkey = {"single": "single_mean"}.get(ekey, ekey)
            row += [_mean_ci(ens["cells"].get(ekey)), str(ens["paper"].get(pkey, "–"))]
        for p, _ in PROBLEMS:
            row += [_mean_ci(cells.get(f"{p}/{key}")), str(paper.get(f"{p}/{key}", "–"))]
        lines.append("| " + " | ".join(row) + " |")
    row = ["AB − L2, paired by seed"]
    if ens:
        row += [_diff(ens["contrasts"].get("ab - l2")),
                _paper_diff(ens["paper"].get("ab"), ens["paper"].get("l2"))]
    for p, _ in PROBLEMS:
        ours = summary.get("contrasts", {}).get(f"{p}: ab - l2")
        row += [_diff(ours), _paper_diff(paper.get(f"{p}/ab"), paper.get(f"{p}/l2"))]
    lines.append("| " + " | ".join(row) + " |")
    if ens:
        row = ["AB − single teacher (mean)",
               _diff(ens["contrasts"].get("ab - single teacher (mean)")),
               _paper_diff(ens["paper"].get("ab"), ens["paper"].get("single_mean"))]
        lines.append("| " + " | ".join(row + ["", ""] * len(PROBLEMS)) + " |")
    text = "\n".join(lines) + "\n" + _footer(part)
    if ens:
        text += _ensemble_footer(tables["4.3e"])
    return text


def _ensemble_footer(part):
    s, e = part["settings"], part["settings"]["ensemble"]
    lr = part.get("lr_student", {})
    rates = ", ".join(f"{k[len('ensemble_'):]} {v['chosen']:g}" for k, v in sorted(lr.items())
                      if k.startswith("ensemble_"))
    return (f"\nTask-Ensemble: {e['size']} *Deep* teachers (the first three are the other "
            f"columns' `teacher_all`; its Teacher row is their ensemble, one number), fixed "
            f"across seeds, target the "
            f"{'mean logit' if e['target'] == 'logits' else 'log of the mean probability'}; "
            f"a *Deep* student without dropout on `all` translated by up to {e['shift']} px "
            f"({e['pad']} padding, {'with' if e['flip'] else 'no'} horizontal flip), a new "
            f"augmentation draw per epoch and seed; rates chosen on validation ({rates}); the "
            f"interval is over {len(s['seeds'])} student seeds (init, order, augmentation), "
            f"the teachers' own spread is not in it; the single-teacher row's is over the "
            f"{e['size']} teachers. Compute {part.get('compute_seconds', 0) / 60:.0f} min. "
            f"Commands: {'; '.join(f'`{c}`' for c in part['commands'])}.\n")


def fig_45(path=RESULTS):
    """Fig. 4.5 (the loss scan on Task-Compress) as a table: test accuracy per line and t."""
    part = _load(path)["tables"]["fig4.5"]
    summary = part["summary"]
    cells, grid, lines_ = summary["cells"], summary["t"], summary["lines"]
    labels = {"kl": "(t, 0) KL", "sym": "(t, t) symmetric", "si": "(t, −t) scale-invariant"}
    out = ["| Line | " + " | ".join(f"t = {t:g}" for t in grid) + " | best t (validation) "
           "− L2 [95%], Holm p | best t (test, optimistic) − L2 |",
           "|---" * (len(grid) + 3) + "|"]
    for line in lines_:
        row = [labels.get(line, line)]
        for t in grid:
            c = cells.get(f"{line}/t{t:g}", {})
            text = f"{c['mean']:.1f}" if c.get("n") else "–"
            if c.get("diverged_seeds"):
                text += f" ({len(c['diverged_seeds'])} diverged)"
            row.append(text)
        chosen = summary["chosen_on_validation"].get(line)
        v = summary["contrasts"].get(f"{line} best (validation) - l2")
        row.append(f"t = {chosen:g}: {_diff(v)}, p = {v['p_holm']:.2f}"
                   if v and "p_holm" in v else "–")
        best = summary.get("best_on_test", {}).get(line)
        o = summary["contrasts"].get(f"{line} best (test, optimistic) - l2")
        row.append(f"t = {best:g}: {_diff(o)}" if o else "–")
        out.append("| " + " | ".join(row) + " |")
    l2 = cells.get("l2")
    paper = summary["paper"]
    out += ["", f"L2 (t = 0): {_mean_ci(l2)}. Paper (CIFAR-100): L2 {paper['l2']}, best points "
            f"{paper['best points']}; {paper['shape']}.",
            "", f"fmnist_digits20 test accuracy %, mean over {len(part['settings']['seeds'])} "
            f"seeds (Task-Compress: Table 4.3's teachers; the *Shallow* student with dropout, "
            f"rate {part.get('student_lr', '–')} = Table 4.3's D_AB^(1/4,0) choice, for every "
            f"point); t = 0 and (1/4, 0) are Table 4.3's runs. Each line's t chosen on "
            f"validation (one seed, the last 10% of the training split, distilled from a "
            f"teacher trained on the rest); Holm over the {len(lines_)} lines. A diverged run "
            f"(non-finite loss or outputs) is left out of its point. Figure: "
            f"`results/distill_fig45.png`. Compute {part.get('compute_seconds', 0) / 60:.0f} "
            f"min. Commands: {'; '.join(f'`{c}`' for c in part['commands'])}.\n"]
    return "\n".join(out)


def table_44(path=RESULTS):
    """Table 4.4 (distillation methods, 4 tasks of disjoint 25% of the classes)."""
    part = _load(path)["tables"]["4.4"]
    summary = part.get("summary", {})
    cells, paper = summary.get("cells", {}), summary.get("paper", {})
    lines = ["| Method | ∪̇25% (ours) | ∪̇25% (paper) |", "|---|---|---|"]
    for key, label in (("aux", "Auxiliary layer"), ("aux_warm", "Auxiliary layer (warm start)"),
                       ("subset", "Feature subset"), ("subset_warm", "Feature subset (warm start)"),
                       ("single_mean", "Single task (mean)"), ("single_max", "Single task (max)")):
        lines.append(f"| {label} | {_mean_ci(cells.get(key))} | {paper.get(key, '–')} |")
    lines += ["", "| Paired difference | ours | paper |", "|---|---|---|"]
    for name, a, b in part.get("contrasts_planned", []):
        ref = "–"
        if a in paper and b in paper:
            ref = f"{float(paper[a]) - float(paper[b]):+.1f}"
        lines.append(f"| {name} | {_diff(summary.get('contrasts', {}).get(name))} | {ref} |")
    return "\n".join(lines) + "\n" + _footer(part)


def distill_table(path=RESULTS):
    """Every table that ``path`` holds, as Markdown."""
    tables = _load(path).get("tables", {})
    out = []
    for name, title, render in (("4.3", "Table 4.3", table_43), ("4.4", "Table 4.4", table_44),
                                ("fig4.5", "Fig. 4.5 (as a table)", fig_45)):
        if name in tables and tables[name].get("summary"):
            out.append(f"**{title}**\n\n" + render(path))
    return "\n".join(out)


if __name__ == "__main__":
    print(distill_table(sys.argv[1] if len(sys.argv) > 1 else RESULTS))
