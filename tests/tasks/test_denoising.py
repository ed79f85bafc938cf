"""Tests for tfcolor.tasks.denoising."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.tasks import denoising as denoising_task


def _images():
    return (np.random.default_rng(0).uniform(0, 1, (4, 40, 40, 3)) * 255).astype(np.uint8)


def _config():
    return config_lib.DataConfig(batch_size=2, crop_size=32, points=8, edge_buffer=4,
                                 min_side=32, max_side=36)


class _FixedPrediction:
    """A stand-in model whose sparse output is given."""

    def __init__(self, values):
        self.values = tf.constant(values, tf.float32)

    def sparse(self, gray, centers, training=None):  # pylint: disable=unused-argument
        return self.values


def test_loss_is_this_replicas_share_of_the_global_mean_by_hand():
    task = denoising_task.DenoisingTask(_config(), source=_images(), corrupted_weight=3.0)
    # One replica's 2 rows of a global batch of 4, 2 points each:
    # targets (clean, corrupted flag), predictions.
    targets = [[[0.5, 0.0], [0.5, 1.0]], [[0.0, 0.0], [1.0, 1.0]]]
    pred = [[[0.7], [0.7]], [[0.1], [0.5]]]
    batch = {"gray": tf.zeros([2, 8, 8, 1]), "centers": tf.zeros([2, 2, 2], tf.int32),
             "targets": tf.constant(targets)}
    loss, terms = task.compute_loss(_FixedPrediction(pred), batch, training=False,
                                    global_batch_size=4)
    # Clean points: 0.2^2 + 0.1^2 = 0.05; corrupted: 3 * (0.2^2 + 0.5^2) = 0.87; 4 x 2 points.
    np.testing.assert_allclose(terms["clean"], 0.05 / 8, rtol=1e-6)
    np.testing.assert_allclose(terms["corrupted"], 0.87 / 8, rtol=1e-6)
    np.testing.assert_allclose(loss, 0.92 / 8, rtol=1e-6)
    assert loss.dtype == tf.float32 and loss.shape == ()


def test_inputs_shapes_and_exact_resume():
    task = denoising_task.DenoisingTask(_config(), source=_images(), noise_rate=0.3, seed=5)
    ds = task.build_inputs(0)
    task.check_inputs(ds.element_spec)
    assert task.batch_size(ds.element_spec) == 2
    batches = list(ds.take(3).as_numpy_iterator())
    first = batches[0]
    assert first["gray"].shape == (2, 32, 32, 1) and first["centers"].shape == (2, 8, 2)
    assert first["targets"].shape == (2, 8, 2)
    np.testing.assert_array_equal(first["index"], [0, 1])
    # Corrupted pixels are 0 or 1 in the noisy input; their flags are the targets' second column.
    flags = first["targets"][..., 1].astype(bool)
    rows = np.repeat(np.arange(2), 8).reshape(2, 8)
    at_centres = first["gray"][rows, first["centers"][..., 0], first["centers"][..., 1], 0]
    assert np.isin(at_centres[flags], (0.0, 1.0)).all()
    np.testing.assert_allclose(at_centres[~flags], first["targets"][..., 0][~flags])
    # Resumed at the stream position of the third batch: the same images, centres and noise.
    resumed = next(iter(task.build_inputs(4).as_numpy_iterator()))
    for key in ("gray", "centers", "targets", "index"):
        np.testing.assert_array_equal(resumed[key], batches[2][key])


def test_check_inputs_names_missing_keys():
    task = denoising_task.DenoisingTask(_config(), source=_images())
    spec = {"gray": tf.TensorSpec([2, 8, 8, 1]), "centers": tf.TensorSpec([2, 4, 2], tf.int32)}
    with pytest.raises(ValueError, match="targets"):
        task.check_inputs(spec)


@pytest.mark.parametrize("kwargs, field", [(dict(noise_rate=1.5), "noise_rate"),
                                           (dict(noise_rate="0.1"), "noise_rate"),
                                           (dict(corrupted_weight=-1.0), "corrupted_weight"),
                                           (dict(seed=1.5), "seed"),
                                           (dict(pipeline_options={"start": 4}), "start"),
                                           (dict(pipeline_options={"cache": 3}), "cache")])
def test_bad_options_are_named(kwargs, field):
    with pytest.raises(config_lib.ConfigError, match=field) as info:
        denoising_task.DenoisingTask(_config(), source=_images(), **kwargs)
    assert info.value.field == field


def test_bad_data_config_is_named():
    with pytest.raises(config_lib.ConfigError, match="points") as info:
        denoising_task.DenoisingTask(config_lib.DataConfig(points=0))
    assert info.value.field == "points"
    with pytest.raises(config_lib.ConfigError, match=r"unknown option\(s\) \['colour'\]"):
        denoising_task.DenoisingTask(_config(), pipeline_options={"colour": True})
