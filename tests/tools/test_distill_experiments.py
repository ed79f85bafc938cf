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


def _translations(image, shift):
    """Every translation of ``image`` by (dy, dx) in [-shift, shift]^2, zeros shifted in."""
    h, w = image.shape[:2]
    out = []
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            moved = np.zeros_like(image)
            moved[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            out.append(moved)
    return out


def test_augmentation_translates_each_image_in_place_and_keeps_its_shape():
    tool = _tool()
    rng = np.random.default_rng(0)
    x = rng.integers(1, 255, (40, 9, 7, 3)).astype(np.uint8)   # no zeros: padding is visible
    out = tool.augment(x, np.random.default_rng(1), shift=2, pad="zero")
    assert out.shape == x.shape and out.dtype == x.dtype
    moved = 0
    for i in range(len(x)):   # the i-th output is a translation of the i-th input (labels hold)
        candidates = _translations(x[i], 2)
        assert any(np.array_equal(out[i], c) for c in candidates)
        moved += not np.array_equal(out[i], x[i])
    assert moved > 20   # most images move (1/25 stay put)
    flipped = tool.augment(x, np.random.default_rng(1), shift=0, flip=True)
    mirrored = [np.array_equal(f, a[:, ::-1]) for f, a in zip(flipped, x)]
    kept = [np.array_equal(f, a) for f, a in zip(flipped, x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 5 < sum(mirrored) < 35
    assert np.array_equal(tool.augment(x, np.random.default_rng(1), shift=0), x)
    reflect = tool.augment(x, np.random.default_rng(1), shift=2, pad="reflect")
    assert reflect.shape == x.shape and reflect.min() > 0   # nothing padded with zeros
    with pytest.raises(tool.Failure, match="padding"):
        tool.augment(x, np.random.default_rng(1), pad="wrap")


def test_ensemble_target_is_the_mean_logit_or_the_log_of_the_mean_probability():
    tool = _tool()
    a = np.array([[0.0, 1.0, 2.0]])
    b = np.array([[2.0, 1.0, -4.0]])
    np.testing.assert_allclose(tool.ensemble_target([a, b]), [[1.0, 1.0, -1.0]])
    pa, pb = np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()
    np.testing.assert_allclose(tool.ensemble_target([a, b], "logprob"),
                               np.log((pa + pb) / 2), rtol=1e-6)
    huge = tool.ensemble_target([a * 1e4, b * 1e4], "logprob")   # stable for large logits
    assert np.all(np.isfinite(huge)) and huge.max() == pytest.approx(np.log(0.5))
    with pytest.raises(tool.Failure, match="ensemble target"):
        tool.ensemble_target([a], "median")


def test_a_diverged_run_is_recorded_not_raised(tmp_path):
    tool = _tool()
    store = tool.Store(tmp_path / "d.json", "fig4.5", {"a": 1}, "cmd", tmp_path / "w")

    def raises():
        raise tool.tf.errors.InvalidArgumentError(None, None, "Nan in summary\nmore")
    rec = store.run("x/s0", lambda: tool.guarded(raises))
    assert rec["diverged"] and rec["why"] == "Nan in summary" and rec["test_accuracy"] is None
    rec = store.run("y/s0", lambda: tool.guarded(
        lambda: {"test_accuracy": 5.0, "train_loss": float("nan"), "finite": True}))
    assert rec["diverged"] and rec["test_accuracy"] is None and rec["test_accuracy_measured"] == 5
    rec = store.run("z/s0", lambda: tool.guarded(
        lambda: {"test_accuracy": 70.0, "train_loss": 0.5, "finite": True}))
    assert not rec["diverged"] and rec["test_accuracy"] == 70.0

    def strict(text):
        raise ValueError(f"non-standard JSON constant {text}")
    part = json.loads((tmp_path / "d.json").read_text(), parse_constant=strict)
    assert part["tables"]["fig4.5"]["runs"]["y/s0"]["train_loss"] is None


def test_a_real_nan_distillation_is_recorded_as_diverged():
    tool = _tool()
    settings = {"poolings": 3, "width_divisor": 8}
    x = np.random.default_rng(0).integers(0, 255, (16, 16, 16, 3)).astype(np.uint8)
    target = np.full((16, 4), np.nan, np.float32)

    def train():
        student = tool.net("shallow", 4, settings, (16, 16, 3), 0)
        loss = tool.fit_distill(student, x, target, "task", "mse", 1e-3, 1, 8, 0)
        acc, finite = tool._scored(student, x, np.zeros(16, int))
        return {"test_accuracy": acc, "train_loss": loss, "finite": finite}
    rec = tool.guarded(train)
    assert rec["diverged"] and rec["test_accuracy"] is None and rec["train_loss"] is None


def test_an_extended_table_borrows_runs_and_teachers_of_a_table_with_the_same_settings(
        tmp_path):
    tool = _tool()
    out = tmp_path / "d.json"
    run = {"test_accuracy": 80.0, "seconds": 12.0, "lr": 0.01}
    out.write_text(json.dumps({"tables": {
        "4.3": {"settings": {"a": 1}, "runs": {"task_compress/l2/s0": run}, "commands": []},
        "4.4": {"settings": {"a": 2}, "runs": {"other": run}, "commands": []}}}))
    store = tool.Store(out, "fig4.5", {"a": 1, "scan": {"t": [1.0]}}, "cmd", tmp_path / "w")
    rec = tool.borrow_run(store, "task_compress/l2/s0", "l2/s0")
    assert rec["test_accuracy"] == 80.0 and rec["from_table"] == "4.3"
    assert rec["seconds"] == 0.0 and rec["seconds_there"] == 12.0   # counted once, there
    assert tool.borrow_run(store, "other") is None                   # other settings
    assert json.loads(out.read_text())["tables"]["fig4.5"]["compute_seconds"] == 0.0


def test_scan_figure_draws_lines_and_marks_diverged_points(tmp_path):
    tool = _tool()
    from PIL import Image
    cells = {"l2": tool.cell([70.0, 71.0, 72.0])}
    for line in ("kl", "sym", "si"):
        for t in (0.25, 1.0):
            cells[f"{line}/t{t:g}"] = tool.cell([72.0 + t, 73.0, 74.0 - t])
    summary = {"cells": cells, "lines": ["kl", "sym", "si"], "t": [0.25, 1.0],
               "diverged": {"sym/t1/s0": "non-finite"}}
    path = tool.scan_figure(summary, tmp_path / "f.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 500
    for colour in tool.LINE_COLOURS.values():
        assert np.any(np.all(image == colour, axis=-1))


@pytest.mark.slow  # Table 4.3's two task problems, then Task-Ensemble and the scan (2-4 min)
def test_ensemble_and_scan_reuse_table_43_and_record_diverged_points(tmp_path):
    tool = _tool()
    tool.MAX_EXTENSIONS = 0
    data = _tiny_set(tmp_path / "tiny.npz")
    out = tmp_path / "distill.json"
    common = ["--data", str(data), "--output", str(out), "--work_dir", str(tmp_path / "work"),
              "--seeds", "2", "--teacher_epochs", "1", "--student_epochs", "1",
              "--probe_epochs", "2", "--batch", "32", "--lr_grid", "1e-3,3e-3,1e-2"]
    tool.main(["--table", "4.3", "--problems", "task_copy,task_compress"] + common)
    e = tool.main(["--table", "4.3e", "--ensemble_size", "3"] + common)
    for k in (0, 1):   # Table 4.3's teachers, not trained again
        assert e.runs[f"teacher_all/s{k}"]["from_table"] == "4.3"
    assert "from_table" not in e.runs["teacher_all/s2"]
    assert e.part["lr_teacher"]["from_table"] == "4.3"
    assert set(e.part["lr_student"]) == {"ensemble_l2", "ensemble_ab"}
    cells = e.part["summary"]["cells"]
    assert cells["single"]["n"] == 3 and cells["ensemble"]["n"] == 1
    scan = tool.main(["--table", "fig4.5", "--scan_t", "0.25,64", "--scan_lines", "kl,sym",
                      "--figure", str(tmp_path / "f.png")] + common)
    runs = scan.runs
    assert runs["l2/s0"]["from_run"] == "task_compress/l2/s0"
    assert runs["kl/t0.25/s1"]["from_run"] == "task_compress/ab/s1"
    assert runs["sym/t64/s0"]["diverged"]   # exp(128 x) overflows: recorded, not raised
    summary = scan.part["summary"]
    assert summary["cells"]["sym/t64"]["diverged_seeds"] == [0, 1]
    assert summary["chosen_on_validation"]["sym"] == 0.25
    assert {"p", "p_holm"} <= set(summary["contrasts"]["kl best (validation) - l2"])
    assert (tmp_path / "f.png").exists()
