"""Markdown tables of the committed results files, and the doc sections generated from them.

    python tools/results_tables.py            # rewrite the generated sections
    python tools/results_tables.py --check    # exit 1 if a page differs from the results

A generated section sits between ``<!-- results:NAME:begin -->`` and ``<!-- results:NAME:end -->``
in one of :data:`PAGES` (README.md, docs/reproduction.md); every section of :data:`SECTIONS` must
appear in exactly one page. ``tests/test_results_tables.py`` runs ``--check``, so a documented
number cannot drift from its results file.
"""
import argparse
import json
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ("README.md", os.path.join("docs", "reproduction.md"), os.path.join("docs", "multitask.md"),
         os.path.join("docs", "distillation.md"))


def _ci(p):
    return f"{p['mean_difference']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]"


def _ci_db(p):
    return f"{p['mean_difference']:+.2f} dB [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]"


def colorizer_heldout(path=os.path.join(ROOT, "results", "colorizer_heldout.json")):
    """The runs (best val loss) and the holdout comparison of the selected colorizer."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    prior = r["prior_val_loss"]["prior of the 154 train photos"]
    half = r["prior_val_loss"]["prior of the 77-photo half"]
    lines = ["| run | train photos | recipe | best val loss @ step | minus its prior's val loss |",
             "| --- | --- | --- | --- | --- |"]
    for name, run in r["runs"].items():
        ref = prior if run["photos"] == 154 else half
        mark = "**" if name == r["selected"]["run"] else ""
        lines.append(f"| {mark}{name}{mark} | {run['photos']} | {run['recipe']} | "
                     f"{run['best_val_loss']:.3f} @ {run['best_step']} | "
                     f"{run['best_val_loss'] - ref:+.3f} |")
    lines += ["", f"Marginal prior scored on the same val points: {prior:.3f} (154 photos), "
              f"{half:.3f} (77). Selected: run {r['selected']['run']}, "
              f"{r['selected']['checkpoint']} ({r['selected']['rule']}).", "",
              "| holdout (25 photos) | model ab mean | grey | prior | model - grey, ab | "
              "model - prior, ab | model - grey, PSNR | model - prior, PSNR |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    labels = {"E625_default_readout": "selected, default read-out",
              "E625_eta0.3_chosen_on_val": "selected, fading eta 0.3 (chosen on val)",
              "E_seed1_625_default_readout": "second seed, default read-out"}
    for key, label in labels.items():
        h = r["holdout"][key]
        m, p = h["metrics"], h["paired"]
        lines.append(f"| {label} | {m['model']['alphabeta_mean']:.4f} | "
                     f"{m['gray']['alphabeta_mean']:.4f} | {m['prior']['alphabeta_mean']:.4f} | "
                     f"{_ci(p['model-gray']['alphabeta_mean'])} | "
                     f"{_ci(p['model-prior']['alphabeta_mean'])} | "
                     f"{_ci_db(p['model-gray']['psnr'])} | {_ci_db(p['model-prior']['psnr'])} |")
    return "\n".join(lines)


def linear_probe(path=os.path.join(ROOT, "results", "linear_probe_debphoto15.json")):
    """The linear probe on debphoto15: LR chosen on val per initialisation, test top-1."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    lines = ["| initialisation | LR (chosen on val) | val top-1 | test top-1 (mean +- std, "
             "5 seeds) | per seed |", "| --- | --- | --- | --- | --- |"]
    for name, c in sorted(r["chosen"].items()):
        per_seed = ", ".join(f"{v:.3f}" for _, v in sorted(c["test"].items(), key=lambda kv: int(kv[0])))
        lines.append(f"| {name} | {c['learning_rate']:g} | {c['val_mean']:.3f} | "
                     f"{c['test_mean']:.3f} +- {c['test_std']:.3f} | {per_seed} |")
    d = r["paired_colorization_minus_random"]
    lines += ["", f"Colorization - random, paired by fine-tuning seed (both pretraining seeds, "
              f"{d['n']} pairs): {d['mean']:+.3f} top-1, 95% t-interval "
              f"[{d['t_interval_95'][0]:+.3f}, {d['t_interval_95'][1]:+.3f}], bootstrap "
              f"[{d['bootstrap_95'][0]:+.3f}, {d['bootstrap_95'][1]:+.3f}]; colorization better "
              f"in {d['fraction_improved']:.0%} of pairs.",
              ""]
    a = r["paired_averaged_over_pretraining_seeds"]
    lines += [f"The same with the two pretraining seeds averaged (the {a['n']} fine-tuning seeds are "
              f"the independent pairs; the conservative interval): {a['mean']:+.3f}, 95% "
              f"t-interval [{a['t_interval_95'][0]:+.3f}, {a['t_interval_95'][1]:+.3f}]."]
    return "\n".join(lines)


