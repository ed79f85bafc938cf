"""Tests for tfcolor.tasks.video: loss, inputs and resume, training, shared trunk, preview."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import train
from tfcolor.data import video as video_data
from tfcolor.models import jigsaw as jigsaw_model
from tfcolor.models import multitask
from tfcolor.tasks import video as video_task

EDGES = video_data.tanh_edges(32, scale=4.0)  # about linear up to 4 pixels
MOVING = np.concatenate([[0.5], 100.0 + np.arange(30)])  # bin 0: still; bin 1: moving


def _records(folder, clips=3, frames=8, size=48, stride=2, max_speed=2.0):
    """Synthetic clips with exact flow: textured squares moving over a still background."""
    for c in range(clips):
        images, flow = video_data.synthetic_clip(frames, size, size, seed=c, object_size=18,
                                                 max_speed=max_speed)
        video_data.write_records(os.path.join(folder, f"c{c}.tfrecord"), [
                video_data.encode_example(f, fl, clip=f"c{c}", frame_index=t, stride=stride)
                for t, f, fl in video_data.clip_examples(images, stride=stride, frame_step=1,
                                                         flows=lambda t: flow(t, stride))])
    return str(folder)


def _config(**fields):
    return video_task.default_data_config(**dict(dict(batch_size=2, crop_size=32, min_side=48,
                                                      max_side=48, points=8), **fields))


def _model(**kwargs):
    return dict(dict(arch="vgg_tiny", taps=["conv1_2", "conv2_2", "conv3_3"], hidden=32,
                     dropout=0.0), **kwargs)


class _FixedLogits:
    def __init__(self, logits):
        self.logits = tf.constant(logits, tf.float32)

    def pairs(self, frame, first, second, training=None):  # pylint: disable=unused-argument
        return self.logits


def test_loss_is_the_cross_entropy_per_pair_over_the_global_pairs_by_hand(tmp_path):
    task = video_task.VideoTask(_config(), source=_records(tmp_path, clips=1),
                                bin_edges=EDGES)
    logits = np.zeros((1, 2, 32), np.float32)
    logits[0, 0, 3] = np.log(31.0)   # p(3) = 31 / 62 = 1/2, the arg-max
    batch = {"frame": tf.zeros([1, 8, 8, 3]), "first": tf.zeros([1, 2, 2]),
             "second": tf.zeros([1, 2, 2]), "label": tf.constant([[3, 0]], tf.int32)}
    loss, terms = task.compute_loss(_FixedLogits(logits), batch, training=False,
                                    global_batch_size=4)  # 4 images x 2 pairs
    np.testing.assert_allclose(loss, (np.log(2.0) + np.log(32.0)) / 8, rtol=1e-6)
    np.testing.assert_allclose(terms["accuracy"], 2 / 8, rtol=1e-6)  # argmax of ties: bin 0


def test_inputs_shapes_and_exact_resume(tmp_path):
    task = video_task.VideoTask(_config(), source=_records(tmp_path), bin_edges=EDGES, seed=4)
    ds = task.build_inputs(0)
    task.check_inputs(ds.element_spec)
    assert task.batch_size(ds.element_spec) == 2
    batches = list(ds.take(3).as_numpy_iterator())
    assert batches[0]["frame"].shape == (2, 32, 32, 3) and batches[0]["label"].shape == (2, 8)
    np.testing.assert_array_equal(batches[0]["index"], [0, 1])
    resumed = next(iter(task.build_inputs(4).as_numpy_iterator()))
    for key in batches[2]:
        np.testing.assert_array_equal(resumed[key], batches[2][key])
    with pytest.raises(ValueError, match="lack"):
        task.check_inputs({"frame": ds.element_spec["frame"]})


def test_training_learns_relative_motion_from_appearance(tmp_path):
    # Squares of a fine saturated texture move over a still coarse background: a pair's
    # relative flow is zero inside one layer and the square's speed (2 to 4 pixels) across
    # layers, so with a bin edge at half a pixel (bin 0: same layer; bin 1: across layers;
    # the other 30 bins empty) the bin follows from what the two locations look like. A model
    # that ignores the frame predicts one distribution for every pair, and its loss on a batch
    # is at least the entropy of that batch's labels; trained, the network must end well below
    # it on other crops and pairs of the same clips.
    folder = _records(tmp_path)

    def task(seed, batch_size):
        return video_task.VideoTask(_config(batch_size=batch_size, points=32), source=folder,
                                    bin_edges=MOVING, seed=seed,
                                    pipeline_options=dict(cache=True), model_kwargs=_model())

    fixed = dict(next(iter(task(99, 16).build_inputs(0))))
    fixed.pop("index")
    labels = fixed["label"].numpy().ravel()
    p = np.bincount(labels, minlength=32) / labels.size
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    training = task(0, 8)
    keras.utils.set_random_seed(0)
    opt = config_lib.OptimizerConfig(learning_rate=0.1, lr_drops=[], weight_decay=0.0)
    trainer = train.Trainer(training, strategy=train.make_strategy("default"),
                            model_dir=str(tmp_path / "run"), train_steps=150,
                            optimizer_config=opt, steps_per_loop=150)

    def loss():
        return float(training.compute_loss(trainer.model, fixed, training=False,
                                           global_batch_size=16)[0])

    before = loss()
    trainer.run_steps(150)
    after = loss()
    assert before > np.log(32.0) - 0.5, before  # starts near chance, log 32
    # Measured here: 3.47 -> 0.29 with a label entropy of 0.58 (labels shuffled among the
    # pairs of each batch, the same training ends at 0.60).
    assert after < entropy - 0.15, (before, after, entropy)


def test_model_on_a_shared_trunk_shares_its_variables_with_another_task(tmp_path):
    shared = multitask.build_shared_trunk("vgg_tiny")
    task = video_task.VideoTask(_config(), source=_records(tmp_path, clips=1), bin_edges=EDGES,
                                model_kwargs=dict(taps=["conv1_2", "fc7"], hidden=8))
    video_net = task.build_model_on(shared)
    jigsaw_net = jigsaw_model.JigsawNet(trunk=shared.model, tap="fc7", reduce_channels=8)
    both = multitask.MultiTaskModel(shared, {"video": video_net, "jigsaw": jigsaw_net})
    trunk_ids = {id(v) for v in shared.model.trainable_variables}
    assert trunk_ids <= {id(v) for v in video_net.trainable_variables}
    assert trunk_ids <= {id(v) for v in jigsaw_net.trainable_variables}
    assert {id(v) for v in both.head_variables("video")} == {
            id(v) for v in task.head_variables(video_net)}
    # A step on the video loss moves the trunk the jigsaw model reads.
    batch = dict(next(iter(task.build_inputs(0))))
    batch.pop("index")
    pieces = tf.random.stateless_uniform([1, 4, 16, 16, 3], (1, 2))
    before = jigsaw_net(pieces).numpy()
    with tf.GradientTape() as tape:
        loss, _ = task.compute_loss(video_net, batch, training=True, global_batch_size=2)
    variables = shared.model.trainable_variables
    grads = tape.gradient(loss, variables)
    assert all(g is not None for g in grads[:2])
    keras.optimizers.SGD(1.0).apply_gradients(
            [(g, v) for g, v in zip(grads, variables) if g is not None])
    assert not np.allclose(jigsaw_net(pieces).numpy(), before)


@pytest.mark.parametrize("kwargs, field", [(dict(border="wrap"), "border"),
                                           (dict(bins=1), "bins"),
                                           (dict(bin_edges=[0.1, 0.2]), "bin_edges"),
                                           (dict(model_kwargs={"bins": 8}), "bins"),
                                           (dict(offset_stddev=-1), "offset_stddev"),
                                           (dict(seed="1"), "seed"),
                                           (dict(pipeline_options={"start": 4}), "start")])
def test_bad_options_are_named(kwargs, field):
    with pytest.raises(config_lib.ConfigError, match=field) as info:
        video_task.VideoTask(_config(), source="unused", **kwargs)
    assert info.value.field == field


def test_preview_shows_frame_flow_and_bins(tmp_path):
    task = video_task.VideoTask(_config(validation_images=2), source=_records(tmp_path),
                                bin_edges=EDGES, model_kwargs=_model())
    grid = np.asarray(task.preview(task.build_model()))
    assert grid.shape == (2 * 34 - 2, 4 * 34 - 2, 3)  # 32-pixel tiles, 2-pixel gaps
    assert np.all(np.isfinite(grid)) and grid.min() >= 0 and grid.max() <= 1
    colours = video_task.flow_to_rgb(np.array([[[[0.0, 1.0], [0.0, 0.0]]]]))
    np.testing.assert_allclose(colours[0, 0, 1], [1, 1, 1])  # no motion: white
    assert video_task.VideoTask(_config(validation_images=0), source="unused").preview(
            None) is None
