"""Disk errors end the programs in one line (no traceback), naming what to do; a finished run and
a model that does not fit its config say so in one line too.

The programs run as subprocesses. A full disk is made to happen deterministically: a small
driver (:data:`DRIVER`) makes the write fail at the write itself (the checkpoint's, the
SavedModel's, the report's) with the error a full disk raises, then runs the program's entry
point. A folder that cannot be written is a path below a regular file (``Not a directory``),
which no permission bits can undo (the tests may run as root).
"""
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

#: Runs ``binaries.NAME`` with a fault from $TFCOLOR_TEST_FAULT: ``checkpoint:N`` (the write of
#: checkpoint N), ``savedmodel`` (tf.saved_model.save) or ``report`` (evaluate's report files).
DRIVER = r"""
import errno, os, sys
sys.path.insert(0, sys.argv[1])
import tensorflow as tf
fault = os.environ.get("TFCOLOR_TEST_FAULT", "")
full = lambda where: tf.errors.ResourceExhaustedError(
    None, None, "{{function_node __wrapped__SaveV2}} " + where
    + "; No space left on device [Op:SaveV2]")
if fault.startswith("checkpoint:"):
    real = tf.train.Checkpoint._write
    def write(self, prefix, *args, **kwargs):
        if prefix.endswith("-" + fault.split(":")[1]):
            os.makedirs(prefix + "_temp", exist_ok=True)
            open(os.path.join(prefix + "_temp", "part.data"), "wb").write(b"\0" * 1000)
            raise full(prefix + "_temp/part.data")
        return real(self, prefix, *args, **kwargs)
    tf.train.Checkpoint._write = write
elif fault == "savedmodel":
    def save(obj, path, *args, **kwargs):
        os.makedirs(os.path.join(path, "variables"), exist_ok=True)
        open(os.path.join(path, "saved_model.pb"), "wb").write(b"\0" * 10)
        raise full(path)
    tf.saved_model.save = save
elif fault == "report":
    from tfcolor import metrics
    def write_report(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "metrics.json")
    metrics.write_report = write_report
import importlib
program = importlib.import_module("binaries." + sys.argv[2])
sys.argv = [sys.argv[2]] + sys.argv[3:]
program.run()
"""


def _run(program, args, fault="", timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFCOLOR_TEST_FAULT=fault)
    res = subprocess.run([sys.executable, "-c", DRIVER, ROOT, program] + list(args),
                         capture_output=True, text=True, env=env, timeout=timeout, cwd="/")
    return res.returncode, res.stdout + res.stderr


def _error_line(program, out):
    """The one ``PROGRAM: error:`` line; no traceback, and nothing from TensorFlow after it."""
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith(f"{program}: error: ")]
    assert len(errors) == 1, out[-3000:]
    assert errors[0] == len(lines) - 1, out[-3000:]  # the last line: nothing buries it
    return lines[errors[0]][len(f"{program}: error: "):]


