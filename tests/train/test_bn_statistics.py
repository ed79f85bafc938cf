"""Tests of tfcolor.train.bn_statistics: the untrained control is the step-0 network with the
mean batch statistics of the pipeline's first batches, loads like a colorization run, and folds.

(``tests/reproduce/test_runner.py`` checks the weights bit for bit against a real pretraining
run's step 0.)"""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as cfg
from tfcolor import run_dir
from tfcolor.config import ConfigError
from tfcolor.downstream import initialization
from tfcolor.models import factory
from tfcolor.tasks import colorization
from tfcolor.train import bn_statistics
from tfcolor.train import experiment
from tfcolor.train import heldout
from tfcolor.train import strategy as strategy_lib

STEPS = 3
SEED = 5


def _config(model_dir, heldout=True, **model):
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv2_2", "conv3_3"), hidden=16,
                              **model),
        data=cfg.DataConfig(data="embedded", batch_size=4, crop_size=32, points=8,
                            validation_images=0,
                            heldout_data="embedded:validation" if heldout else None,
                            heldout_images=4),
        loss=cfg.LossConfig(kind="hue_chroma"),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=100, image_every=0, export=False,
                              deterministic=True, seed=SEED)).validate()


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("untrained"))
    config = _config(model_dir)
    record = bn_statistics.estimate(config, STEPS)
    return config, record


def _bn_inputs(model, gray):
    """The inputs of every BN layer of the trunk in training mode (batch statistics)."""
    trunk = model.trunk
    layers = bn_statistics.batch_norm_layers(trunk)
    probe = keras.Model(trunk.input, [layer.input for layer in layers])
    return [layer.name for layer in layers], probe(gray, training=True)


def test_only_the_bn_statistics_change_and_they_are_the_mean_batch_statistics(control):
    config, record = control
    model, kind = run_dir.load_model(config.train.model_dir)
    assert kind == "hue_chroma" and record["checkpoint"] == "ckpt-0"
    experiment.seed_everything(SEED, True)
    fresh = factory.build_colorizer(config)
    # Every trainable weight is the fresh network's at the same seed, bit for bit.
    assert [v.path for v in model.trainable_variables] == \
        [v.path for v in fresh.trainable_variables]
    for a, b in zip(model.trainable_variables, fresh.trainable_variables):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    # The BN statistics, computed here in float64 from the layers' inputs on the same batches.
    dataset, _ = colorization.build_dataset(config, include_index=True)
    means, variances = {}, {}
    for batch in dataset.take(STEPS):
        names, inputs = _bn_inputs(fresh, batch["gray"])
        for name, x in zip(names, inputs):
            x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
            means.setdefault(name, []).append(x.mean(axis=0))
            variances.setdefault(name, []).append(x.var(axis=0))
    assert sorted(means) == sorted(record["layers"]) and len(means) >= 3
    layers = {layer.name: layer for layer in bn_statistics.batch_norm_layers(model)}
    # Tolerance: each batch moment is a float32 sum of 4*32*32 = 4096 terms (conv1_2; fewer
    # deeper), bounded by n*u = 4096 * 6e-8 = 2.4e-4 relative to the sum of |terms| (for the
    # variance, of the squares: E[x^2] <= 2 (var + mean^2) at this scale), plus the activations'
    # own rounding through three layers (~1e-6). 1e-3 of the channel's scale covers it.
    for name in means:
        want_mean = np.mean(means[name], axis=0)
        want_var = np.mean(variances[name], axis=0)
        scale = np.sqrt(want_var + want_mean ** 2)
        got_mean = layers[name].moving_mean.numpy()
        got_var = layers[name].moving_variance.numpy()
        np.testing.assert_allclose(got_mean, want_mean, rtol=0, atol=1e-3 * scale.max())
        np.testing.assert_allclose(got_var, want_var, rtol=1e-3, atol=1e-3 * scale.max() ** 2)
        # The tolerance tells the estimate from the last batch's statistics (momentum 0 alone)
        # and from the initial values (no pass at all).
        assert not np.allclose(means[name][-1], want_mean, rtol=0, atol=1e-3 * scale.max())
        assert not np.allclose(np.ones_like(want_var), want_var, rtol=1e-3,
                               atol=1e-3 * scale.max() ** 2)


