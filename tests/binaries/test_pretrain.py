"""Tests of the pretraining program binaries/pretrain (flags, flag files, an end-to-end run).

Flag parsing and validation run in-process on a private ``FlagValues`` (the program defines its
flags at run time, so this cannot clash with other programs' flags); the shell shim and a tiny
end-to-end run on generated images run as subprocesses with timeouts.
"""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from binaries import pretrain  # noqa: E402
except ImportError:
    import program_loader  # noqa: E402
    pretrain = program_loader.load_program("pretrain")

SHIM = os.path.join(ROOT, "binaries", "pretrain")
# Pretraining flag files; finetune_*.flags and reproduce.flags belong to other programs.
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.flags"))
                 if not os.path.basename(p).startswith(("finetune_", "reproduce")))


def _parse(*args):
    fv = flags.FlagValues()
    pretrain.define_flags(fv)
    fv(["pretrain"] + list(args))
    return fv


def _config(*args):
    return pretrain.build_config(_parse(*args))


def test_defaults_are_the_paper_recipe():
    cfg = _config()
    assert (cfg.model.arch, cfg.loss.kind, cfg.data.crop_size, cfg.data.batch_size,
            cfg.data.points) == ("vgg16", "hue_chroma", 352, 8, 128)
    assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay, cfg.loss.hue_weight,
            cfg.loss.window) == (0.9, 5e-4, 5.0, 7)
    assert cfg.optimizer.drop_steps(2_000_000) == [1_000_000, 1_500_000, 1_750_000]


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_flagfile_parses_and_validates(path):
    # The paper configs name an ImageNet path that does not exist here: override it.
    cfg = _config(f"--flagfile={path}", "--data=embedded")
    assert cfg.train.model_dir.startswith("runs/")
    assert cfg.optimizer.drop_steps(cfg.train.train_steps), "no learning-rate drop"


def test_paper_flagfiles_hold_the_paper_constants():
    vgg = _config(f"--flagfile={ROOT}/configs/vgg16_hue_chroma.flags", "--data=embedded")
    assert (vgg.model.arch, vgg.model.taps, vgg.model.batch_norm) == (
        "vgg16", None, "parameter_free")
    assert (vgg.data.crop_size, vgg.data.min_side, vgg.data.max_side, vgg.data.points,
            vgg.data.edge_buffer, vgg.data.batch_size) == (352, 352, 600, 128, 96, 8)
    assert vgg.optimizer.learning_rates(vgg.train.train_steps) == (
        [1_000_000, 1_500_000, 1_750_000], pytest.approx([1e-3, 1e-4, 1e-5, 1e-6]))
    reg = _config(f"--flagfile={ROOT}/configs/vgg16_lab_regression.flags", "--data=embedded")
    assert reg.loss.kind == "lab_regression" and reg.model.arch == "vgg16"
    res = _config(f"--flagfile={ROOT}/configs/resnet152_224.flags", "--data=embedded")
    assert (res.model.arch, res.data.crop_size, res.model.batch_norm) == (
        "resnet152", 224, "standard")
    assert res.model.taps in ("res5c", ["res5c"])  # pretrained without a hypercolumn
    quick = _config(f"--flagfile={ROOT}/configs/quickstart.flags")
    assert quick.data.data == "embedded" and quick.model.arch == "vgg_tiny"


def test_flagfile_paths_resolve_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = pretrain.common.resolve_flagfiles(["x", "--flagfile=configs/quickstart.flags", "--a"])
    assert argv == ["x", f"--flagfile={ROOT}/configs/quickstart.flags", "--a"]


@pytest.mark.parametrize("flag, message", [
    ("--batch_size=0", "--batch_size must be a positive integer, got 0"),
    ("--crop_size=-32", "--crop_size must be a positive integer, got -32"),
    ("--points=0", "--points must be a positive integer"),
    ("--train_steps=0", "--train_steps must be a positive integer"),
    ("--arch=vgg19", "unknown architecture --arch='vgg19'"),
    ("--data=/no/such/dir", "--data='/no/such/dir': no such file or directory"),
    ("--data=/no/such/*.jpg", "--data='/no/such/\\*.jpg': the pattern matches no file"),
    ("--loss=l1", "--loss must be one of 'hue_chroma', 'lab_hist', 'lab_joint', 'lab_regression'"),
    ("--strategy=gpu", "--strategy must be one of"),
    ("--dropout=1.5", "--dropout must be in \\[0, 1\\)"),
    ("--learning_rate=0", "--learning_rate must be positive"),
    ("--lr_drops=a,b", "--lr_drops must be a comma-separated list of numbers"),
    ("--window=4", "--window must be odd"),
    ("--lr_drops=3000000", "lr_drops \\[3000000\\] are at or after train_steps=2000000"),
])
def test_bad_flags_give_messages_naming_the_flag(flag, message):
    with pytest.raises(pretrain.FlagError, match=message):
        _config(flag)


