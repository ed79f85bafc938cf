"""Tests of the pretraining program (flags, flag files, an end-to-end run).

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

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
from binaries import common
from binaries import pretrain

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
    argv = common.resolve_flagfiles(["x", "--flagfile=configs/quickstart.flags", "--a"])
    assert argv == ["x", f"--flagfile={ROOT}/configs/quickstart.flags", "--a"]


@pytest.mark.parametrize("flag, message", [
    ("--batch_size=0", "--batch_size must be a positive integer, got 0"),
    ("--crop_size=-32", "--crop_size must be a positive integer, got -32"),
    ("--points=0", "--points must be a positive integer"),
    ("--train_steps=0", "--train_steps must be a positive integer"),
    ("--arch=vgg19", "--arch='vgg19' is not a known architecture; known: .*vgg16"),
    ("--data=/no/such/dir", "--data='/no/such/dir': no such file or directory"),
    ("--data=/no/such/*.jpg", "--data='/no/such/\\*.jpg': the pattern matches no file"),
    ("--loss=l1", "--loss must be one of 'hue_chroma', 'lab_hist', 'lab_joint', 'lab_regression'"),
    ("--strategy=gpu", "--strategy must be one of"),
    ("--dropout=1.5", "--dropout must be in \\[0, 1\\)"),
    ("--learning_rate=0", "--learning_rate must be positive"),
    ("--lr_drops=a,b", "--lr_drops must be a comma-separated list of numbers"),
    ("--window=4", "--window must be odd"),
    ("--lr_drops=3000000", "--lr_drops \\[3000000\\] are at or after train_steps=2000000"),
    ("--convention=center", "--convention must be one of 'released', 'half_pixel'; got 'center'"),
    ("--min_side=100", "--min_side=100 is smaller than crop_size=352"),
    ("--max_side=300", "--max_side=300 is smaller than crop_size=352"),
    ("--min_side=700", "--max_side=600 \\(the default for this crop_size\\) is smaller than "
                       "min_side=700"),
    ("--edge_buffer=176", "--edge_buffer=176 leaves no room for centres"),
    ("--heldout_data=/no/such/dir", "--heldout_data='/no/such/dir': no such file or directory"),
    ("--validation_images=-1", "--validation_images must be a non-negative integer, got -1"),
    ("--seed=-2", "--seed must be a non-negative integer, got -2"),
    ("--batch_norm=group", "--batch_norm must be one of 'parameter_free', 'standard', 'none'"),
])
def test_bad_flags_give_messages_naming_the_flag(flag, message):
    with pytest.raises(pretrain.FlagError, match=message):
        _config(flag)


def test_min_and_max_side_out_of_order_name_max_side():
    with pytest.raises(pretrain.FlagError, match="^--max_side=400 is smaller than min_side=500$"):
        _config("--min_side=500", "--max_side=400")


def test_flag_defaults_are_the_library_defaults():
    # The program's flags and tfcolor.config hold the defaults twice (the programs import no
    # TensorFlow before parsing): they must agree, except the run directory.
    from tfcolor import config as config_lib
    import json
    parsed = json.loads(json.dumps(_config().to_dict()))
    library = json.loads(json.dumps(config_lib.PretrainConfig().to_dict()))
    assert parsed == library


def test_every_flag_sets_the_config_field_of_its_name():
    from tfcolor import config as config_lib
    import dataclasses
    program_flags = _program_flag_names()
    fields = {f"{section.name}.{f.name}"
              for section in dataclasses.fields(config_lib.PretrainConfig)
              for f in dataclasses.fields(section.default_factory)}
    by_flag = {pretrain.program.FLAG_NAMES.get(path, path.split(".")[1]): path for path in fields}
    assert len(by_flag) == len(fields), "two config fields share a name"
    # Every flag but --force_unlock (a run option, not configuration) sets a field ...
    assert program_flags - set(by_flag) == {"force_unlock"}
    # ... and the fields without a flag are these (a new field gets a flag or joins this list).
    assert {by_flag[f] for f in set(by_flag) - program_flags} == {
        "model.input_mean", "data.shuffle_buffer"}
    # Changing a flag changes exactly the field of its name.
    changed = _config("--points=17", "--loss=lab_hist", "--hue_weight=2.5", "--eval_every=7")
    assert (changed.data.points, changed.loss.kind, changed.loss.hue_weight,
            changed.train.eval_every) == (17, "lab_hist", 2.5, 7)


def _program_flag_names():
    # The flags define_flags() adds (absl also defines its own on a fresh FlagValues).
    fresh = flags.FlagValues()
    before = set(fresh)
    pretrain.define_flags(fresh)
    return set(fresh) - before


def test_unset_flag_values_give_the_fields_none_default():
    cfg = _config("--min_side=0", "--edge_buffer=-1", "--batch_norm=", "--head_weight_decay=-1",
                  "--clip_norm=0", "--heldout_data=", "--taps=all")
    assert (cfg.data.min_side, cfg.data.edge_buffer, cfg.model.batch_norm,
            cfg.optimizer.head_weight_decay, cfg.optimizer.clip_norm, cfg.data.heldout_data,
            cfg.model.taps) == (None,) * 7
    cfg = _config("--min_side=400", "--edge_buffer=0", "--batch_norm=standard",
                  "--head_weight_decay=1e-6", "--clip_norm=5", "--taps=conv1_1,fc7",
                  "--targets_on_device=false", "--lr_drops=10,20")
    assert (cfg.data.min_side, cfg.data.edge_buffer, cfg.model.batch_norm,
            cfg.optimizer.head_weight_decay, cfg.optimizer.clip_norm, cfg.model.taps,
            cfg.data.targets_on_device, list(cfg.optimizer.lr_drops)) == (
        400, 0, "standard", 1e-6, 5.0, ["conv1_1", "fc7"], False, [10.0, 20.0])


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


@pytest.mark.slow
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


# --------------------------------------------------------------------------------------------
# One run per model_dir; crash consistency under SIGKILL.

def test_second_run_on_a_model_dir_in_use_refuses_with_one_line(tmp_path):
    """A live process named by model_dir/.lock (a sleeping child of this test, on this host)
    makes the program exit with status 5 and a one-line message naming the owner; nothing is
    written to the directory."""
    import json
    import socket
    from tfcolor.train import lock
    run, args = _tiny_args(tmp_path)
    os.makedirs(run)
    owner = subprocess.Popen(["sleep", "300"])
    try:
        record = dict(lock.owner_record(), pid=owner.pid, start_ticks=None)
        with open(os.path.join(run, ".lock"), "w") as f:
            json.dump(record, f)
        code, out = _run(args + ["--noexport"], tmp_path, 300)
    finally:
        owner.kill()
        owner.wait()
    assert code == 5, out[-3000:]
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert len(errors) == 1, out[-3000:]
    assert f"is in use by another run (pid {owner.pid} on host {socket.gethostname()!r}" \
        in errors[0]
    assert sorted(os.listdir(run)) == [".lock"]


def _checkpoint_state(run):
    """The checkpoint number the state file names (None without one)."""
    import re
    try:
        with open(os.path.join(run, "checkpoint")) as f:
            match = re.search(r'^model_checkpoint_path: ".*?ckpt-(\d+)"', f.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _write_in_progress(run):
    """Names showing a checkpoint write under way: ``ckpt-N_temp*`` (TensorFlow's sharded save)
    or a ``ckpt-N.index`` newer than the checkpoint the state file names."""
    import re
    try:
        names = os.listdir(run)
    except OSError:
        return []
    state = _checkpoint_state(run)
    out = []
    for name in names:
        match = re.match(r"ckpt-(\d+)(_temp.*|\.index)$", name)
        if match and (match.group(2) != ".index" or state is None
                      or int(match.group(1)) > state):
            out.append(name)
    return out


def _kill_during_checkpoint_write(proc, run, deadline, after_first=True):
    """Polls ``run`` until a checkpoint write is under way (``after_first``: one after the first
    complete checkpoint), freezes the program (SIGSTOP), checks the write is still under way and
    SIGKILLs it. Returns (in-progress names, state-file number at the kill) or None when the
    program ended first / the deadline passed."""
    import signal
    import time
    _wait_for_restore(proc, deadline)
    while time.monotonic() < deadline and proc.poll() is None:
        if _write_in_progress(run) and (not after_first or _checkpoint_state(run) is not None):
            os.killpg(proc.pid, signal.SIGSTOP)
            frozen = _write_in_progress(run)
            if frozen:
                state = _checkpoint_state(run)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return frozen, state
            os.killpg(proc.pid, signal.SIGCONT)  # missed it: try the next checkpoint
        time.sleep(0.0005)
    return None


def _wait_for_restore(proc, deadline):
    """Until the program has restored its checkpoint (or found none): from then on, checkpoint
    files being written are its own (it has removed earlier runs' temporary files)."""
    import time
    while time.monotonic() < deadline and proc.poll() is None:
        out = _output(proc)
        if "resumed from " in out or "training from step 0" in out:
            return
        time.sleep(0.05)


def _crash_args(tmp_path, name, steps):
    images = tmp_path / "images"
    if not images.exists():
        _write_images(str(images), count=7)
        with open(images / "broken.jpg", "wb") as f:  # skipped: the record stream has a gap
            f.write(b"\xff\xd8\xff\xe0 not really a JPEG")
    run = str(tmp_path / name)
    return run, [f"--data={images}", f"--model_dir={run}", "--arch=vgg_tiny", "--hidden=512",
                 "--taps=conv1_2,conv3_3,fc7",
                 "--dropout=0", "--crop_size=32", "--points=8", "--batch_size=2",
                 f"--train_steps={steps}", "--steps_per_loop=1", "--checkpoint_every=2",
                 f"--summary_every={steps}", "--image_every=0", "--validation_images=0",
                 "--lr_drops=0.5", "--learning_rate=0.01", "--keep_checkpoints=3",
                 "--deterministic", "--noexport"]


def _start(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    import tempfile
    log = tempfile.NamedTemporaryFile("w+", dir=cwd, prefix="log", suffix=".txt", delete=False)
    proc = subprocess.Popen([SHIM] + args, cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log = log
    return proc


def _output(proc):
    with open(proc.log.name) as f:  # own offset: the child's writes are never moved
        return f.read()


def _crash_and_resume(tmp_path, steps, kills, seed):
    """Runs the program, SIGKILLing it per ``kills`` ("write": during a checkpoint write;
    "random": at a random moment after training started), restarting after each kill, then lets
    it finish. Checks every restart resumed from the checkpoint the state file named at the kill
    (complete: restored and validated) and never from the one being written. Returns (run dir,
    outputs, number of kills made during a write)."""
    import random
    import signal
    import time
    rng = random.Random(seed)
    run, args = _crash_args(tmp_path, "crashed", steps)
    outputs, during_write, expected_resume = [], 0, None
    deadline = time.monotonic() + 600
    for kind in list(kills) + ["finish"]:
        proc = _start(args, str(tmp_path))
        try:
            killed = None
            if kind in ("write", "first_write"):
                killed = _kill_during_checkpoint_write(proc, run, deadline,
                                                       after_first=kind == "write")
            elif kind == "random":
                # A random moment after the restore: while the step is traced or trained.
                _wait_for_restore(proc, deadline)
                time.sleep(rng.uniform(2.0, 16.0))
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = ([], _checkpoint_state(run))
            else:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out = _output(proc)
        if outputs:  # a restart after a SIGKILL: the dead run's lock is taken over
            assert "taking over the lock of pid" in out and "is not running" in out, out[-4000:]
        outputs.append((kind, killed, out))
        if expected_resume:
            assert f"resumed from {os.path.join(run, f'ckpt-{expected_resume}')} " \
                   f"at step {expected_resume}" in out, out[-4000:]
        if killed is None:
            assert proc.returncode == 0, out[-4000:]
            break
        assert proc.returncode == -signal.SIGKILL
        in_progress, state = killed
        if in_progress:
            during_write += 1
            numbers = {int(n.split("-")[1].split("_")[0].split(".")[0]) for n in in_progress}
            assert state is None or all(n > state for n in numbers), (in_progress, state)
        expected_resume = state
    return run, outputs, during_write


def _final_tensors(run, steps):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run, f"ckpt-{steps}"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_dtype_map()
            if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


@pytest.mark.slow
def test_sigkill_at_random_moments_and_during_checkpoint_writes_then_identical_weights(tmp_path):
    """The real program (deterministic, a skipped broken image) is SIGKILLed five times: three
    times while a checkpoint is being written (frozen with SIGSTOP first, so the half-written
    files are seen at the kill) and twice at random moments; each restart resumes from the last
    complete checkpoint, takes over the dead run's lock, and the final checkpoint equals an
    uninterrupted run's tensor for tensor (weights, optimizer slots, step, input position)."""
    steps = 24
    ref_run, ref_args = _crash_args(tmp_path, "reference", steps)
    reference = _start(ref_args, str(tmp_path))
    try:
        run, outputs, during_write = _crash_and_resume(
            tmp_path, steps, ["first_write", "random", "write", "random", "write"], seed=11)
        reference.wait(timeout=600)
    finally:
        if reference.poll() is None:
            os.killpg(reference.pid, 9)
            reference.wait()
    assert reference.returncode == 0, _output(reference)[-4000:]
    assert during_write >= 2, [(k, w) for k, w, _ in outputs]
    assert any("ignoring half-written checkpoint files" in out for _, _, out in outputs)
    assert not os.path.exists(os.path.join(run, ".lock"))  # released by the finished run
    want, got = _final_tensors(ref_run, steps), _final_tensors(run, steps)
    assert sorted(want) == sorted(got)
    assert any(name.startswith("input_position") for name in got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.slow  # two starts of the program: 60-90 s on 2 busy cores, over the 60 s budget
def test_sigkill_during_a_checkpoint_write_then_resume_from_the_previous_one(tmp_path):
    """Short variant: one SIGKILL while a checkpoint is being written; the restart ignores the
    half-written files, resumes from the previous complete checkpoint and finishes."""
    run, outputs, during_write = _crash_and_resume(tmp_path, 8, ["write"], seed=3)
    assert during_write == 1, [(k, w) for k, w, _ in outputs]
    assert "ignoring half-written checkpoint files" in outputs[-1][2]
    assert _checkpoint_state(run) == 8
