"""tools/multitask_cifar_experiments.py: the columns' task splits, the Mixed losses against hand
values, the learning-rate schedule, the planned contrasts' arithmetic, and (on a tiny synthetic
set) Table 4.6 end to end with a rerun that reuses every run."""
import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

_TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "multitask_cifar_experiments.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("multitask_cifar_experiments", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labels(n=400, classes=20):
    return np.random.default_rng(3).permutation(np.arange(n) % classes)


@pytest.mark.parametrize("column,tasks,per_task", [("c4", 4, 5), ("c6", 4, 5), ("c3", 2, 10),
                                                   ("c5", 10, 2)])
def test_disjoint_class_columns_partition_the_classes(tool, column, tasks, per_task):
    y = _labels()
    split = tool.make_tasks(column, y, 20)
    assert len(split) == tasks
    seen = set()
    for t in split:
        classes = set(t["classes"].tolist())
        assert len(classes) == per_task and not classes & seen
        seen |= classes
        # A task holds every sample of its classes and nothing else; its head's targets
        # index its own classes.
        np.testing.assert_array_equal(t["index"], np.flatnonzero(np.isin(y, t["classes"])))
        np.testing.assert_array_equal(t["classes"][t["labels"]], y[t["index"]])
        assert t["labels"].max() < per_task
    assert seen == set(range(20))
    losses = [t["loss"] for t in split]
    assert losses == (list(tool.MIXED) if column == "c6" else ["softmax"] * tasks)


def test_sample_column_partitions_the_samples_and_keeps_every_class(tool):
    y = _labels()
    split = tool.make_tasks("c1", y, 20)
    indices = np.concatenate([t["index"] for t in split])
    assert len(split) == 4 and sorted(indices.tolist()) == list(range(len(y)))
    for t in split:
        assert len(t["index"]) == len(y) // 4 and len(t["classes"]) == 20
        np.testing.assert_array_equal(t["labels"], y[t["index"]])


def test_overlapping_column_draws_half_of_the_classes_per_task(tool):
    split = tool.make_tasks("c2", _labels(), 20)
    assert [len(t["classes"]) for t in split] == [10] * 4
    assert len(set().union(*[set(t["classes"].tolist()) for t in split])) <= 20


def test_mixed_losses_against_hand_values(tool):
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    labels = np.array([0, 2])
    softmax = np.mean([math.log(math.exp(2) + 1 + math.exp(-1)) - 2,
                       math.log(2 * math.exp(0.5) + math.exp(3)) - 3])
    l2 = np.mean([1 + 0 + 1, 0.25 + 0.25 + 4])

    def bce(z, e):   # -e log s(z) - (1 - e) log(1 - s(z))
        return math.log(1 + math.exp(-z)) if e else math.log(1 + math.exp(z))
    sigmoid = np.mean([bce(2, 1) + bce(0, 0) + bce(-1, 0), bce(0.5, 0) + bce(0.5, 0) + bce(3, 1)])
    hinge = np.mean([0 + 1 + 0, 1.5 + 1.5 + 0])
    for kind, want in (("softmax", softmax), ("l2", l2), ("sigmoid", sigmoid), ("hinge", hinge)):
        assert float(tool.task_loss(kind, logits, labels)) == pytest.approx(want, rel=1e-5), kind
    with pytest.raises(ValueError, match="unknown task loss"):
        tool.task_loss("huber", logits, labels)


def test_schedule_warms_up_then_drops_at_half_and_three_quarters(tool):
    settings = {"steps": 100, "warmup": 0.05}
    rates = [tool.learning_rate(settings, 1.0, s) for s in range(100)]
    assert rates[0] == pytest.approx(0.2) and rates[4] == pytest.approx(1.0)
    assert rates[49] == pytest.approx(1.0) and rates[50] == pytest.approx(0.1)
    assert rates[74] == pytest.approx(0.1) and rates[75] == pytest.approx(0.01)
    assert rates[99] == pytest.approx(0.01)


def test_planned_contrasts_are_paired_over_common_seeds_with_holm(tool):
    cells = {"a": {0: 3.0, 1: 5.0, 2: 4.0}, "b": {0: 1.0, 1: 2.0, 2: 2.0},
             "c": {0: 1.0, 1: 1.5}, "d": {5: 1.0}}
    out = tool.contrasts(cells, [("a-b", "a", "b"), ("a-c", "a", "c"), ("a-d", "a", "d")])
    assert out["a-b"]["values"] == [2.0, 3.0, 2.0] and out["a-b"]["seeds"] == [0, 1, 2]
    assert out["a-c"]["values"] == [2.0, 3.5] and out["a-c"]["mean"] == pytest.approx(2.75)
    assert out["a-d"]["n"] == 0 and "p" not in out["a-d"]   # no common seed: no test
    stats = pytest.importorskip("scipy.stats")   # the reference t-test
    p_ab = stats.ttest_1samp([2, 3, 2], 0).pvalue
    p_ac = stats.ttest_1samp([2, 3.5], 0).pvalue
    assert out["a-b"]["p"] == pytest.approx(p_ab, abs=1e-4)
    assert out["a-c"]["p"] == pytest.approx(p_ac, abs=1e-4)
    (first, p1), (second, p2) = sorted((("a-b", p_ab), ("a-c", p_ac)), key=lambda kv: kv[1])
    assert out[first]["p_holm"] == pytest.approx(min(1.0, 2 * p1), abs=1e-4)
    assert out[second]["p_holm"] == pytest.approx(max(min(1.0, 2 * p1), p2), abs=1e-4)
    assert out["a-b"]["ci95"][0] < 2.333 < out["a-b"]["ci95"][1]


