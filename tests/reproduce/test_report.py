"""Tests of tfcolor.reproduce.report: the Markdown tables of a reproduction."""
from tfcolor.reproduce import report


def _cell(*val):
    return {"val": {str(i): v for i, v in enumerate(val)}, "test": {}, "stop_step": {}}


def test_grid_table_lists_every_rate_in_order_and_marks_the_chosen_one():
    results = {"downstream": {"linear_probe": {
        "grid": {"random": {"1": _cell(0.5, 0.7), "0.03": _cell(0.2, 0.2),
                            "0.1": _cell(0.4, 0.4)},
                 "colorization_s0": {"0.1": _cell(0.45, 0.55), "0.03": _cell(0.3, 0.4)}},
        "chosen": {"random": {"learning_rate": 1.0},
                   "colorization_s0": {"learning_rate": 0.1}}}}}
    lines = report.grid_table(results, "linear_probe").splitlines()
    assert lines[0] == "| val by learning rate | 0.03 | 0.1 | 1 |"
    assert lines[1] == "| --- | ---: | ---: | ---: |"
    # means by hand: (0.5 + 0.7) / 2 = 0.6; a rate the init lacks is "-"
    assert lines[2] == "| random | 0.200 | 0.400 | **0.600** |"
    assert lines[3] == "| colorization_s0 | 0.350 | **0.500** | - |"


def test_the_primary_comparison_and_the_holm_p_values_are_in_the_downstream_table():
    comparison = {"n": 2, "mean": 0.05, "t_interval": [0.01, 0.09], "fraction_improved": 1.0}
    results = {"config": {"finetune_seeds": [0, 1]}, "downstream": {"finetune": {
        "metric": "top1", "grid": {"random": {"0.1": _cell(0.5, 0.6)}},
        "chosen": {"random": {"learning_rate": 0.1, "at_edge": False, "val_mean": 0.55,
                              "test_mean": 0.5, "test_std": 0.1, "test": {"0": 0.4, "1": 0.6}}},
        "primary": "colorization - untrained",
        "comparisons": {
            "colorization - untrained": dict(comparison, p=0.04, primary=True,
                                             runs_and_images={"ci_low": 0.01, "ci_high": 0.08,
                                                              "covers": "runs and images"}),
            "colorization - random": dict(comparison, p=0.02, p_holm=0.04)}}}}
    text = report.downstream_tables(results, "finetune")
    assert ("| **colorization - untrained** (primary) | 2 | +0.050 | [+0.010, +0.090] | "
            "0.040 (primary) | [+0.010, +0.080] (runs and images) | 100% |") in text
    assert "| colorization - random | 2 | +0.050 | [+0.010, +0.090] | 0.040 | - | 100% |" in text
    assert "named before the runs" in text
