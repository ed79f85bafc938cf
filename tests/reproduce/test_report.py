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
