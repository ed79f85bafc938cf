"""The hostile-input matrix (``tests/hostile_inputs.py``) through every serving-side entry point.

``binaries/colorize`` (--model_dir and --saved_model) and ``binaries/evaluate`` each run once over
the whole folder of cases; the exported signatures are called in a fresh process and through
``saved_model_cli run``; damaged models (a model_dir without a model, a truncated
saved_model.pb, a missing variables shard) end in a one-line error. The camera-size JPEGs
(4000 x 3000, and portrait by EXIF rotation) run in the slow tests; the default ones keep the
683 x 512 photos (one with pure-white highlights, whose shrunk network input
overshot 1.0 and failed the SavedModel's range check).
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import hostile_inputs  # noqa: E402
import tiny_model_dir  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


def _program(name, *args, timeout=600):
    return subprocess.run([os.path.join(ROOT, "binaries", name)] + list(args),
                          capture_output=True, text=True, env=ENV, timeout=timeout, cwd="/")


def _stem(case):
    return os.path.splitext(case.name)[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny model_dir, its export and the small-file matrix (no camera-size files)."""
    from tfcolor import export
    base = tmp_path_factory.mktemp("hostile")
    tiny_model_dir.make_model_dir(str(base / "run"))
    export.export_from_checkpoint(str(base / "run"), str(base / "sm"), save_keras=False)
    (base / "cases").mkdir()
    cases = hostile_inputs.write_image_cases(base / "cases", camera=False)
    return base, cases


def _check_colorize_run(res, cases, out):
    """Exit 1; one PNG of the right (upright) size per valid case with the input's lightness;
    one ``skipped PATH: reason`` line per invalid case; nothing else in the output folder."""
    from tfcolor import image_files
    assert res.returncode == 1, res.stderr[-3000:]
    valid = hostile_inputs.valid_cases(cases)
    assert sorted(os.listdir(out)) == sorted(_stem(c) + ".png" for c in valid.values())
    for case in valid.values():
        got = np.asarray(Image.open(os.path.join(out, _stem(case) + ".png")), np.float32)
        assert got.shape == tuple(case.size) + (3,), case.note
        grey = image_files.read_image(case.path).mean(-1) * 255.0
        assert np.abs(got.mean(-1) - grey).max() <= 1.5, case.note
    for case in hostile_inputs.invalid_cases(cases).values():
        assert f"skipped {case.path}: {case.expected}" in res.stderr, (case.note, res.stderr[-3000:])
    summary = res.stdout.strip().splitlines()[-1]
    assert f"wrote {len(valid)} PNG(s)" in summary
    assert f"skipped {len(cases) - len(valid)} input(s)" in summary


@pytest.mark.parametrize("model_flag", ["model_dir", "saved_model"])
@pytest.mark.slow
def test_colorize_over_the_matrix(world, tmp_path, model_flag):
    base, cases = world
    model = base / ("run" if model_flag == "model_dir" else "sm")
    out = tmp_path / "out"
    res = _program("colorize", f"--{model_flag}={model}", str(base / "cases"),
                   f"--output_dir={out}")
    _check_colorize_run(res, cases, out)


@pytest.mark.slow
@pytest.mark.parametrize("model_flag", ["model_dir", "saved_model"])
def test_colorize_camera_size_photos(world, tmp_path, model_flag):
    base, _ = world
    folder = tmp_path / "cases"
    folder.mkdir()
    cases = hostile_inputs.write_image_cases(folder, camera=True)
    model = base / ("run" if model_flag == "model_dir" else "sm")
    res = _program("colorize", f"--{model_flag}={model}", str(folder),
                   f"--output_dir={tmp_path / 'out'}", timeout=1200)
    _check_colorize_run(res, cases, tmp_path / "out")


def test_a_decompression_bomb_is_refused_unread(world, tmp_path):
    """The 30000 x 30000 PNG (900 Mpx; ~0.9 GB as 1-bit pixels in Pillow, 10.8 GB as float RGB)
    is skipped from its header: the program's peak memory stays at its baseline (TensorFlow and
    the SavedModel, ~0.85 GB measured), below the ~1.7 GB that merely loading the bomb's
    pixels would take."""
    base, cases = world
    script = (
        "import resource, subprocess, sys\n"
        "res = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(res.stderr)\n"
        "print(res.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    res = subprocess.run(
            [sys.executable, "-c", script, os.path.join(ROOT, "binaries", "colorize"),
             f"--saved_model={base / 'sm'}", cases["bomb.png"].path, cases["one_pixel.png"].path,
             f"--output_dir={tmp_path / 'out'}"],
            capture_output=True, text=True, env=ENV, timeout=600)
    status, max_rss_kb = map(int, res.stdout.split())
    assert status == 1, res.stderr[-2000:]
    assert f"skipped {cases['bomb.png'].path}: too_large" in res.stderr
    assert os.listdir(tmp_path / "out") == ["one_pixel.png"]
    assert max_rss_kb < 1.5 * 1024 * 1024, max_rss_kb


