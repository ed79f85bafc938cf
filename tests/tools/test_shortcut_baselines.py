"""tools/shortcut_baselines.py end to end on tiny generated sets."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "tools"))

import shortcut_baselines as tool  # noqa: E402


def _debphoto(path, rng):
    """Two classes; class 1 is a grey-background cut-out in package p1, class 0 a noisy photo
    mostly from p0: the style and the source predict the class."""
    n = 60
    y = np.arange(n) % 2
    x = rng.integers(0, 256, size=(n, 24, 24, 3)).astype(np.uint8)
    x[y == 1, :, :6] = 128
    package = np.where(y == 1, "p1", np.where(np.arange(n) % 4 == 0, "p1", "p0"))
    split = np.array(["train", "val", "test"])[(np.arange(n) // 2) % 3]
    arrays = dict(x=x, y=y, classes=np.array(["photo", "cutout"]), split=split,
                  package=package, group=np.array([f"g{i}" for i in range(n)]))
    for s in ("train", "val", "test"):
        arrays[f"x_{s}"], arrays[f"y_{s}"] = x[split == s], y[split == s]
    np.savez(path, **arrays)


def test_baselines_on_generated_sets(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    _debphoto(tmp_path / "debphoto15.npz", rng)
    x = rng.integers(0, 256, size=(2000, 28, 28)).astype(np.uint8)
    y = np.arange(2000) % 10
    np.savez(tmp_path / "fashion_mnist.npz", x_train=x, y_train=y.astype(np.uint8),
             x_test=x[:300], y_test=y[:300].astype(np.uint8))
    monkeypatch.setattr(tool, "PER_CLASS", 20)
    out = tmp_path / "r.json"
    tool.main(["--labeled", str(tmp_path), "--output", str(out),
               "--sets", "debphoto15,fashion_mnist_100"])
    r = json.loads(out.read_text())["sets"]
    deb = r["debphoto15"]
    assert deb["sizes"] == {"train": 20, "val": 20, "test": 20} and deb["chance"] == 0.5
    # the grey band gives class 1 away: the style features find it
    assert deb["style_logistic"]["accuracy"] == 1.0
    # p1 holds every cut-out and a quarter of the photos: its commonest class is 1, p0's is 0
    test = np.load(tmp_path / "debphoto15.npz")
    want = (np.where(test["package"][test["split"] == "test"] == "p1", 1, 0)
            == test["y_test"]).mean()
    assert deb["source_majority"]["accuracy"] == pytest.approx(want)
    low, high = deb["source_majority"]["ci95"]
    assert low <= want <= high
    fm = r["fashion_mnist_100"]
    assert fm["sizes"] == {"train": 200, "val": 200, "test": 300} and "source_majority" not in fm
    with pytest.raises(tool.Failure, match="unknown sets"):
        tool.main(["--labeled", str(tmp_path), "--sets", "nope"])
    with pytest.raises(tool.Failure, match="build it with binaries/build_corpus"):
        tool.main(["--labeled", str(tmp_path / "missing"), "--output", str(out),
                   "--sets", "debphoto15"])
