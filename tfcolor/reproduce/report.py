"""Markdown tables of a reproduction's ``results.json`` (``results.md``, and the README section
that ``tools/results_tables.py`` generates from the committed copy)."""

__all__ = ["markdown", "pretraining_table", "colorizer_table", "downstream_tables", "grid_table"]

_PROTOCOL_TITLES = {"linear_probe": "Linear probe (frozen trunk)",
                    "finetune": "Full fine-tuning"}


def _interval(pair):
    return f"[{pair[0]:+.3f}, {pair[1]:+.3f}]" if pair else "-"


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
        loss = p["final_losses"].get("loss")
        arm = arms[p["arm"]]
        lines.append(f"| {name} | {arm['objective']} | {'yes' if arm['lr_drop'] else 'no'} | "
                     f"{p['seconds']:.0f} | {'-' if loss is None else f'{loss:.4f}'} | "
                     f"{held} |")
    return "\n".join(lines)


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
    lines = [f"**{_PROTOCOL_TITLES.get(protocol, protocol)}** ({d['metric']}, {seeds} "
             "fine-tuning seeds; LR chosen per initialisation on the val split)", "",
             "| initialisation | LR | val | test (mean +- std) |", "| --- | --- | ---: | ---: |"]
    for init, c in d["chosen"].items():
        edge = " (grid edge)" if c["at_edge"] else ""
        lines.append(f"| {init} | {c['learning_rate']:g}{edge} | {c['val_mean']:.3f} | "
                     f"{c['test_mean']:.3f} +- {c['test_std']:.3f} |")
    lines += ["", grid_table(results, protocol)]
    lines += ["", "| paired difference (by fine-tuning seed) | n | mean | 95% t-interval | "
              "95% bootstrap | A better in | pooled pairs: n, 95% t |",
              "| --- | ---: | ---: | --- | --- | ---: | --- |"]
    for name, c in d["comparisons"].items():
        p = c["pooled"]
        lines.append(f"| {name} | {c['n']} | {c['mean']:+.3f} | {_interval(c['t_interval'])} | "
                     f"{_interval(c['bootstrap'])} | {c['fraction_improved']:.0%} | "
                     f"{p['n']}, {_interval(p['t_interval'])} |")
    return "\n".join(lines)


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
              f"evaluation {s['colorizer'] / 60:.1f}, downstream {s['downstream'] / 60:.1f})", "",
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
    if "split_brain" in results["arms"]:
        from tfcolor.baselines import split_brain  # pylint: disable=import-outside-toplevel
        lines += [f"The downstream input is grey, so {split_brain.grey_input_handicap('lab')}: "
                  "the split-brain numbers understate that method (its authors fine-tune on "
                  "colour input).", ""]
    return "\n".join(lines)