@pytest.mark.slow
def test_evaluate_over_the_matrix_keeps_an_earlier_report(world, tmp_path):
    base, cases = world
    out = tmp_path / "eval"
    res = _program("evaluate", f"--model_dir={base / 'run'}", f"--data={base / 'cases'}",
                   f"--output_dir={out}", "--prior_source=none", "--bootstrap_resamples=50")
    assert res.returncode == 1, res.stderr[-3000:]
    valid = hostile_inputs.valid_cases(cases)
    report = json.load(open(out / "metrics.json"))
    assert report["metrics"]["model"]["images"] == len(valid)
    assert sorted(report["settings"]["skipped"]) == sorted(
            c.path for c in hostile_inputs.invalid_cases(cases).values())
    for case in hostile_inputs.invalid_cases(cases).values():
        assert f"skipped {case.path}: {case.expected}" in res.stderr, case.note
    assert sorted(os.listdir(out)) == ["cumulative_error.png", "metrics.json"]  # no temp left
    before = (out / "metrics.json").read_bytes()
    again = _program("evaluate", f"--model_dir={base / 'run'}", f"--data={base / 'cases'}",
                     f"--output_dir={out}", "--prior_source=none")
    assert again.returncode == 2 and "not replacing an earlier evaluation" in again.stderr
    assert [ln for ln in again.stderr.splitlines() if "error:" in ln] == [
            ln for ln in again.stderr.splitlines() if "not replacing" in ln]  # one line
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_evaluate_camera_size_photos(world, tmp_path):
    base, _ = world
    folder = tmp_path / "cases"
    folder.mkdir()
    cases = hostile_inputs.write_image_cases(folder, camera=True)
    res = _program("evaluate", f"--saved_model={base / 'sm'}", f"--data={folder}",
                   f"--output_dir={tmp_path / 'eval'}", "--prior_source=none",
                   "--bootstrap_resamples=50", timeout=1200)
    assert res.returncode == 1, res.stderr[-3000:]
    report = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert report["metrics"]["model"]["images"] == len(hostile_inputs.valid_cases(cases))