def test_cells_gather_every_finished_run(tool):
    class Store:
        runs = {**{f"c4/single{m}/s0": {"test_accuracy": 10.0 * (m + 1)} for m in range(4)},
                "c4/single0/s1": {"test_accuracy": 5.0},   # a seed without all its tasks
                "c4/sgd/s0": {"test_accuracy": 50.0}, "c6/sgd/s1": {"test_accuracy": 70.0},
                "full/s0": {"test_accuracy": 60.0}, "full/s1": {"test_accuracy": 61.0}}
    cells = tool.cells_45(Store, {"seeds": [0, 1]})
    assert cells["c4/single_mean"] == {0: 25.0} and cells["c4/single_max"] == {0: 40.0}
    assert cells["c4/sgd"] == {0: 50.0} and cells["c6/sgd"] == {1: 70.0}
    assert cells["c4/full"] == cells["c6/full"] == {0: 60.0, 1: 61.0}
    assert not any(k.startswith(("c1/", "c3/")) for k in cells)


def _tiny(path):
    rng = np.random.default_rng(5)

    def part(n):
        y = np.concatenate([np.arange(20), rng.integers(0, 20, n - 20)])
        x = rng.integers(0, 30, (n, 8, 8, 3)).astype(np.uint8)
        x[np.arange(n), y % 8, y // 8 % 8, 1] = 250
        return x, y
    (x_train, y_train), (x_test, y_test) = part(60), part(24)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _argv(tmp_path, table, columns):
    return ["--table", table, "--columns", columns, "--data", str(_tiny(tmp_path / "t.npz")),
            "--output", str(tmp_path / "out.json"), "--work_dir", str(tmp_path / "work"),
            "--seeds", "2", "--steps", "4", "--batch", "8", "--poolings", "3",
            "--width_divisor", "16", "--probe_epochs", "1", "--student_epochs", "1",
            "--probe_grid", "1e-3,1e-2,1e-1", "--distill_lr", "1e-3",
            "--lr", "adam=1e-3,sgd=1e-2,normsgd=1e-3,split_weights=1e-2"]


@pytest.mark.slow  # Table 4.6 end to end on a tiny set (about 12 s); the default run keeps the
# splits, the Mixed losses, the schedule and the contrasts
def test_round_robin_table_runs_and_a_rerun_reuses_every_run(tool, tmp_path, monkeypatch):
    # The linear probe (distill_experiments', tested there) is the slow part: a stand-in that
    # reads the trained trunk's features keeps the records tied to the training.
    def quick_probe(features_model, data, num_classes, settings, seed):
        top = tool.de.outputs(features_model, data["x_test"], "top")
        return {"test_accuracy": round(float(np.mean(top > 0)) * 100, 3)}
    monkeypatch.setattr(tool, "probe", quick_probe)
    argv = _argv(tmp_path, "4.6", "c3")
    store = tool.main(argv)
    part = json.loads((tmp_path / "out.json").read_text())["tables"]["4.6"]
    names = {f"c3/{row}/s{s}" for row in ("normsgd", "rr_q0.5", "rr_q5") for s in (0, 1)}
    assert set(part["runs"]) == names and store.computed == len(names)
    assert part["runs"]["c3/rr_q5/s1"]["quantum"] == 1   # 5% of 4 steps, at least one
    assert part["lr"]["normsgd"] == {"chosen": 1e-3, "given": True}
    cells = part["summary"]["cells"]
    assert cells["c3/joint"]["values"] == [part["runs"][f"c3/normsgd/s{s}"]["test_accuracy"]
                                           for s in (0, 1)]
    assert set(part["summary"]["contrasts"]) == {c[0] for c in tool.CONTRASTS["4.6"]}
    again = tool.main(argv)
    assert again.computed == 0
    assert json.loads((tmp_path / "out.json").read_text())["tables"]["4.6"]["runs"] == \
        part["runs"]


@pytest.mark.slow  # about 40 small trainings and probes (2-5 min)
def test_multitask_table_on_a_tiny_set(tool, tmp_path):
    argv = _argv(tmp_path, "4.5", "c4,c6")
    tool.main(argv)
    part = json.loads((tmp_path / "out.json").read_text())["tables"]["4.5"]
    cells = part["summary"]["cells"]
    for row in tool.ROWS:
        assert cells[f"c4/{row}"]["n"] == 2
        if row not in tool.OFFLINE:
            assert cells[f"c6/{row}"]["n"] == 2
    assert "c6/split_weights" not in cells and "c6/distill" not in cells
    # The Mixed column's first task (softmax) is the same net as c4's first task.
    assert part["runs"]["c6/single0/s0"]["test_accuracy"] == \
        part["runs"]["c4/single0/s0"]["test_accuracy"]
    assert part["compute_seconds"] == pytest.approx(
        sum(r["seconds"] for r in part["runs"].values()), abs=0.1)
    assert tool.main(argv).computed == 0