def reproduce(path=os.path.join(ROOT, "results", "reproduce.json")):
    """The tables of the committed reproduction run (``binaries/reproduce``'s results.json), as
    its own report renders them (``tfcolor.reproduce.report``), without the title."""
    sys.path.insert(0, ROOT)
    from tfcolor.reproduce import report  # pylint: disable=import-outside-toplevel
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    text = report.markdown(r, level=4)
    return text.split("\n", 2)[2].rstrip("\n")  # drop the title line and its blank line


def reproduce_multitask(path=os.path.join(ROOT, "results", "reproduce_multitask.json")):
    """The tables of the committed multi-proxy run (Table 4.7 at CPU scale), as its own report
    renders them, without the title."""
    return reproduce(path)


def multitask_headline(path=os.path.join(ROOT, "results", "reproduce_multitask.json")):
    """The README's summary of the multi-proxy run: per protocol, our rows next to the thesis'
    Table 4.7, and the combinations' paired differences."""
    sys.path.insert(0, ROOT)
    from tfcolor.reproduce import report  # pylint: disable=import-outside-toplevel
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    titles = {"linear_probe": "linear probe (frozen trunk)", "finetune": "full fine-tuning"}
    lines = []
    for protocol, d in r["downstream"].items():
        rates = sorted({float(lr) for by_lr in d["grid"].values() for lr in by_lr})
        how = ("LR chosen on val" if len(rates) > 1 else f"at the one learning rate {rates[0]:g}")
        lines += [f"**{titles.get(protocol, protocol)}**, {r['config']['labeled_set']} "
                  f"{d['metric']}, {len(r['config']['finetune_seeds'])} fine-tuning seeds, "
                  f"{how}:", "", report.multitask_table(r, protocol), ""]
        pairs = [(name, c) for name, c in d["comparisons"].items()
                 if name in ("colorization - cj", "cj - jigsaw", "cjv - cj", "cj - cj_sgd",
                             "colorization - cjv")]
        if pairs:
            lines += ["| combination, paired by fine-tuning seed | n | mean | 95% t-interval |",
                      "| --- | ---: | ---: | --- |"]
            for name, c in pairs:
                lo, hi = c["t_interval"] or (float("nan"), float("nan"))
                lines.append(f"| {name} | {c['n']} | {c['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] |")
            lines.append("")
    return "\n".join(lines).rstrip("\n")


