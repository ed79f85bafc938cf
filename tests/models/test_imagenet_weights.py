"""Tests of tfcolor.models.imagenet_weights: keras.applications VGG-16 weights into the trunk.

The reference is keras.applications.VGG16 itself (random weights saved in each file format): the
grey trunk must compute what it computes on the grey image replicated to RGB.
"""
import h5py
import keras
import numpy as np
import pytest

from tfcolor import models
from tfcolor.models import imagenet_weights, vgg


def _gray(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


def _not_vgg16():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inp, keras.layers.Dense(5, name="pred")(x))


@pytest.fixture(scope="module")
def keras_vgg16_notop():
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = np.random.default_rng(7)
    for layer in model.layers:  # non-zero biases, so that a lost bias would show
        if layer.weights:
            k, b = layer.get_weights()
            layer.set_weights([k, rng.normal(0, 0.05, b.shape).astype("float32")])
    return model


def _write_legacy_weights(model, path):
    """The layout of keras-applications' downloaded vgg16_weights_tf_dim_ordering_*.h5."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}_{s}_1:0".encode() for s in "Wb"[:len(layer.weights)]]
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name.decode(), data=value)


@pytest.mark.parametrize("fmt", ["weights.h5", "legacy.h5", "keras"])
def test_load_vgg16_weights_matches_keras_vgg16(keras_vgg16_notop, tmp_path, fmt):
    path = tmp_path / f"vgg16.{fmt}"
    if fmt == "weights.h5":
        keras_vgg16_notop.save_weights(path)
    elif fmt == "legacy.h5":
        _write_legacy_weights(keras_vgg16_notop, path)
    else:
        keras_vgg16_notop.save(path)
    trunk = models.build_trunk("vgg16", batch_norm="none", taps="conv1_1-conv5_3",
                               input_mean=0.4488)
    loaded = imagenet_weights.load_vgg16_imagenet_weights(trunk, path)
    assert loaded == sorted(vgg.CONV_NAMES)
    ref = keras.Model(keras_vgg16_notop.input,
                      [keras_vgg16_notop.get_layer(vgg.KERAS_VGG16_NAMES[n]).output
                       for n in vgg.CONV_NAMES])
    g = _gray((2, 32, 32, 1), seed=8)
    # Compatible preprocessing: 0-255 range, the trunk's single mean on every channel.
    expected = ref(np.repeat(255.0 * (g - 0.4488), 3, axis=-1))
    got = trunk(g)
    for name, e in zip(vgg.CONV_NAMES, expected):
        e = np.asarray(e)
        assert np.abs(e).max() > 0, name
        np.testing.assert_allclose(np.asarray(got[name]), e, rtol=1e-3,
                                   atol=1e-4 * np.abs(e).max(), err_msg=name)


def test_load_vgg16_weights_with_caffe_channel_means(keras_vgg16_notop, tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    keras_vgg16_notop.save_weights(path)
    trunk = models.build_trunk("vgg16", batch_norm="none", taps="conv1_2")
    imagenet_weights.load_vgg16_imagenet_weights(trunk, path,
                                                 channel_means=imagenet_weights.CAFFE_BGR_MEANS)
    g = _gray((1, 32, 32, 1), seed=9)
    rgb255 = np.repeat(255.0 * g, 3, axis=-1)
    ref = keras.Model(keras_vgg16_notop.input, keras_vgg16_notop.get_layer("block1_conv2").output)
    expected = np.asarray(ref(keras.applications.vgg16.preprocess_input(rgb255.copy())))
    got = np.asarray(trunk(g)["conv1_2"])
    # Equal away from the border (two 3x3 convolutions: 2 pixels), where zero padding differs.
    np.testing.assert_allclose(got[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], rtol=1e-3,
                               atol=1e-4 * np.abs(expected).max())
    assert not np.allclose(got[:, 0], expected[:, 0], rtol=1e-3)


def test_dense_fc6_reshape_matches_flatten_dense():
    """Keras' fc1 on the flattened (7, 7, C) pool5 equals a 7x7 'same' conv at the centre."""
    rng = np.random.default_rng(4)
    pool5 = rng.normal(size=(2, 7, 7, 5)).astype("float32")
    kernel = rng.normal(size=(7 * 7 * 5, 6)).astype("float32")
    dense = pool5.reshape(2, -1) @ kernel  # keras.layers.Flatten is row-major (h, w, c)
    conv = keras.layers.Conv2D(6, 7, padding="same", use_bias=False)
    conv.build((None, 7, 7, 5))
    conv.set_weights([kernel.reshape(7, 7, 5, 6)])  # the reshape done by the loader
    np.testing.assert_allclose(np.asarray(conv(pool5))[:, 3, 3], dense, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_load_vgg16_weights_with_top(tmp_path):
    ref = keras.applications.VGG16(weights=None, include_top=True)
    path = tmp_path / "vgg16_top.weights.h5"
    ref.save_weights(path)
    trunk = models.build_trunk("vgg16", batch_norm="none", taps="fc7")
    loaded = imagenet_weights.load_vgg16_imagenet_weights(trunk, path)
    assert "fc6" in loaded and "fc7" in loaded
    g = _gray((1, 224, 224, 1), seed=10)
    fc2 = keras.Model(ref.input, ref.get_layer("fc2").output)
    expected = np.asarray(fc2(np.repeat(255.0 * (g - 0.4488), 3, axis=-1)))
    got = np.asarray(trunk(g)["fc7"])[:, 3, 3]  # pool5 is 7x7: the centre sees all of it
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_load_vgg16_weights_errors(keras_vgg16_notop, tmp_path):
    trunk = models.build_trunk("vgg16", batch_norm="none", taps="conv1_2")
    with pytest.raises(FileNotFoundError, match="not found"):
        imagenet_weights.load_vgg16_imagenet_weights(trunk, tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not an hdf5 file")
    with pytest.raises(ValueError, match="Cannot read"):
        imagenet_weights.load_vgg16_imagenet_weights(trunk, text)
    other = tmp_path / "other.weights.h5"
    _not_vgg16().save_weights(other)
    with pytest.raises(ValueError, match="holds no keras.applications.VGG16"):
        imagenet_weights.load_vgg16_imagenet_weights(trunk, other)
    path = tmp_path / "vgg16.weights.h5"
    keras_vgg16_notop.save_weights(path)
    with pytest.raises(ValueError, match="Shape mismatch"):
        imagenet_weights.load_vgg16_imagenet_weights(
                models.build_trunk("vgg_tiny", taps="conv1_2"), path)