def _write_images(folder, count=6, size=40):
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.uniform(size=(size, size, 3)) * 255).astype(np.uint8)).save(
            os.path.join(folder, f"img{i}.png"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("disk") / "run"
    tiny_model_dir.make_model_dir(str(path))
    images = str(path.parent / "images")
    _write_images(images, count=2)
    return str(path), images


@pytest.mark.slow  # three program runs (about 1-2 min); the trainer's own full-disk error is in
# the default run (tests/train/test_checkpointing.py)
def test_pretrain_full_disk_mid_checkpoint_then_resume_then_finished(tmp_path):
    images, run = str(tmp_path / "images"), str(tmp_path / "run")
    _write_images(images)
    args = [f"--data={images}", f"--model_dir={run}", "--arch=vgg_tiny", "--hidden=16",
            "--dropout=0", "--crop_size=32", "--points=8", "--batch_size=2",
            "--train_steps=4", "--steps_per_loop=2", "--checkpoint_every=2",
            "--summary_every=2", "--image_every=0", "--validation_images=2",
            "--lr_drops=0.5", "--learning_rate=0.01", "--noexport"]
    code, out = _run("pretrain", args, fault="checkpoint:4")
    assert code == 4, out[-3000:]
    message = _error_line("pretrain", out)
    last = os.path.join(run, "ckpt-2")
    assert message.startswith(f"cannot write checkpoint 4 in {run}: No space left on device; "
                              f"the last good checkpoint, {last}, is complete and untouched")
    assert "rerun the same command to resume from it" in message
    assert os.path.isdir(os.path.join(run, "ckpt-4_temp"))
    code, out = _run("pretrain", args)  # the disk has room again
    assert code == 0, out[-3000:]
    assert f"resumed from {last}" in out and not os.path.exists(os.path.join(run, "ckpt-4_temp"))
    code, out = _run("pretrain", args)  # finished: nothing to train, no "loss nan"
    assert code == 0, out[-3000:]
    assert "done: the run had already reached step 4 (--train_steps=4): nothing trained" in out
    assert "nan" not in out
    done = next(line for line in out.splitlines() if "done:" in line)
    assert "export" not in done and "None" not in done   # --noexport: not named at all


def test_pretrain_on_a_model_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    images = str(tmp_path / "images")
    _write_images(images)
    code, out = _run("pretrain", [f"--data={images}", f"--model_dir={blocker}/run",
                                  "--arch=vgg_tiny", "--hidden=16", "--crop_size=32",
                                  "--batch_size=2", "--train_steps=2", "--lr_drops=0.5",
                                  "--noexport"])
    assert code == 4, out[-3000:]
    message = _error_line("pretrain", out)
    assert message.startswith(f"cannot write the run in --model_dir={blocker}/run: ")
    assert "not a directory" in message.lower() and "no checkpoint was written" in message


def test_colorize_and_evaluate_with_an_output_dir_that_cannot_be_created(model_dir, tmp_path):
    run, images = model_dir
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    code, out = _run("colorize", [f"--model_dir={run}", images, f"--output_dir={blocker}/out"])
    assert code == 2, out[-3000:]
    assert _error_line("colorize", out).startswith(
            f"cannot write to --output_dir={blocker}/out: Not a directory")
    code, out = _run("evaluate", [f"--model_dir={run}", f"--data={images}",
                                  f"--output_dir={blocker}/eval", "--prior_source=none"])
    assert code == 2, out[-3000:]
    assert _error_line("evaluate", out).startswith(
            f"cannot write to --output_dir={blocker}/eval: Not a directory")


def test_evaluate_disk_full_at_the_report_prints_the_results_and_one_line(model_dir, tmp_path):
    run, images = model_dir
    out_dir = tmp_path / "eval"
    code, out = _run("evaluate", [f"--model_dir={run}", f"--data={images}",
                                  f"--output_dir={out_dir}", "--prior_source=none"],
                     fault="report")
    assert code == 2, out[-3000:]
    assert _error_line("evaluate", out) == (
            f"cannot write the report to --output_dir={out_dir}: No space left on device "
            "(metrics.json); the results are printed above")
    assert "ab mean" in out and "model" in out
    assert os.listdir(out_dir) == []  # no partial report, no staging folder


@pytest.mark.slow  # two exports of a SavedModel (about 40 s); the export library's own atomic write
# is in tests/test_export.py
def test_export_disk_full_leaves_nothing_and_keeps_an_earlier_export(model_dir, tmp_path):
    run, _ = model_dir
    target = tmp_path / "export"
    code, out = _run("export", [f"--model_dir={run}", f"--export_dir={target}", "--nokeras"])
    assert code == 0, out[-3000:]
    before = json.loads((target / "tfcolor_export.json").read_text())
    code, out = _run("export", [f"--model_dir={run}", f"--export_dir={target}", "--overwrite",
                                "--nokeras"], fault="savedmodel")
    assert code == 2, out[-3000:]
    assert _error_line("export", out) == (
            f"cannot write the SavedModel to {target}: No space left on device; nothing was "
            "left there (an earlier export stays whole): free space or choose a writable "
            "--export_dir")
    assert sorted(os.listdir(tmp_path)) == ["export"]
    assert json.loads((target / "tfcolor_export.json").read_text()) == before


def test_a_config_that_does_not_fit_the_checkpoint_is_one_line(model_dir, tmp_path):
    run, images = model_dir
    bad = tmp_path / "bad"
    os.system(f"cp -r {run} {bad}")
    config = json.loads((bad / "config.json").read_text())
    config["model"]["hidden"] = 2 * config["model"]["hidden"]
    (bad / "config.json").write_text(json.dumps(config))
    for program, args in [("colorize", [images, f"--output_dir={tmp_path / 'out'}"]),
                          ("export", [f"--export_dir={tmp_path / 'exp'}"])]:
        code, out = _run(program, [f"--model_dir={bad}"] + args)
        assert code == 2, out[-3000:]
        assert "does not fit the model" in _error_line(program, out)
        assert "checkpoint.py" not in out and "Value in checkpoint" not in out, out[-3000:]
