"""Resuming the pretraining pipeline at a stream position (tfcolor.data.pretrain: ``start``,
``include_index``), checked against the uninterrupted stream of the same seed."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import data as data_lib


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from PIL import Image
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 44, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not an image")
    return str(folder)


DATA = config_lib.DataConfig(batch_size=2, crop_size=24, points=4, targets_on_device=False)


def _options(**kw):
    return dict(dict(seed=3, deterministic=True, include_index=True, include_names=True,
                     num_parallel_calls=2, prefetch=2), **kw)


def _batches(source, n, **kw):
    ds = data_lib.pretrain_dataset(DATA, source=source, skip_counter=False, **_options(**kw))
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_each_epoch_of_a_file_list_is_a_permutation_and_epochs_differ(image_dir):
    """6 files (one unreadable): records 0-5 are epoch 0, 6-11 epoch 1; each epoch visits every
    readable file once, in a different order."""
    batches = _batches(image_dir, 10)
    index = np.concatenate([b["index"] for b in batches])
    names = np.concatenate([b["name"] for b in batches])
    epochs = [names[(index >= 6 * e) & (index < 6 * (e + 1))] for e in range(3)]
    readable = sorted(f.encode() for f in tf.io.gfile.glob(os.path.join(image_dir, "img*.png")))
    for e in epochs:
        assert sorted(e) == readable
    assert any(list(a) != list(b) for a, b in zip(epochs, epochs[1:]))
    assert list(index) == sorted(index) and len(set(index)) == len(index)  # deterministic order


@pytest.mark.parametrize("cache", [False, True])
def test_resumed_stream_equals_the_tail_of_the_uninterrupted_one(image_dir, cache):
    """Start at the position after batch k (max index + 1): the next batches equal the
    uninterrupted stream's, pixel for pixel (same files, crops, mirrors, centres, targets)."""
    full = _batches(image_dir, 9, cache=cache)
    k = 4
    start = int(full[k - 1]["index"].max()) + 1
    resumed = _batches(image_dir, 9 - k, cache=cache, start=start)
    for want, got in zip(full[k:], resumed):
        assert sorted(want) == sorted(got)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_start_must_be_a_non_negative_integer():
    with pytest.raises(config_lib.ConfigError, match="start must be a non-negative integer"):
        data_lib.pretrain_dataset(DATA, **_options(start=-1))
    with pytest.raises(config_lib.ConfigError, match="start must be a non-negative integer"):
        data_lib.pretrain.PipelineOptions(start=1.5).validate()
