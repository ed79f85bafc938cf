"""Tests of the finetune program: flag files, errors, and an end-to-end run on generated data."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
from binaries import finetune  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "finetune")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "finetune_*.flags")))


def _program():
    return finetune


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_finetune_flagfile_parses_and_validates(path):
    program = _program()
    fv = flags.FlagValues()
    program.define_flags(fv)
    fv(["finetune", f"--flagfile={path}"])
    config = program.config_from_flags(fv)
    assert config.max_drops == 2 and fv.output_dir.startswith("runs/")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _stripes(path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    x = (rng.uniform(0, 0.3, (100, 16, 16)) * 255).astype(np.uint8)
    for i in range(100):
        if y[i]:
            x[i, :, ::4] += 150
        else:
            x[i, ::4, :] += 150
    np.savez(path, x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])


def test_end_to_end_run_writes_results(tmp_path):
    npz = str(tmp_path / "stripes.npz")
    _stripes(npz)
    out = tmp_path / "out"
    proc = subprocess.run(
            [SHIM, f"--data={npz}:train", f"--test_data={npz}:test", "--arch=vgg_tiny",
             "--taps=conv1_1-conv3_3", "--batch_size=16", "--eval_every=10", "--max_steps=40",
             "--patience=2", "--dropout=0", "--weight_decay=0", "--seeds=0",
             "--analysis_images=8", f"--output_dir={out}"],
            env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The input iterator is checkpointed with the model (no Python function blocks it).
    assert "cannot be checkpointed" not in proc.stderr and "is stateful" not in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "top1"
    assert results["test"]["n"] == 1
    assert results["test"]["mean"] > 0.7  # two classes: chance is 0.5
    assert "random: test top1" in proc.stdout
    assert [r["layer"] for r in results["analysis"]["feature_shift"]][0] == "conv1_1"
    assert (out / "feature_shift.png").exists() and (out / "top_activations_conv3_3.png").exists()
    assert (out / "feature_shift.md").read_text().startswith("| layer |")


def test_without_test_data_the_summary_gives_the_validation_score(tmp_path):
    npz = str(tmp_path / "stripes.npz")
    _stripes(npz)
    proc = subprocess.run(
            [SHIM, f"--data={npz}:train", "--arch=vgg_tiny", "--taps=conv1_1-conv2_2",
             "--batch_size=16", "--eval_every=5", "--max_steps=5", "--seeds=0",
             "--analysis_images=0", f"--output_dir={tmp_path / 'out'}"],
            env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no --test_data; best validation top1 " in proc.stdout and "nan" not in proc.stdout
    best = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]["best_val"]
    assert f"top1 {best:.4f} over 1 seed(s)" in proc.stdout


def test_bad_flag_value_is_a_clear_error(tmp_path):
    npz = str(tmp_path / "stripes.npz")
    _stripes(npz)
    proc = subprocess.run([SHIM, f"--data={npz}:train", f"--output_dir={tmp_path}",
                           "--val_fraction=1.5"], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    # FinetuneConfig's fielded ConfigError, its field called by its flag (common.flag_error).
    assert "--val_fraction must be in [0, 1)" in proc.stderr


@pytest.mark.slow
def test_bad_data_specs_are_one_line_errors_naming_the_flag(tmp_path):
    """A missing path, an empty folder, a class folder of bad files, mismatched counts and a
    set whose images all fail to decode: exit status 2, one line naming the flag, no
    traceback (the programs run in parallel)."""
    from PIL import Image
    npz = str(tmp_path / "stripes.npz")
    _stripes(npz)
    (tmp_path / "empty").mkdir()
    for name in ("cats", "dogs"):
        (tmp_path / "tree" / name).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tree" / "cats" / "0.png")
    (tmp_path / "tree" / "dogs" / "0.jpg").write_text("not an image")
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((3, 8, 8), np.uint8), y=[0, 1])
    for name in ("a", "b"):
        (tmp_path / "cut" / name).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "cut" / name / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    cases = {
        "missing": ([f"--data={tmp_path / 'nowhere'}"], "--data=.*no such file or folder"),
        "empty": ([f"--data={tmp_path / 'empty'}"], "--data=.*has no class sub-folders"),
        "bad class": ([f"--data={tmp_path / 'tree'}"],
                      "--data=.*class folder .*dogs' holds no usable image"),
        "mismatch": ([f"--data={npz}:train", f"--test_data={tmp_path / 'mismatch.npz'}"],
                     "--test_data=.*'x' has 3 images but 'y' has 2 labels"),
        "undecodable": ([f"--data={tmp_path / 'cut'}", "--crop_size=8", "--max_steps=2"],
                        "--data/--test_data: none of the 4 labelled image files could be "
                        "decoded"),
    }
    procs = {name: subprocess.Popen(
        [SHIM, *args, "--arch=vgg_tiny", f"--output_dir={tmp_path / 'out' / name}"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (args, _) in cases.items()}
    import re
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1 and re.search(cases[name][1], errors[0]), (name, stderr[-2000:])
        assert "Traceback" not in stderr, (name, stderr[-2000:])
        assert not os.path.exists(tmp_path / "out" / name / "results.json")


def test_fov_and_imagenet_rebalancing_flags():
    # +FoV is a downstream flag of finetune (the VOC 2012 segmentation config uses it, as the
    # paper's segmentation numbers do); --init=imagenet is re-balanced unless told otherwise.
    program = _program()
    fv = flags.FlagValues()
    program.define_flags(fv)
    voc = os.path.join(ROOT, "configs", "finetune_voc12_segmentation.flags")
    fv(["finetune", f"--flagfile={voc}"])
    assert fv.fov and fv.task == "segmentation"
    assert fv.rebalance_imagenet
    fv2 = flags.FlagValues()
    program.define_flags(fv2)
    fv2(["finetune", "--data=x.npz", "--output_dir=runs/x"])
    assert not fv2.fov
