"""Tests of the distillation program (flags, flag file, an end-to-end run on the shipped photos).

Flag parsing runs in-process on a private ``FlagValues``; the shell shim runs as a subprocess
with timeouts, with a teacher made here (tiny_model_dir: a vgg_tiny colorizer run directory).
"""
import json
import os
import subprocess
import sys

import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # binaries/ is a package at the checkout's root
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model_dir  # noqa: E402  pylint: disable=wrong-import-position
from binaries import distill  # noqa: E402  pylint: disable=wrong-import-position

SHIM = os.path.join(ROOT, "binaries", "distill")


def _config(*args):
    fv = flags.FlagValues()
    distill.define_flags(fv)
    fv(["distill"] + list(args))
    return distill.build_config(fv)


def test_defaults_and_the_flag_file():
    cfg = _config("--teachers=a,b")
    assert list(cfg.multitask.tasks) == ["distillation"]
    assert cfg.multitask.gradient_rule == "sum" and cfg.train.model_dir == "runs/distill"
    assert list(cfg.distill.teachers) == ["a", "b"]
    d = cfg.distill
    assert (d.distill_loss, d.alpha, d.beta, d.combine, d.teacher_layer, d.pre_relu) == (
        "ab", 0.25, 0.0, "subset", "top", True)
    cpu = _config(f"--flagfile={ROOT}/configs/distill_cpu.flags")
    assert cpu.train.model_dir.startswith("runs/") and cpu.distill.teachers
    assert cpu.data.data == "embedded"


@pytest.mark.parametrize("args, message", [
    ([], "--teachers is empty"),
    (["--teachers=a", "--tasks=jigsaw"], "--tasks must include distillation"),
    (["--teachers=a", "--student_dropout=1.5"], "--student_dropout must be in [0, 1)"),
    (["--teachers=a", "--warm_start=3"], "--warm_start must be -1 or the index of a teacher"),
])
def test_bad_flags_name_the_flag(args, message):
    with pytest.raises(distill.FlagError) as e:
        _config(*args)
    assert message in str(e.value)


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([SHIM] + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return proc.returncode, out, err


def _tiny_args(teacher, model_dir, steps):
    return [f"--teachers={teacher}", f"--model_dir={model_dir}", "--data=embedded",
            "--arch=vgg_tiny", "--input_channels=1", "--crop_size=32", "--min_side=32",
            "--max_side=48", "--points=1", "--edge_buffer=0", "--batch_size=2",
            f"--train_steps={steps}", "--steps_per_loop=2", "--checkpoint_every=2",
            "--summary_every=2", "--statistics_batches=2", "--lr_drops=0.5",
            "--learning_rate=0.01",
            # The untrained teacher's fc7 is ~1e-5: divided by its s, the student's would
            # overflow exp; the student is matched unnormalised (the method's option).
            "--normalize_student=false"]


def test_bad_teacher_path_is_one_line(tmp_path):
    code, _, err = _run(_tiny_args(tmp_path / "nowhere", tmp_path / "run", 2), timeout=120)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, err
    assert lines[-1].startswith("distill: error: --teachers: ") and "is not a teacher" in \
        lines[-1], err
    assert "Traceback" not in err


@pytest.mark.slow  # two starts of the program: about a minute on 2 busy cores
def test_end_to_end_on_the_shipped_photos_then_resume(tmp_path):
    from tfcolor import run_dir  # pylint: disable=import-outside-toplevel
    teacher = tmp_path / "teacher"
    tiny_model_dir.make_model_dir(str(teacher))
    run = tmp_path / "run"
    code, _, err = _run(_tiny_args(teacher, run, 2))
    assert code == 0, err
    statistics = run / "distill_statistics.json"
    with open(statistics, encoding="utf-8") as f:
        record = json.load(f)
    assert len(record["scale"]) == 128 and record["count"] > 0  # vgg_tiny's fc7, per feature
    assert record["identity"]["teachers"] == [str(teacher)]
    written = os.path.getmtime(statistics)
    code, _, err = _run(_tiny_args(teacher, run, 4))
    assert code == 0, err
    assert os.path.getmtime(statistics) == written  # read back, not recomputed
    assert "resumed from" in err
    with open(run / "train.jsonl", encoding="utf-8") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [2, 4]
    trunk, config = run_dir.load_shared_trunk(str(run))  # the distilled student
    assert config.multitask.tasks == ["distillation"] and trunk.input_channels == 1