def headline(path=os.path.join(ROOT, "results", "reproduce.json")):
    """The README's summary of the committed reproduction: colorization - random per protocol,
    and the first colorization seed's colorizer against grey and the prior."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    lines = ["| what (debphoto15 top-1; holdout photos) | colorization - random, mean | "
             "95% t-interval | colorization better in |", "| --- | ---: | --- | ---: |"]
    titles = {"linear_probe": "linear probe (frozen trunk)", "finetune": "full fine-tuning"}
    for protocol, title in titles.items():
        c = r["downstream"][protocol]["comparisons"]["colorization - random"]
        lo, hi = c["t_interval"]
        lines.append(f"| {title} | {c['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                     f"{c['fraction_improved']:.0%} of {c['n']} pairs |")
    name = next(n for n in r["colorizer"] if n.startswith("colorization"))
    lines += ["", "| colorizer on the holdout photos | model - grey | model - prior |",
              "| --- | --- | --- |"]
    for metric, label, fmt, unit in (("alphabeta_mean", "alpha-beta error (lower is better)",
                                      "+.4f", ""), ("psnr", "PSNR", "+.2f", " dB")):
        cells = []
        for other in ("model-gray", "model-prior"):
            p = r["colorizer"][name]["paired"][other][metric]
            cells.append(f"{p['mean_difference']:{fmt}}{unit} "
                         f"[{p['ci_low']:{fmt}}, {p['ci_high']:{fmt}}]")
        lines.append(f"| {label}, {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def quickstart(path=os.path.join(ROOT, "results", "quickstart.json")):
    """The README's quick start as measured by ``tools/quickstart_results.py``: time, the
    held-out loss against the prior's, and ``evaluate``'s comparison with grey and the prior."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    train, evaluate = r["commands"]
    curve, best, prior = r["heldout_curve"], r["best"], r["prior_heldout"]
    lines = [f"Measured with `python tools/quickstart_results.py` ({r['machine']}): "
             f"`{train['command']}` took {train['wall_seconds'] / 60:.1f} min "
             f"({train['cpu_seconds'] / 60:.1f} min of CPU), `{evaluate['command']}` "
             f"{evaluate['wall_seconds']:.0f} s. Held-out loss (the training loss on the "
             f"validation photos' fixed crops): {curve[0]['loss']:.3f} at step "
             f"{curve[0]['step']}, {best['loss']:.3f} at the kept step {best['step']}; the "
             f"training photos' marginal prior, which does not look at the image, scores "
             f"{prior['loss']:.3f}."]
    lines = [textwrap.fill(lines[0], 100, break_on_hyphens=False, break_long_words=False), ""]
    m = r["evaluate"]["metrics"]
    baselines = [b for b in ("gray", "prior", "constant_tint", "lightness_lookup") if b in m]
    titles = {"gray": "grey", "prior": "prior", "constant_tint": "constant tint",
              "lightness_lookup": "lightness lookup"}
    lines += ["| on the 8 validation photos | model | "
              + " | ".join(titles[b] for b in baselines) + " | "
              + " | ".join(f"model - {titles[b]} [95% CI]" for b in baselines) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in baselines) + " | "
              + " | ".join("---" for _ in baselines) + " |"]
    for metric, label, fmt, ci in (("alphabeta_mean", "alpha-beta error (lower is better)",
                                    ".3f", _ci), ("psnr", "PSNR (dB, higher is better)", ".2f",
                                                  _ci_db)):
        paired = r["evaluate"]["paired"]
        lines.append(f"| {label} | {m['model'][metric]:{fmt}} | "
                     + " | ".join(f"{m[b][metric]:{fmt}}" for b in baselines) + " | "
                     + " | ".join(ci(paired[f"model-{b}"][metric]) for b in baselines) + " |")
    return "\n".join(lines)


def _mean_tail(curve, fraction=1.0):
    values = [v for _, v in curve]
    if not values:
        return float("nan")
    start = int(len(values) * (1.0 - fraction))
    tail = values[start:]
    return sum(tail) / len(tail)


