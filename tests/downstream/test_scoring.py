"""Tests for tfcolor.downstream.scoring: the scores vs hand-computed values."""
import numpy as np
import pytest

from tfcolor.downstream import scoring


# -- top-k ---------------------------------------------------------------------------------------

def test_top_k_hand_example():
    scores = np.array([[0.1, 0.7, 0.2],    # label 1: rank 0
                       [0.5, 0.3, 0.2],    # label 2: rank 2
                       [0.2, 0.3, 0.5],    # label 1: rank 1
                       [0.6, 0.1, 0.3]])   # label 0: rank 0
    labels = np.array([1, 2, 1, 0])
    assert scoring.top_k_accuracy(scores, labels, 1) == pytest.approx(0.5)
    assert scoring.top_k_accuracy(scores, labels, 2) == pytest.approx(0.75)
    assert scoring.top_k_accuracy(scores, labels, 3) == pytest.approx(1.0)


def test_top_k_ties_and_errors():
    # Tied with the best: no class is strictly higher, so it counts as top-1.
    assert scoring.top_k_accuracy(np.array([[0.5, 0.5]]), np.array([1]), 1) == 1.0
    with pytest.raises(ValueError, match="labels must be in"):
        scoring.top_k_accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="k must be"):
        scoring.top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), 0)


# -- average precision ------------------------------------------------------------------------

def test_average_precision_hand_example():
    # Ranked: +, -, +, -, + (3 positives). Precision at the hits: 1, 2/3, 3/5.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 1, 0, 1])
    # Area (VOC 2010+): recall steps of 1/3 with envelope precisions 1, 2/3, 3/5.
    area = (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0
    assert scoring.average_precision(scores, labels, "area") == pytest.approx(area)
    # 11-point: t = 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3), 0.7..1.0 -> 3/5 (4).
    eleven = (4 * 1.0 + 3 * 2.0 / 3.0 + 4 * 0.6) / 11.0
    assert scoring.average_precision(scores, labels, "11point") == pytest.approx(eleven)


def test_average_precision_ignores_difficult_and_perfect_ranking():
    scores = np.array([0.9, 0.95, 0.7, 0.1])
    labels = np.array([1, -1, 1, 0])  # the top-scored "difficult" example is ignored
    assert scoring.average_precision(scores, labels, "area") == pytest.approx(1.0)
    ap = scoring.average_precision(scores, np.array([1, 255, 1, 0]), "11point")
    assert ap == pytest.approx(1.0)
    assert np.isnan(scoring.average_precision(scores, np.zeros(4)))


def test_mean_average_precision_skips_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4]])
    labels = np.array([[1, 0, 0], [0, 1, 0]])
    m, per_class = scoring.mean_average_precision(scores, labels, "area")
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
    assert scoring.average_precision(constant, labels, "area", ties="stable") == pytest.approx(1.0)
    for seed in range(3):
        area = scoring.average_precision(constant, labels, "area", seed=seed)
        eleven = scoring.average_precision(constant, labels, "11point", seed=seed)
        assert abs(area - prior) < 0.03
        # 11-point: the t = 0 point takes the best precision anywhere (the first few ranks).
        assert abs(eleven - prior) < 0.05
    assert scoring.average_precision(constant, labels, seed=5) == scoring.average_precision(
            constant, labels, seed=5)
    # Twenty VOC-like classes (priors 2-30%), images listed by number of positives: the
    # constant predictor's mAP stays near the mean prior, nowhere near 53%.
    rng = np.random.default_rng(0)
    priors = rng.uniform(0.02, 0.3, 20)
    multi = (rng.uniform(size=(n, 20)) < priors).astype(np.int64)
    multi = multi[np.argsort(-multi.sum(axis=1), kind="stable")]
    m, _ = scoring.mean_average_precision(np.zeros((n, 20)), multi)
    assert abs(m - priors.mean()) < 0.05 and m < 0.3
    with pytest.raises(ValueError, match="ties"):
        scoring.average_precision(constant, labels, ties="random")


def test_tie_breaking_never_reorders_distinct_scores():
    # Scores 1e-12 apart are not ties: the perturbed AP equals the hand example's exactly.
    scores = 0.5 + 1e-12 * np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    labels = np.array([1, 0, 1, 0, 1])
    for method in ("area", "11point"):
        stable = scoring.average_precision(scores, labels, method, ties="stable")
        for seed in range(5):
            assert scoring.average_precision(scores, labels, method, seed=seed) == stable


# -- mean IU ----------------------------------------------------------------------------------

def test_confusion_and_mean_iu_with_ignore_label():
    labels = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])   # the 255 pixel's prediction is ignored
    conf = scoring.confusion_matrix(pred, labels, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    miu, iu, acc = scoring.mean_iou(conf)
    # IU_0 = 1 / (2 + 2 - 1) = 1/3; IU_1 = 2 / (2 + 3 - 2) = 2/3; IU_2 = 0 / (1 + 0) = 0.
    np.testing.assert_allclose(iu, [1 / 3, 2 / 3, 0.0])
    assert miu == pytest.approx(1 / 3)
    assert acc == pytest.approx(3 / 5)


def test_mean_iu_excludes_absent_classes_and_rejects_bad_labels():
    conf = scoring.confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3)
    miu, iu, _ = scoring.mean_iou(conf)
    assert miu == 1.0 and np.isnan(iu[1]) and np.isnan(iu[2])
    with pytest.raises(ValueError, match="labels must be in"):
        scoring.confusion_matrix(np.array([0]), np.array([7]), 3)
