"""tfcolor.corpus.fmnist_digits20 on small synthetic stand-ins of Fashion-MNIST and the OpenCV
digits: shapes, padding, balance, no image in two splits, determinism, the CIFAR protocol's
parts and Table 4.5's task subsets; written by the builder's existing-sets step."""
import gzip
import os

import numpy as np
import pytest
from PIL import Image

from tfcolor.corpus import fmnist_digits20 as fd
from tfcolor.corpus.labelled import write_existing_sets
from tfcolor.corpus.sources import DIGITS_FILE, FMNIST_DIR


def _fashion(train=12, test=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (10 * train, 28, 28), dtype=np.uint8),
            "y_train": np.repeat(np.arange(10, dtype=np.uint8), train),
            "x_test": rng.integers(0, 256, (10 * test, 28, 28), dtype=np.uint8),
            "y_test": np.repeat(np.arange(10, dtype=np.uint8), test)}


def _digits(per_class=20, seed=1):
    rng = np.random.default_rng(seed)
    return {"x": rng.integers(0, 256, (10 * per_class, 20, 20), dtype=np.uint8),
            "y": np.repeat(np.arange(10), per_class)}


def test_shapes_padding_and_balance():
    fashion, digits = _fashion(), _digits()
    data = fd.build(fashion, digits, train_per_class=10, test_per_class=5)
    assert data["x_train"].shape == (200, 32, 32, 3) and data["x_test"].shape == (100, 32, 32, 3)
    assert data["x_train"].dtype == np.uint8 and list(data["classes"]) == list(fd.CLASSES)
    assert (np.bincount(data["y_train"], minlength=20) == 10).all()
    assert (np.bincount(data["y_test"], minlength=20) == 5).all()
    for x, y, src in zip(data["x_train"], data["y_train"], data["source_train"]):
        assert (x[..., 0] == x[..., 1]).all() and (x[..., 0] == x[..., 2]).all()
        kind, index = src.split(":")
        if y < 10:
            assert kind == "fmnist_train" and fashion["y_train"][int(index)] == y
            np.testing.assert_array_equal(x[2:30, 2:30, 0], fashion["x_train"][int(index)])
        else:
            assert kind == "digits" and digits["y"][int(index)] == y - 10
            np.testing.assert_array_equal(x[6:26, 6:26, 0], digits["x"][int(index)])
        border = x[..., 0].copy()
        border[6:26, 6:26] = 0
        if y < 10:
            border[2:30, 2:30] = 0
        assert not border.any()


def test_no_image_in_two_splits_and_deterministic():
    data = fd.build(_fashion(), _digits(), train_per_class=12, test_per_class=8)
    assert not set(data["source_train"]) & set(data["source_test"])
    assert len(set(data["source_train"])) == 240 and len(set(data["source_test"])) == 160
    train = {x.tobytes() for x in data["x_train"]}
    assert not any(x.tobytes() in train for x in data["x_test"])
    again = fd.build(_fashion(), _digits(), train_per_class=12, test_per_class=8)
    for key in ("x_train", "y_train", "x_test", "source_test"):
        np.testing.assert_array_equal(again[key], data[key])
    other = fd.build(_fashion(), _digits(), train_per_class=12, test_per_class=8, seed=1)
    assert not np.array_equal(other["source_train"], data["source_train"])


def test_a_test_image_equal_to_a_train_image_is_skipped():
    fashion = _fashion(train=5, test=8)
    # Class 0's test images: copies of its 5 train images, then 3 new ones.
    fashion["x_test"][:5] = fashion["x_train"][:5]
    data = fd.build(fashion, _digits(), train_per_class=5, test_per_class=3)
    chosen = sorted(int(s.split(":")[1]) for s, y in zip(data["source_test"], data["y_test"])
                    if y == 0)
    assert chosen == [5, 6, 7]
    with pytest.raises(ValueError, match="only 3 distinct"):
        fd.build(fashion, _digits(), train_per_class=5, test_per_class=4)
    with pytest.raises(ValueError, match="digit 0 has 20 images"):
        fd.build(_fashion(train=30, test=30), _digits(), train_per_class=15, test_per_class=6)


def test_protocol_parts_and_task_subsets():
    data = fd.build(_fashion(), _digits(), train_per_class=10, test_per_class=5)
    _, y_all = fd.protocol_split(data, "all")
    _, y_pre = fd.protocol_split(data, "pretrain")
    _, y_probe = fd.protocol_split(data, "probe")
    assert len(y_pre) == 160 and len(y_probe) == 40 and len(y_all) == 200
    assert (np.bincount(y_pre) == 8).all() and (np.bincount(y_probe) == 2).all()
    np.testing.assert_array_equal(np.concatenate([y_pre, y_probe]), y_all)
    assert len(fd.protocol_split(data, "test")[1]) == 100
    with pytest.raises(ValueError, match="part"):
        fd.protocol_split(data, "val")
    # 4 tasks, disjoint 25% of the classes: 5 classes each, all samples of those classes.
    tasks = fd.task_subsets(y_pre, 4, 0.25)
    classes = [set(y_pre[t]) for t in tasks]
    assert [len(c) for c in classes] == [5] * 4 and set().union(*classes) == set(range(20))
    assert sum(len(t) for t in tasks) == len(y_pre)
    # 4 tasks of 50% overlapping classes: 10 each, drawn independently.
    overlap = [set(y_pre[t]) for t in fd.task_subsets(y_pre, 4, 0.5, disjoint=False)]
    assert all(len(c) == 10 for c in overlap)
    assert len({frozenset(c) for c in overlap}) > 1
    # By sample: disjoint quarters.
    quarters = fd.task_subsets(y_pre, 4, 0.25, by="sample")
    assert sorted(np.concatenate(quarters)) == list(range(160))
    with pytest.raises(ValueError, match="do not fit"):
        fd.task_subsets(y_pre, 4, 0.5)


def test_the_builder_writes_it_and_load_reads_it(tmp_path):
    root, lab = tmp_path / "root", tmp_path / "labeled"
    fashion = _fashion(train=300, test=200)
    fm = root / "dataset-fashion-mnist" / FMNIST_DIR
    fm.mkdir(parents=True)
    for name, array, header in (
            ("train-images-idx3-ubyte.gz", fashion["x_train"], 16),
            ("train-labels-idx1-ubyte.gz", fashion["y_train"], 8),
            ("t10k-images-idx3-ubyte.gz", fashion["x_test"], 16),
            ("t10k-labels-idx1-ubyte.gz", fashion["y_test"], 8)):
        with gzip.open(fm / name, "wb") as f:
            f.write(bytes(header) + array.tobytes())
    grid = np.random.default_rng(3).integers(0, 256, (1000, 2000), dtype=np.uint8)
    png = root / "opencv-doc" / DIGITS_FILE
    png.parent.mkdir(parents=True)
    Image.fromarray(grid).save(png)
    written = write_existing_sets(str(root), str(tmp_path / "cache"), str(lab), [])
    assert written == ["fashion_mnist", "digits_opencv", fd.NAME]
    data = fd.load(str(lab))
    assert data["x_train"].shape == (6000, 32, 32, 3) and data["x_test"].shape == (4000, 32, 32, 3)
    assert (np.bincount(data["y_test"]) == 200).all()
    with pytest.raises(FileNotFoundError, match="build_corpus"):
        fd.load(str(tmp_path))
    assert os.path.exists(lab / "fmnist_digits20.npz")
