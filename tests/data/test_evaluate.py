"""The evaluation pipeline: deterministic resize / centre crop / full image, no augmentation."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor.data import SkipCounter, embedded
from tfcolor.data import evaluate

sys.path.insert(0, os.path.dirname(__file__))
from data_testlib import BAD_FOLDER_EXPECTED, smooth_rgb  # noqa: E402


def _all(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_center_crop_matches_resize_then_crop():
    image = smooth_rgb(60, 90, seed=2)
    cfg = evaluate.EvalDataConfig(short_side=40, crop_size=32, batch_size=None)
    (out,) = _all(evaluate.eval_dataset(image[None], cfg, skip_counter=False))
    resized = tf.image.resize(image / 255.0, (40, 60), antialias=True).numpy()
    np.testing.assert_allclose(out["rgb"], resized[4:36, 14:46], atol=2e-5)
    np.testing.assert_allclose(out["gray"][..., 0], out["rgb"].mean(-1), atol=1e-6)
    # and close to an independent implementation (Pillow's antialiased bilinear)
    pil = np.asarray(Image.fromarray(image).resize((60, 40), Image.BILINEAR), np.float32) / 255
    assert np.abs(out["rgb"] - pil[4:36, 14:46]).mean() < 0.01


def test_full_images_keep_their_aspect_ratio():
    images = [smooth_rgb(30, 45, seed=0), smooth_rgb(50, 20, seed=1)]
    cfg = evaluate.EvalDataConfig(short_side=20, crop="full", batch_size=1, include_names=True)
    out = _all(evaluate.eval_dataset(images, cfg, skip_counter=False))
    assert [o["rgb"].shape for o in out] == [(1, 20, 30, 3), (1, 50, 20, 3)]
    assert [o["name"][0] for o in out] == [b"array[0]", b"array[1]"]
    cfg = evaluate.EvalDataConfig(short_side=None, crop="full", batch_size=None)
    out = _all(evaluate.eval_dataset(images, cfg, skip_counter=False))
    np.testing.assert_allclose(out[0]["rgb"], images[0] / 255.0, atol=1e-6)   # untouched


def test_embedded_validation_is_the_default_in_order_and_repeatable():
    cfg = evaluate.EvalDataConfig(short_side=64, batch_size=3, include_names=True)
    first = _all(evaluate.eval_dataset(None, cfg, skip_counter=False))
    second = _all(evaluate.eval_dataset(None, cfg, skip_counter=False))
    names = [n.decode() for b in first for n in b["name"]]
    assert names == embedded.embedded_photos("validation")
    assert [b["rgb"].shape[0] for b in first] == [3, 3, 2]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["rgb"], b["rgb"])


def test_bad_files_are_skipped_and_counted(bad_image_folder):
    folder, _ = bad_image_folder
    counter = SkipCounter()
    cfg = evaluate.EvalDataConfig(short_side=32, batch_size=None, include_names=True)
    out = _all(evaluate.eval_dataset(str(folder), cfg, skip_counter=counter))
    good = sorted(n for n, r in BAD_FOLDER_EXPECTED.items() if r == "ok")
    assert [o["name"].decode().rsplit("/", 1)[1] for o in out] == good
    assert counter.distinct == len(BAD_FOLDER_EXPECTED) - len(good)


def test_load_images():
    images = evaluate.load_images(count=3, size=24)
    assert images.shape == (3, 24, 24, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1


@pytest.mark.parametrize("kwargs,message", [
    (dict(crop="full", batch_size=4), "batch_size must be 1 or None"),
    (dict(crop="middle"), "crop must be one of"),
    (dict(short_side=None, crop_size=None), "needs crop_size or short_side"),
    (dict(short_side=32, crop_size=40), "exceeds short_side"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate.EvalDataConfig(**kwargs).validate()


def test_input_context_splits_the_images():
    cfg = evaluate.EvalDataConfig(short_side=16, batch_size=None, include_names=True)
    parts = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        ds = evaluate.eval_dataset(None, cfg, input_context=context, skip_counter=False)
        parts.append([o["name"].decode() for o in _all(ds)])
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == embedded.embedded_photos("validation")
