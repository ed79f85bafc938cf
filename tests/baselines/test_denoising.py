"""Tests for tfcolor.baselines.denoising."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcolor.baselines import denoising

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)


def test_salt_and_pepper_statistics():
    images = tf.fill([4, 100, 100, 3], 0.5)
    noisy, corrupted = denoising.salt_and_pepper(images, 0.05, seed=(1, 2))
    noisy, corrupted = noisy.numpy(), corrupted.numpy()[..., 0].astype(bool)
    # 40,000 pixels: the corrupted fraction is 0.05 +- 3 binomial standard deviations.
    assert abs(corrupted.mean() - 0.05) < 3 * np.sqrt(0.05 * 0.95 / corrupted.size)
    values = noisy[corrupted]
    assert set(np.unique(values)) <= {0.0, 1.0}
    assert (values == values[:, :1]).all()  # all channels of a pixel get the same value
    salt = (values[:, 0] == 1.0).mean()
    assert abs(salt - 0.5) < 3 * np.sqrt(0.25 / values.shape[0])
    np.testing.assert_array_equal(noisy[~corrupted], 0.5)
    again, _ = denoising.salt_and_pepper(images, 0.05, seed=(1, 2))
    other, _ = denoising.salt_and_pepper(images, 0.05, seed=(1, 3))
    np.testing.assert_array_equal(again, noisy)
    assert not np.array_equal(other, noisy)
    with pytest.raises(ValueError, match="rate"):
        denoising.salt_and_pepper(images, 1.5)


def test_denoising_batches_targets_are_clean_values_at_centres():
    gray = tf.random.uniform([2, 16, 16, 1], seed=3)
    centers = tf.constant([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], tf.int32)
    ds = tf.data.Dataset.from_tensors({"gray": gray, "centers": centers,
                                       "index": tf.constant([0, 1], tf.int64)})
    batch = next(iter(denoising.denoising_batches(ds, rate=0.5, seed=1)))
    clean = gray.numpy()[[0, 0, 1, 1], [1, 3, 5, 7], [2, 4, 6, 8], 0].reshape(2, 2)
    np.testing.assert_allclose(batch["targets"][..., 0], clean)
    noisy = batch["gray"].numpy()[[0, 0, 1, 1], [1, 3, 5, 7], [2, 4, 6, 8], 0].reshape(2, 2)
    flag = batch["targets"][..., 1].numpy().astype(bool)
    np.testing.assert_allclose(noisy[~flag], clean[~flag])
    assert np.isin(noisy[flag], (0.0, 1.0)).all()


def test_denoising_loss_weights_corrupted_pixels():
    y = tf.constant([[[0.5, 0.0], [0.5, 1.0]]])
    pred = tf.constant([[[0.7], [0.7]]])
    loss = denoising.denoising_loss(corrupted_weight=3.0)(y, pred).numpy()
    np.testing.assert_allclose(loss, [[0.04, 0.12]], rtol=1e-5)


def test_build_model_leaves_out_the_data_tap():
    model = denoising.DenoisingAutoencoder("vgg_tiny", hidden=8)
    assert "data" not in model.taps and model.output_sizes == (1,)
    with pytest.raises(ValueError, match="fixed kind"):
        denoising.DenoisingAutoencoder("vgg_tiny", kind="hue_chroma")


def test_denoising_autoencoder_model():
    """Keras plumbing (tests/layer_testing.py): config and keras.saving round trips (the class
    is kept, kind/output_sizes stay fixed), symbolic call, tf.function, mixed_float16, one
    training step on every weight; the sparse path of a round-tripped copy gives the same
    values."""
    result = layer_testing.run_layer_test(
            denoising.DenoisingAutoencoder, dict(arch="vgg_tiny", taps=["conv1_1", "conv2_1"],
                                                 hidden=8, dropout=0.0),
            tf.random.uniform([2, 8, 8, 1], seed=4), expected_output_shape=(2, 2, 2, 1),
            dtypes=("float32", "mixed_float16"))  # bfloat16: the Colorizer's own test
    model = result.layer
    config = model.get_config()
    assert "kind" not in config and "output_sizes" not in config
    clone = denoising.DenoisingAutoencoder.from_config(config)
    clone.set_weights(model.get_weights())
    gray = tf.random.uniform([2, 16, 16, 1], seed=1)
    centers = tf.constant([[[3, 4], [8, 9]]] * 2, tf.int32)
    out = model.sparse(gray, centers, training=False)
    assert out.shape == (2, 2, 1) and clone.taps == model.taps and clone.arch == "vgg_tiny"
    np.testing.assert_allclose(clone.sparse(gray, centers, training=False), out, rtol=1e-6)
