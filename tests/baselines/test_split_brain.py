"""Tests for tfcolor.baselines.split_brain."""
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from tfcolor.baselines import split_brain
from tfcolor.downstream import initialization as init
from tfcolor.train.strategy import make_strategy  # one strategy per device set

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)


def test_quantize_hand_values():
    v = tf.constant([[0.0], [0.0049], [0.015], [0.999], [1.0]])
    np.testing.assert_array_equal(split_brain.quantize(v, 100), [0, 0, 1, 99, 99])
    joint = tf.constant([[0.05, 0.95], [0.55, 0.31], [1.0, 0.0]])
    np.testing.assert_array_equal(split_brain.quantize(joint, 10), [9, 53, 90])


def test_lab_split_targets_match_skimage():
    rgb = np.array([[[[1.0, 0.0, 0.0], [0.2, 0.6, 0.3]]]], np.float32)  # (1, 1, 2, 3)
    lab = skcolor.rgb2lab(rgb[0])[0]
    g1, g2 = split_brain.split_channels(rgb, "lab")
    np.testing.assert_allclose(g1.numpy()[0, 0, :, 0], lab[:, 0] / 100.0, atol=2e-4)
    np.testing.assert_allclose(g2.numpy()[0, 0], (lab[:, 1:] + 110.0) / 220.0, atol=2e-4)
    centers = tf.constant([[[0, 0], [0, 1]]], tf.int32)
    t = split_brain.split_brain_targets(rgb, centers, "lab").numpy()[0]
    l_bins = np.floor(lab[:, 0]).astype(int)
    a_bins = np.floor((lab[:, 1] + 110) / 22).astype(int)
    b_bins = np.floor((lab[:, 2] + 110) / 22).astype(int)
    np.testing.assert_array_equal(t[:, 0], l_bins)
    np.testing.assert_array_equal(t[:, 1], a_bins * 10 + b_bins)


