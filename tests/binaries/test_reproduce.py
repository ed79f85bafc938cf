"""Tests of binaries/reproduce: its flag file and a tiny end-to-end run on generated data."""
import json
import os
import subprocess
import sys

import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import program_loader  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "reproduce")
TINY = ["--fake_data", "--pretrain_steps=4", "--pretrain_crop=32", "--photo_side=40",
        "--pretrain_batch=4", "--pretrain_points=8", "--hidden=16", "--seeds=0",
        "--ft_max_steps=4", "--ft_eval_every=2", "--ft_batch=8", "--gcompris_size=32",
        "--gcompris_crop=28", "--holdout_size=40", "--fmnist_test=50"]


def _program():
    return program_loader.load_program("reproduce")


def test_flagfile_parses():
    program = _program()
    fv = flags.FlagValues()
    program.define_flags(fv)
    fv(["reproduce", f"--flagfile={os.path.join(ROOT, 'configs', 'reproduce.flags')}",
        "--output_dir=/tmp/unused"])
    assert list(fv.methods) == list(program.METHODS)
    assert list(fv.sets) == list(program.SETS) and len(fv.seeds) == 3


def _run(out, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([SHIM, f"--output_dir={out}"] + TINY + list(extra), env=env,
                          capture_output=True, text=True, timeout=900)


def _check(out, methods, sets):
    report = json.loads((out / "results.json").read_text())
    assert set(report["finetune"]) == set(sets)
    for s in sets:
        assert set(report["finetune"][s]) == set(methods)
        for r in report["finetune"][s].values():
            assert 0.0 <= r["test"]["mean"] <= 1.0 and r["test"]["n"] == 1
    text = (out / "results.md").read_text()
    assert "| method | " + " | ".join(sets) + " |" in text
    for m in methods:
        assert f"| {m} |" in text
    return report


def test_tiny_end_to_end_all_methods(tmp_path):
    methods = ["random", "colorization", "lab_regression", "denoising", "split_brain"]
    proc = _run(tmp_path, "--sets=fmnist10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = _check(tmp_path, methods, ["fmnist10"])
    assert set(report["colorization"]) == {"colorization", "lab_regression", "gray"}
    assert set(report["pretrain"]) == set(methods) - {"random"}
    # Grey data: the split-brain number carries the ab-half handicap note; colorization
    # metrics report the alpha-beta mean distance and RMS under their own names.
    assert report["finetune"]["fmnist10"]["split_brain"]["color_input"] is False
    text = (tmp_path / "results.md").read_text()
    assert "(g) grey data: split-brain (lab)" in text
    assert "| alpha-beta mean distance | alpha-beta RMS |" in text
    for r in report["colorization"].values():
        assert r["alphabeta_rms"] >= r["alphabeta_mean"] > 0 or r["alphabeta_mean"] == 0


@pytest.mark.slow
def test_tiny_end_to_end_all_sets(tmp_path):
    proc = _run(tmp_path, "--methods=random,colorization")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(tmp_path, ["random", "colorization"], ["gcompris5", "fmnist10", "fmnist100"])


def test_missing_corpus_is_a_clear_error(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([SHIM, f"--output_dir={tmp_path}", f"--corpus={tmp_path}/none"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "build the corpus first" in proc.stderr