def multitask_gradients(path=os.path.join(ROOT, "results", "multitask.json")):
    """The tasks' gradient norms under joint SGD and NormSGD (Fig. 4.4), the contrived x100
    case and round-robin against joint (Table 4.6) of ``tools/multitask_experiments.py``."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    runs = {x["name"]: x for x in r["runs"] if x["seed"] == r["seeds"][0]}
    rates = r["chosen_rates"]
    lines = [textwrap.fill(
        f"Measured with `{' '.join(r['command'])}` (pretraining seed {r['seeds'][0]}, "
        f"{r['recipe']['steps']} steps, vgg_tiny, learning rates chosen on the val photos' "
        f"held-out colorization loss: SGD {rates['sum']:g}, NormSGD {rates['normsgd']:g}; "
        f"{sum(r['compute_seconds'].values()) / 60:.0f} min of compute). Gradient norms are "
        f"the mean over the run of ||g||_1 / P over the trunk.", 100,
        break_on_hyphens=False, break_long_words=False), "",
        "| run | C grad | J grad | J / C | C held-out loss | J train loss (chance 3.18) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("CJ_sum", "CJ_normsgd", "CJx100_sum", "CJx100_normsgd", "CJ_rr_q5",
                 "CJ_rr_q50", "C", "J"):
        x = runs.get(name)
        if x is None:
            continue
        g = x["gradient_curves"]
        c = _mean_tail(g.get("grad/colorization/l1_mean", []))
        j = _mean_tail(g.get("grad/jigsaw/l1_mean", []))
        jl = _mean_tail(x["loss_curves"].get("loss/jigsaw", []), 0.1)
        held = x["final_heldout"]
        cells = [f"{c:.2e}" if c == c else "-", f"{j:.2e}" if j == j else "-",
                 f"{j / c:.1f}" if c == c and j == j else "-",
                 f"{held:.3f}" if held is not None else "-", f"{jl:.2f}" if jl == jl else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def multitask_probe(path=os.path.join(ROOT, "results", "multitask.json")):
    """The linear probe of every trunk of ``tools/multitask_experiments.py`` with the paired
    differences named before the run."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    d = r["downstream"]
    one = len(d["rates"]) == 1
    lines = [f"Intervals cover {d['intervals_cover']}; "
             + (f"every probe at the one learning rate {d['rates'][0]:g} (nothing chosen on "
                "val)." if one else "a rate marked (edge) was chosen at the edge of the grid.")]
    lines += ["", f"| {d['protocol'].replace('_', ' ')} on {d['labeled_set']} (top-1) | rate | "
              "test mean | test std |", "| --- | ---: | ---: | ---: |"]
    for init, c in d["chosen"].items():
        edge = " (edge)" if c.get("at_edge") and not one else ""
        lines.append(f"| {init} | {c['learning_rate']:g}{edge} | {c['test_mean']:.3f} | "
                     f"{c['test_std']:.3f} |")
    if d["comparisons"]:
        lines += ["", "| paired difference (probe seeds) | mean | 95% t-interval |",
                  "| --- | ---: | --- |"]
        for name, c in d["comparisons"].items():
            ci = c.get("t_interval")
            ci = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "-"
            lines.append(f"| {name} | {c['mean']:+.3f} | {ci} |")
    return "\n".join(lines)


def interproxy(path=os.path.join(ROOT, "results", "interproxy.json")):
    """The inter-proxy curves' tail losses (``tools/interproxy_curves.py``, Fig. 4.7)."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    st = r["settings"]
    cells = {(e["target"], e["init"], e["mode"]): e for e in r["table"]}
    seeds = {t: len(v) for t, v in r["target_seeds"].items()}
    lines = [f"Training loss averaged over the last {st['tail']} of {st['steps']} steps "
             f"(Adam, rate {st['learning_rate']:g}); the difference to `random` is paired by "
             "seed; intervals (95% t) cover the target run's seeds (head initialisation and "
             "data order) over one source trunk per task: "
             + ", ".join(f"{t} {n} seed{'s' if n > 1 else ''}" for t, n in seeds.items())
             + "; p-values of the paired t-tests are Holm-adjusted over every comparison "
             "with an interval.",
             "", "| target | trunk from | end to end (ft) | minus random | fixed trunk | "
             "minus random |", "| --- | --- | ---: | --- | ---: | --- |"]

    def diff(e):
        if e is None or "minus_random" not in e:
            return "-"
        ci = e.get("minus_random_ci95")
        text = f"{e['minus_random']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
        if "minus_random_p_holm" in e:
            text += f" (Holm p {e['minus_random_p_holm']:.2f})"
        return text

    for target in seeds:
        for init in ("random", "C", "J", "V", "CJV"):
            ft, fixed = cells.get((target, init, "ft")), cells.get((target, init, "fixed"))
            if ft is None and fixed is None:
                continue
            lines.append(f"| {target} | {init} | "
                         f"{ft['tail_loss']:.3f} | {diff(ft)} | " if ft else
                         f"| {target} | {init} | - | - | ")
            lines[-1] += (f"{fixed['tail_loss']:.3f} | {diff(fixed)} |" if fixed else "- | - |")
    return "\n".join(lines)


def distill(path=os.path.join(ROOT, "results", "distill.json")):
    """Tables 4.3 and 4.4 at CPU scale (``tools/distill_experiments.py``) next to the paper's."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import distill_tables  # pylint: disable=import-outside-toplevel  # lazy: a sibling script
    return distill_tables.distill_table(path).strip()


