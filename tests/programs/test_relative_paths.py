"""Every program and loader reads a run directory given by a relative path, and one that was
moved or copied after training.

One tiny run is built per module (``tiny_model_dir``: config.json and a checkpoint) in
``work/runs/tiny``. ``other/moved`` is a copy whose state file names its checkpoints by the
absolute paths of where it was written (as older tools do) before it was moved there: the
files those paths name do not exist any more. The programs run as subprocesses through
``binaries/NAME`` with ``cwd`` a temporary directory and relative paths only; the loaders run
in-process after ``chdir``. The slow test trains with the pretraining program and resumes a
copy of the run from another directory.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tiny_model_dir  # noqa: E402
from checkpoint_state import absolute_state_file  # noqa: E402

from tfcolor import predictors, run_dir  # noqa: E402
from tfcolor.downstream import initialization  # noqa: E402
from tfcolor.train import checkpointing  # noqa: E402


def _run(name, args, cwd, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    return subprocess.run([os.path.join(ROOT, "binaries", name)] + list(args), cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(base, model)``: base/work/runs/tiny (the run), base/other/moved (moved, absolute
    state entries of a place that is gone), photos in base/work/photos and base/other/photos;
    ``model`` is the trained colorizer as saved."""
    base = tmp_path_factory.mktemp("relative_paths")
    model = tiny_model_dir.make_model_dir(str(base / "work" / "runs" / "tiny"))
    shutil.copytree(base / "work" / "runs" / "tiny", base / "gone" / "tiny")
    absolute_state_file(str(base / "gone" / "tiny"))
    (base / "other").mkdir()
    shutil.move(str(base / "gone" / "tiny"), str(base / "other" / "moved"))
    assert str(base / "gone") in (base / "other" / "moved" / "checkpoint").read_text()
    for where in ("work", "other"):
        tiny_model_dir.write_images(str(base / where / "photos"), [(24, 24), (16, 40)], seed=3)
    return base, model


def _same_weights(a, b):
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.name)


# --------------------------------------------------------------------------------------------
# Loaders, in-process.

def test_latest_checkpoint_of_relative_and_moved_dirs(runs, monkeypatch):
    base, _ = runs
    monkeypatch.chdir(base / "work")
    assert run_dir.latest_checkpoint("runs/tiny") == os.path.join("runs", "tiny", "ckpt-1")
    monkeypatch.chdir(base / "other")
    assert run_dir.latest_checkpoint("moved") == os.path.join("moved", "ckpt-1")
    assert run_dir.latest_checkpoint(base / "other" / "moved") == str(
            base / "other" / "moved" / "ckpt-1")


@pytest.mark.parametrize("where, path", [("work", "runs/tiny"), ("other", "moved")])
def test_load_model_and_load_predictor(runs, monkeypatch, where, path):
    base, model = runs
    monkeypatch.chdir(base / where)
    loaded, kind = run_dir.load_model(path)
    _same_weights(loaded, model)
    _same_weights(run_dir.load_model(path, checkpoint="ckpt-1")[0], model)  # asked by name
    predictor = predictors.load_predictor(path, grid_factor=2)
    _same_weights(predictor.model, model)
    gray = np.random.default_rng(0).uniform(size=(1, 16, 16, 1)).astype(np.float32)
    assert np.all(np.isfinite(predictor(gray).numpy()))


def test_downstream_initialization_from_a_moved_run(runs, monkeypatch):
    base, model = runs
    monkeypatch.chdir(base / "other")
    assert initialization.describe_init("moved") == "colorization"
    trunk, arch = initialization.load_trunk("moved", absorb_bn=False)
    assert arch == "vgg_tiny"
    want = {w.path.split("/")[-2:][0] + "/" + w.name: np.asarray(w)
            for w in model.trunk.weights}
    got = {w.path.split("/")[-2:][0] + "/" + w.name: np.asarray(w) for w in trunk.weights}
    shared = sorted(set(want) & set(got))
    assert any("conv1_1" in k for k in shared), (sorted(want), sorted(got))
    for key in shared:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


# --------------------------------------------------------------------------------------------
# Programs, as subprocesses with relative paths.

