"""Shared pipeline stages: resize-and-crop in one op, scaled sizes, sharding options."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.data import sources
from tfcolor.data import stages


@pytest.mark.parametrize("shape,new_size,offset", [
    ((40, 60), (52, 78), (3, 11)),     # upscaling by 1.3
    ((90, 70), (45, 35), (5, 2)),      # downscaling by 2 (antialiasing matters)
    ((33, 50), (40, 61), (0, 21)),     # non-integer scale, crop at the right edge
])
@pytest.mark.parametrize("antialias", [True, False])
def test_scale_crop_equals_resize_then_slice(shape, new_size, offset, antialias):
    rng = np.random.default_rng(0)
    image = rng.random(shape + (3,)).astype(np.float32)
    crop = (30, 20)
    got = stages.scale_crop(tf.constant(image), new_size, offset, crop, antialias=antialias)
    resized = tf.image.resize(image, new_size, method="bilinear", antialias=antialias).numpy()
    want = resized[offset[0]:offset[0] + crop[0], offset[1]:offset[1] + crop[1]]
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)


def test_scale_crop_rejects_unknown_kernel():
    with pytest.raises(ValueError, match="kernel must be one of"):
        stages.scale_crop(tf.zeros([4, 4, 3]), (4, 4), (0, 0), (2, 2), kernel="nearest")


@pytest.mark.parametrize("h,w,short,expected", [
    (300, 500, 352, (352, 587)), (500, 300, 352, (587, 352)), (100, 100, 64, (64, 64)),
    (20, 30, 400, (400, 600))])
def test_scaled_size_sets_the_short_side(h, w, short, expected):
    nh, nw = stages.scaled_size(h, w, short)
    assert (int(nh), int(nw)) == expected


def test_element_seeds_differ_by_index_and_stream():
    seeds = {tuple(stages.element_seed(7, i, s).numpy()) for i in range(5) for s in range(2)}
    assert len(seeds) == 10
    np.testing.assert_array_equal(stages.element_seed(7, 3, 1), stages.element_seed(7, 3, 1))


def test_dataset_options_and_shard_spec():
    policy = tf.data.experimental.AutoShardPolicy
    files = sources.FileSource([f"{i}.jpg" for i in range(4)])
    assert stages.dataset_options(files).experimental_distribute.auto_shard_policy == policy.DATA
    records = sources.TFRecordSource.__new__(sources.TFRecordSource)
    assert (stages.dataset_options(records).experimental_distribute.auto_shard_policy
            == policy.AUTO)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    options = stages.dataset_options(files, input_context=context, deterministic=True)
    assert options.experimental_distribute.auto_shard_policy == policy.OFF
    assert options.deterministic is True
    assert stages.shard_spec(files, "auto", context) == (2, 1, "file")
    assert stages.shard_spec(files, "auto", None) is None
    assert stages.shard_spec(files, "off", context) is None