def shortcuts(path=os.path.join(ROOT, "results", "shortcut_baselines.json"),
              reproduce_path=os.path.join(ROOT, "results", "reproduce.json")):
    """The no-learning baselines of the labelled sets (``tools/shortcut_baselines.py``) beside
    the learned trunks' debphoto15 accuracies of the reproduction."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    with open(reproduce_path, encoding="utf-8") as f:
        downstream = json.load(f)["downstream"]

    def cell(b):
        return f"{b['accuracy']:.3f} [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}]" if b else "-"

    lines = ["| test top-1 (95% bootstrap over test images) | test images | chance | "
             "commonest class | commonest class of the source package | 11 style features + "
             "logistic regression |", "| --- | ---: | ---: | --- | --- | --- |"]
    titles = {"debphoto15": "debphoto15 (15 classes, 3 packages)",
              "debphoto15_tuxpaint": "debphoto15, tuxpaint alone (12 classes, 1 package)",
              "fashion_mnist_100": "Fashion-MNIST, 100 labels per class"}
    for name, title in titles.items():
        b = r["sets"].get(name)
        if b is None:
            continue
        lines.append(f"| {title} | {b['sizes']['test']} | {b['chance']:.3f} | "
                     f"{cell(b['majority'])} | {cell(b.get('source_majority'))} | "
                     f"{cell(b['style_logistic'])} |")
    learned = []
    for protocol, label in (("linear_probe", "linear probe"), ("finetune", "fine-tuning")):
        chosen = downstream[protocol]["chosen"]
        values = {k: v["test_mean"] for k, v in chosen.items()}
        best = max(values, key=values.get)
        learned.append(f"{label}: random {values['random']:.3f}, best arm {best} "
                       f"{values[best]:.3f}")
    lines += ["", "Learned trunks on debphoto15 in the reproduction (the 501-image build, before "
              "the name patterns were fixed; mean of 5 fine-tuning seeds): "
              + "; ".join(learned) + "."]
    return "\n".join(lines)


def shipped_baselines(path=os.path.join(ROOT, "results", "shipped_colorizer_baselines.json")):
    """The shipped colorizer on the holdout photos against every no-learning colour baseline."""
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    m, paired = r["metrics"], r["paired"]
    titles = {"gray": "grey", "prior": "marginal prior", "constant_tint": "constant tint",
              "lightness_lookup": "lightness lookup"}
    lines = [f"| on the {m['model']['images']} holdout photos | alpha-beta error | "
             "model - baseline [95% CI] | images improved |", "| --- | ---: | --- | ---: |",
             f"| shipped colorizer | {m['model']['alphabeta_mean']:.4f} | | |"]
    for name, title in titles.items():
        p = paired[f"model-{name}"]["alphabeta_mean"]
        lines.append(f"| {title} | {m[name]['alphabeta_mean']:.4f} | {_ci(p)} | "
                     f"{p['fraction_improved']:.0%} |")
    return "\n".join(lines)


def multitask_cifar(path=os.path.join(ROOT, "results", "multitask_cifar.json")):
    """Tables 4.5 and 4.6 at CPU scale (``tools/multitask_cifar_experiments.py``)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import multitask_cifar_tables  # pylint: disable=import-outside-toplevel  # a sibling script
    return multitask_cifar_tables.multitask_cifar_table(path).strip()