def test_rescaled_lab_and_rgb_splits():
    rgb = tf.random.uniform([2, 6, 6, 3], seed=4)
    g1, g2 = split_brain.split_channels(rgb, "rescaled_lab")
    both = tf.concat([g1, g2], -1).numpy()
    np.testing.assert_allclose(both.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(both.max(axis=(1, 2)), 1.0, atol=1e-5)
    g1, g2 = split_brain.split_channels(rgb, "rgb")
    np.testing.assert_array_equal(g1[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(g2, tf.gather(rgb, [0, 2], axis=-1))
    with pytest.raises(ValueError, match="split must be"):
        split_brain.split_channels(rgb, "hsv")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return split_brain.SplitBrainAutoencoder("vgg_tiny", taps="conv1_1-conv2_2", hidden=8,
                                             dropout=0.0, batch_norm="standard")


def test_halves_are_disjoint_half_width_and_see_only_their_group(model):
    assert split_brain.disjoint(model)
    assert model.trunk_a.inputs[0].shape[-1] == 1 and model.trunk_b.inputs[0].shape[-1] == 2
    assert model.trunk_a.output["conv1_1"].shape[-1] == 4  # vgg_tiny conv1: 8 channels
    rgb = tf.random.uniform([2, 16, 16, 3], seed=5)
    centers = tf.constant([[[3, 4], [8, 9]]] * 2, tf.int32)
    n_a = model.ab_bins ** 2
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(rgb)
        out_a, out_b = model.cross_predictions(rgb, centers, training=False)
        loss_a = tf.reduce_sum(out_a)
    assert out_a.shape == (2, 2, n_a) and out_b.shape == (2, 2, model.l_bins)
    grads = tape.gradient(loss_a, model.trunk_b.trainable_variables + model.head_b.weights)
    assert all(g is None or not np.any(g) for g in grads)
    assert any(np.any(g) for g in tape.gradient(loss_a, model.trunk_a.trainable_variables))


def test_each_half_sees_only_its_channels():
    keras.utils.set_random_seed(1)
    rgb_model = split_brain.SplitBrainAutoencoder("vgg_tiny", split="rgb", taps="conv1_1",
                                                  hidden=8, dropout=0.0)
    image = tf.random.uniform([1, 8, 8, 3], seed=8)
    changed = tf.concat([image[..., :1] * 0.5, image[..., 1:2], image[..., 2:] * 0.3], -1)
    centers = tf.constant([[[2, 3], [5, 6]]], tf.int32)
    before_a, before_b = rgb_model.cross_predictions(image, centers)
    after_a, after_b = rgb_model.cross_predictions(changed, centers)
    np.testing.assert_allclose(after_a, before_a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after_b, before_b)


def test_loss_is_cross_entropy_of_both_halves(model):
    n_a = model.ab_bins ** 2
    logits = tf.random.normal([1, 2, n_a + model.l_bins], seed=6)
    y = tf.constant([[[3.0, 17.0], [99.0, 0.0]]])
    ce_a, ce_b = split_brain.split_brain_loss(y, logits[..., :n_a], logits[..., n_a:])
    loss = (ce_a + ce_b).numpy()
    la = tf.nn.log_softmax(logits[..., :n_a]).numpy()
    lb = tf.nn.log_softmax(logits[..., n_a:]).numpy()
    expected = [-(la[0, 0, 17] + lb[0, 0, 3]), -(la[0, 1, 0] + lb[0, 1, 99])]
    np.testing.assert_allclose(loss[0], expected, rtol=1e-5)


def test_downstream_trunk_concatenates_halves(model):
    trunk = model.downstream_trunk(absorb_bn=True, color_input=True)
    assert list(trunk.output) == list(model.taps)
    assert trunk.output["conv2_2"].shape[-1] == 16  # two halves of 8 = vgg_tiny's 16
    assert not any(isinstance(l, keras.layers.BatchNormalization)
                   for half in (trunk.get_layer("half_a"), trunk.get_layer("half_b"))
                   for l in half.layers)
    rgb = tf.random.uniform([1, 16, 16, 3], seed=7)
    expected = model.downstream_features(rgb)
    got = trunk(rgb, training=False)
    for t in model.taps:
        np.testing.assert_allclose(got[t], expected[t], rtol=1e-4, atol=1e-4)
    grey = model.downstream_trunk(color_input=False)
    assert grey.inputs[0].shape[-1] == 1
    frozen = init.freeze_below(grey, "conv2_1")
    assert frozen.count("conv1_1") == 2  # frozen in both halves


@pytest.mark.parametrize("split", split_brain.SPLITS)
def test_split_input_layer(split):
    """Serialization, symbolic call, tf.function, mixed precision and gradients to the image
    (tests/layer_testing.py)."""
    result = layer_testing.run_layer_test(
            split_brain.SplitInput, {"split": split},
            tf.random.uniform([2, 6, 6, 3], minval=0.05, maxval=0.95, seed=9),
            expected_output_shape=[(2, 6, 6, 1), (2, 6, 6, 2)],
            mixed_precision_tolerance={"mixed_float16": 1e-2, "mixed_bfloat16": 2e-2})
    clone = split_brain.SplitInput.from_config(result.layer.get_config())
    assert clone.split == split


def test_split_brain_autoencoder_model():
    """The model's Keras plumbing (tests/layer_testing.py): get_config/from_config and
    keras.saving round trips, symbolic call and tf.function of the downstream features. The
    harness's training and mixed-precision checks want a gradient for every weight, but the heads
    are not on the call() path: cross_predictions is trained in
    test_halves_are_disjoint_half_width_and_see_only_their_group and run under mixed_float16 in
    test_split_brain_under_mixed_precision_strategy_and_tf_function."""
    keras.utils.set_random_seed(0)
    result = layer_testing.run_layer_test(
            split_brain.SplitBrainAutoencoder,
            dict(arch="vgg_tiny", taps=["conv1_1", "conv2_1"], hidden=8, dropout=0.0),
            tf.random.uniform([2, 8, 8, 3], seed=3),
            expected_output_shape={"conv1_1": (2, 8, 8, 8), "conv2_1": (2, 4, 4, 16)},
            run_training_check=False, run_mixed_precision_check=False)
    model = result.layer
    clone = split_brain.SplitBrainAutoencoder.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    rgb = tf.random.uniform([2, 16, 16, 3], seed=2)
    centers = tf.constant([[[3, 4], [8, 9]]] * 2, tf.int32)
    for got, expected in zip(clone.cross_predictions(rgb, centers),
                             model.cross_predictions(rgb, centers)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_split_brain_under_mixed_precision_strategy_and_tf_function():
    with layer_testing.global_dtype_policy("mixed_float16"):
        m16 = split_brain.SplitBrainAutoencoder("vgg_tiny", taps="conv1_1", hidden=8)
        out = tf.concat(m16.cross_predictions(tf.random.uniform([1, 8, 8, 3]),
                                              tf.zeros([1, 2, 2], tf.int32)), axis=-1)
        assert out.dtype == tf.float16 and np.isfinite(out.numpy()).all()
        trunk = m16.downstream_trunk()
        assert trunk(tf.random.uniform([1, 8, 8, 3]))["conv1_1"].dtype == tf.float16
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        m = split_brain.SplitBrainAutoencoder("vgg_tiny", taps="conv1_1", hidden=8)

    @tf.function
    def step(x, c):
        return strategy.run(lambda x, c: tf.concat(m.cross_predictions(x, c), axis=-1),
                            args=(x, c))

    out = step(tf.random.uniform([2, 8, 8, 3]), tf.zeros([2, 2, 2], tf.int32))
    assert all(t.shape[-2:] == (2, 200) for t in strategy.experimental_local_results(out))


def test_grey_input_leaves_the_ab_half_constant_and_the_handicap_is_reported(model, caplog):
    # On grey data the Lab split's half b sees a = b = 0: its features do not depend on the
    # image (the documented handicap), while half a's do.
    with caplog.at_level("WARNING"):
        trunk = model.downstream_trunk(color_input=False)
    assert "half b sees a = b = 0" in caplog.text
    rng = np.random.default_rng(3)
    g1 = rng.uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    g2 = rng.uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    f1, f2 = trunk(g1, training=False)["conv2_2"].numpy(), trunk(g2, training=False)["conv2_2"]
    half = f1.shape[-1] // 2
    np.testing.assert_allclose(f1[..., half:], f2.numpy()[..., half:], atol=1e-3)
    assert np.abs(f1[..., :half] - f2.numpy()[..., :half]).max() > 1e-2
    assert split_brain.grey_input_handicap("lab") and split_brain.grey_input_handicap(
            "rescaled_lab")
    assert split_brain.grey_input_handicap("rgb") is None  # R = G = B: half b sees the grey
