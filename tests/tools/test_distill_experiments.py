"""tools/distill_experiments.py: Table 4.3's smallest cell on a tiny synthetic set -- the
results file's structure, and a rerun that reuses every finished run. About 20 small Keras
trainings: a minute or more on a loaded machine, most of it building and tracing models."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

_TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "distill_experiments.py"


def _tool():
    spec = importlib.util.spec_from_file_location("distill_experiments", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_set(path):
    rng = np.random.default_rng(0)

    def split(per_class):
        y = np.repeat(np.arange(20), per_class)
        x = rng.integers(0, 40, (len(y), 16, 16, 3)).astype(np.uint8)
        for c in range(20):   # a class is a bright row
            x[y == c, c % 16, :, c // 16] = 255
        order = rng.permutation(len(y))
        return x[order], y[order]
    x_train, y_train = split(5)
    x_test, y_test = split(2)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.mark.slow  # trains teachers and students of two seeds (1-3 min); the tool's grid and
# summary helpers are checked in the default run
def test_smallest_cell_writes_its_results_and_a_rerun_reuses_them(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "MAX_EXTENSIONS", 0)   # fewer runs: a grid edge is kept
    data = _tiny_set(tmp_path / "tiny.npz")
    out = tmp_path / "distill.json"
    argv = ["--table", "4.3", "--data", str(data), "--output", str(out), "--work_dir",
            str(tmp_path / "work"), "--seeds", "2", "--problems", "task_compress",
            "--teacher_epochs", "1", "--student_epochs", "1", "--probe_epochs", "2",
            "--batch", "32", "--lr_grid", "1e-3,3e-3,1e-2"]
    store = tool.main(argv)
    assert store.computed == len(store.runs) > 0
    result = json.loads(out.read_text())
    part = result["tables"]["4.3"]
    assert part["commands"] == ["python tools/distill_experiments.py " + " ".join(argv)]
    runs = part["runs"]
    for seed in (0, 1):
        for name in (f"teacher_all/s{seed}", f"task_compress/l2/s{seed}",
                     f"task_compress/ab/s{seed}"):
            assert 0 <= runs[name]["test_accuracy"] <= 100 and runs[name]["seconds"] > 0
    assert f"teacher_pretrain/s{seed}" not in runs   # only the Top problems need it
    assert part["compute_seconds"] == pytest.approx(sum(r["seconds"] for r in runs.values()),
                                                    abs=0.1)
    for key in ("lr_teacher", "lr_student"):
        choices = [part[key]] if key == "lr_teacher" else list(part[key].values())
        for c in choices:
            assert c["chosen"] in c["grid"]
            assert not c["inside"] or c["grid"][0] < c["chosen"] < c["grid"][-1]
    cells = part["summary"]["cells"]
    ab = cells["task_compress/ab"]
    assert ab["n"] == 2 and ab["ci95"][0] <= ab["mean"] <= ab["ci95"][1]
    diff = part["summary"]["contrasts"]["task_compress: ab - l2"]
    assert diff["seeds"] == [0, 1]
    assert diff["values"] == pytest.approx(
        [runs[f"task_compress/ab/s{s}"]["test_accuracy"]
         - runs[f"task_compress/l2/s{s}"]["test_accuracy"] for s in (0, 1)])
    assert ["task_copy: ab - l2", "task_copy/ab", "task_copy/l2"] in part["contrasts_planned"]

    again = tool.main(argv)
    assert again.computed == 0
    assert json.loads(out.read_text())["tables"]["4.3"]["runs"] == runs

    with pytest.raises(tool.Failure, match="other settings"):
        tool.main(argv + ["--student_epochs", "2"])


def test_choose_extends_a_grid_until_the_best_rate_is_inside():
    tool = _tool()
    best = 0.1
    calls = []

    def score(lr):
        calls.append(lr)
        return -abs(np.log(lr / best))
    choice = tool.choose(score, [1e-3, 1e-2, 3e-2])   # best beyond the top edge
    assert choice["inside"] and choice["chosen"] == pytest.approx(0.09)
    assert choice["grid"][0] < choice["chosen"] < choice["grid"][-1]
    assert len(calls) == len(set(calls)) == 5          # each rate evaluated once
    stuck = tool.choose(score, [1e-6, 1e-5, 1e-4], max_extensions=1)
    assert not stuck["inside"] and stuck["chosen"] == stuck["grid"][-1]


def test_a_discarded_run_stays_in_the_compute_total(tmp_path):
    tool = _tool()
    store = tool.Store(tmp_path / "d.json", "4.3", {"a": 1}, "cmd", tmp_path / "w")
    store.run("x", lambda: {"test_accuracy": 50.0})
    store.runs["x"]["seconds"] = 7.0
    store.discard("x", "made at another rate")
    store.run("x", lambda: {"test_accuracy": 60.0})
    part = json.loads((tmp_path / "d.json").read_text())["tables"]["4.3"]
    assert part["runs"]["x"]["test_accuracy"] == 60.0
    assert part["discarded"]["x"][0]["why"] == "made at another rate"
    assert part["compute_seconds"] == pytest.approx(7.0 + part["runs"]["x"]["seconds"], abs=0.1)


def test_a_table_reuses_the_rates_another_table_chose_with_the_same_settings(tmp_path):
    tool = _tool()
    out = tmp_path / "d.json"
    chosen = {"chosen": 0.003, "grid": [0.001, 0.003, 0.01], "inside": True, "scores": {}}
    out.write_text(json.dumps({"tables": {"4.3": {
        "settings": {"a": 1}, "runs": {}, "commands": [], "lr_teacher": chosen,
        "lr_student": {"deep_ab": dict(chosen, chosen=0.001)}}}}))
    store = tool.Store(out, "4.4", {"a": 1}, "cmd", tmp_path / "w")
    # no data: a rate chosen elsewhere trains nothing
    assert tool.teacher_lr(store, None, {}, None) == 0.003
    assert tool.student_lr(store, None, {}, None, 0.003, "ab", "deep") == 0.001
    part = json.loads(out.read_text())["tables"]["4.4"]
    assert part["lr_teacher"]["from_table"] == part["lr_student"]["deep_ab"]["from_table"] == "4.3"
    other = tool.Store(out, "4.5", {"a": 2}, "cmd", tmp_path / "w")
    with pytest.raises(TypeError):   # other settings: it would have to train (and has no data)
        tool.teacher_lr(other, None, {}, None)
