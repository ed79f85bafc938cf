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
