"""Tests of tfcolor.prior: the marginal-prior baseline (the training set's mean target histogram)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import colorize, prior as prior_lib
from tfcolor.data import PretrainDataConfig

SMALL = dict(batch_size=2, crop_size=32, num_centers=8, min_short_side=32, max_short_side=40)


def _solid(rgb, size=48):
    return np.full((size, size, 3), rgb, np.uint8)


def test_prior_of_solid_colours_is_their_hand_computed_histogram():
    # Red: hue 0 -> bin 0, chroma 1 -> bin 31. Blue: hue 240/360 = 2/3 -> bin floor(32 * 2/3)
    # = 21, chroma 1 -> bin 31. Grey: chroma 0 -> bin 0 and hue 0 (no chroma) -> bin 0. Every
    # image gives the same number of points, so each colour has weight 1/3.
    images = np.stack([_solid((255, 0, 0)), _solid((0, 0, 255)), _solid((128, 128, 128))])
    p = prior_lib.marginal_prior(images, PretrainDataConfig(**SMALL))
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[0], hue[21] = 2 / 3, 1 / 3
    chroma[31], chroma[0] = 2 / 3, 1 / 3
    np.testing.assert_allclose(p.groups["hue"], hue, atol=1e-6)
    np.testing.assert_allclose(p.groups["chroma"], chroma, atol=1e-6)
    assert p.images == 3 and p.points == 3 * 8 and p.kind == "hue_chroma"


def test_max_images_keeps_the_first_images_and_lab_groups_are_distributions():
    images = np.stack([_solid((255, 0, 0)), _solid((0, 0, 255)), _solid((0, 255, 0))])
    first = prior_lib.marginal_prior(images, PretrainDataConfig(**SMALL), max_images=1)
    assert first.images == 1 and first.groups["hue"][0] == pytest.approx(1.0)
    lab = prior_lib.marginal_prior(images, PretrainDataConfig(target_kind="lab_hist", **SMALL))
    assert sorted(lab.groups) == ["a", "b"]
    for values in lab.groups.values():
        assert values.shape == (32,) and values.sum() == pytest.approx(1.0)
    # CIE Lab of the sRGB primaries: red (a, b) = (80, 67), green (-86, 83), blue (79, -108),
    # so two thirds of the mass of each marginal lies above 0.
    centres = colorize.bins_lib.get("lab_a").centers
    assert (lab.groups["a"] * (centres > 0)).sum() == pytest.approx(2 / 3, abs=1e-6)
    assert (lab.groups["b"] * (centres > 0)).sum() == pytest.approx(2 / 3, abs=1e-6)
    reg = prior_lib.marginal_prior(images, PretrainDataConfig(target_kind="lab_regression",
                                                              **SMALL))
    assert reg.groups["ab"].shape == (2,)
    with pytest.raises(ValueError, match="max_images"):
        prior_lib.marginal_prior(images, PretrainDataConfig(**SMALL), max_images=0)


def test_prior_source_is_constant_and_decodes_like_a_model():
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[0], chroma[16] = 1.0, 1.0          # always red, chroma ~0.52
    p = prior_lib.MarginalPrior("hue_chroma", {"hue": hue, "chroma": chroma})
    src = p.source(grid_factor=4)
    grid = src(tf.zeros([2, 10, 13, 1]))
    assert grid.shape == (2, 3, 4, 64)
    np.testing.assert_allclose(grid.numpy(), np.broadcast_to(p.probabilities(), (2, 3, 4, 64)))
    image = np.full((20, 24, 3), 0.5, np.float32)
    rgb = colorize.colorize_image(src, image, colorize.ColorizeOptions())["rgb"].numpy()
    np.testing.assert_allclose(rgb.mean(-1), 0.5, atol=1e-5)   # the input lightness is kept
    assert np.all(rgb[..., 0] > rgb[..., 1] + 0.2)              # red everywhere
    np.testing.assert_allclose(rgb, np.broadcast_to(rgb[0, 0], rgb.shape), atol=1e-5)
    with pytest.raises(ValueError, match="grid_factor"):
        p.source(grid_factor=0)


def test_round_trip_and_validation_of_the_json_form():
    p = prior_lib.MarginalPrior("lab_joint", {"ab": np.full(256, 1 / 256)}, points=5, images=2,
                                origin="x")
    q = prior_lib.MarginalPrior.from_dict(p.to_dict())
    assert q.kind == "lab_joint" and q.points == 5 and q.images == 2 and q.origin == "x"
    np.testing.assert_allclose(q.groups["ab"], p.groups["ab"])
    with pytest.raises(ValueError, match="kind"):
        prior_lib.MarginalPrior.from_dict({"kind": "rgb", "groups": {}})
    with pytest.raises(ValueError, match="groups"):
        prior_lib.MarginalPrior.from_dict({"kind": "hue_chroma", "groups": {"hue": [1.0]}})
    with pytest.raises(ValueError, match="32 finite"):
        prior_lib.MarginalPrior.from_dict(
                {"kind": "hue_chroma", "groups": {"hue": [1.0] * 31, "chroma": [0.0] * 32}})


def test_histogram_kl_of_a_uniform_prior_is_log_k_per_group():
    uniform = prior_lib.MarginalPrior("hue_chroma", {"hue": np.full(32, 1 / 32),
                                                     "chroma": np.full(32, 1 / 32)})
    one_hot = np.zeros((3, 5, 66), np.float32)
    one_hot[..., 4] = 1.0        # hue bin 4
    one_hot[..., 32 + 7] = 1.0   # chroma bin 7
    assert prior_lib.histogram_kl(uniform, one_hot) == pytest.approx(2 * math.log(32), rel=1e-5)


def test_data_config_from_a_run_config():
    from tfcolor import config
    cfg = config.PretrainConfig()
    cfg.data.data = "/some/folder"
    cfg.data.crop_size, cfg.data.points = 128, 64
    cfg.loss.kind, cfg.loss.window = "lab_hist", 5
    cfg.train.seed = 7
    source, data_config = prior_lib.data_config_from_run_config(cfg.to_dict())
    assert source == "/some/folder"
    assert (data_config.crop_size, data_config.num_centers) == (128, 64)
    assert (data_config.target_kind, data_config.target_window, data_config.seed) == (
            "lab_hist", 5, 7)
