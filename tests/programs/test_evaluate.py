"""End-to-end tests of binaries/evaluate (shell shim, subprocesses with timeouts)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model_dir  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "evaluate")


def _run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([SHIM] + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, cwd="/")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate_bin")
    tiny_model_dir.make_model_dir(str(base / "run"))
    return base


@pytest.mark.slow  # a whole evaluation (about 11 s); the README walk checks that evaluate writes
# eval/metrics.json and its plot, and the paired-statistics test stays in the default run
def test_evaluate_writes_json_and_plot(run_dir, tmp_path):
    from tfcolor import metrics
    paths = tiny_model_dir.write_images(str(tmp_path / "colour"), [(24, 24), (16, 40), (30, 20)],
                                        seed=3)
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={tmp_path / 'colour'}",
               f"--output_dir={tmp_path / 'eval'}", "--max_images=2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ab mean" in res.stdout and "ab RMS" in res.stdout
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    model, gray = report["metrics"]["model"], report["metrics"]["gray"]
    assert model["images"] == gray["images"] == 2
    # The grey baseline numbers are those of tfcolor.metrics on the same two images.
    acc = metrics.ColorizationMetrics(["gray"])
    for p in paths[:2]:
        rgb = np.asarray(Image.open(p).convert("RGB"), np.float32) / 255
        acc.update("gray", rgb, metrics.gray_baseline(rgb))
    want = acc.result()["gray"]
    assert gray["alphabeta_mean"] == pytest.approx(want["alphabeta_mean"], rel=1e-5)
    assert gray["alphabeta_rms"] == pytest.approx(want["alphabeta_rms"], rel=1e-5)
    assert gray["psnr"] == pytest.approx(want["psnr"], rel=1e-5)
    assert 0 < model["auc"] <= 1
    plot = np.asarray(Image.open(tmp_path / "eval" / "cumulative_error.png"))
    assert plot.ndim == 3 and plot.shape[2] == 3


@pytest.mark.slow
def test_grey_images_give_a_zero_error_baseline(run_dir, tmp_path):
    tiny_model_dir.write_images(str(tmp_path / "grey"), [(16, 16), (16, 24)], seed=4, grey=True)
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={tmp_path / 'grey'}/*",
               f"--output_dir={tmp_path / 'eval'}")
    assert res.returncode == 0, res.stderr[-2000:]
    gray = json.load(open(tmp_path / "eval" / "metrics.json"))["metrics"]["gray"]
    assert gray["alphabeta_mean"] == pytest.approx(0.0, abs=1e-6)
    assert gray["auc"] == pytest.approx(1.0, abs=1e-3)


def test_evaluate_usage_errors(run_dir, tmp_path):
    res = _run(f"--model_dir={run_dir / 'run'}")
    assert res.returncode == 2 and "--data is required" in res.stderr
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={tmp_path}/missing")
    assert res.returncode == 2 and "neither a file" in res.stderr
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={tmp_path}", "--t_max=0")
    assert res.returncode == 2 and "--t_max" in res.stderr


def test_evaluate_reports_the_marginal_prior_and_paired_statistics(run_dir, tmp_path):
    # The prior comes from --prior_source (here a folder of two solid-red images): a constant red
    # prediction, so on red-ish photos it must beat grey on every image.
    red = np.zeros((48, 48, 3), np.uint8)
    red[..., 0] = 200
    os.makedirs(tmp_path / "train")
    for i in range(2):
        Image.fromarray(red).save(tmp_path / "train" / f"r{i}.png")
    reddish = np.zeros((24, 30, 3), np.uint8)
    reddish[..., 0], reddish[..., 1:] = 170, 60
    os.makedirs(tmp_path / "colour")
    for i in range(3):
        Image.fromarray(reddish + 10 * i).save(tmp_path / "colour" / f"c{i}.png")
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={tmp_path / 'colour'}",
               f"--output_dir={tmp_path / 'eval'}", f"--prior_source={tmp_path / 'train'}",
               "--bootstrap_resamples=500")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "model-prior" in res.stdout and "95% CI" in res.stdout
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert sorted(report["metrics"]) == ["constant_tint", "gray", "lightness_lookup", "model",
                                         "prior"]
    assert report["prior"]["images"] == 2 and report["prior"]["kind"] == "hue_chroma"
    # the tint of all-red training crops: alpha = (0 - 200/2) / 66.7, beta = 200 / 66.7
    tint = report["tints"]["constant_tint"]["alphabeta"]
    assert tint == pytest.approx([-1.5, 3.0], abs=0.01)
    assert "model-constant_tint" in res.stdout and "model-lightness_lookup" in res.stdout
    assert report["prior"]["groups"]["hue"][0] == pytest.approx(1.0)   # all red: hue bin 0
    assert len(report["per_image"]["images"]) == 3
    prior_vs_gray = (np.array(report["per_image"]["prior"]["alphabeta_mean"])
                     < np.array(report["per_image"]["gray"]["alphabeta_mean"]))
    assert prior_vs_gray.all()
    for pair in ("model-gray", "model-prior"):
        for metric in ("alphabeta_mean", "alphabeta_rms", "psnr"):
            st = report["paired"][pair][metric]
            assert st["n"] == 3 and 0 <= st["fraction_improved"] <= 1
            assert st["ci_low"] <= st["mean_difference"] <= st["ci_high"]
    model = np.array(report["per_image"]["model"]["psnr"])
    gray = np.array(report["per_image"]["gray"]["psnr"])
    assert report["paired"]["model-gray"]["psnr"]["mean_difference"] == pytest.approx(
            (model - gray).mean(), abs=1e-9)


@pytest.mark.slow  # evaluates every shipped photo (about 15-25 s)
def test_the_shipped_photos_by_the_source_names_and_what_the_prior_log_says(run_dir, tmp_path):
    # --data and --prior_source take pretrain's source names; the prior's log line says that the
    # prior is being estimated, not that something is pretrained.
    res = _run(f"--model_dir={run_dir / 'run'}", "--data=embedded:validation", "--max_images=1",
               f"--output_dir={tmp_path / 'eval'}", "--prior_source=embedded:validation",
               "--prior_max_images=1", "--bootstrap_resamples=100")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert report["metrics"]["model"]["images"] == 1 and report["prior"]["images"] == 1
    assert "marginal prior estimated on FileSource(8 files" in res.stderr
    assert "pretraining on" not in res.stderr
    res = _run(f"--model_dir={run_dir / 'run'}", "--data=embedded:test",
               f"--output_dir={tmp_path / 'eval2'}")
    assert res.returncode == 2 and "splits train, validation, all" in res.stderr


@pytest.mark.slow
def test_prior_source_none_and_bad_prior_source(run_dir, tmp_path):
    paths = tiny_model_dir.write_images(str(tmp_path / "colour"), [(16, 16)], seed=5)
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={paths[0]}",
               f"--output_dir={tmp_path / 'eval'}", "--prior_source=none")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert sorted(report["metrics"]) == ["gray", "model"] and report["prior"] is None
    assert list(report["paired"]) == ["model-gray"]
    res = _run(f"--model_dir={run_dir / 'run'}", f"--data={paths[0]}",
               f"--output_dir={tmp_path / 'eval2'}", f"--prior_source={tmp_path}/missing")
    assert res.returncode == 2 and "--prior_source" in res.stderr
    assert not os.path.exists(tmp_path / "eval2" / "metrics.json")


def test_unreadable_training_data_skips_the_prior_with_a_warning(run_dir, tmp_path):
    # The run's config names training data that is gone: the evaluation still runs (model and
    # grey), says why there is no prior, and leaves the model_dir untouched.
    import shutil
    moved = tmp_path / "run"
    shutil.copytree(run_dir / "run", moved)
    config = json.load(open(moved / "config.json"))
    config["data"]["data"] = str(tmp_path / "gone")
    json.dump(config, open(moved / "config.json", "w"))
    before = sorted(os.listdir(moved))
    paths = tiny_model_dir.write_images(str(tmp_path / "colour"), [(16, 16)], seed=6)
    res = _run(f"--model_dir={moved}", f"--data={paths[0]}", f"--output_dir={tmp_path / 'eval'}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no marginal-prior baseline" in res.stderr
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert report["prior"] is None and sorted(report["metrics"]) == ["gray", "model"]
    assert report["settings"]["prior_source"].startswith("skipped")
    assert sorted(os.listdir(moved)) == before
