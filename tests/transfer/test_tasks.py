"""Tests for tfcolor.transfer.tasks: metrics vs hand-computed values, losses, the model."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import models
from tfcolor.transfer import tasks
from tfcolor.train.strategy import make_strategy  # one strategy per device set


# -- top-k ---------------------------------------------------------------------------------------

def test_top_k_hand_example():
    scores = np.array([[0.1, 0.7, 0.2],    # label 1: rank 0
                       [0.5, 0.3, 0.2],    # label 2: rank 2
                       [0.2, 0.3, 0.5],    # label 1: rank 1
                       [0.6, 0.1, 0.3]])   # label 0: rank 0
    labels = np.array([1, 2, 1, 0])
    assert tasks.top_k_accuracy(scores, labels, 1) == pytest.approx(0.5)
    assert tasks.top_k_accuracy(scores, labels, 2) == pytest.approx(0.75)
    assert tasks.top_k_accuracy(scores, labels, 3) == pytest.approx(1.0)


def test_top_k_ties_and_errors():
    # Tied with the best: no class is strictly higher, so it counts as top-1.
    assert tasks.top_k_accuracy(np.array([[0.5, 0.5]]), np.array([1]), 1) == 1.0
    with pytest.raises(ValueError, match="labels must be in"):
        tasks.top_k_accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="k must be"):
        tasks.top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), 0)


# -- average precision ------------------------------------------------------------------------

def test_average_precision_hand_example():
    # Ranked: +, -, +, -, + (3 positives). Precision at the hits: 1, 2/3, 3/5.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 1, 0, 1])
    # Area (VOC 2010+): recall steps of 1/3 with envelope precisions 1, 2/3, 3/5.
    area = (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0
    assert tasks.average_precision(scores, labels, "area") == pytest.approx(area)
    # 11-point: t = 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3), 0.7..1.0 -> 3/5 (4).
    eleven = (4 * 1.0 + 3 * 2.0 / 3.0 + 4 * 0.6) / 11.0
    assert tasks.average_precision(scores, labels, "11point") == pytest.approx(eleven)


def test_average_precision_ignores_difficult_and_perfect_ranking():
    scores = np.array([0.9, 0.95, 0.7, 0.1])
    labels = np.array([1, -1, 1, 0])  # the top-scored "difficult" example is ignored
    assert tasks.average_precision(scores, labels, "area") == pytest.approx(1.0)
    ap = tasks.average_precision(scores, np.array([1, 255, 1, 0]), "11point")
    assert ap == pytest.approx(1.0)
    assert np.isnan(tasks.average_precision(scores, np.zeros(4)))


def test_mean_average_precision_skips_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4]])
    labels = np.array([[1, 0, 0], [0, 1, 0]])
    m, per_class = tasks.mean_average_precision(scores, labels, "area")
    assert m == pytest.approx(1.0)
    assert np.isnan(per_class[2])


def test_constant_predictor_scores_the_class_prior_not_the_list_order():
    # The paper perturbs scores before AP because a trivial solution otherwise reaches ~53% mAP.
    # A constant score on a set listed positives-first: input-order tie-breaking gives AP 1;
    # the default (seeded random order of ties = an infinitesimal perturbation) gives about the
    # class prior, the AP of a ranking that carries no information.
    n, prior = 4000, 0.25
    labels = np.zeros(n, np.int64)
    labels[:int(prior * n)] = 1
    constant = np.zeros(n)
    assert tasks.average_precision(constant, labels, "area", ties="stable") == pytest.approx(1.0)
    for seed in range(3):
        area = tasks.average_precision(constant, labels, "area", seed=seed)
        eleven = tasks.average_precision(constant, labels, "11point", seed=seed)
        assert abs(area - prior) < 0.03
        # 11-point: the t = 0 point takes the best precision anywhere (the first few ranks).
        assert abs(eleven - prior) < 0.05
    assert tasks.average_precision(constant, labels, seed=5) == tasks.average_precision(
            constant, labels, seed=5)
    # Twenty VOC-like classes (priors 2-30%), images listed by number of positives: the
    # constant predictor's mAP stays near the mean prior, nowhere near 53%.
    rng = np.random.default_rng(0)
    priors = rng.uniform(0.02, 0.3, 20)
    multi = (rng.uniform(size=(n, 20)) < priors).astype(np.int64)
    multi = multi[np.argsort(-multi.sum(axis=1), kind="stable")]
    m, _ = tasks.mean_average_precision(np.zeros((n, 20)), multi)
    assert abs(m - priors.mean()) < 0.05 and m < 0.3
    with pytest.raises(ValueError, match="ties"):
        tasks.average_precision(constant, labels, ties="random")


def test_tie_breaking_never_reorders_distinct_scores():
    # Scores 1e-12 apart are not ties: the perturbed AP equals the hand example's exactly.
    scores = 0.5 + 1e-12 * np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    labels = np.array([1, 0, 1, 0, 1])
    for method in ("area", "11point"):
        stable = tasks.average_precision(scores, labels, method, ties="stable")
        for seed in range(5):
            assert tasks.average_precision(scores, labels, method, seed=seed) == stable


# -- mean IU ----------------------------------------------------------------------------------

def test_confusion_and_mean_iu_with_ignore_label():
    labels = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])   # the 255 pixel's prediction is ignored
    conf = tasks.confusion_matrix(pred, labels, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    miu, iu, acc = tasks.mean_iou(conf)
    # IU_0 = 1 / (2 + 2 - 1) = 1/3; IU_1 = 2 / (2 + 3 - 2) = 2/3; IU_2 = 0 / (1 + 0) = 0.
    np.testing.assert_allclose(iu, [1 / 3, 2 / 3, 0.0])
    assert miu == pytest.approx(1 / 3)
    assert acc == pytest.approx(3 / 5)


def test_mean_iu_excludes_absent_classes_and_rejects_bad_labels():
    conf = tasks.confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3)
    miu, iu, _ = tasks.mean_iou(conf)
    assert miu == 1.0 and np.isnan(iu[1]) and np.isnan(iu[2])
    with pytest.raises(ValueError, match="labels must be in"):
        tasks.confusion_matrix(np.array([0]), np.array([7]), 3)


# -- losses -----------------------------------------------------------------------------------

def test_softmax_loss_matches_keras_and_zero_rows_cost_nothing():
    logits = tf.constant([[[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]])
    y = tf.constant([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    loss = tasks.task_loss("segmentation")(y, logits).numpy()
    expected = keras.losses.categorical_crossentropy(y[0, :1], logits[0, :1],
                                                     from_logits=True).numpy()
    np.testing.assert_allclose(loss[0, 0], expected[0], rtol=1e-6)
    assert loss[0, 1] == 0.0


def test_multilabel_loss_masks_ignored_classes():
    logits = tf.constant([[[2.0, -1.0, 3.0]]])
    y = tf.constant([[[1.0, 0.0, -1.0]]])
    loss = tasks.task_loss("multilabel")(y, logits).numpy()[0, 0]
    expected = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))
    assert loss == pytest.approx(expected, rel=1e-6)


# -- the model --------------------------------------------------------------------------------

def _tiny_trunk(channels=1):
    trunk = models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2", batch_norm="none")
    if channels == 3:
        from tfcolor import surgery
        trunk = surgery.gray_to_rgb_conv1(trunk)
    return trunk


def test_classification_model_shapes_and_sparse_repeats_logits():
    model = tasks.TransferModel(_tiny_trunk(), "classification", 4, dropout=0.0)
    x = tf.random.uniform([2, 16, 16, 1])
    logits = model.logits(x)
    assert logits.shape == (2, 4)
    sparse = model.sparse(x, tf.zeros([2, 3, 2], tf.int32))
    np.testing.assert_allclose(sparse[:, 1], logits, rtol=1e-5, atol=1e-6)
    probs = model.predict_scores(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_segmentation_dense_equals_sparse_on_the_grid():
    trunk = _tiny_trunk()
    strides = dict(models.tap_strides("vgg_tiny", list(trunk.output)))
    model = tasks.TransferModel(trunk, "segmentation", 3, tap_strides=strides, hidden=8,
                                dropout=0.0, grid_factor=4)
    x = tf.random.uniform([1, 16, 16, 1])
    dense = model.dense_logits(x).numpy()
    assert dense.shape == (1, 16, 16, 3)
    centers = tf.constant([[[0, 0], [4, 8], [12, 12]]], tf.int32)
    sparse = model.sparse(x, centers).numpy()
    np.testing.assert_allclose(dense[0, [0, 4, 12], [0, 8, 12]], sparse[0], rtol=1e-4,
                               atol=1e-5)


def test_model_rejects_bad_input():
    model = tasks.TransferModel(_tiny_trunk(), "classification", 2)
    with pytest.raises(ValueError, match="1-channel"):
        model.logits(tf.zeros([1, 8, 8, 3]))
    with pytest.raises(ValueError, match="task must be"):
        tasks.TransferModel(_tiny_trunk(), "detection", 2)
    with pytest.raises(ValueError, match="tap_strides"):
        tasks.TransferModel(_tiny_trunk(), "segmentation", 2)


def test_model_under_mirrored_strategy_and_mixed_precision():
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = tasks.TransferModel(_tiny_trunk(), "classification", 3, dropout=0.0)

    @tf.function
    def step(x):
        return strategy.run(lambda v: model.logits(v), args=(x,))

    out = step(tf.random.uniform([2, 8, 8, 1]))
    assert all(t.shape[-1] == 3 for t in strategy.experimental_local_results(out))
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model16 = tasks.TransferModel(_tiny_trunk(), "classification", 3)
        assert model16.logits(tf.random.uniform([1, 8, 8, 1])).dtype == tf.float16
    finally:
        keras.config.set_dtype_policy("float32")


def test_config_round_trip():
    trunk = _tiny_trunk()
    strides = dict(models.tap_strides("vgg_tiny", list(trunk.output)))
    model = tasks.TransferModel(trunk, "segmentation", 3, tap_strides=strides, hidden=8)
    clone = tasks.TransferModel.from_config(model.get_config())
    assert clone.taps == model.taps and clone.num_classes == 3 and clone.hidden == 8
