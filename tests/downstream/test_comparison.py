"""Tests of tfcolor.downstream.comparison: LR chosen on val, paired differences by seed."""
import json
import os

import numpy as np
import pytest
from scipy import stats

from tfcolor.downstream import comparison

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cell(val, test):
    return {"val": {str(i): v for i, v in enumerate(val)},
            "test": {str(i): v for i, v in enumerate(test)}}


GRID = {
        "random": {"0.01": _cell([0.2, 0.3, 0.4], [0.20, 0.25, 0.30]),
                   "0.1": _cell([0.5, 0.5, 0.5], [0.10, 0.10, 0.10])},
        "a_s0": {"0.01": _cell([0.6, 0.6, 0.6], [0.40, 0.45, 0.50]),
                 "0.1": _cell([0.6, 0.6, 0.6], [0.90, 0.90, 0.90])},  # tie: the smaller rate
        "a_s1": {"0.01": _cell([0.1, 0.1, 0.1], [0.0, 0.0, 0.0]),
                 "0.03": _cell([0.7, 0.7, 0.7], [0.30, 0.35, 0.60]),
                 "0.1": _cell([0.2, 0.2, 0.2], [1.0, 1.0, 1.0])},
}


def test_learning_rate_is_chosen_on_val_never_on_test():
    chosen = comparison.choose_learning_rates(GRID)
    assert chosen["random"]["learning_rate"] == 0.1 and chosen["random"]["at_edge"]
    assert chosen["a_s0"]["learning_rate"] == 0.01  # tie on val -> smaller rate
    assert chosen["a_s1"]["learning_rate"] == 0.03 and not chosen["a_s1"]["at_edge"]
    assert chosen["a_s1"]["test"] == {"0": 0.30, "1": 0.35, "2": 0.60}
    assert chosen["a_s1"]["test_mean"] == pytest.approx(1.25 / 3)
    assert chosen["a_s1"]["test_std"] == pytest.approx(np.std([0.3, 0.35, 0.6], ddof=1))


def test_paired_difference_by_hand_and_scipy():
    chosen = comparison.choose_learning_rates(GRID)
    d = comparison.paired_difference(chosen, ["a_s0", "a_s1"], ["random"])
    # Per fine-tuning seed: mean over the two pretraining seeds minus random (0.1 each).
    by_hand = np.array([(0.40 + 0.30) / 2, (0.45 + 0.35) / 2, (0.50 + 0.60) / 2]) - 0.1
    assert d["values"] == pytest.approx(by_hand.tolist())
    assert d["n"] == 3 and d["mean"] == pytest.approx(by_hand.mean())
    lo, hi = stats.t.interval(0.95, 2, loc=by_hand.mean(), scale=stats.sem(by_hand))
    assert d["t_interval"] == pytest.approx([lo, hi])
    assert d["bootstrap"][0] >= by_hand.min() - 1e-12 and d["bootstrap"][1] <= by_hand.max()
    assert d["fraction_improved"] == 1.0
    pooled = np.array([0.3, 0.2, 0.35, 0.25, 0.4, 0.5])
    assert sorted(d["pooled"]["values"]) == pytest.approx(sorted(pooled))
    assert d["pooled"]["n"] == 6


def test_one_seed_has_no_interval():
    grid = {"random": {"0.1": _cell([0.5], [0.2])}, "a": {"0.1": _cell([0.5], [0.3])}}
    d = comparison.paired_difference(comparison.choose_learning_rates(grid), ["a"], ["random"])
    assert d["n"] == 1 and d["mean"] == pytest.approx(0.1) and d["t_interval"] is None


def test_reproduces_the_committed_linear_probe_statistics():
    """The last session's tools/collect_linear_probe.py computed these with scipy and its own
    code; the library must give the same numbers from the same grid."""
    with open(os.path.join(ROOT, "results", "linear_probe_debphoto15.json")) as f:
        committed = json.load(f)
    chosen = comparison.choose_learning_rates(committed["grid"])
    for name, c in committed["chosen"].items():
        assert chosen[name]["learning_rate"] == c["learning_rate"]
        assert chosen[name]["test_mean"] == pytest.approx(c["test_mean"])
    d = comparison.paired_difference(chosen, ["colorization_s0", "colorization_s1"], ["random"])
    ref = committed["paired_averaged_over_pretraining_seeds"]
    assert d["mean"] == pytest.approx(ref["mean"])
    assert d["t_interval"] == pytest.approx(ref["t_interval_95"])
    pooled = committed["paired_colorization_minus_random"]
    assert d["pooled"]["mean"] == pytest.approx(pooled["mean"])
    assert d["pooled"]["t_interval"] == pytest.approx(pooled["t_interval_95"])


