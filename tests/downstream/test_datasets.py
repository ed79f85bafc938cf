"""Tests for tfcolor.downstream.datasets: labelled sets, loaders and the 90/10 split."""
import os

import numpy as np
import pytest
from PIL import Image

from tfcolor.downstream import datasets, pipelines


def _classes(n_per=10, classes=3):
    y = np.repeat(np.arange(classes), n_per)
    x = np.random.default_rng(0).integers(0, 255, (len(y), 8, 8, 1), dtype=np.uint8)
    return datasets.from_arrays(x, y)


def test_split_is_stratified_and_disjoint():
    d = _classes()
    train, val = d.split(0.1, seed=3)
    assert len(train) == 27 and len(val) == 3
    assert sorted(val.labels.tolist()) == [0, 1, 2]


def test_split_by_groups_keeps_groups_together():
    d = _classes()
    d.groups = np.repeat(np.arange(10), 3)
    train, val = d.split(0.3, seed=0)
    assert not set(train.groups) & set(val.groups)


def test_per_class_draws_n_per_class():
    sub = _classes().per_class(4, seed=1)
    assert np.bincount(sub.labels).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="fewer than"):
        _classes().per_class(11)


def test_load_folder_and_npz(tmp_path):
    for name in ("cats", "dogs"):
        os.makedirs(tmp_path / "tree" / name)
        for i in range(2):
            Image.fromarray(np.full((6, 7, 3), 40 * i, np.uint8)).save(
                tmp_path / "tree" / name / f"{i}.png")
    d = datasets.load(str(tmp_path / "tree"))
    assert d.class_names == ["cats", "dogs"] and d.labels.tolist() == [0, 0, 1, 1]
    batch = next(iter(pipelines.eval_dataset(d, batch_size=4, crop_size=6)))
    assert batch["image"].shape == (4, 6, 6, 1)
    np.savez(tmp_path / "s.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=[0, 1, 1],
             x_test=np.zeros((2, 4, 4), np.uint8), y_test=[1, 0])
    test = datasets.load(str(tmp_path / "s.npz") + ":test")
    assert len(test) == 2 and test.num_classes == 2


