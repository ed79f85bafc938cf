"""Tests for tfcolor.downstream.pipelines: the fine-tuning and evaluation pipelines."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor.downstream import datasets, pipelines


def _classes(n_per=10, classes=3):
    y = np.repeat(np.arange(classes), n_per)
    x = np.random.default_rng(0).integers(0, 255, (len(y), 8, 8, 1), dtype=np.uint8)
    return datasets.from_arrays(x, y)


def test_train_dataset_classification_batches():
    ds = pipelines.train_dataset(_classes(), batch_size=4, crop_size=6, seed=0)
    batch = next(iter(ds))
    assert set(batch) == {"image", "label"}  # no dummy centres, no one-hot targets
    assert batch["image"].shape == (4, 6, 6, 1)
    assert batch["label"].shape == (4,)
    # Each image keeps its own label: uncropped, unmirrored images are found in the set.
    data = _classes()
    whole = next(iter(pipelines.train_dataset(data, batch_size=8, mirror=False, seed=1)))
    source = data.images[..., 0].astype(np.float32) / 255.0
    for image, label in zip(whole["image"].numpy()[..., 0], whole["label"].numpy()):
        match = np.where(np.abs(source - image).max(axis=(1, 2)) < 1e-6)[0]
        assert match.size == 1 and data.labels[match[0]] == label


def test_segmentation_centres_avoid_the_ignore_label():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8)
    masks = np.full((4, 12, 12), 255, np.uint8)
    masks[:, 2:6, 3:9] = 1
    masks[:, 7:9, 1:4] = 2
    d = datasets.LabeledData(x, masks, "segmentation", 3)
    batch = next(iter(pipelines.train_dataset(d, batch_size=4, num_points=20, mirror=False)))
    centers = batch["points"].numpy()
    labels = masks[0][centers[..., 0], centers[..., 1]]
    assert (labels != 255).all()
    np.testing.assert_array_equal(batch["label"].numpy(), labels)
    assert batch["image"].shape == (4, 12, 12, 1)


def test_sample_valid_centers_repeats_when_few_valid():
    mask = np.full((5, 5), 255, np.uint8)
    mask[2, 3] = 0
    centers, valid = pipelines.sample_valid_centers(mask, 4, tf.constant([1, 2]))
    np.testing.assert_array_equal(centers.numpy(), [[2, 3]] * 4)
    assert valid.numpy().all()


def test_ten_crops():
    images = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    crops = pipelines.ten_crops(images, 2).numpy()
    assert crops.shape == (10, 1, 2, 2, 1)
    np.testing.assert_array_equal(crops[0, 0, :, :, 0], [[0, 1], [4, 5]])
    np.testing.assert_array_equal(crops[5, 0, :, :, 0], [[1, 0], [5, 4]])
    np.testing.assert_array_equal(crops[4, 0, :, :, 0], [[5, 6], [9, 10]])


def test_scale_range_needs_a_crop():
    with pytest.raises(ValueError, match="scale_range needs crop_size"):
        pipelines.train_dataset(_classes(), scale_range=(8, 12))
    batch = next(iter(pipelines.train_dataset(_classes(), batch_size=2, scale_range=(8, 12),
                                              crop_size=7)))
    assert batch["image"].shape == (2, 7, 7, 1)


def test_a_pass_without_any_decodable_image_raises_instead_of_spinning(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    d = datasets.LabeledData([str(tmp_path / f"{i}.jpg") for i in range(3)], [0, 1, 0])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="none of the 3 labelled image files could be decoded"):
        next(iter(pipelines.train_dataset(d, batch_size=2, crop_size=8)))


def test_segmentation_files_with_a_bad_or_mismatched_mask_are_skipped(tmp_path):
    from tfcolor.data import decode
    images, masks = [], []
    for i, (size, mask) in enumerate([((12, 16), "ok"), ((12, 16), "small"), ((12, 16), "text"),
                                      ((10, 10), "ok")]):
        image = tmp_path / f"{i}.png"
        Image.fromarray(np.full(size + (3,), 60 * i, np.uint8)).save(image)
        label = tmp_path / f"{i}_mask.png"
        if mask == "text":
            label.write_bytes(b"not a png")
        else:
            shape = size if mask == "ok" else (4, 4)
            Image.fromarray(np.full(shape, i % 2, np.uint8), mode="L").save(label)
        images.append(str(image))
        masks.append(str(label))
    d = datasets.LabeledData(images, masks, "segmentation", 2)
    counter = decode.default_skip_counter()
    counter.reset()
    shapes = [b["label"].shape[1:3] for b in pipelines.eval_dataset(d, batch_size=1)]
    assert shapes == [(12, 16), (10, 10)]
    assert sorted(os.path.basename(n).split(" ")[0] for n, _ in counter.skipped) == [
        "1_mask.png", "2_mask.png"]


def _files_and_arrays(tmp_path):
    """Classification from image files (decoded with the skip report's Python function) and
    segmentation from in-memory arrays of different sizes (looked up by a Python function)."""
    rng = np.random.default_rng(2)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (10 + i, 12, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    files = datasets.LabeledData(paths, [0, 1, 0, 1, 1])
    images = [rng.integers(0, 255, (8 + i, 9, 3), dtype=np.uint8) for i in range(4)]
    masks = [rng.integers(0, 2, im.shape[:2], dtype=np.uint8) for im in images]
    arrays = datasets.LabeledData(images, masks, "segmentation", 2)
    return files, arrays


def test_the_iterator_of_a_pipeline_running_python_functions_is_checkpointed(tmp_path):
    # Resuming from an iterator checkpoint continues the stream exactly where it stopped; the
    # iterator is a distributed one, as the trainer checkpoints it.
    strategy = tf.distribute.get_strategy()
    for data in _files_and_arrays(tmp_path):
        def fresh():
            return iter(strategy.experimental_distribute_dataset(pipelines.train_dataset(
                    data, batch_size=2, crop_size=6, seed=3, num_points=4)))
        it = fresh()
        for _ in range(3):
            next(it)
        saved = tf.train.Checkpoint(iterator=it).save(str(tmp_path / f"ckpt_{data.task}"))
        want = [next(it) for _ in range(4)]
        resumed = fresh()
        tf.train.Checkpoint(iterator=resumed).restore(saved).assert_consumed()
        for w in want:
            got = next(resumed)
            for key in w:
                np.testing.assert_array_equal(got[key].numpy(), w[key].numpy())