@pytest.mark.slow
def test_export_then_load_the_export_by_relative_paths(runs, monkeypatch):
    base, model = runs
    res = _run("export", ["--model_dir=runs/tiny", "--export_dir=exports/tiny", "--nokeras"],
               cwd=base / "work")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (base / "work" / "exports" / "tiny" / "saved_model.pb").exists()
    meta = json.loads((base / "work" / "exports" / "tiny" / "tfcolor_export.json").read_text())
    assert meta["config"]["model"]["arch"] == "vgg_tiny"
    monkeypatch.chdir(base / "work")
    served = predictors.load_predictor("exports/tiny")
    gray = np.random.default_rng(1).uniform(size=(1, 16, 16, 1)).astype(np.float32)
    kept = predictors.KerasPredictor(model, grid_factor=served.grid_factor)
    np.testing.assert_allclose(served(gray).numpy(), kept(gray).numpy(), atol=1e-4)


def test_colorize_with_a_moved_model_dir(runs):
    base, _ = runs
    res = _run("colorize", ["--model_dir=moved", "photos", "--output_dir=colorized"],
               cwd=base / "other")
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(os.listdir(base / "other" / "colorized")) == 2


@pytest.mark.slow
def test_evaluate_with_a_relative_model_dir(runs):
    base, _ = runs
    res = _run("evaluate", ["--model_dir=runs/tiny", "--data=photos", "--output_dir=eval"],
               cwd=base / "work")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((base / "work" / "eval" / "metrics.json").read_text())


def _stripes(path):
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = (rng.uniform(0, 0.3, (40, 16, 16)) * 255).astype(np.uint8)
    x[y == 1, :, ::4] += 150
    x[y == 0, ::4, :] += 150
    np.savez(path, x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])


@pytest.mark.slow
def test_finetune_init_from_a_moved_run(runs):
    base, _ = runs
    _stripes(base / "other" / "stripes.npz")
    res = _run("finetune", ["--data=stripes.npz:train", "--test_data=stripes.npz:test",
                            "--init=moved", "--batch_size=16", "--eval_every=2",
                            "--max_steps=2", "--seeds=0", "--analysis_images=0",
                            "--output_dir=ft"], cwd=base / "other")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((base / "other" / "ft" / "results.json").read_text())["test"]["n"] == 1


@pytest.mark.parametrize("name, args", [
    ("export", ["--model_dir=copy"]),
    pytest.param("finetune", ["--data=stripes.npz:train", "--init=copy", "--max_steps=1",
                              "--output_dir=ft"], marks=pytest.mark.slow)])
def test_a_missing_checkpoint_is_one_line_naming_what_is_there(runs, tmp_path, name, args):
    """A run copied without its checkpoint files: the program says what the directory holds
    (exit 2, one line, no traceback) and advises deleting nothing."""
    base, _ = runs
    shutil.copytree(base / "work" / "runs" / "tiny", tmp_path / "copy")
    for file in os.listdir(tmp_path / "copy"):
        if file.startswith("ckpt-"):
            os.remove(tmp_path / "copy" / file)
    _stripes(tmp_path / "stripes.npz")
    res = _run(name, args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "ckpt-1 is not in copy" in res.stderr and "holds no checkpoint" in res.stderr, (
            res.stderr[-3000:])
    assert "delete" not in res.stderr.lower(), res.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# Pretraining resumes a copied run from another directory.

@pytest.mark.slow
def test_pretraining_resumes_a_copied_run_by_relative_paths(tmp_path):
    work, other = tmp_path / "work", tmp_path / "other"
    tiny_model_dir.write_images(str(work / "photos"), [(40, 40)] * 6, seed=0)
    args = ["--data=photos", "--arch=vgg_tiny", "--hidden=8", "--dropout=0", "--crop_size=32",
            "--points=8", "--batch_size=2", "--steps_per_loop=1", "--checkpoint_every=1",
            "--keep_checkpoints=2", "--summary_every=1", "--image_every=0",
            "--validation_images=1", "--lr_drops=1", "--noexport"]
    res = _run("pretrain", args + ["--model_dir=runs/q", "--train_steps=2"], cwd=work,
               timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    shutil.copytree(work, other)
    original = {n: (work / "runs" / "q" / n).read_bytes()
                for n in os.listdir(work / "runs" / "q") if n.startswith("ckpt-")}
    absolute_state_file(str(other / "runs" / "q"))  # entries of work/runs/q, not the copy's
    res = _run("pretrain", args + ["--model_dir=runs/q", "--train_steps=4"], cwd=other,
               timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {os.path.join('runs', 'q', 'ckpt-2')}" in res.stderr, res.stderr[-3000:]
    assert checkpointing.found_checkpoints(str(other / "runs" / "q")) == ["ckpt-3", "ckpt-4"]
    assert {n: (work / "runs" / "q" / n).read_bytes()
            for n in os.listdir(work / "runs" / "q") if n.startswith("ckpt-")} == original
