"""Tests for tfcolor.tasks.split_brain."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.tasks import split_brain as split_brain_task


def _images():
    return (np.random.default_rng(0).uniform(0, 1, (4, 40, 40, 3)) * 255).astype(np.uint8)


def _config():
    return config_lib.DataConfig(batch_size=2, crop_size=32, points=8, edge_buffer=4,
                                 min_side=32, max_side=36)


class _FixedLogits:
    """A stand-in model whose two halves' logits are given."""

    def __init__(self, logits_a, logits_b):
        self.logits = (tf.constant(logits_a, tf.float32), tf.constant(logits_b, tf.float32))

    def cross_predictions(self, images, centers, training=None):  # pylint: disable=unused-argument
        return self.logits


def test_loss_is_both_cross_entropies_normalised_by_the_global_batch_by_hand():
    task = split_brain_task.SplitBrainTask(_config(), source=_images(),
                                           model_kwargs=dict(l_bins=3, ab_bins=2))
    # One row of a global batch of 2 (two replicas), 2 points; group-2 logits over 4 joint bins,
    # group-1 logits over 3 bins. Targets: (group-1 bin, group-2 bin).
    logits_a = [[[0.0, 0.0, 0.0, 0.0], [np.log(3.0), 0.0, 0.0, 0.0]]]
    logits_b = [[[0.0, np.log(2.0), 0.0], [0.0, 0.0, 0.0]]]
    targets = [[[1.0, 2.0], [2.0, 0.0]]]
    batch = {"rgb": tf.zeros([1, 8, 8, 3]), "centers": tf.zeros([1, 2, 2], tf.int32),
             "targets": tf.constant(targets)}
    loss, terms = task.compute_loss(_FixedLogits(logits_a, logits_b), batch, training=False,
                                    global_batch_size=2)
    # Half a: -log(1/4) and -log(3/6); half b: -log(2/4) and -log(1/3); 2 x 2 points.
    half_a = (np.log(4.0) + np.log(2.0)) / 4
    half_b = (np.log(2.0) + np.log(3.0)) / 4
    np.testing.assert_allclose(terms["half_a"], half_a, rtol=1e-6)
    np.testing.assert_allclose(terms["half_b"], half_b, rtol=1e-6)
    np.testing.assert_allclose(loss, half_a + half_b, rtol=1e-6)


def test_inputs_shapes_targets_and_exact_resume():
    task = split_brain_task.SplitBrainTask(_config(), source=_images(),
                                           model_kwargs=dict(split="rgb", l_bins=4, ab_bins=3))
    ds = task.build_inputs(0)
    task.check_inputs(ds.element_spec)
    assert task.batch_size(ds.element_spec) == 2
    batches = list(ds.take(3).as_numpy_iterator())
    first = batches[0]
    assert first["rgb"].shape == (2, 32, 32, 3) and first["targets"].shape == (2, 8, 2)
    np.testing.assert_array_equal(first["index"], [0, 1])
    # rgb split: group 1 is G in 4 bins, group 2 is (R, B) in a joint 3 x 3 grid.
    rows = np.repeat(np.arange(2), 8).reshape(2, 8)
    pixels = first["rgb"][rows, first["centers"][..., 0], first["centers"][..., 1]]
    bins = lambda v, n: np.clip(np.floor(v * n), 0, n - 1)  # noqa: E731
    np.testing.assert_array_equal(first["targets"][..., 0], bins(pixels[..., 1], 4))
    np.testing.assert_array_equal(first["targets"][..., 1],
                                  bins(pixels[..., 0], 3) * 3 + bins(pixels[..., 2], 3))
    resumed = next(iter(task.build_inputs(4).as_numpy_iterator()))
    for key in ("rgb", "centers", "targets", "index"):
        np.testing.assert_array_equal(resumed[key], batches[2][key])


@pytest.mark.parametrize("kwargs, field", [(dict(split="hsv"), "split"),
                                           (dict(l_bins=1), "l_bins"),
                                           (dict(ab_bins=2.5), "ab_bins")])
def test_bad_model_options_are_named(kwargs, field):
    with pytest.raises(config_lib.ConfigError, match=field) as info:
        split_brain_task.SplitBrainTask(_config(), source=_images(), model_kwargs=kwargs)
    assert info.value.field == field


def test_head_variables_are_both_heads():
    task = split_brain_task.SplitBrainTask(
            model_kwargs=dict(arch="vgg_tiny", taps="conv1_1-conv2_2", hidden=8, dropout=0.0))
    model = task.build_model()
    heads = {id(v) for v in task.head_variables(model)}
    assert heads == {id(v) for v in model.head_a.trainable_variables
                     + model.head_b.trainable_variables}
    assert not heads & {id(v) for v in model.trunk_a.weights + model.trunk_b.weights}


@pytest.mark.slow  # 50 s on 2 shared cores (two tiny runs, one mirrored)
def test_loss_is_the_same_global_mean_on_one_and_two_replicas(tmp_path):
    # The contract's normalisation: each replica's share of the global mean, so the first step's
    # loss (initial weights, no dropout, no batch statistics) does not depend on the replicas.
    from tfcolor.config import TrainConfig  # pylint: disable=import-outside-toplevel
    from tfcolor.train import experiment  # pylint: disable=import-outside-toplevel
    from tfcolor.train.strategy import make_strategy  # pylint: disable=import-outside-toplevel
    losses = []
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]))):
        task = split_brain_task.SplitBrainTask(
                _config(), source=_images(),
                model_kwargs=dict(arch="vgg_tiny", taps="conv1_1-conv2_2", hidden=8, dropout=0.0,
                                  batch_norm="none"))
        config = TrainConfig(model_dir=str(tmp_path / name), train_steps=1, steps_per_loop=1,
                             checkpoint_every=1, summary_every=1, image_every=0, export=False)
        result = experiment.run(task, config, strategy=strategy)
        losses.append(result.train.losses)
    for key in ("split_brain", "split_brain/half_a", "split_brain/half_b"):
        np.testing.assert_allclose(losses[1][key], losses[0][key], rtol=1e-5)