#: The chapter's controlled experiments in the README: (table, contrast, what, the thesis'
#: difference in points, computed from its printed accuracies, METHOD_CH4.md section 8.4).
CHAPTER4 = (
        ("distill", "4.3", "task_compress: ab - l2", "Table 4.3 Task-Compress: AB - L2", "+1.9"),
        ("distill", "4.3", "task_copy: ab - l2", "Table 4.3 Task-Copy: AB - L2", "+0.8"),
        ("distill", "4.3", "top_copy: ab - l2", "Table 4.3 Top-Copy: AB - L2", "+0.1"),
        ("distill", "4.3e", "ab - l2", "Table 4.3 Task-Ensemble: AB - L2", "+0.8"),
        ("distill", "4.4", "subset - aux", "Table 4.4: feature subset - auxiliary layer", "+2.7"),
        ("distill", "fig4.5", "kl best (validation) - l2",
         "Fig. 4.5 KL line, t chosen on val: - L2", "+1.9"),
        ("multitask_cifar", "4.5", "Mixed: NormSGD - SGD", "Table 4.5 Mixed losses: NormSGD - SGD",
         "+12.6"),
        ("multitask_cifar", "4.5", "C25%: NormSGD - single (mean)",
         "Table 4.5 classes 4 x 25%: NormSGD - single task", "+19.1"),
        ("multitask_cifar", "4.5", "C25%: split-weights - split-activations",
         "Table 4.5 classes 4 x 25%: split-weights - split-activations", "+13.0"),
        ("multitask_cifar", "4.6", "C25%: RR Q=0.5 - joint",
         "Table 4.6 classes 4 x 25%: round-robin (Q = 0.5%) - joint", "+0.7"))


def chapter4(paths=None):
    """The chapter's controlled experiments at CPU scale (``tools/distill_experiments.py``,
    ``tools/multitask_cifar_experiments.py``): each planned difference next to the thesis'."""
    paths = paths or {name: os.path.join(ROOT, "results", f"{name}.json")
                      for name in ("distill", "multitask_cifar")}
    data = {}
    for name, path in paths.items():
        with open(path, encoding="utf-8") as f:
            data[name] = json.load(f)["tables"]
    lines = ["| difference (test accuracy, points) | fmnist_digits20, 3 seeds: mean [95% t] | "
             "Holm p | thesis (CIFAR-100) |", "| --- | --- | ---: | ---: |"]
    for source, table, key, title, paper in CHAPTER4:
        c = data[source][table]["summary"]["contrasts"][key]
        holm_p = f"{c['p_holm']:.2f}" if "p_holm" in c else "-"
        lines.append(f"| {title} | {c['mean']:+.1f} [{c['ci95'][0]:+.1f}, {c['ci95'][1]:+.1f}] | "
                     f"{holm_p} | {paper} |")
    return "\n".join(lines)


SECTIONS = {"headline": headline, "shortcuts": shortcuts, "shipped_baselines": shipped_baselines,
            "chapter4": chapter4, "quickstart": quickstart, "colorizer_heldout": colorizer_heldout,
            "linear_probe": linear_probe, "reproduce": reproduce,
            "reproduce_multitask": reproduce_multitask, "multitask_headline": multitask_headline,
            "multitask_gradients": multitask_gradients, "multitask_probe": multitask_probe,
            "interproxy": interproxy, "distill": distill, "multitask_cifar": multitask_cifar}


def _pattern(name):
    return re.compile(rf"(<!-- results:{name}:begin -->\n).*?(<!-- results:{name}:end -->)", re.S)


def render(texts):
    """``{page: text}`` -> ``{page: text with every generated section rewritten}``."""
    out = dict(texts)
    for name, fn in SECTIONS.items():
        holders = [page for page, text in out.items() if _pattern(name).search(text)]
        if len(holders) != 1:
            raise SystemExit(f"generated section {name!r} must be in exactly one of "
                             f"{', '.join(PAGES)}; found in {holders or 'none'}")
        page = holders[0]
        out[page] = _pattern(name).sub(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2),
                                       out[page])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    texts = {}
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            texts[page] = f.read()
    new = render(texts)
    stale = [page for page in PAGES if new[page] != texts[page]]
    if args.check:
        if stale:
            print(f"{', '.join(stale)}: generated sections differ from results/: run "
                  "python tools/results_tables.py", file=sys.stderr)
            return 1
        return 0
    for page in stale:
        with open(os.path.join(ROOT, page), "w", encoding="utf-8") as f:
            f.write(new[page])
    return 0


if __name__ == "__main__":
    sys.exit(main())
