"""Tests of tfcolor.prior: the marginal-prior baseline (the training set's mean target histogram),
and the "learns" tests: a tiny colorizer overfits one photo and beats the prior on held-out photos."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import bins, predictors, prior as prior_lib
from tfcolor.config import DataConfig, LossConfig

SMALL = dict(batch_size=2, crop_size=32, points=8, min_side=32, max_side=40)


def _solid(rgb, size=48):
    return np.full((size, size, 3), rgb, np.uint8)


def test_prior_of_solid_colours_is_their_hand_computed_histogram():
    # Red: hue 0 -> bin 0, chroma 1 -> bin 31. Blue: hue 240/360 = 2/3 -> bin floor(32 * 2/3)
    # = 21, chroma 1 -> bin 31. Grey: chroma 0 -> bin 0 and hue 0 (no chroma) -> bin 0. Every
    # image gives the same number of points, so each colour has weight 1/3.
    images = np.stack([_solid((255, 0, 0)), _solid((0, 0, 255)), _solid((128, 128, 128))])
    p = prior_lib.marginal_prior(images, DataConfig(**SMALL))
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[0], hue[21] = 2 / 3, 1 / 3
    chroma[31], chroma[0] = 2 / 3, 1 / 3
    np.testing.assert_allclose(p.groups["hue"], hue, atol=1e-6)
    np.testing.assert_allclose(p.groups["chroma"], chroma, atol=1e-6)
    assert p.images == 3 and p.points == 3 * 8 and p.kind == "hue_chroma"


def test_max_images_takes_a_seeded_sample_and_lab_groups_are_distributions():
    images = np.stack([_solid((255, 0, 0)), _solid((0, 0, 255)), _solid((0, 255, 0))])
    first = prior_lib.marginal_prior(images, DataConfig(**SMALL), max_images=1)
    again = prior_lib.marginal_prior(images, DataConfig(**SMALL), max_images=1)
    assert first.images == 1 and first.points == 8
    # One solid image: a one-hot hue at red (bin 0), green (bin 10) or blue (bin 21).
    assert np.argmax(first.groups["hue"]) in (0, 10, 21) and first.groups["hue"].max() == 1.0
    np.testing.assert_array_equal(first.groups["hue"], again.groups["hue"])   # seeded
    lab = prior_lib.marginal_prior(images, DataConfig(**SMALL), LossConfig(kind="lab_hist"))
    assert sorted(lab.groups) == ["a", "b"]
    for values in lab.groups.values():
        assert values.shape == (32,) and values.sum() == pytest.approx(1.0)
    # CIE Lab of the sRGB primaries: red (a, b) = (80, 67), green (-86, 83), blue (79, -108),
    # so two thirds of the mass of each marginal lies above 0.
    centres = bins.get("lab_a").centers
    assert (lab.groups["a"] * (centres > 0)).sum() == pytest.approx(2 / 3, abs=1e-6)
    assert (lab.groups["b"] * (centres > 0)).sum() == pytest.approx(2 / 3, abs=1e-6)
    reg = prior_lib.marginal_prior(images, DataConfig(**SMALL),
                                   LossConfig(kind="lab_regression"))
    assert reg.groups["ab"].shape == (2,)
    with pytest.raises(ValueError, match="max_images"):
        prior_lib.marginal_prior(images, DataConfig(**SMALL), max_images=0)


def test_prior_predictor_is_constant_and_reads_out_like_a_model():
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[0], chroma[16] = 1.0, 1.0          # always red, chroma ~0.52
    p = prior_lib.MarginalPrior("hue_chroma", {"hue": hue, "chroma": chroma})
    src = p.predictor(grid_factor=4)
    assert isinstance(src, predictors.PriorPredictor) and src.from_logits is False
    grid = src(tf.zeros([2, 10, 13, 1]))
    assert grid.shape == (2, 3, 4, 64)
    np.testing.assert_allclose(grid.numpy(), np.broadcast_to(p.probabilities(), (2, 3, 4, 64)))
    image = np.full((20, 24, 3), 0.5, np.float32)
    rgb = predictors.colorize_image(src, image, predictors.ColorizeOptions())["rgb"].numpy()
    np.testing.assert_allclose(rgb.mean(-1), 0.5, atol=1e-5)   # the input lightness is kept
    assert np.all(rgb[..., 0] > rgb[..., 1] + 0.2)              # red everywhere
    np.testing.assert_allclose(rgb, np.broadcast_to(rgb[0, 0], rgb.shape), atol=1e-5)
    with pytest.raises(ValueError, match="grid_factor"):
        p.predictor(grid_factor=0)


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
    source, data_config, loss_config, options = prior_lib.data_config_from_run_config(
            cfg.to_dict())
    assert source == "/some/folder"
    assert (data_config.crop_size, data_config.points) == (128, 64)
    assert (loss_config.kind, loss_config.window, options["seed"]) == ("lab_hist", 5, 7)


# ------------------------------------------------------------------------------------------------
# The colorizer learns: it overfits one photo, and after a short run on the shipped train photos
# it beats the marginal prior (the train photos' mean histogram) on the held-out shipped photos.
#
# Split: tfcolor.data.embedded's own split by scene, 41 "train" / 8 "validation" photos (the
# MANIFEST.csv column). Model and recipe, chosen from learning curves measured on seeds 0-2:
# vgg_tiny with the conv1_1-conv3_3 hypercolumn, a 32-wide head, the hue/chroma loss, 96-pixel
# crops, 32 points, batch 8, SGD lr 0.01 dropped x0.1 at 60% of the run. KL is
# KL(target || prediction) per group, averaged over fixed held-out crops and centres; the mean
# histogram is the best constant predictor of exactly this quantity, so it is the strictest
# input-blind baseline. TFCOLOR_LEARN_SEED / TFCOLOR_LEARN_STEPS rerun the check at other seeds.
# ------------------------------------------------------------------------------------------------

LEARN_STEPS = int(os.environ.get("TFCOLOR_LEARN_STEPS", "200"))
LEARN_SEED = int(os.environ.get("TFCOLOR_LEARN_SEED", "0"))
_LEARN_DATA = dict(batch_size=8, crop_size=96, points=32)


@pytest.fixture
def deterministic_ops():
    """TF op determinism for one test, switched off again afterwards."""
    from tensorflow.python.framework import config as tf_config
    was = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    yield
    if not was:
        tf_config.disable_op_determinism()


def _learning_trainer(files, seed, steps, model_dir):
    import keras
    from tfcolor import config, data, losses, train
    from tfcolor.models import Colorizer
    from tfcolor.tasks.colorization import ColorizationTask
    keras.utils.set_random_seed(seed)
    dataset = data.pretrain_dataset(DataConfig(targets_on_device=False, **_LEARN_DATA),
                                    source=files, seed=seed, cache=True, deterministic=True)
    task = ColorizationTask(
            model_fn=lambda: Colorizer("vgg_tiny", taps="conv1_1-conv3_3", kind="hue_chroma",
                                       hidden=32, dropout=0.0, trunk_options={"bn_momentum": 0.9}),
            loss_fn=losses.HueChromaLoss(), dataset=dataset)
    return train.Trainer(
            task, strategy=tf.distribute.get_strategy(), model_dir=str(model_dir),
            train_steps=steps, steps_per_loop=steps, checkpoint_every=10 ** 6,
            summary_every=10 ** 6, handle_sigterm=False,
            optimizer_config=config.OptimizerConfig(learning_rate=0.01, lr_drops=(0.6,)))


def _fixed_batches(files, repeats):
    """Fixed crops and centres (seed 1234, no mirror) of ``files`` for measuring the KL."""
    from tfcolor import data
    cfg = DataConfig(batch_size=8, crop_size=96, points=64, targets_on_device=False)
    return list(data.pretrain_dataset(cfg, source=list(files) * repeats, seed=1234,
                                      shuffle=False, repeat=False, drop_remainder=False,
                                      deterministic=True, random_mirror=False))


def _kl(batches, predict, from_logits):
    """(hue + chroma KL, chroma KL, hue KL): means over the points of the batches."""
    from tfcolor import losses
    y = tf.concat([b["targets"] for b in batches], 0)
    q = tf.concat([predict(b) for b in batches], 0)
    hue = float(tf.reduce_mean(losses.kl_divergence(y[..., :32], q[..., :32], from_logits)))
    chroma = float(tf.reduce_mean(losses.kl_divergence(y[..., 32:64], q[..., 32:], from_logits)))
    return hue + chroma, chroma, hue


def _model_predict(model):
    return lambda b: model.sparse(b["gray"], b["centers"], training=False)


def test_tiny_colorizer_overfits_one_photo(tmp_path, deterministic_ops):
    from tfcolor.data import embedded
    photo = embedded.embedded_photos("train")[:1]
    trainer = _learning_trainer(photo, LEARN_SEED, 100, tmp_path)
    held_in = _fixed_batches(photo, 2)
    start = _kl(held_in, _model_predict(trainer.model), True)[0]
    trainer.run_steps(100)
    end = _kl(held_in, _model_predict(trainer.model), True)[0]
    print(f"held-in KL: start {start:.3f}, after 100 steps {end:.3f} ({end / start:.2f} x)")
    assert end < 0.5 * start   # measured 0.23-0.25 x on seeds 0-2


@pytest.mark.slow  # a training run and held-out evaluation (about 15-25 s); the overfitting
# check against the prior stays in the default run
def test_tiny_colorizer_beats_the_marginal_prior_on_held_out_photos(tmp_path, deterministic_ops):
    """Chroma KL on held-out photos: the model beats the prior by a margin (measured 0.12-0.18
    nats on seeds 0-2). The hue group is not learned in so short a run (the model's hue KL stays
    0.01-0.12 nats *above* the prior's), so the hue + chroma total is only near parity (model
    better by 0.02-0.11 nats at 200 steps; -0.004 to 0.13 at 300: not robust across seeds, so
    not evidence) and is printed, not asserted."""
    from tfcolor.data import embedded
    train, held_out = embedded.embedded_photos("train"), embedded.embedded_photos("validation")
    prior = prior_lib.marginal_prior(train, DataConfig(**_LEARN_DATA), seed=LEARN_SEED)
    batches = _fixed_batches(held_out, 3)
    vector = tf.constant(prior.probabilities())
    prior_kl = _kl(batches, lambda b: tf.broadcast_to(vector, [*b["targets"].shape[:2], 64]),
                   False)
    trainer = _learning_trainer(train, LEARN_SEED, LEARN_STEPS, tmp_path)
    before = _kl(batches, _model_predict(trainer.model), True)
    trainer.run_steps(LEARN_STEPS)
    after = _kl(batches, _model_predict(trainer.model), True)
    print("held-out KL (hue + chroma, chroma, hue): prior " + " ".join(f"{v:.3f}" for v in prior_kl)
          + "; model before " + " ".join(f"{v:.3f}" for v in before)
          + f"; after {LEARN_STEPS} steps " + " ".join(f"{v:.3f}" for v in after))
    assert before[0] > prior_kl[0] and before[1] > prior_kl[1]   # untrained: worse than the prior
    assert after[1] < prior_kl[1] - 0.05                         # trained: better on chroma