def test_load_expands_the_home_folder(tmp_path, monkeypatch):
    """Flag files name the corpus as ~/.cache/tfcolor-corpus/...: '~' is the user's home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    os.makedirs(tmp_path / "tree" / "cats")
    Image.fromarray(np.zeros((6, 7, 3), np.uint8)).save(tmp_path / "tree" / "cats" / "0.png")
    np.savez(tmp_path / "s.npz", x_test=np.zeros((2, 4, 4), np.uint8), y_test=[1, 0])
    assert len(datasets.load("~/s.npz:test")) == 2
    assert datasets.load("~/tree").class_names == ["cats"]
    with pytest.raises(ValueError, match="no such file"):
        datasets.load("~/missing")


def test_clear_errors():
    with pytest.raises(ImportError, match="tensorflow-datasets"):
        datasets.load("tfds:voc/2007")
    with pytest.raises(ValueError, match="cannot read labelled data"):
        datasets.load("/nonexistent/thing")
    with pytest.raises(ValueError, match="labels must be in"):
        datasets.LabeledData(np.zeros((2, 4, 4, 1), np.uint8), [0, 5], num_classes=2)


# ----------------------------------------------------------------------------------------------
# Hostile data specs.

def _hostile():
    import sys  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import hostile_inputs  # pylint: disable=import-outside-toplevel
    return hostile_inputs


def test_class_folder_of_the_hostile_matrix(tmp_path, caplog):
    """Header-bad files are left out at load (logged); data-bad ones (truncated, bomb) are
    skipped by the pipeline and reported; every valid image gives one example with its label."""
    from tfcolor.data import decode
    hostile = _hostile()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cases = hostile.write_image_cases(tmp_path / "a", camera=False)
    for i in range(2):
        Image.fromarray(hostile.smooth_rgb(20, 30, seed=i)).save(tmp_path / "b" / f"{i}.png")
    d = datasets.load(str(tmp_path))
    assert d.class_names == ["a", "b"]
    names = {os.path.basename(p) for p in d.images}
    header_bad = {"zero_bytes.jpg", "text.jpg", "page.png", "dangling.jpg"}
    assert names == {n for n, c in cases.items() if c.listed} - header_bad | {"0.png", "1.png"}
    assert "left out 4 file(s)" in caplog.text
    counter = decode.default_skip_counter()
    counter.reset()
    labels = [int(b["label"][0]) for b in pipelines.eval_dataset(d, batch_size=1, resize=16,
                                                              crop_size=16)]
    valid = sum(c.valid for c in cases.values())
    assert labels == [0] * valid + [1, 1]
    data_bad = {n: c.expected for n, c in cases.items()
                if c.listed and not c.valid and n not in header_bad}
    assert {"truncated.jpg", "truncated.png", "bomb.png"} <= set(data_bad)
    assert {os.path.basename(n): r for n, r in counter.skipped} == data_bad


def test_folder_spec_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder"):
        datasets.load(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders"):
        datasets.load(str(tmp_path / "empty"))
    (tmp_path / "tree" / "cats").mkdir(parents=True)
    (tmp_path / "tree" / "dogs").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tree" / "cats" / "0.png")
    (tmp_path / "tree" / "dogs" / "0.jpg").write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match=r"class folder '.*dogs' holds no usable image"):
        datasets.load(str(tmp_path / "tree"))
    with pytest.raises(FileNotFoundError, match="ImageSets/Segmentation/train.txt"):
        datasets.load(f"voc:{tmp_path}")
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    with pytest.raises(ValueError, match=r"1 image/mask file\(s\) listed .* missing.*2007_000032"):
        (tmp_path / "JPEGImages").mkdir()
        (tmp_path / "JPEGImages" / "2007_000032.jpg").write_bytes(b"\xff\xd8\xff")
        datasets.load(f"voc:{tmp_path}")


_X = np.zeros((3, 4, 4), np.uint8)
_NPZ_CASES = {
    "no image key": (dict(pictures=_X, y=[0, 1, 0]), "", "none of the image keys"),
    "no label key": (dict(x=_X, classes=["a", "b"]), "", "has the images 'x' but no labels 'y'"),
    "no split": (dict(x_train=_X, y_train=[0, 1, 0]), ":test", "no split 'test': no key 'x_test'"),
    "count mismatch": (dict(x=_X, y=[0, 1]), "", "'x' has 3 images but 'y' has 2 labels"),
    "image rank": (dict(x=np.zeros((3, 4), np.uint8), y=[0, 1, 0]), "", "key 'x': images must"),
    "image dtype": (dict(x=_X.astype(np.int32), y=[0, 1, 0]), "", "key 'x': images must be uint8"),
    "NaN image": (dict(x=np.full((3, 4, 4), np.nan, np.float32), y=[0, 1, 0]), "",
                  "key 'x': float images must be finite"),
    "NaN label": (dict(x=_X, y=[0.0, np.nan, 1.0]), "", "key 'y': classification labels must be "
                                                         "integers, got NaN"),
    "fractional label": (dict(x=_X, y=[0.0, 0.5, 1.0]), "", "key 'y'.*fractional"),
    "label out of range": (dict(x=_X, y=[0, 1, -1]), "", r"key 'y'.*labels must be in \[0, 2\)"),
    "label strings": (dict(x=_X, y=np.array(["a", "b", "a"])), "", "key 'y'.*dtype <U1"),
    "label rank": (dict(x=_X, y=np.zeros((3, 2, 2))), "", "key 'y'"),
}


@pytest.mark.parametrize("name", sorted(_NPZ_CASES))
def test_npz_errors_name_the_key(tmp_path, name):
    arrays, split, message = _NPZ_CASES[name]
    path = tmp_path / "set.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        datasets.load(str(path) + split)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_npz_that_is_not_an_archive_or_holds_objects(tmp_path):
    (tmp_path / "fake.npz").write_text("<html>not a zip</html>")
    with pytest.raises(ValueError, match=r"cannot read '.*fake.npz' as an .npz archive"):
        datasets.load(str(tmp_path / "fake.npz"))
    np.savez(tmp_path / "objects.npz", x=np.array([np.zeros(2), None], dtype=object), y=[0, 1])
    with pytest.raises(ValueError, match="key 'x' cannot be read"):
        datasets.load(str(tmp_path / "objects.npz"))
