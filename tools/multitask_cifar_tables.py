"""Markdown tables of ``results/multitask_cifar.json`` (``tools/multitask_cifar_experiments.py``)
next to the dissertation's numbers: :func:`multitask_cifar_table` (every table the file holds).

    python tools/multitask_cifar_tables.py [results/multitask_cifar.json]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distill_tables import _diff, _mean_ci  # noqa: E402  (the same cell formats)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results", "multitask_cifar.json")
COLUMNS = {"c1": "4 tasks, N ∪̇25%", "c2": "4 tasks, C ∪50%", "c3": "2 tasks, C ∪̇50%",
           "c4": "4 tasks, C ∪̇25%", "c5": "10 tasks, C ∪̇10%", "c6": "4 Mixed, C ∪̇25%"}
ROWS = {"4.5": (("single_mean", "Single task (mean)"), ("single_max", "Single task (max)"),
                ("distill", "Distillation (subset)"), ("split_act", "Split-activations"),
                ("split_weights", "Split-weights"), ("adam", "Joint (Adam)"),
                ("multi_adam", "Joint (Multi-Adam)"), ("sgd", "Joint (SGD)"),
                ("normsgd", "Joint (NormSGD)"), ("full", "Pretrained on full dataset")),
        "4.6": (("joint", "Joint (NormSGD)"), ("rr_q0.5", "Round-robin, Q = 0.5% of I"),
                ("rr_q5", "Round-robin, Q = 5% of I"))}


def _table(part, table):
    summary = part.get("summary", {})
    cells, paper = summary.get("cells", {}), summary.get("paper", {})
    columns = [c for c in COLUMNS if any(k.startswith(f"{c}/") for k in cells)]
    lines = ["| | " + " | ".join(f"{COLUMNS[c]} (ours) | (paper)" for c in columns) + " |",
             "|---" * (1 + 2 * len(columns)) + "|"]
    for key, label in ROWS[table]:
        row = [label]
        for c in columns:
            row += [_mean_ci(cells.get(f"{c}/{key}")), str(paper.get(f"{c}/{key}", "–"))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| Planned paired difference | ours | p (Holm) | paper |", "|---|---|---|---|"]
    for name, a, b in part.get("contrasts_planned", []):
        ours = summary.get("contrasts", {}).get(name, {})
        ref = f"{paper[a] - paper[b]:+.1f}" if a in paper and b in paper else "–"
        p = f"{ours['p']:.3f} ({ours['p_holm']:.3f})" if "p_holm" in ours else "–"
        lines.append(f"| {name} | {_diff(ours)} | {p} | {ref} |")
    s = part["settings"]
    lr = ", ".join(f"{k} {v['chosen']:g}" for k, v in sorted(part.get("lr", {}).items()))
    if table == "4.5" and s.get("distill_lr"):
        lr += f"; the student's {s['distill_lr']['chosen']:g}, Table 4.4's"
    lines.append(
        f"\nfmnist_digits20 test accuracy % of a linear probe (mean [95% t-interval over seeds] "
        f"(seeds)); paper: CIFAR-100. *Deep* 1/{s['width_divisor']} as wide as Table 4.1, "
        f"{s['steps']} iterations, total batch {s['batch']}, rates ({lr}) chosen on validation; "
        f"compute {part.get('compute_seconds', 0) / 60:.0f} min on one core. Commands: "
        f"{'; '.join(f'`{c}`' for c in part['commands'])}.\n")
    return "\n".join(lines)


def multitask_cifar_table(path=RESULTS):
    """Every table that ``path`` holds, as Markdown."""
    with open(path, encoding="utf-8") as f:
        tables = json.load(f).get("tables", {})
    return "\n".join(f"**Table {name}**\n\n" + _table(tables[name], name)
                     for name in ("4.5", "4.6")
                     if name in tables and tables[name].get("summary"))


if __name__ == "__main__":
    print(multitask_cifar_table(sys.argv[1] if len(sys.argv) > 1 else RESULTS))
