"""Markdown tables of ``results/distill.json`` (``tools/distill_experiments.py``) next to the
dissertation's numbers: :func:`distill_table` (every table the file holds), or
:func:`table_43` / :func:`table_44` alone.

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


def table_43(path=RESULTS):
    """Table 4.3 (distillation losses), ours next to the paper's."""
    part = _load(path)["tables"]["4.3"]
    summary = part.get("summary", {})
    cells, paper = summary.get("cells", {}), summary.get("paper", {})
    lines = ["| Loss | " + " | ".join(f"{label} (ours) | {label} (paper)"
                                       for _, label in PROBLEMS) + " |",
             "|---" * (1 + 2 * len(PROBLEMS)) + "|"]
    for key, label in (("l2", "D_AB^(0,0) (L2)"), ("ab", "D_AB^(1/4,0)"),
                       ("teacher", "Teacher")):
        row = [label]
        for p, _ in PROBLEMS:
            row += [_mean_ci(cells.get(f"{p}/{key}")), str(paper.get(f"{p}/{key}", "–"))]
        lines.append("| " + " | ".join(row) + " |")
    row = ["AB − L2, paired by seed"]
    for p, _ in PROBLEMS:
        ours = summary.get("contrasts", {}).get(f"{p}: ab - l2")
        pl2, pab = paper.get(f"{p}/l2"), paper.get(f"{p}/ab")
        ref = (f"{float(str(pab).split()[0]) - float(str(pl2).split()[0]):+.1f}"
               if pl2 and pab else "–")
        row += [_diff(ours), ref]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n" + _footer(part)


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
    for name, render in (("4.3", table_43), ("4.4", table_44)):
        if name in tables and tables[name].get("summary"):
            out.append(f"**Table {name}**\n\n" + render(path))
    return "\n".join(out)


if __name__ == "__main__":
    print(distill_table(sys.argv[1] if len(sys.argv) > 1 else RESULTS))
