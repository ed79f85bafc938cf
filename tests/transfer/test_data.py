"""Tests for tfcolor.transfer.data: loaders, splits and pipelines."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor.transfer import data


def _classes(n_per=10, classes=3):
    y = np.repeat(np.arange(classes), n_per)
    x = np.random.default_rng(0).integers(0, 255, (len(y), 8, 8, 1), dtype=np.uint8)
    return data.from_arrays(x, y)


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


def test_train_dataset_classification_batches():
    ds = data.train_dataset(_classes(), batch_size=4, crop_size=6, seed=0)
    batch = next(iter(ds))
    assert batch["gray"].shape == (4, 6, 6, 1)
    assert batch["centers"].shape == (4, 1, 2)
    assert batch["targets"].shape == (4, 1, 3)
    np.testing.assert_allclose(batch["targets"].numpy().sum(-1), 1.0)


def test_segmentation_centres_avoid_the_ignore_label():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8)
    masks = np.full((4, 12, 12), 255, np.uint8)
    masks[:, 2:6, 3:9] = 1
    masks[:, 7:9, 1:4] = 2
    d = data.LabeledData(x, masks, "segmentation", 3)
    batch = next(iter(data.train_dataset(d, batch_size=4, num_points=20, mirror=False)))
    centers = batch["centers"].numpy()
    labels = masks[0][centers[..., 0], centers[..., 1]]
    assert (labels != 255).all()
    np.testing.assert_array_equal(batch["targets"].numpy().argmax(-1), labels)
    assert batch["gray"].shape == (4, 12, 12, 1)


def test_sample_valid_centers_repeats_when_few_valid():
    mask = np.full((5, 5), 255, np.uint8)
    mask[2, 3] = 0
    centers, valid = data.sample_valid_centers(mask, 4, tf.constant([1, 2]))
    np.testing.assert_array_equal(centers.numpy(), [[2, 3]] * 4)
    assert valid.numpy().all()


def test_load_folder_and_npz(tmp_path):
    for name in ("cats", "dogs"):
        os.makedirs(tmp_path / "tree" / name)
        for i in range(2):
            Image.fromarray(np.full((6, 7, 3), 40 * i, np.uint8)).save(
                tmp_path / "tree" / name / f"{i}.png")
    d = data.load(str(tmp_path / "tree"))
    assert d.class_names == ["cats", "dogs"] and d.labels.tolist() == [0, 0, 1, 1]
    batch = next(iter(data.eval_dataset(d, batch_size=4, crop_size=6)))
    assert batch["gray"].shape == (4, 6, 6, 1)
    np.savez(tmp_path / "s.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=[0, 1, 1],
             x_test=np.zeros((2, 4, 4), np.uint8), y_test=[1, 0])
    test = data.load(str(tmp_path / "s.npz") + ":test")
    assert len(test) == 2 and test.num_classes == 2


def test_clear_errors():
    with pytest.raises(ImportError, match="tensorflow-datasets"):
        data.load("tfds:voc/2007")
    with pytest.raises(ValueError, match="cannot read labelled data"):
        data.load("/nonexistent/thing")
    with pytest.raises(ValueError, match="labels must be in"):
        data.LabeledData(np.zeros((2, 4, 4, 1), np.uint8), [0, 5], num_classes=2)


def test_ten_crops():
    images = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    crops = data.ten_crops(images, 2).numpy()
    assert crops.shape == (10, 1, 2, 2, 1)
    np.testing.assert_array_equal(crops[0, 0, :, :, 0], [[0, 1], [4, 5]])
    np.testing.assert_array_equal(crops[5, 0, :, :, 0], [[1, 0], [5, 4]])
    np.testing.assert_array_equal(crops[4, 0, :, :, 0], [[5, 6], [9, 10]])


def test_scale_range_needs_a_crop():
    with pytest.raises(ValueError, match="scale_range needs crop_size"):
        data.train_dataset(_classes(), scale_range=(8, 12))
    batch = next(iter(data.train_dataset(_classes(), batch_size=2, scale_range=(8, 12),
                                         crop_size=7)))
    assert batch["gray"].shape == (2, 7, 7, 1)
