"""Tests of tfcolor.models.factory.build_colorizer, the one model factory.

References: parameter counts computed by hand from vgg_tiny's layer widths (tfcolor/models/vgg.py:
8, 16 channels in blocks 1-2, 3x3 kernels) and the head's two dense layers; the tap table of the
paper's VGG-16 (strides 1, 1, 2 for data, conv1_1, conv2_2).
"""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.models import Colorizer, build_colorizer

TAPS = ["data", "conv1_1", "conv2_2"]  # 1 + 8 + 16 = 25 hypercolumn channels in vgg_tiny
# Trunk up to conv2_2 (kernel + bias): conv1_1 9*1*8+8, conv1_2 9*8*8+8, conv2_1 9*8*16+16,
# conv2_2 9*16*16+16.
TRUNK = 80 + 584 + 1168 + 2320
HIDDEN_LAYER = 25 * 8 + 8  # h_fc1: 25 channels -> 8
BN_PER_CONV = 2 * (8 + 8 + 16 + 16)  # two per-channel vectors (gamma/beta or mean/variance)


def _config(**model):
    cfg = config_lib.PretrainConfig()
    cfg.model.arch = "vgg_tiny"
    cfg.model.hidden = 8
    cfg.model.taps = list(TAPS)
    cfg.model.sync_batch_norm = False
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


@pytest.mark.parametrize("batch_norm, kind, trainable, non_trainable", [
        ("none", "hue_chroma", TRUNK + HIDDEN_LAYER + 8 * 64 + 64, 0),
        ("parameter_free", "hue_chroma", TRUNK + HIDDEN_LAYER + 8 * 64 + 64, BN_PER_CONV),
        ("standard", "lab_joint", TRUNK + BN_PER_CONV + HIDDEN_LAYER + 8 * 256 + 256,
         BN_PER_CONV),
        ("none", "lab_regression", TRUNK + HIDDEN_LAYER + 8 * 2 + 2, 0),
])
def test_weights_count_matches_the_hand_count_of_the_configured_network(
        batch_norm, kind, trainable, non_trainable):
    cfg = _config(batch_norm=batch_norm)
    cfg.loss.kind = kind
    model = build_colorizer(cfg)
    model.dense(tf.zeros([1, 16, 16, 1]))  # built: nothing is created lazily on top
    assert _count(model.trainable_weights) == trainable
    assert _count(model.non_trainable_weights) == non_trainable
    assert model.kind == kind


def test_every_model_field_reaches_the_network():
    cfg = _config(taps="conv1_1-conv2_2", dropout=0.25, hidden=6, input_mean=0.5,
                  convention="half_pixel", batch_norm="standard", sync_batch_norm=True)
    model = build_colorizer(cfg)
    assert model.taps == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    assert dict(model.tap_strides) == {"conv1_1": 1, "conv1_2": 1, "conv2_1": 2, "conv2_2": 2}
    assert (model.arch, model.hidden, model.dropout, model.convention) == (
            "vgg_tiny", 6, 0.25, "half_pixel")
    assert model.trunk_options == {"batch_norm": "standard", "input_mean": 0.5,
                                   "sync_batch_norm": True}
    assert model.output_sizes == (32, 32)


def test_fov_adds_the_two_fov_taps_at_2x_and_4x_the_deepest_stride():
    model = build_colorizer(_config(taps=None, fov=True))
    assert model.taps[-3:] == ["fc7", "fov1", "fov2"]
    assert (model.tap_strides["fov1"], model.tap_strides["fov2"]) == (64, 128)


def test_dict_and_dataclass_build_the_same_network():
    cfg = _config()
    a, b = build_colorizer(cfg), build_colorizer(cfg.to_dict())
    assert isinstance(b, Colorizer)
    assert [(w.path, tuple(w.shape)) for w in a.weights] == [
            (w.path, tuple(w.shape)) for w in b.weights]


def _with(section, **values):
    d = _config().to_dict()
    d[section].update(values)
    return d


@pytest.mark.parametrize("config, match", [
        (_with("model", taps=["conv9_9"]), r"model\.taps=\['conv9_9'\] does not fit"),
        (_with("model", taps=[]), r"model\.taps"),
        (_with("model", arch="vgg_huge"), "arch='vgg_huge'"),
        (_with("model", hidden=0), "hidden must be a positive integer"),
        (_with("model", dropout="half"), r"dropout.*'half'"),
        (_with("model", fov="yes"), r"model\.fov must be true or false"),
        (_with("model", batch_norm="none", sync_batch_norm=True), r"^model: sync_batch_norm"),
        (_with("model", width=3), r"unknown model config keys: \['width'\]"),
        (_with("loss", kind="rgb"), "'rgb'"),
        (dict(_config().to_dict(), model="vgg16"), r"\['model'\] are not"),
])
def test_bad_values_raise_a_config_error_naming_the_field(config, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        build_colorizer(config)


def test_neither_config_nor_dict_is_a_type_error():
    with pytest.raises(TypeError, match="PretrainConfig or its dict"):
        build_colorizer("vgg16")


def test_a_colorizer_started_at_a_prior_predicts_it_on_any_input_when_other_weights_are_zero():
    from tfcolor import prior as prior_lib  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(3)
    hue, chroma = (p / p.sum() for p in rng.uniform(0.5, 1.5, size=(2, 32)))
    prior = prior_lib.MarginalPrior("hue_chroma", {"hue": hue, "chroma": chroma})
    model = build_colorizer(_config(), prior=prior)
    fresh = build_colorizer(_config())
    np.testing.assert_allclose(model.head.output_dense.bias.numpy(),
                               np.log(np.concatenate([hue, chroma])), rtol=1e-5)
    assert not np.any(fresh.head.output_dense.bias.numpy())      # the default: zero biases
    for v in model.trainable_variables:
        if v is not model.head.output_dense.bias:
            v.assign(np.zeros(v.shape, v.dtype))
    gray = rng.uniform(size=(2, 16, 16, 1)).astype("f4")
    logits = model.dense(tf.constant(gray)).numpy()
    probs = np.concatenate([tf.nn.softmax(g).numpy() for g in np.split(logits, 2, axis=-1)], -1)
    np.testing.assert_allclose(probs, np.broadcast_to(prior.probabilities(), probs.shape),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="a lab_hist prior cannot start a hue_chroma head"):
        build_colorizer(_config(), prior=prior_lib.MarginalPrior(
            "lab_hist", {"a": hue, "b": chroma}))
