"""Tests of tfcolor.surgery: re-balancing, BN absorption, grey->RGB conv1."""
import keras
import numpy as np
import pytest

from tfcolor import models, surgery
from tfcolor.models import vgg

RNG = np.random.default_rng(0)


def _gray(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


def _unbalance(model, seed=0):
    """Multiplies every kernel by a random factor in [0.1, 10] (and the biases alike)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k = 10 ** rng.uniform(-1, 1)
            w = layer.get_weights()
            layer.set_weights([w[0] * k] + [rng.normal(0, 0.1, b.shape) * k for b in w[1:]])


def _activations(model, names):
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return lambda x: [np.asarray(o) for o in probe(x)]


# ----------------------------------------------------------------------------------------------
# rebalance


def test_rebalance_gives_unit_second_moments_and_rescales_activations():
    model = models.build_trunk("vgg_tiny", batch_norm="none")
    _unbalance(model)
    relus = [f"{n}_relu" for n in vgg.CONV_NAMES] + ["fc6_relu", "fc7_relu"]
    x = _gray((4, 32, 32, 1))
    before = _activations(model, relus)(x)
    scales = surgery.rebalance(model, x)
    assert set(scales) == set(vgg.CONV_NAMES) | {"fc6", "fc7"}
    after = _activations(model, relus)(x)
    for name, b, a in zip(relus, before, after):
        np.testing.assert_allclose(np.mean(a.astype(np.float64) ** 2), 1.0, rtol=1e-4,
                                   err_msg=name)
        # Every activation is the original one divided by its RMS (a positive rescaling).
        rms = np.sqrt(np.mean(b.astype(np.float64) ** 2))
        np.testing.assert_allclose(a, b / rms, rtol=2e-4, atol=2e-5, err_msg=name)
    # The trunk's tap outputs are those same rescaled activations.
    np.testing.assert_allclose(np.asarray(model(x)["fc7"]), after[-1], rtol=1e-6)


def test_rebalancing_one_layer_preserves_the_next_layers_activations():
    model = models.build_trunk("vgg_tiny", batch_norm="none")
    _unbalance(model, seed=1)
    names = ["conv2_1_relu", "conv2_2", "conv2_2_relu", "conv3_1", "fc7_relu"]
    x = _gray((2, 32, 32, 1), seed=1)
    before = _activations(model, names)(x)
    assert abs(np.mean(before[0] ** 2) - 1) > 0.5  # unbalanced to begin with
    scales = surgery.rebalance(model, x, layers=["conv2_1"])
    after = _activations(model, names)(x)
    np.testing.assert_allclose(np.mean(after[0].astype(np.float64) ** 2), 1.0, rtol=1e-4)
    np.testing.assert_allclose(after[0], before[0] * scales["conv2_1"], rtol=1e-4, atol=1e-6)
    for name, b, a in zip(names[1:], before[1:], after[1:]):  # conv2_2 onwards: unchanged
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=name)


def _small_classifier():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)  # in-layer ReLU
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(8, 3, name="c2")(x)
    x = keras.layers.ReLU(name="c2_relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="d1")(x)
    out = keras.layers.Dense(5, activation="softmax", name="pred")(x)
    return keras.Model(inp, out)


def test_rebalance_keeps_a_softmax_classifier_output():
    model = _small_classifier()
    _unbalance(model, seed=2)
    x = np.random.default_rng(3).normal(0, 1, (6, 16, 16, 3)).astype("float32")
    before = np.asarray(model(x))
    scales = surgery.rebalance(model, [x[:3], x[3:]])  # a list of batches
    assert set(scales) == {"c1", "c2", "d1"}  # the softmax layer is not re-balanced
    np.testing.assert_allclose(np.asarray(model(x)), before, rtol=1e-4, atol=1e-6)
    hidden = _activations(model, ["c1", "c2_relu", "d1"])(x)
    for h in hidden:
        np.testing.assert_allclose(np.mean(h.astype(np.float64) ** 2), 1.0, rtol=1e-4)


def test_rebalance_errors():
    with pytest.raises(ValueError, match="absorb_batch_norm"):
        surgery.rebalance(models.build_trunk("vgg_tiny", taps="conv1_1"), _gray((1, 8, 8, 1)))
    alex = models.build_trunk("alexnet", batch_norm="none", taps="conv1-conv3")
    with pytest.raises(ValueError, match="LocalResponseNormalization"):
        surgery.rebalance(alex, _gray((1, 32, 32, 1)), layers=["conv1"])
    # Without an explicit list, layers feeding LRN are skipped, the others re-balanced.
    scales = surgery.rebalance(alex, _gray((1, 32, 32, 1)))
    assert set(scales) == {"conv3"}
    model = _small_classifier()
    with pytest.raises(ValueError, match="not positively homogeneous"):
        surgery.rebalance(model, np.zeros((1, 16, 16, 3), "float32"), layers=["pred"])
    with pytest.raises(ValueError, match="not a Conv2D/Dense"):
        surgery.rebalance(model, np.zeros((1, 16, 16, 3), "float32"), layers=["p1"])


# ----------------------------------------------------------------------------------------------
# absorb_batch_norm


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            values = {"gamma": rng.uniform(0.5, 2, n), "beta": rng.normal(0, 0.5, n),
                      "moving_mean": rng.normal(0, 0.5, n),
                      "moving_variance": rng.uniform(0.2, 3, n)}
            layer.set_weights([values[w.name] for w in layer.weights])


@pytest.mark.parametrize("arch, batch_norm, taps", [
        ("vgg_tiny", "parameter_free", None),
        ("vgg_tiny", "standard", ["data", "conv3_2", "fc7"]),
        ("resnet152", "standard", ["conv1", "res2b"]),  # conv without bias + projection shortcut
        ("alexnet", "parameter_free", "conv1-conv3"),  # grouped conv + LRN
])
def test_absorb_batch_norm_matches_inference_mode(arch, batch_norm, taps):
    model = models.build_trunk(arch, batch_norm=batch_norm, taps=taps)
    _randomize_bn(model)
    absorbed = surgery.absorb_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in absorbed.layers)
    x = _gray((2, 40, 40, 1))
    expected, got = model(x, training=False), absorbed(x, training=False)
    assert list(got) == list(expected)
    for key in expected:
        e = np.asarray(expected[key])
        np.testing.assert_allclose(np.asarray(got[key]), e, rtol=1e-4,
                                   atol=1e-4 * max(1.0, np.abs(e).max()), err_msg=key)


def test_absorbed_trunk_has_the_no_bn_structure():
    absorbed = surgery.absorb_batch_norm(models.build_trunk("vgg_tiny"))
    plain = models.build_trunk("vgg_tiny", batch_norm="none")
    assert [layer.name for layer in absorbed.layers] == [layer.name for layer in plain.layers]
    assert [w.shape for w in absorbed.weights] == [w.shape for w in plain.weights]


def test_absorb_batch_norm_errors():
    inp = keras.Input((8, 8, 2))
    x = keras.layers.BatchNormalization(name="bn_in")(inp)
    with pytest.raises(ValueError, match="does not follow a Conv2D/Dense"):
        surgery.absorb_batch_norm(keras.Model(inp, keras.layers.Conv2D(3, 3)(x)))
    c = keras.layers.Conv2D(3, 3, activation="relu", name="c")(inp)
    with pytest.raises(ValueError, match="applies the activation"):
        surgery.absorb_batch_norm(keras.Model(inp, keras.layers.BatchNormalization()(c)))
    c = keras.layers.Conv2D(3, 3, name="c2")(inp)
    outs = [keras.layers.BatchNormalization()(c), keras.layers.ReLU()(c)]
    with pytest.raises(ValueError, match="feeds other layers"):
        surgery.absorb_batch_norm(keras.Model(inp, outs))
    with pytest.raises(TypeError, match="functional"):
        surgery.absorb_batch_norm(np.zeros(3))


# ----------------------------------------------------------------------------------------------
# gray_to_rgb_conv1


def test_gray_to_rgb_kernel():
    kernel = RNG.normal(size=(3, 3, 1, 4)).astype("float32")
    rgb = surgery.gray_to_rgb_conv1(kernel)
    assert rgb.shape == (3, 3, 3, 4) and rgb.dtype == kernel.dtype
    np.testing.assert_allclose(rgb.sum(axis=2, keepdims=True), kernel, rtol=1e-6)
    np.testing.assert_allclose(rgb[:, :, 1], kernel[:, :, 0] / 3, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(kh, kw, 1, out\)"):
        surgery.gray_to_rgb_conv1(np.zeros((3, 3, 3, 4)))


def test_gray_to_rgb_model_equals_gray_model():
    gray_model = models.build_trunk("vgg_tiny", taps=["data", "conv2_1", "fc7"])
    rgb_model = surgery.gray_to_rgb_conv1(gray_model)
    assert rgb_model.input.shape[-1] == 3
    assert rgb_model.get_layer("conv1_1").kernel.shape == (3, 3, 3, 8)
    g = _gray((2, 24, 24, 1))
    a, b = gray_model(g), rgb_model(np.repeat(g, 3, axis=-1))
    for key in ("conv2_1", "fc7"):
        np.testing.assert_allclose(np.asarray(b[key]), np.asarray(a[key]), rtol=1e-4, atol=1e-5)
    # On a colour image the RGB network sees the desaturated (R + G + B) / 3 image.
    rgb = _gray((1, 24, 24, 3), seed=5)
    np.testing.assert_allclose(np.asarray(rgb_model(rgb)["fc7"]),
                               np.asarray(gray_model(rgb.mean(-1, keepdims=True))["fc7"]),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="1-channel model input"):
        surgery.gray_to_rgb_conv1(rgb_model)


def test_leaf_layers_expands_nested_models_in_order():
    inner_in = keras.Input((3,))
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="inner_dense")(inner_in),
                        name="inner")
    x = keras.Input((3,), name="outer_in")
    y = keras.layers.Dense(1, name="outer_dense")(inner(x))
    names = [l.name for l in surgery.leaf_layers(keras.Model(x, y))]
    assert names == ["outer_in", names[1], "inner_dense", "outer_dense"]
    assert "inner" not in names
