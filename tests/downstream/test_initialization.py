"""Tests for tfcolor.downstream.initialization: loading, BN absorption, grey -> RGB, freezing."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import models
from tfcolor.models import factory
from tfcolor.downstream import initialization, model as model_lib


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, n).astype(np.float32))


@pytest.fixture(scope="module")
def colorization_dir(tmp_path_factory):
    """A colorization model_dir as pretraining writes it (config.json + checkpoint)."""
    path = str(tmp_path_factory.mktemp("colorization"))
    config = config_lib.PretrainConfig(
            model=config_lib.ModelConfig(arch="vgg_tiny", taps="conv1_1-conv3_3", hidden=8,
                                         sync_batch_norm=False))
    model = factory.build_colorizer(config)
    _randomize_bn(model.trunk)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    tf.train.Checkpoint(model=model).save(os.path.join(path, "ckpt"))
    return path, model


def test_bn_absorbed_in_transfer_path_preserves_outputs(colorization_dir):
    path, colorizer = colorization_dir
    assert initialization.describe_init(path) == "colorization"
    trunk, arch = initialization.load_trunk(path)
    assert arch == "vgg_tiny"
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trunk.layers)
    x = tf.random.uniform([2, 20, 20, 1], seed=1)
    before = colorizer.trunk(x, training=False)
    after = trunk(x, training=False)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-4, atol=1e-4)
    kept, _ = initialization.load_trunk(path, absorb_bn=False)
    assert any(isinstance(l, keras.layers.BatchNormalization) for l in kept.layers)


def test_gray_to_rgb_init_computes_the_grey_network_on_the_desaturation(colorization_dir):
    path, _ = colorization_dir
    grey, _ = initialization.load_trunk(path)
    rgb, _ = initialization.load_trunk(path, color_input=True)
    assert rgb.inputs[0].shape[-1] == 3
    image = tf.random.uniform([1, 16, 16, 3], seed=2)
    a = rgb(image, training=False)
    b = grey(tf.reduce_mean(image, axis=-1, keepdims=True), training=False)
    for name in a:
        if name == "data":
            continue
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_freeze_below_freezes_exactly_the_lower_layers():
    trunk = models.build_trunk("vgg_tiny", taps="conv1_1-conv3_3", batch_norm="none")
    model = model_lib.DownstreamModel(trunk, "classification", 3, dropout=0.0)
    frozen = initialization.freeze_below(model, "conv2_1")
    assert frozen == ["conv1_1", "conv1_2"]
    trainable = {v.path.split("/")[0] for v in model.trainable_variables}
    assert "conv1_1" not in trainable and "conv2_1" in trainable and "head" in trainable
    # One SGD step leaves the frozen kernels untouched and moves the others.
    before = {l.name: l.get_weights()[0].copy() for l in trunk.layers if l.weights}
    opt = keras.optimizers.SGD(0.1)
    x, y = tf.random.uniform([4, 16, 16, 1]), tf.one_hot([0, 1, 2, 0], 3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, model.logits(x),
                                                                    from_logits=True))
    opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    np.testing.assert_array_equal(trunk.get_layer("conv1_2").get_weights()[0],
                                  before["conv1_2"])
    assert not np.allclose(trunk.get_layer("conv3_3").get_weights()[0], before["conv3_3"])
    assert len(initialization.freeze_below(model_lib.DownstreamModel(
            models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2", batch_norm="none"),
            "classification", 2), "head")) == 4
    with pytest.raises(ValueError, match="no layer 'conv9_1'"):
        initialization.freeze_below(model, "conv9_1")


def test_random_init_rebalanced_has_unit_second_moment():
    images = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 1)).astype(np.float32)
    trunk, _ = initialization.load_trunk("random", arch="vgg_tiny", taps="conv1_1-conv3_3",
                                         rebalance_images=images)
    out = trunk(images, training=False)
    for name in ("conv1_1", "conv2_2", "conv3_3"):
        assert np.mean(np.square(out[name])) == pytest.approx(1.0, rel=1e-3)


def test_tap_strides_known_and_measured():
    trunk = models.build_trunk("vgg_tiny", taps="conv1_1-conv3_1", batch_norm="none")
    known = initialization.trunk_tap_strides(trunk, "vgg_tiny")
    measured = initialization.trunk_tap_strides(trunk, None, probe_size=32)
    assert known == measured == {"conv1_1": 1, "conv1_2": 1, "conv2_1": 2, "conv2_2": 2,
                                 "conv3_1": 4}


def test_describe_init_errors(tmp_path):
    with pytest.raises(ValueError, match="neither 'random'"):
        initialization.describe_init(str(tmp_path))
    with pytest.raises(ValueError, match="imagenet_weights"):
        initialization.load_trunk("imagenet", arch="vgg16")
    with pytest.raises(ValueError, match="arch must be 'vgg16'"):
        initialization.load_trunk("imagenet", arch="vgg_tiny", imagenet_weights="x.h5")


def test_model_fn_segmentation_from_colorization(colorization_dir):
    path, _ = colorization_dir
    build = initialization.model_fn(path, "segmentation", 4, head_taps=["conv2_2", "conv3_3"],
                                    from_layer="conv3_1", hidden=8, seed=0)
    model = build()
    assert model.taps == ["conv2_2", "conv3_3"]
    assert model.tap_strides == {"conv2_2": 2, "conv3_3": 4}
    assert not model.trunk.get_layer("conv2_2").trainable
    assert model.dense_logits(tf.zeros([1, 12, 12, 1])).shape == (1, 12, 12, 4)


def test_fov_adds_two_fresh_blocks_on_a_pretrained_trunk(colorization_dir):
    # +FoV is downstream: on a colorization trunk (pretrained without it) the two blocks are
    # max-pool 2x2/2 -> conv 3x3 (1024) -> ReLU on the deepest tap, and the pretrained taps are
    # unchanged.
    path, _ = colorization_dir
    plain, _ = initialization.load_trunk(path)
    trunk, _ = initialization.load_trunk(path, fov=True)
    assert set(trunk.output) == set(plain.output) | {"fov1", "fov2"}
    strides = initialization.trunk_tap_strides(trunk, "vgg_tiny")
    assert strides["conv3_3"] == 4 and strides["fov1"] == 8 and strides["fov2"] == 16
    x = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    out, ref = trunk(x, training=False), plain(x, training=False)
    for name in plain.output:
        np.testing.assert_allclose(out[name].numpy(), ref[name].numpy(), rtol=1e-5, atol=1e-5)
    deep = ref["conv3_3"]
    for name in ("fov1", "fov2"):
        kernel, bias = trunk.get_layer(name).get_weights()
        assert kernel.shape == (3, 3, deep.shape[-1], 1024)
        pooled = tf.nn.max_pool2d(deep, 2, 2, "SAME")
        deep = tf.nn.relu(tf.nn.conv2d(pooled, kernel, 1, "SAME") + bias)
        np.testing.assert_allclose(out[name].numpy(), deep.numpy(), rtol=1e-4, atol=1e-5)
    model = initialization.model_fn(path, "segmentation", 3, fov=True, hidden=8, seed=0)()
    assert model.taps[-2:] == ["fov1", "fov2"]
    assert model.dense_logits(tf.zeros([1, 32, 32, 1])).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="segmentation"):
        initialization.model_fn(path, "classification", 3, fov=True)
    with pytest.raises(ValueError, match="already has the \\+FoV taps"):
        initialization.add_fov_blocks(trunk, "vgg_tiny")


@pytest.fixture(scope="module")
def vgg16_weights_file(tmp_path_factory):
    """A keras.applications VGG16 (no top) weights file with random weights and biases."""
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.weights:
            k, b = layer.get_weights()
            layer.set_weights([k, rng.normal(0, 0.05, b.shape).astype("float32")])
    path = str(tmp_path_factory.mktemp("vgg16") / "vgg16.weights.h5")
    model.save_weights(path)
    return path


def test_imagenet_init_is_rebalanced_to_unit_second_moment(vgg16_weights_file):
    # The paper re-balances an ImageNet VGG-16 used as downstream initialisation.
    images = np.random.default_rng(2).uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)
    taps = "conv1_1-conv5_3"
    trunk, _ = initialization.load_trunk("imagenet", taps=taps, imagenet_weights=vgg16_weights_file,
                                         rebalance_images=images)
    gray = images.mean(axis=-1, keepdims=True)
    out = trunk(gray, training=False)
    for name in ("conv1_1", "conv2_2", "conv3_3", "conv4_3", "conv5_3"):
        assert np.mean(np.square(out[name])) == pytest.approx(1.0, rel=1e-3)
    raw, _ = initialization.load_trunk("imagenet", taps=taps, imagenet_weights=vgg16_weights_file,
                                       rebalance_imagenet=False)
    raw_out = raw(gray, training=False)
    assert abs(np.mean(np.square(raw_out["conv5_3"])) - 1.0) > 0.1  # it was not balanced
    # Re-balancing only rescales each layer: every tap is a positive multiple of the raw one.
    new, old = out["conv4_3"].numpy(), raw_out["conv4_3"].numpy()
    scale = np.sum(new * old) / np.sum(old * old)
    assert scale > 0
    np.testing.assert_allclose(new, scale * old, rtol=1e-3, atol=1e-3 * np.abs(new).max())
    with pytest.raises(ValueError, match="re-balanced"):
        initialization.load_trunk("imagenet", taps=taps, imagenet_weights=vgg16_weights_file)


def test_trunk_pretrained_from_its_top_tap_exposes_the_downstream_taps(tmp_path):
    # As ResNet-152 in the paper: pretrained from the top tap only (no hypercolumn), fine-tuned
    # with a hypercolumn of lower taps: those come from the pretrained weights.
    config = config_lib.PretrainConfig(
            model=config_lib.ModelConfig(arch="vgg_tiny", taps="conv3_3", hidden=8,
                                         sync_batch_norm=False))
    model = factory.build_colorizer(config)
    _randomize_bn(model.trunk)
    assert list(model.trunk.output) == ["conv3_3"]
    with open(os.path.join(tmp_path, "config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    tf.train.Checkpoint(model=model).save(os.path.join(tmp_path, "ckpt"))
    trunk, _ = initialization.load_trunk(str(tmp_path))
    want = list(models.TAP_STRIDES["vgg_tiny"])
    assert sorted(trunk.output) == sorted(want[:want.index("conv3_3") + 1])
    x = np.random.default_rng(4).uniform(0, 1, (2, 16, 16, 1)).astype(np.float32)
    out = trunk(x, training=False)
    src = model.trunk
    inner = keras.Model(src.input, src.get_layer("conv2_2_relu").output)
    np.testing.assert_allclose(out["conv2_2"].numpy(), inner(x, training=False).numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["conv3_3"].numpy(), src(x, training=False)["conv3_3"].numpy(),
                               rtol=1e-4, atol=1e-4)