def _damaged_models(base, tmp_path):
    """name -> (flag, path) of models that cannot be loaded."""
    empty = tmp_path / "empty"
    empty.mkdir()
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    shutil.copy(base / "run" / "config.json", config_only)
    bad_config = tmp_path / "bad_config"
    shutil.copytree(base / "run", bad_config)
    (bad_config / "config.json").write_text("{not json")
    bad_ckpt = tmp_path / "bad_ckpt"
    shutil.copytree(base / "run", bad_ckpt)
    for name in os.listdir(bad_ckpt):
        if ".data-" in name:
            data = (bad_ckpt / name).read_bytes()
            (bad_ckpt / name).write_bytes(data[:100])
    truncated = tmp_path / "sm_truncated_pb"
    shutil.copytree(base / "sm", truncated)
    pb = (truncated / "saved_model.pb").read_bytes()
    (truncated / "saved_model.pb").write_bytes(pb[:len(pb) // 3])
    no_shard = tmp_path / "sm_no_shard"
    shutil.copytree(base / "sm", no_shard)
    for name in os.listdir(no_shard / "variables"):
        if ".data-" in name:
            os.remove(no_shard / "variables" / name)
    return {
            "model_dir without anything": ("model_dir", empty, "config.json is missing"),
            "model_dir without a checkpoint": ("model_dir", config_only, "no checkpoint"),
            "model_dir with a garbage config.json": ("model_dir", bad_config, "cannot load"),
            "model_dir with a truncated checkpoint": ("model_dir", bad_ckpt, "cannot load"),
            "SavedModel folder that is empty": ("saved_model", empty, "cannot load"),
            "truncated saved_model.pb": ("saved_model", truncated, "cannot load"),
            "missing variables shard": ("saved_model", no_shard, "cannot load"),
    }


DEFAULT_DAMAGE = ("model_dir without anything", "truncated saved_model.pb",
                  "missing variables shard")


@pytest.mark.parametrize("which", [
        "default", pytest.param("rest, and the export program", marks=pytest.mark.slow)])
@pytest.mark.slow
def test_damaged_models_end_in_one_line(world, tmp_path, which):
    """~12 s per program launch: three in the default run, the other eight in the slow one."""
    base, cases = world
    good = cases["seven_by_five.jpg"].path
    for note, (flag, path, message) in _damaged_models(base, tmp_path).items():
        if (note in DEFAULT_DAMAGE) != (which == "default"):
            continue
        out = tmp_path / ("out_" + path.name)
        res = _program("colorize", f"--{flag}={path}", good, f"--output_dir={out}")
        assert res.returncode == 2, (note, res.stderr[-2000:])
        lines = [ln for ln in res.stderr.strip().splitlines() if "error:" in ln]
        assert len(lines) == 1 and message in lines[0], (note, res.stderr[-2000:])
        assert "Traceback" not in res.stderr, note
        assert not out.exists() or not os.listdir(out), note
        if flag == "model_dir" and which != "default":  # export says the same, writes nothing
            res = _program("export", f"--model_dir={path}", f"--export_dir={tmp_path / 'x'}")
            assert res.returncode == 2 and message in res.stderr, (note, res.stderr[-2000:])
            assert "Traceback" not in res.stderr and not (tmp_path / "x").exists(), note


# ------------------------------------------------------------------------- signatures

_SIGNATURE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from PIL import Image

export_dir, cases_json, out_json = sys.argv[1:]
cases = json.loads(open(cases_json).read())
loaded = tf.saved_model.load(export_dir)
FLOAT_SIGNATURES = ["colorize_float", "histograms", "features", "hypercolumn"]

def outcome(fn, value):
    try:
        out = fn(images=tf.constant(value))
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines()
                 if "assertion failed" in ln or "expected to be" in ln or "Invalid" in ln]
        return {"error": type(e).__name__, "message": lines[0] if lines else str(e)[:300]}
    return {k: {"shape": list(v.shape), "finite": bool(np.isfinite(
            v.numpy().astype(np.float64)).all()), "min": float(np.min(v.numpy())) if
            v.numpy().size else None, "max": float(np.max(v.numpy())) if v.numpy().size else None}
            for k, v in out.items()}

results = {}
photo = np.asarray(Image.open(cases["highlights_683x512.jpg"]).convert("RGB"))
for name in ["serving_default", "colorize"]:
    results[name + "/photo"] = outcome(loaded.signatures[name], photo[None])
for name in FLOAT_SIGNATURES:
    results[name + "/photo"] = outcome(loaded.signatures[name],
                                       photo[None].astype(np.float32) / 255.0)
    bad = {
        "nan": np.full((1, 8, 8, 3), np.nan, np.float32),
        "one_nan": np.where(np.arange(192).reshape(1, 8, 8, 3) == 7, np.nan, 0.5
                            ).astype(np.float32),
        "inf": np.full((1, 8, 8, 1), np.inf, np.float32),
        "minus_inf": np.full((1, 8, 8, 1), -np.inf, np.float32),
        "negative": np.full((1, 8, 8, 3), -0.01, np.float32),
        "above_one": np.full((1, 8, 8, 3), 1.01, np.float32),
        "float64": np.full((1, 8, 8, 3), 0.5, np.float64),
        "int32": np.full((1, 8, 8, 3), 1, np.int32),
        "rank0": np.float32(0.5),
        "rank3": np.full((8, 8, 3), 0.5, np.float32),
        "rank5": np.full((1, 1, 8, 8, 3), 0.5, np.float32),
        "zero_batch": np.zeros((0, 8, 8, 3), np.float32),
        "zero_height": np.zeros((1, 0, 8, 3), np.float32),
        "zero_width": np.zeros((1, 8, 0, 1), np.float32),
        "four_channels": np.zeros((1, 8, 8, 4), np.float32),
    }
    for case, value in bad.items():
        results[f"{name}/{case}"] = outcome(loaded.signatures[name], value)
for case, value in {"float32": np.full((1, 8, 8, 3), 0.5, np.float32),
                    "zero_height": np.zeros((1, 0, 8, 3), np.uint8),
                    "rank3": np.zeros((8, 8, 3), np.uint8)}.items():
    results[f"serving_default/{case}"] = outcome(loaded.signatures["serving_default"], value)
for case, path in cases.items():
    data = open(path, "rb").read() if path else b""
    results[f"colorize_bytes/{case}"] = outcome(loaded.signatures["colorize_bytes"], [data])
results["colorize_bytes/empty_batch"] = outcome(loaded.signatures["colorize_bytes"],
                                                np.zeros([0], object).astype(bytes))
open(out_json, "w").write(json.dumps(results))
"""

RANGE = "float images must be in [0, 1] (no NaN or Inf)"
BAD_FLOATS = {
        "nan": RANGE, "one_nan": RANGE, "inf": RANGE, "minus_inf": RANGE, "negative": RANGE,
        "above_one": RANGE,
        "float64": "expected to be a float tensor but is a double tensor",
        "int32": "expected to be a float tensor but is a int32 tensor",
        "rank0": "images must be a rank-4 batch", "rank3": "images must be a rank-4 batch",
        "rank5": "images must be a rank-4 batch",
        "zero_batch": "images must not be empty", "zero_height": "images must not be empty",
        "zero_width": "images must not be empty",
        "four_channels": "images must have 1 (grey) or 3 (RGB) channels",
}


@pytest.mark.slow
def test_signatures_in_a_fresh_process(world, tmp_path):
    base, cases = world
    files = {name: case.path for name, case in cases.items() if os.path.isfile(case.path)}
    (tmp_path / "cases.json").write_text(json.dumps(files))
    subprocess.run([sys.executable, "-c", _SIGNATURE_SCRIPT, str(base / "sm"),
                    str(tmp_path / "cases.json"), str(tmp_path / "out.json")],
                   check=True, env=ENV, timeout=600, capture_output=True)
    results = json.load(open(tmp_path / "out.json"))
    # The 683 x 512 photo with blown-out highlights passes every signature, with in-range,
    # finite outputs.
    for name in ["serving_default", "colorize", "colorize_float"]:
        rgb = results[name + "/photo"]["rgb"]
        assert rgb["shape"] == [1, 512, 683, 3] and rgb["finite"], name
        assert 0 <= rgb["min"] and rgb["max"] <= (255 if name != "colorize_float" else 1.0)
    for name in ["histograms", "features", "hypercolumn"]:
        assert "error" not in results[name + "/photo"], results[name + "/photo"]
        assert all(v["finite"] for v in results[name + "/photo"].values()), name
    for name in ["colorize_float", "histograms", "features", "hypercolumn"]:
        for case, message in BAD_FLOATS.items():
            got = results[f"{name}/{case}"]
            assert got.get("error") == "InvalidArgumentError", (name, case, got)
            assert message in got["message"], (name, case, got)
    assert "expected to be a uint8 tensor" in results["serving_default/float32"]["message"]
    assert "must not be empty" in results["serving_default/zero_height"]["message"]
    assert "rank-4 batch" in results["serving_default/rank3"]["message"]
    # colorize_bytes: every valid file of the matrix decodes to its upright size; every
    # invalid one fails naming its reason (corrupt data fails in the decoder op).
    for name, case in cases.items():
        if name not in files:
            continue
        got = results[f"colorize_bytes/{name}"]
        if case.valid:
            assert got["rgb"]["shape"] == [1] + list(case.size) + [3], (name, got)
        elif case.expected == "corrupt":
            assert got["error"] == "InvalidArgumentError", (name, got)
        else:
            assert "an image cannot be decoded" in got["message"], (name, got)
            assert case.expected in got["message"], (name, got)
    assert "empty batch" in results["colorize_bytes/empty_batch"]["message"]


def _saved_model_cli():
    exe = shutil.which("saved_model_cli")
    return [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.slow
def test_saved_model_cli_run_refuses_nan_and_accepts_the_white_photo(world, tmp_path):
    base, cases = world
    photo = np.asarray(Image.open(cases["highlights_683x512.jpg"].path).convert("RGB"))
    np.save(tmp_path / "photo.npy", photo[None].astype(np.float32) / 255.0)
    np.save(tmp_path / "nan.npy", np.full((1, 8, 8, 3), np.nan, np.float32))

    def cli(npy):
        return subprocess.run(
                _saved_model_cli() + ["run", "--dir", str(base / "sm"), "--tag_set", "serve",
                                      "--signature_def", "colorize_float", "--inputs",
                                      f"images={npy}", "--outdir", str(tmp_path / "cli"),
                                      "--overwrite"],
                capture_output=True, text=True, env=ENV, timeout=600)

    bad = cli(tmp_path / "nan.npy")
    assert bad.returncode != 0 and RANGE in bad.stderr, bad.stderr[-2000:]
    good = cli(tmp_path / "photo.npy")
    assert good.returncode == 0, good.stderr[-2000:]
    rgb = np.load(tmp_path / "cli" / "rgb.npy")
    assert rgb.shape == (1, 512, 683, 3) and np.isfinite(rgb).all()
    # The output keeps the input's lightness.
    np.testing.assert_allclose(rgb[0].mean(-1), photo.astype(np.float32).mean(-1) / 255.0,
                               atol=1e-4)