def _run(args, cwd, timeout):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([SHIM] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return proc.returncode, out


def test_shim_runs_from_any_directory_and_exits_non_zero_on_bad_flags(tmp_path):
    code, out = _run(["--flagfile=configs/quickstart.flags", "--batch_size=0"], tmp_path, 120)
    assert code != 0
    assert "--batch_size must be a positive integer, got 0" in out
    code, out = _run(["--no_such_flag=1"], tmp_path, 120)
    assert code != 0 and "no_such_flag" in out


def _write_images(folder, count=6, size=40):
    from PIL import Image
    rng = np.random.default_rng(0)
    os.makedirs(folder)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        c = rng.uniform(0, 1, size=(3, 3))
        rgb = np.stack([c[k, 0] * yy + c[k, 1] * xx + c[k, 2] * 0.3 for k in range(3)], -1)
        Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255)).save(
            os.path.join(folder, f"img{i}.png"))


def _tiny_args(tmp_path):
    images, run = str(tmp_path / "images"), str(tmp_path / "run")
    _write_images(images)
    return run, [f"--data={images}", f"--model_dir={run}", "--arch=vgg_tiny", "--hidden=16",
                 "--dropout=0", "--crop_size=32", "--points=8", "--batch_size=2",
                 "--train_steps=4", "--steps_per_loop=2", "--checkpoint_every=2",
                 "--summary_every=2", "--image_every=4", "--validation_images=2",
                 "--lr_drops=0.5", "--learning_rate=0.01"]


def test_tiny_end_to_end_run_on_generated_images(tmp_path):
    """Checkpoint, colorization grid, summaries, config.json; then a restart finds the run
    complete and does not train again. (The export is covered by the slow test below.)"""
    run, args = _tiny_args(tmp_path)
    with open(tmp_path / "images" / "broken.jpg", "wb") as f:  # skipped and reported, no crash
        f.write(b"\xff\xd8\xff\xe0 not really a JPEG")
    code, out = _run(args + ["--noexport"], tmp_path, 400)
    assert code == 0, out[-4000:]
    assert "step 4/4 (100.0%) loss" in out and "img/s" in out and "ETA" in out
    assert "image(s) skipped (corrupt: " in out and "1 distinct file(s)" in out, out[-4000:]
    files = set(os.listdir(run))
    assert {"checkpoint", "ckpt-4.index", "config.json", "colorizations.png", "train"} <= files
    assert "export" not in files
    from PIL import Image
    grid = Image.open(os.path.join(run, "colorizations.png"))
    assert grid.size == (3 * 32 + 2 * 2, 2 * 32 + 2)  # 2 rows: grey | colorized | original
    assert glob.glob(os.path.join(run, "train", "events.*"))
    code, out = _run(args + ["--noexport"], tmp_path, 400)
    assert code == 0, out[-4000:]
    assert "resumed from" in out and "step 2/4" not in out


@pytest.mark.slow
def test_tiny_end_to_end_run_exports_a_saved_model(tmp_path):
    run, args = _tiny_args(tmp_path)
    code, out = _run(args, tmp_path, 600)
    assert code == 0, out[-4000:]
    assert os.path.exists(os.path.join(run, "export", "saved_model.pb"))
    assert os.path.exists(os.path.join(run, "export", "tfcolor_export.json"))


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    import signal
    import time
    run, args = _tiny_args(tmp_path)
    args = [a for a in args if not a.startswith(("--train_steps", "--steps_per_loop"))]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([SHIM] + args + ["--train_steps=100000", "--steps_per_loop=1",
                                             "--checkpoint_every=50000", "--noexport"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not glob.glob(os.path.join(run, "train", "ev*")):
            time.sleep(0.5)
        time.sleep(5)  # training is under way
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    assert "SIGTERM received" in out and "preempted at step" in out
    assert os.path.exists(os.path.join(run, "checkpoint"))
