"""Tests of tfcolor.reproduce.runner: a tiny reproduction end to end, resumed, and refused."""
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from tfcolor import run_dir
from tfcolor.config import ConfigError
from tfcolor.reproduce import config as config_lib
from tfcolor.reproduce import corpus as corpus_lib
from tfcolor.reproduce import report
from tfcolor.reproduce import runner
from tfcolor.train import task_step


def _tiny(corpus, output_dir):
    return config_lib.ReproduceConfig(
            corpus=corpus, output_dir=output_dir, arms=("colorization",),
            evaluate_arms=("colorization",), pretrain_seeds=(0,), finetune_seeds=(0, 1),
            protocols=("linear_probe",), hidden=16, crop_size=32, batch_size=4, points=8,
            pretrain_steps=4, eval_every=2, heldout_images=2, probe_learning_rates=(0.1,),
            ft_batch_size=8, ft_eval_every=2, ft_max_steps=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    corpus = corpus_lib.make_fake_corpus(str(root / "corpus"))
    config = _tiny(corpus, str(root / "out"))
    stages = []
    results = runner.run(config, progress=lambda stage, name: stages.append((stage, name)))
    return config, results, stages


def test_every_stage_runs_and_is_reported(tiny):
    config, results, stages = tiny
    assert stages == [("pretrain", "colorization_s0"), ("colorizer", "colorization_s0"),
                      ("linear_probe", "random lr 0.1"),
                      ("linear_probe", "colorization_s0 lr 0.1")]
    with open(os.path.join(config.output_dir, runner.RESULTS_FILE)) as f:
        assert json.load(f)["config"] == config.to_dict()
    p = results["pretrain"]["colorization_s0"]
    assert p["steps"] == 4 and [s for s, _ in p["heldout_curve"]] == [2, 4]
    assert os.path.exists(os.path.join(p["model_dir"], "ckpt-4.index"))
    c = results["colorizer"]["colorization_s0"]
    assert c["images"] == 2 and set(c["metrics"]) == {"model", "gray", "prior"}
    assert set(c["paired"]) == {"model-gray", "model-prior"}
    assert results["data"]["train_photos"] == 8 and results["data"]["debphoto15_test"] == 12
    text = open(os.path.join(config.output_dir, runner.REPORT_FILE)).read()
    assert text == report.markdown(results)
    assert "| **colorization - random** (primary) | 2 |" in text
    assert "colorization_s0 | hue_chroma | yes" in text


def test_differences_follow_the_grid(tiny):
    """(The choice of the learning rate is tested in tests/downstream/test_comparison.py; one
    rate keeps this end-to-end test small.)"""
    _, results, _ = tiny
    d = results["downstream"]["linear_probe"]
    for init, by_lr in d["grid"].items():
        assert set(by_lr) == {"0.1"} and d["chosen"][init]["learning_rate"] == 0.1
        assert by_lr["0.1"]["test"] == d["chosen"][init]["test"]
        assert all(0 <= v <= 1 for v in by_lr["0.1"]["val"].values())
    diff = d["comparisons"]["colorization - random"]
    want = [d["chosen"]["colorization_s0"]["test"][s] - d["chosen"]["random"]["test"][s]
            for s in ("0", "1")]
    assert diff["values"] == pytest.approx(want) and diff["n"] == 2
    # the interval over runs and images, from the cells' per-image predictions: one run each
    assert d["primary"] == "colorization - random" and diff["primary"]
    both = diff["runs_and_images"]
    assert both["covers"] == "images" and both["runs"] == [1, 1]
    assert both["difference"] == pytest.approx(
            d["chosen"]["colorization_s0"]["test_mean"] - d["chosen"]["random"]["test_mean"])


def _mtimes(root):
    return {os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
            for d, _, files in os.walk(root) for f in files
            if f.endswith((".index", runner._DONE, ".json")) and "colorizer" not in d
            and f not in (runner.RESULTS_FILE, runner.CONFIG_FILE)
            or d.endswith("colorizer")}


def test_rerun_reuses_every_finished_unit(tiny):
    config, results, _ = tiny
    before = _mtimes(config.output_dir)
    again = runner.run(config)
    assert _mtimes(config.output_dir) == before
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert strip(again) == strip(results)


def test_an_unfinished_cell_is_redone_alone(tiny):
    config, results, _ = tiny
    cell = os.path.join(config.output_dir, "downstream", "linear_probe", "colorization_s0",
                        "lr0.1")
    os.remove(os.path.join(cell, runner.RESULTS_FILE))
    os.makedirs(os.path.join(cell, "runs", "seed_0"))  # what a killed attempt leaves
    other = os.path.join(config.output_dir, "downstream", "linear_probe", "random", "lr0.1",
                         runner.RESULTS_FILE)
    stamp = os.path.getmtime(other)
    again = runner.run(config)
    assert os.path.exists(os.path.join(cell, runner.RESULTS_FILE))
    assert not os.path.exists(os.path.join(cell, "runs"))
    assert os.path.getmtime(other) == stamp
    assert set(again["downstream"]["linear_probe"]["grid"]) == {"random", "colorization_s0"}


def test_a_moved_output_dir_resumes_from_where_it_is(tiny, tmp_path):
    """The finished pretraining records the model_dir it had: a rerun after moving output_dir
    hands the later stages the run where it is now."""
    config, _, _ = tiny
    moved = str(tmp_path / "moved")
    shutil.move(config.output_dir, moved)
    try:
        again = runner.run(dataclasses.replace(config, output_dir=moved))
        assert again["pretrain"]["colorization_s0"]["model_dir"] == os.path.join(
                moved, "pretrain", "colorization_s0")
    finally:
        shutil.move(moved, config.output_dir)


def test_another_config_on_the_same_output_dir_is_refused(tiny):
    config, _, _ = tiny
    with pytest.raises(ConfigError, match="pretrain_steps: 4 -> 5") as e:
        runner.run(dataclasses.replace(config, pretrain_steps=5))
    assert e.value.field == "pretrain_steps"
    assert os.path.exists(os.path.join(config.output_dir, "pretrain", "colorization_s0",
                                       "ckpt-4.index"))  # nothing of the old run was touched


def test_only_the_fields_that_select_units_may_change(tmp_path):
    base = _tiny("/c", str(tmp_path)).validate()
    runner._check_config(base)  # the first invocation writes it
    grown = dataclasses.replace(base, arms=("colorization", "no_lr_drop"), pretrain_seeds=(0, 2),
                                probe_learning_rates=(0.03, 0.1)).validate()
    runner._check_config(grown)
    with open(tmp_path / runner.CONFIG_FILE) as f:
        assert json.load(f) == grown.to_dict()
    fewer = dataclasses.replace(grown, probe_learning_rates=(0.1,), pretrain_seeds=(2,))
    runner._check_config(fewer.validate())  # leaving units out is allowed too
    with open(tmp_path / runner.CONFIG_FILE) as f:
        assert json.load(f) == fewer.to_dict()
    for change in (dict(finetune_seeds=(0, 1, 2)), dict(ft_max_steps=5), dict(hidden=8),
                   dict(learning_rate=0.5)):
        with pytest.raises(ConfigError, match="may differ") as e:
            runner._check_config(dataclasses.replace(fewer, **change).validate())
        assert e.value.field == next(iter(change))
        with open(tmp_path / runner.CONFIG_FILE) as f:
            assert json.load(f) == fewer.to_dict()  # a refused config is not recorded


@pytest.mark.slow
def test_a_grid_may_be_extended_or_cut_and_keeps_its_finished_cells(tiny, tmp_path):
    config, _, _ = tiny
    out = str(tmp_path / "copy")
    shutil.copytree(config.output_dir, out, symlinks=True)
    bigger = dataclasses.replace(config, output_dir=out, probe_learning_rates=(0.1, 0.3))
    with pytest.raises(ConfigError, match="finetune_seeds"):  # not extensible: cells change
        runner.run(dataclasses.replace(bigger, finetune_seeds=(0, 1, 2)))
    cell = os.path.join(out, "downstream", "linear_probe", "random", "lr0.1", runner.RESULTS_FILE)
    stamp = os.path.getmtime(cell)
    stages = []
    again = runner.run(bigger, progress=lambda stage, name: stages.append(name))
    assert "random lr 0.3" in stages and "colorization_s0 lr 0.3" in stages
    assert os.path.getmtime(cell) == stamp
    assert set(again["downstream"]["linear_probe"]["grid"]["random"]) == {"0.1", "0.3"}
    with open(os.path.join(out, runner.CONFIG_FILE)) as f:
        assert json.load(f)["probe_learning_rates"] == [0.1, 0.3]
    # A rate left out: nothing reruns, the report leaves its cells out, they stay on disk.
    kept = cell.replace("lr0.1", "lr0.3")
    kept_stamp = os.path.getmtime(kept)
    fewer = runner.run(dataclasses.replace(bigger, probe_learning_rates=(0.3,)))
    assert set(fewer["downstream"]["linear_probe"]["grid"]["random"]) == {"0.3"}
    assert os.path.getmtime(kept) == kept_stamp and os.path.getmtime(cell) == stamp


def test_bad_config_is_refused_before_anything_is_written(tmp_path):
    config = _tiny(str(tmp_path / "corpus"), str(tmp_path / "out"))
    with pytest.raises(corpus_lib.CorpusError, match="tfcolor-build-corpus"):
        runner.run(config)
    with pytest.raises(ConfigError, match="arms"):
        runner.run(dataclasses.replace(config, arms=("nope",), output_dir=str(tmp_path / "o2")))
    assert not os.path.exists(tmp_path / "o2")


@pytest.mark.slow  # a real colorization run and the control (about 15 s); the default run keeps
# tests/train/test_bn_statistics.py (weights equal a fresh build at the seed, the statistics,
# folding) and tests/reproduce/test_config.py (the arm is the colorization recipe)
def test_the_untrained_arm_is_the_colorization_arm_at_step_0(tmp_path, monkeypatch):
    """The control's trainable weights are bit for bit those a real colorization run starts
    from; its BN statistics are estimated; it loads like that run; a rerun reuses it."""
    monkeypatch.setitem(config_lib.ARMS, "untrained",
                        dataclasses.replace(config_lib.ARMS["untrained"], statistics_steps=2))
    corpus = corpus_lib.make_fake_corpus(str(tmp_path / "corpus"))
    config = dataclasses.replace(_tiny(corpus, str(tmp_path / "out")),
                                 arms=("colorization", "untrained")).validate()
    folders = corpus_lib.split_folders(corpus, str(tmp_path / "photos"))
    start = {}
    run = task_step.TaskStep.run

    def first_run(step, num_steps):  # the colorization run's weights before its first step
        start.setdefault("weights", {v.path: v.numpy() for v in step.model.weights})
        return run(step, num_steps)

    monkeypatch.setattr(task_step.TaskStep, "run", first_run)
    colorization = runner.pretrain_arm(config, "colorization", 0, folders)
    monkeypatch.setattr(task_step.TaskStep, "run", run)
    info = runner.pretrain_arm(config, "untrained", 0, folders)
    assert info["steps"] == 0 and info["statistics_steps"] == 2
    assert [s for s, _ in info["heldout_curve"]] == [0] and "loss" in info["final_losses"]
    assert os.path.exists(os.path.join(info["model_dir"], runner._DONE))
    model, _ = run_dir.load_model(info["model_dir"])
    for v in model.weights:
        same = np.array_equal(v.numpy(), start["weights"][v.path])
        assert same == v.trainable, v.path  # BN moving statistics: estimated
    # The same pretraining config as the colorization arm's, in another directory.
    a, b = (run_dir.read_config(i["model_dir"], as_dict=True) for i in (colorization, info))
    a["train"].pop("model_dir"), b["train"].pop("model_dir")
    assert a == b
    assert runner.pretrain_arm(config, "untrained", 0, folders) == info  # reused, not redone
    table = report.pretraining_table({
            "arms": {n: dataclasses.asdict(config_lib.ARMS[n]) for n in config.arms},
            "pretrain": {"colorization_s0": colorization, "untrained_s0": info}})
    assert "| untrained_s0 | hue_chroma at step 0, untrained (control) | - |" in table
    assert "| colorization_s0 | hue_chroma | yes |" in table