def test_the_losses_and_heldout_loss_are_recorded(control):
    config, record = control
    assert record["statistics_steps"] == STEPS and record["images"] == STEPS * 4
    assert record["replicas"] == 1 and set(record["losses"]) == {"loss", "hue", "chroma"}
    assert record["losses"]["loss"] == pytest.approx(record["losses"]["hue"]
                                                     + record["losses"]["chroma"], rel=1e-5)
    assert bn_statistics.read_record(config.train.model_dir) == record
    curve = [(s, v) for s, v, _ in heldout.read_curve(config.train.model_dir)]
    assert curve == [(0, pytest.approx(record["heldout_loss"]))]
    assert run_dir.read_config(config.train.model_dir, as_dict=True) == \
        json.loads(json.dumps(config.to_dict()))


def test_the_control_folds_like_a_pretrained_trunk_and_computes_the_same(control):
    config, _ = control
    init = config.train.model_dir
    folded, arch = initialization.load_trunk(init, arch="vgg_tiny", absorb_bn="auto")
    kept, _ = initialization.load_trunk(init, arch="vgg_tiny", absorb_bn=False)
    assert arch == "vgg_tiny"
    assert not bn_statistics.batch_norm_layers(folded)
    assert len(bn_statistics.batch_norm_layers(kept)) >= 3
    gray = tf.random.stateless_uniform((2, 40, 40, 1), seed=(1, 2))
    a, b = folded(gray, training=False), kept(gray, training=False)
    assert set(a) == set(b)
    for name in a:  # folding rescales each kernel once: float32 rounding per layer
        x, y = np.asarray(a[name]), np.asarray(b[name])
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())


def _two_replicas():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (tests/conftest.py)")
    return strategy_lib.make_strategy("mirrored")


def _stats(model_dir):
    model, _ = run_dir.load_model(model_dir)
    return model, {layer.name: (layer.moving_mean.numpy(), layer.moving_variance.numpy())
                   for layer in bn_statistics.batch_norm_layers(model)}


def test_two_replicas_with_sync_bn_give_the_one_device_statistics(control, tmp_path):
    strategy = _two_replicas()
    one, want = _stats(control[0].train.model_dir)
    mirrored = _config(str(tmp_path / "sync"), heldout=False)  # held-out photos: no weights
    assert mirrored.model.sync_batch_norm
    record = bn_statistics.estimate(mirrored, STEPS, strategy=strategy)
    assert record["replicas"] == 2
    two, got = _stats(mirrored.train.model_dir)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    for name, (mean, var) in want.items():  # the global batch's statistics: as one device's
        scale = np.sqrt(var + mean ** 2).max()
        np.testing.assert_allclose(got[name][0], mean, rtol=0, atol=1e-3 * scale)
        np.testing.assert_allclose(got[name][1], var, rtol=1e-3, atol=1e-3 * scale ** 2)


def test_two_replicas_with_per_replica_bn_average_the_replicas(control, tmp_path):
    """Each replica normalises its half batch: the mean of the replicas' means is the global
    mean, and (law of total variance, equal halves) the mean of their variances is at most the
    global variance, below it where the halves differ. One replica's copy alone would fail the
    first check."""
    strategy = _two_replicas()
    config, _ = control
    _, want = _stats(config.train.model_dir)
    local = _config(str(tmp_path / "local"), heldout=False, sync_batch_norm=False)
    bn_statistics.estimate(local, STEPS, strategy=strategy)
    _, got = _stats(local.train.model_dir)
    # The first BN layer sees the same input either way (the convolution before it does not
    # depend on normalisation): its statistics are comparable exactly.
    first = "conv1_1_bn"
    mean, var = want[first]
    scale = np.sqrt(var + mean ** 2).max()
    np.testing.assert_allclose(got[first][0], mean, rtol=0, atol=1e-3 * scale)
    assert np.all(got[first][1] <= var + 1e-3 * scale ** 2)
    assert np.any(got[first][1] < var - 1e-3 * scale ** 2)


def test_bad_input_is_refused_in_one_line(control, tmp_path):
    config, _ = control
    with pytest.raises(ConfigError, match="statistics_steps must be a positive integer"):
        bn_statistics.estimate(_config(str(tmp_path / "a")), 0)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        bn_statistics.estimate(config, STEPS)
    multi = _config(str(tmp_path / "b"))
    multi.multitask.tasks = ("colorization", "jigsaw")
    with pytest.raises(ConfigError, match="single-task colorizer"):
        bn_statistics.estimate(multi, STEPS)
    with pytest.raises(ConfigError, match="prior_bias"):
        bn_statistics.estimate(_config(str(tmp_path / "c"), prior_bias=True), STEPS)
