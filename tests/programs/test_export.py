"""End-to-end tests of binaries/export (shell shim, subprocesses with timeouts)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model_dir  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "export")


def _run(*args, timeout=400):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([SHIM] + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, cwd="/")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("export_bin") / "run"
    model = tiny_model_dir.make_model_dir(str(path))
    return str(path), model


@pytest.mark.slow  # an export and saved_model_cli (about 30 s); the README walk runs the same
# commands, and tests/test_export.py checks the SavedModel in process
def test_export_program_writes_a_servable_savedmodel(model_dir, tmp_path):
    import tensorflow as tf
    from tfcolor import predictors, run_dir
    path, model = model_dir
    out = str(tmp_path / "exported" / "1")
    res = _run(f"--model_dir={path}", f"--export_dir={out}", "--fading=released",
               "--grid_factor=2", "--nokeras", "--max_side=0")
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.path.exists(os.path.join(out, "saved_model.pb"))
    assert not os.path.exists(os.path.join(out, run_dir.EXPORT_KERAS_FILE))
    meta = json.load(open(os.path.join(out, run_dir.EXPORT_METADATA_FILE)))
    assert meta["grid_factor"] == 2 and meta["readout_options"]["fading"] == "released"
    assert meta["max_side"] is None and meta["max_pixels"] == 100_000_000
    assert meta["config"]["model"]["arch"] == "vgg_tiny"
    loaded = tf.saved_model.load(out)
    x = np.random.default_rng(0).uniform(size=(1, 19, 26, 3)).astype(np.float32)
    got = loaded.signatures["colorize_float"](images=tf.constant(x))["rgb"].numpy()
    want = predictors.colorize_batch(model, x, grid_factor=2, fading="released").numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_usage_errors(model_dir, tmp_path):
    path, _ = model_dir
    res = _run()
    assert res.returncode == 2 and "--model_dir is required" in res.stderr
    res = _run(f"--model_dir={path}", "--mode=sample", f"--export_dir={tmp_path / 'x'}")
    assert res.returncode == 2 and "cannot be exported" in res.stderr
    res = _run(f"--model_dir={path}", "--max_side=7", f"--export_dir={tmp_path / 'x'}")
    assert res.returncode == 2 and "--max_side must be 0" in res.stderr, res.stderr[-500:]
    res = _run(f"--model_dir={tmp_path}")
    assert res.returncode == 2 and "config.json" in res.stderr


def test_an_earlier_export_is_never_replaced_without_overwrite(model_dir, tmp_path):
    path, _ = model_dir
    out = tmp_path / "exported"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"an earlier export")
    res = _run(f"--model_dir={path}", f"--export_dir={out}")
    assert res.returncode == 2 and "not replacing an earlier export" in res.stderr
    assert "Traceback" not in res.stderr
    assert (out / "saved_model.pb").read_bytes() == b"an earlier export"
    assert os.listdir(tmp_path) == ["exported"]
