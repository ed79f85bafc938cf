"""Tests of tfcolor.tasks.downstream: fine-tuning objectives as Tasks (losses, normalisation,
batches, errors), against hand-computed values and Keras' own losses."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.downstream import datasets, initialization
from tfcolor.tasks import base
from tfcolor.tasks import downstream as tasks


# -- per-unit losses --------------------------------------------------------------------------

def test_softmax_loss_matches_keras_and_ignored_labels_cost_nothing():
    logits = tf.constant([[[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]])
    labels = tf.constant([[1, 255]])  # the second point is ignored (IGNORE_LABEL)
    loss = tasks.softmax_cross_entropy(labels, logits).numpy()
    y = tf.constant([[0.0, 1.0, 0.0]])
    expected = keras.losses.categorical_crossentropy(y, logits[0, :1],
                                                     from_logits=True).numpy()
    np.testing.assert_allclose(loss[0, 0], expected[0], rtol=1e-6)
    assert loss[0, 1] == 0.0
    assert tasks.softmax_cross_entropy(tf.constant([-1]), logits[0, :1]).numpy()[0] == 0.0


def test_multilabel_loss_masks_ignored_classes():
    logits = tf.constant([[[2.0, -1.0, 3.0]]])
    y = tf.constant([[[1.0, 0.0, -1.0]]])
    loss = tasks.sigmoid_cross_entropy(y, logits).numpy()[0, 0]
    expected = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))
    assert loss == pytest.approx(expected, rel=1e-6)
    ignored_255 = tasks.sigmoid_cross_entropy(tf.constant([[1, 0, 255]]), logits[0]).numpy()[0]
    assert ignored_255 == pytest.approx(expected, rel=1e-6)


# -- tasks ------------------------------------------------------------------------------------

def _log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _classes(n=16, classes=3, seed=0, size=12):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 255, (n, size, size, 1), dtype=np.uint8)
    return datasets.from_arrays(x, y, num_classes=classes)


def _model_fn(task, classes, **kwargs):
    return initialization.model_fn("random", task, classes, arch="vgg_tiny",
                                   taps="conv1_1-conv2_2", seed=0, dropout=0.0, hidden=8,
                                   **kwargs)


def _halves(batch, b):
    return [{k: v[i * b // 2:(i + 1) * b // 2] for k, v in batch.items()} for i in (0, 1)]


def test_classification_loss_is_the_replica_share_of_the_global_mean_per_image():
    data = _classes()
    task = tasks.ClassificationTask(data, _model_fn("classification", 3), batch_size=8)
    assert isinstance(task, base.Task) and task.name == "classification"
    model = task.build_model()
    batch = next(iter(task.build_inputs()))
    assert set(batch) == {"image", "label"}
    full, terms = task.compute_loss(model, batch, training=False, global_batch_size=8)
    assert terms == {}
    logp = _log_softmax(model.logits(batch["image"], training=False).numpy())
    by_hand = -logp[np.arange(8), batch["label"].numpy()].mean()
    np.testing.assert_allclose(float(full), by_hand, rtol=1e-5)
    shares = [task.compute_loss(model, h, training=False, global_batch_size=8)[0]
              for h in _halves(batch, 8)]
    np.testing.assert_allclose(float(sum(shares)), float(full), rtol=1e-6)


def test_multilabel_loss_is_per_image_over_the_non_ignored_classes():
    y = np.array([[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]] * 2)
    x = np.random.default_rng(1).uniform(0, 1, (8, 8, 8, 1)).astype(np.float32)
    data = datasets.from_arrays(x, y, task="multilabel")
    task = tasks.for_data(data, _model_fn("multilabel", 3), batch_size=4)
    assert isinstance(task, tasks.MultiLabelTask)
    model = task.build_model()
    batch = next(iter(task.build_inputs()))
    loss, _ = task.compute_loss(model, batch, training=False, global_batch_size=4)
    z = model.logits(batch["image"], training=False).numpy().astype(np.float64)
    t = batch["label"].numpy()
    ce = np.maximum(z, 0) - z * np.clip(t, 0, 1) + np.log1p(np.exp(-np.abs(z)))
    by_hand = (ce * (t >= 0)).sum(-1).mean()
    np.testing.assert_allclose(float(loss), by_hand, rtol=1e-5)


def test_segmentation_loss_is_per_sampled_pixel_and_an_unlabelled_crop_costs_nothing():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    masks = (x[..., 0] > 0.5).astype(np.uint8)
    masks[1] = 255  # no labelled pixel at all: its points carry IGNORE_LABEL
    data = datasets.LabeledData(x, masks, "segmentation", 2)
    task = tasks.for_data(data, _model_fn("segmentation", 2), num_points=6, batch_size=4,
                          mirror=False)
    assert isinstance(task, tasks.SegmentationTask)
    model = task.build_model()
    batch = next(iter(task.build_inputs()))
    assert set(batch) == {"image", "points", "label"}
    assert batch["points"].shape == (4, 6, 2) and batch["label"].shape == (4, 6)
    labels = batch["label"].numpy()
    assert sorted(np.unique(labels).tolist()) in ([0, 1, 255], [0, 255], [1, 255])
    loss, _ = task.compute_loss(model, batch, training=False, global_batch_size=4)
    logp = _log_softmax(model.point_logits(batch["image"], batch["points"]).numpy())
    valid = labels != 255
    picked = np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    by_hand = -(picked * valid).sum() / (4 * 6)  # ignored points count in the normaliser
    np.testing.assert_allclose(float(loss), by_hand, rtol=1e-5)
    shares = [task.compute_loss(model, h, training=False, global_batch_size=4)[0]
              for h in _halves(batch, 4)]
    np.testing.assert_allclose(float(sum(shares)), float(loss), rtol=1e-6)


def test_errors_name_what_is_wrong():
    data = _classes()
    seg = datasets.LabeledData(np.zeros((2, 4, 4, 1), np.uint8), np.zeros((2, 4, 4), np.uint8),
                               "segmentation", 2)
    with pytest.raises(ValueError, match="'classification' data; got 'segmentation'"):
        tasks.ClassificationTask(seg, _model_fn("classification", 3))
    task = tasks.ClassificationTask(data, _model_fn("multilabel", 3))
    with pytest.raises(ValueError, match="DownstreamModel for 'classification'; got 'multilabel'"):
        task.build_model()
    with pytest.raises(TypeError, match="model_fn"):
        tasks.ClassificationTask(data, "not a function")
    with pytest.raises(ValueError, match="num_points"):
        tasks.SegmentationTask(data, _model_fn("segmentation", 3), num_points=0)
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        tasks.ClassificationTask(data, _model_fn("classification", 3)).check_inputs(
            {"image": tf.TensorSpec([8, 12, 12, 1])})
