"""tools/build_video_corpus.py: the clip split, licences, one-line errors; the real build (slow)."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

_TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "build_video_corpus.py"


def _tool():
    spec = importlib.util.spec_from_file_location("build_video_corpus", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clips_are_split_whole_with_the_largest_in_train():
    tool = _tool()
    sizes = {"a": 10, "b": 800, "c": 30, "d": 40, "e": 5}
    splits = tool.split_clips(sizes, seed=0)
    assert set(splits) == set(sizes) and splits["b"] == "train"
    assert sorted(splits.values()).count("holdout") == 1
    assert sorted(splits.values()).count("val") == 1
    assert tool.split_clips(sizes, seed=0) == splits          # stable
    assert any(tool.split_clips(sizes, seed=s) != splits for s in range(1, 6))  # seeded
    assert set(tool.split_clips({"a": 1, "b": 2}, seed=0).values()) == {"train"}


def test_licence_is_the_last_matching_stanza_of_the_copyright_file():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2005, Someone\nLicense: GPL-2\n\n"
            "Files: data/faces/*.xml\n other/*\nLicense: Intel\n text\n")
    tool = _tool()
    assert tool.licence_for(text, "usr/share/x/data/video/cube.mpeg") == "GPL-2"
    assert tool.licence_for(text, "usr/share/x/data/faces/a.xml") == "Intel"
    assert tool.licence_for(text, "usr/share/x/other/sub/b.avi") == "Intel"
    # A copyright file that is not machine-readable: what it states (tfcolor.corpus.packages).
    assert tool.licence_for("Licensed under the GPL-2.\n", "a/b") == "not DEP-5; states: GPL-2"


def _fake_command(folder, name, stderr, status):
    """An executable ``folder/name`` that prints ``stderr`` to stderr and exits ``status``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{stderr}' >&2\nexit {status}\n")
    path.chmod(0o755)


def test_failed_download_and_unreadable_deb_are_one_line_errors(tmp_path, monkeypatch, capsys):
    pytest.importorskip("cv2")   # the tool checks for OpenCV before it downloads
    tool = _tool()
    fake = tmp_path / "bin"
    _fake_command(fake, "apt-get", "W: first line\nE: Unable to locate package opencv-doc", 100)
    _fake_command(fake, "dpkg-deb", "dpkg-deb: error: not a Debian format archive", 2)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        tool.build(tool.parse_args(["--out", str(out), "--clips", "tree"]), log=lambda _: None)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "build_video_corpus: apt-get download opencv-doc failed: E: Unable to locate package "
        "opencv-doc (no network, or no package lists: run `apt-get update` once first)\n")
    # A cached .deb that dpkg-deb cannot read.
    deb = out / "packages" / "debs" / "opencv-doc_1.0_all.deb"
    deb.write_bytes(b"not a deb")
    with pytest.raises(SystemExit) as exit_info:
        tool.build(tool.parse_args(["--out", str(out), "--clips", "tree"]), log=lambda _: None)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"build_video_corpus: cannot read {deb}: ") and err.count("\n") == 1


def test_missing_tool_and_inside_a_git_tree_are_one_line_errors(tmp_path, monkeypatch, capsys):
    tool = _tool()
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)  # no apt-get, no dpkg-deb
    with pytest.raises(SystemExit) as exit_info:
        tool.build(tool.parse_args(["--out", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
            "build_video_corpus: needs apt-get (a Debian or Ubuntu machine)\n")
    with pytest.raises(SystemExit):
        tool.build(tool.parse_args(["--out", str(_TOOL.parents[1] / "x")]))
    assert "inside a git work tree" in capsys.readouterr().err


@pytest.mark.slow
def test_real_build_is_resumable_and_splits_by_clip(tmp_path):
    out = tmp_path / "video"
    cmd = [sys.executable, str(_TOOL), "--out", str(out), "--clips", "tree,visp-cube,visp-line"]
    # visp-line is no clip of the corpus: only the two others are built
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    clips = {c["clip"]: c for c in manifest["clips"]}
    assert set(clips) == {"tree", "visp-cube"}
    for clip in clips.values():
        assert os.path.exists(out / clip["record"])
        assert clip["split"] in ("train", "val", "holdout") and len(clip["sha256"]) == 64
        assert clip["licence"] in ("BSD-3-Clause", "GPL-2") and clip["examples"] > 5
    edges = json.loads((out / "flow_bins.json").read_text())["edges"]
    assert len(edges) == 31 and np.all(np.diff(edges) > 0)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stdout
