"""End-to-end tests of binaries/colorize (shell shim, subprocesses with timeouts)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model_dir  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
from binaries import colorize  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "colorize")


def _run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([SHIM] + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, cwd="/")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("colorize_bin")
    tiny_model_dir.make_model_dir(str(base / "run"))
    paths = tiny_model_dir.write_images(str(base / "in"), [(20, 30), (41, 17)], seed=1)
    (base / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return base, paths


def test_folder_with_a_corrupt_file(setup):
    base, paths = setup
    out = base / "out"
    res = _run(f"--model_dir={base / 'run'}", str(base / "in"), f"--output_dir={out}",
               "--uncertainty", "--samples=1", "--fading=released")
    assert res.returncode == 1, res.stderr[-2000:]  # something was skipped
    assert "corrupt.png" in res.stderr
    assert "[1/3]" in res.stdout or "[2/3]" in res.stdout  # progress lines
    assert sorted(os.listdir(out)) == sorted(
            f"img{i}{s}.png" for i in (0, 1) for s in ("", "_uncertainty", "_sample1"))
    for i, p in enumerate(paths):
        got = np.asarray(Image.open(out / f"img{i}.png"), np.float32)
        src = np.asarray(Image.open(p).convert("RGB"), np.float32)
        assert got.shape == src.shape
        # The output keeps the input lightness (up to 8-bit rounding).
        assert np.abs(got.mean(-1) - src.mean(-1)).max() <= 1.5


@pytest.mark.slow
def test_saved_model_gives_the_same_colours(setup, tmp_path):
    base, paths = setup
    from tfcolor import export
    export.export_from_checkpoint(str(base / "run"), str(tmp_path / "sm"), save_keras=False)
    a = _run(f"--model_dir={base / 'run'}", paths[0], f"--output_dir={tmp_path / 'a'}")
    b = _run(f"--saved_model={tmp_path / 'sm'}", paths[0], f"--output_dir={tmp_path / 'b'}")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr[-1500:], b.stderr[-1500:])
    x = np.asarray(Image.open(tmp_path / "a" / "img0.png"), np.int32)
    y = np.asarray(Image.open(tmp_path / "b" / "img0.png"), np.int32)
    assert np.abs(x - y).max() <= 1


def test_usage_errors_name_the_problem(setup):
    base, paths = setup
    res = _run(f"--model_dir={base / 'run'}")
    assert res.returncode == 2 and "no input" in res.stderr
    res = _run(f"--model_dir={base / 'run'}", f"--saved_model={base}", paths[0])
    assert res.returncode == 2 and "exactly one of --model_dir" in res.stderr
    res = _run(f"--model_dir={base / 'run'}", "--transfer=bias", paths[0])
    assert res.returncode == 2 and "--reference" in res.stderr
    res = _run(f"--model_dir={base / 'run'}", str(base / "nothing_here.png"))
    assert res.returncode == 2 and "neither a file" in res.stderr
    res = _run(f"--model_dir={base}", paths[0])
    assert res.returncode == 2 and "config.json" in res.stderr


def test_readout_flag_defaults_are_the_methods_best_choices():
    # Shared by colorize, evaluate and export: released fading (min), interpolated chroma
    # median, Lab by expectation (lab_method None -> expectation in tfcolor.readout.readout).
    from absl import flags  # pylint: disable=import-outside-toplevel
    program = colorize
    fv = flags.FlagValues()
    program.define_flags(fv)
    fv(["colorize"])
    options = program.colorize_options(fv)
    assert (options.fading, options.hue_method, options.chroma_method, options.lab_method) == (
            "released", "expectation", "median", None)
    fv2 = flags.FlagValues()
    program.define_flags(fv2)
    fv2(["colorize", "--fading=paper", "--mode=released", "--lab_method=median_bin_centre"])
    options = program.colorize_options(fv2)
    assert (options.fading, options.chroma_method, options.lab_method) == (
            "paper", "median_bin_centre", "median_bin_centre")


@pytest.mark.slow
def test_without_a_model_flag_the_shipped_colorizer_is_used(setup, tmp_path):
    """`binaries/colorize photo.jpg` right after install: the model shipped in the package
    (tfcolor.pretrained), the same PNG as --pretrained=NAME and as the Python API."""
    from tfcolor import predictors, pretrained
    from tfcolor.data import embedded
    photo = embedded.embedded_photos("validation")[0]
    a = _run(photo, f"--output_dir={tmp_path / 'a'}")
    b = _run(f"--pretrained={pretrained.DEFAULT}", photo, f"--output_dir={tmp_path / 'b'}")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr[-1500:], b.stderr[-1500:])
    assert "shipped with tfcolor" in a.stderr
    name = os.path.splitext(os.path.basename(photo))[0] + ".png"
    x = np.asarray(Image.open(tmp_path / "a" / name), np.int32)
    y = np.asarray(Image.open(tmp_path / "b" / name), np.int32)
    np.testing.assert_array_equal(x, y)
    assert x.shape[:2] == Image.open(photo).size[::-1] and x.std(-1).mean() > 0.5  # in colour
    predictor = predictors.load_predictor("pretrained")
    assert isinstance(predictor, predictors.KerasPredictor) and predictor.kind == "hue_chroma"
    res = _run("--pretrained=no_such_model", photo, f"--output_dir={tmp_path / 'c'}")
    assert res.returncode == 2 and "no shipped model 'no_such_model'; available" in res.stderr
