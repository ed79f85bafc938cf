"""Tests for tfcolor.tasks.jigsaw (and its model, tfcolor.models.jigsaw)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import train
from tfcolor.data import embedded_photos
from tfcolor.data import jigsaw as jigsaw_data
from tfcolor.models import jigsaw as jigsaw_model
from tfcolor.tasks import jigsaw as jigsaw_task

needs_two_cpus = pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2,
                                    reason="needs 2 logical CPU devices (tests/conftest.py)")


def _images():
    return (np.random.default_rng(0).uniform(0, 1, (4, 40, 40, 3)) * 255).astype(np.uint8)


def _config(batch_size=2):
    return jigsaw_task.default_data_config(batch_size=batch_size, crop_size=32, min_side=32,
                                           max_side=36)


def _small_model(**kwargs):
    # Two convolutions of vgg_tiny: quick to build, enough to test the plumbing.
    return dict(dict(arch="vgg_tiny", tap="conv1_2", reduce_channels=8, init_stddev=0.1),
                **kwargs)


class _FixedLogits:
    """A stand-in model whose logits are given."""

    def __init__(self, logits):
        self.logits = tf.constant(logits, tf.float32)

    def __call__(self, pieces, training=None):  # pylint: disable=unused-argument
        return self.logits


def test_loss_is_the_softmax_cross_entropy_normalised_by_the_global_batch_by_hand():
    task = jigsaw_task.JigsawTask(_config(), source=_images(), piece_size=12)
    logits = np.zeros((2, 24), np.float32)
    logits[0, 5] = np.log(23.0)   # p(5) = 23 / (23 + 23) = 1/2, and it is the arg-max
    logits[1, :] = np.arange(24)  # p(0) = 1 / sum(e^k)
    batch = {"pieces": tf.zeros([2, 4, 12, 12, 3]), "label": tf.constant([5, 0], tf.int32)}
    loss, terms = task.compute_loss(_FixedLogits(logits), batch, training=False,
                                    global_batch_size=8)
    expected = (np.log(2.0) + np.log(np.exp(np.arange(24.0)).sum())) / 8
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(terms["accuracy"], 1 / 8, rtol=1e-6)  # one right, of 8 images
    assert loss.dtype == tf.float32 and loss.shape == ()


def test_inputs_shapes_and_exact_resume():
    task = jigsaw_task.JigsawTask(_config(), source=_images(), piece_size=12, seed=5)
    ds = task.build_inputs(0)
    task.check_inputs(ds.element_spec)
    assert task.batch_size(ds.element_spec) == 2
    batches = list(ds.take(3).as_numpy_iterator())
    assert batches[0]["pieces"].shape == (2, 4, 12, 12, 3)
    assert batches[0]["label"].shape == (2,)
    np.testing.assert_array_equal(batches[0]["index"], [0, 1])
    # Resumed at the stream position of the third batch: the same crops and puzzles.
    resumed = next(iter(task.build_inputs(4).as_numpy_iterator()))
    for key in ("pieces", "label", "index"):
        np.testing.assert_array_equal(resumed[key], batches[2][key])
    grey = jigsaw_task.JigsawTask(_config(), source=_images(), piece_size=12, color=False)
    assert grey.build_inputs(0).element_spec["pieces"].shape == (2, 4, 12, 12, 1)


def test_one_trunk_sees_every_piece_and_the_head_is_apart():
    task = jigsaw_task.JigsawTask(_config(), source=_images(), piece_size=12,
                                  model_kwargs=_small_model())
    model = task.build_model()
    pieces = tf.random.stateless_uniform([2, 4, 12, 12, 3], (1, 2))
    features = model.features(pieces, training=False).numpy()
    assert features.shape == (2, 4, 8)  # conv1_2 of vgg_tiny: 8 channels, averaged
    # Shared weights: reordering the pieces reorders their features, nothing else.
    order = [2, 0, 3, 1]
    np.testing.assert_allclose(model.features(tf.gather(pieces, order, axis=1),
                                              training=False), features[:, order],
                               rtol=1e-5, atol=1e-6)
    # ... and the head reads them in slot order: the logits change.
    assert not np.allclose(model(tf.gather(pieces, order, axis=1)), model(pieces))
    head = {id(v) for v in task.head_variables(model)}
    assert head == {id(v) for v in model.head.trainable_variables} and len(head) == 4
    assert not head & {id(v) for v in model.trunk.weights}
    # A model on a given trunk uses that trunk's variables (how a multi-task model shares it).
    other = jigsaw_model.JigsawNet(trunk=model.trunk, tap="conv1_2", reduce_channels=None)
    assert {id(v) for v in other.trunk.weights} == {id(v) for v in model.trunk.weights}
    assert other(pieces).shape == (2, 24)
    with pytest.raises(ValueError, match="does not output tap 'fc7'"):
        jigsaw_model.JigsawNet(trunk=model.trunk)
    with pytest.raises(ValueError, match="1-channel trunk"):
        jigsaw_model.JigsawNet(trunk=model.trunk, tap="conv1_2", color=False)


@pytest.mark.parametrize("kwargs, field", [(dict(piece_size=17), "piece_size"),
                                           (dict(piece_size=True), "piece_size"),
                                           (dict(color="yes"), "color"),
                                           (dict(model_kwargs={"color": False}), "color"),
                                           (dict(seed=1.5), "seed"),
                                           (dict(pipeline_options={"start": 4}), "start")])
def test_bad_options_are_named(kwargs, field):
    with pytest.raises(config_lib.ConfigError, match=field) as info:
        jigsaw_task.JigsawTask(_config(), source=_images(), **dict(dict(piece_size=12), **kwargs))
    assert info.value.field == field


def _trainer(task, model_dir, *, strategy="default", steps=1, learning_rate=0.05):
    keras.utils.set_random_seed(0)
    opt = config_lib.OptimizerConfig(learning_rate=learning_rate, lr_drops=[], weight_decay=0.0)
    return train.Trainer(task, strategy=train.make_strategy(strategy), model_dir=str(model_dir),
                         train_steps=steps, optimizer_config=opt, steps_per_loop=steps)


def test_training_on_embedded_photos_lowers_the_loss_of_unseen_puzzles(tmp_path):
    # The puzzles of one embedded photo: the permutation is learnable from the pieces'
    # contents in a few steps. The fixed batch holds other puzzles (seed 99) of the photo.
    # Measured over 6 training seeds (100 steps): 3.9-4.5 before, 0.0-2.4 after (a drop of at
    # least 1.7); a pipeline whose labels did not follow the pieces could not drop below chance.
    photo = embedded_photos()[:1]
    options = dict(cache=True, random_mirror=False)

    def task(seed, batch_size):
        config = jigsaw_task.default_data_config(batch_size=batch_size, crop_size=64,
                                                 min_side=64, max_side=64)
        return jigsaw_task.JigsawTask(config, source=photo, piece_size=28, seed=seed,
                                      pipeline_options=options,
                                      model_kwargs=dict(arch="vgg_tiny", init_stddev=0.1))

    fixed = dict(next(iter(task(99, 32).build_inputs(0))))
    fixed.pop("index")
    training = task(0, 8)
    trainer = _trainer(training, tmp_path, steps=100)

    def loss():  # batch statistics: the moving ones lag behind after 100 steps
        return float(training.compute_loss(trainer.model, fixed, training=True,
                                           global_batch_size=32)[0])

    before = loss()
    trainer.run_steps(100)
    after = loss()
    assert after < before - 1.0 and after < np.log(24.0), (before, after)


@needs_two_cpus
def test_mirrored_step_equals_single_device_step(tmp_path):
    """2 replicas x 2 images == 1 device x 4 images, synchronized batch norm over the pieces."""
    def task():
        return jigsaw_task.JigsawTask(_config(batch_size=4), source=_images(), piece_size=12,
                                      model_kwargs=_small_model(sync_batch_norm=True))

    single = _trainer(task(), tmp_path / "one")
    mirrored = _trainer(task(), tmp_path / "two", strategy="mirrored")
    assert mirrored.strategy.num_replicas_in_sync == 2
    weights = lambda t: [np.array(v) for v in t.model.weights]  # noqa: E731
    start = weights(single)
    for a, b in zip(start, weights(mirrored)):
        np.testing.assert_array_equal(a, b)
    l1, l2 = single.run_steps(1), mirrored.run_steps(1)
    np.testing.assert_allclose(l1["loss"], l2["loss"], rtol=1e-5)
    moved = False
    for a, b, s in zip(weights(single), weights(mirrored), start):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        moved = moved or not np.allclose(a, s)
    assert moved


def test_preview_boards_show_the_input_the_prediction_and_the_truth():
    task = jigsaw_task.JigsawTask(_config(), source=_images(), piece_size=12)
    batch = task.preview_batch()
    assert batch["pieces"].shape == (4, 4, 12, 12, 3)  # validation_images = 4
    always_unshuffled = _FixedLogits(np.eye(24, dtype=np.float32)[[0, 0, 0, 0]])
    grid = np.asarray(task.preview(always_unshuffled))
    assert grid.shape == (4 * 26 - 2, 3 * 26 - 2, 3)  # 24-pixel boards, 2-pixel white gaps
    shown, predicted, truth = (grid[:24, i * 26:i * 26 + 24] for i in range(3))
    pieces, label = batch["pieces"][0], batch["label"][0]
    np.testing.assert_array_equal(shown[:12, 12:], pieces[1])  # slot 1: top right
    np.testing.assert_array_equal(predicted, shown)  # predicted: the identity permutation
    cells = jigsaw_data.reassemble(pieces, label)
    np.testing.assert_array_equal(truth[12:, :12], cells[2])  # cell 2: bottom left
    no_images = jigsaw_task.JigsawTask(
            jigsaw_task.default_data_config(crop_size=32, validation_images=0),
            source=_images(), piece_size=12)
    assert no_images.preview(always_unshuffled) is None