def test_grid_cell_of_a_finetune_seeds_result():
    result = {"metric": "top1", "runs": [
            {"seed": 0, "best_val": 0.5, "test": {"top1": 0.4, "top5": 0.9}, "stop_step": 100},
            {"seed": 3, "best_val": 0.6, "test": {"top1": 0.2, "top5": 0.8}, "stop_step": 50}]}
    assert comparison.grid_cell(result) == {"val": {"0": 0.5, "3": 0.6},
                                            "test": {"0": 0.4, "3": 0.2},
                                            "stop_step": {"0": 100, "3": 50}}


def test_empty_grid_cell_is_an_error():
    with pytest.raises(ValueError, match="no grid cell"):
        comparison.choose_learning_rates({"random": {}})


def test_grid_cell_keeps_per_image_predictions_and_runs_and_images_uses_the_chosen_rate():
    labels = np.array([0, 1, 1, 0, 2, 2])

    def result(predictions_by_seed, best_val):
        return {"metric": "top1", "runs": [
                {"seed": s, "best_val": best_val, "stop_step": 10,
                 "test": {"top1": float(np.mean(np.array(p) == labels)), "predictions": p}}
                for s, p in predictions_by_seed.items()]}
    right, wrong = labels.tolist(), ((labels + 1) % 3).tolist()
    half = right[:3] + wrong[3:]
    grid = {"a_s0": {"0.1": comparison.grid_cell(result({0: right, 1: half}, 0.9)),
                     "1": comparison.grid_cell(result({0: wrong, 1: wrong}, 0.1))},
            "a_s1": {"0.1": comparison.grid_cell(result({0: half, 1: half}, 0.9))},
            "b_s0": {"0.1": comparison.grid_cell(result({0: wrong, 1: half}, 0.9))}}
    assert grid["a_s0"]["0.1"]["predictions"] == {"0": right, "1": half}
    chosen = comparison.choose_learning_rates(grid)
    r = comparison.runs_and_images(grid, chosen, ["a_s0", "a_s1"], ["b_s0"], labels,
                                   n_resamples=500)
    # recipe a: runs of accuracy 0.75 and 0.5; recipe b: 0.25 (hand values)
    assert r["difference"] == pytest.approx((0.75 + 0.5) / 2 - 0.25)
    assert r["runs"] == [2, 1] and r["images"] == 6
    assert r["covers"] == "the runs of one recipe and images"
    assert r["ci_low"] <= r["difference"] <= r["ci_high"]
    del grid["b_s0"]["0.1"]["predictions"]        # results kept before predictions were
    assert comparison.runs_and_images(grid, chosen, ["a_s0"], ["b_s0"], labels) is None


def test_holm_corrects_every_comparison_but_the_primary():
    comps = {name: {"n": 4, "values": values} for name, values in (
            ("c - untrained", [0.05, 0.04, 0.06, 0.05]), ("c - random", [0.02, -0.01, 0.03, 0.0]),
            ("d - random", [0.1, 0.12, 0.09, 0.11]), ("one", None))}
    comps["one"] = {"n": 1, "values": [0.3]}
    comparison.with_holm(comps, primary="c - untrained")
    p = {n: stats.ttest_1samp(comps[n]["values"], 0.0).pvalue for n in comps if n != "one"}
    for n, want in p.items():
        assert comps[n]["p"] == pytest.approx(want, rel=1e-6)
    assert "p_holm" not in comps["c - untrained"] and comps["c - untrained"]["primary"]
    lo, hi = sorted([p["c - random"], p["d - random"]])
    holm = {n: min(1.0, (2 if p[n] == lo else 1) * p[n]) for n in ("c - random", "d - random")}
    holm[max(holm, key=lambda n: p[n])] = max(holm.values())
    for n in ("c - random", "d - random"):
        assert comps[n]["p_holm"] == pytest.approx(holm[n], rel=1e-6)
    assert "p" not in comps["one"]
