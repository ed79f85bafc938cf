"""tfcolor.downstream.shortcuts: the no-learning baselines, against hand-computed values and
the properties of a convex fit."""
import numpy as np
import pytest

from tfcolor.downstream import shortcuts


def _close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=1e-12)


def _image(rgb, size=16):
    return np.broadcast_to(np.asarray(rgb, np.uint8), (size, size, 3)).copy()


def test_style_features_of_hand_made_images():
    grey, red = _image((128, 128, 128)), _image((255, 0, 0))
    half = _image((0, 0, 0))
    half[:, 8:] = 255                                  # left black, right white
    values = shortcuts.style_features(np.stack([grey, red, half]))
    f = dict(zip(shortcuts.STYLE_FEATURES, values.T))
    _close(f["grey_background_fraction"], [1, 0, 0])
    _close(f["white_fraction"], [0, 0, 0.5])
    _close(f["border_mean_r"], [128 / 255, 1, 0.5])
    _close(f["border_std"], [0, 0, 0.5])
    _close(f["brightness_mean"], [128 / 255, 1 / 3, 0.5])
    _close(f["brightness_std"], [0, 0, 0.5])
    # Hasler-Suesstrunk of pure red: rg = 255, yb = 127.5, no spread
    _close(f["colourfulness"], [0, 0.3 * np.hypot(255, 127.5), 0])
    _close(f["saturation_mean"], [0, 1, 0])
    # one black-white step per row over 15 horizontal neighbours, none vertically
    _close(f["edge_density"], [0, 0, 0.5 * (1 / 15)])
    # grey images (N, H, W) are read as three equal channels
    np.testing.assert_array_equal(shortcuts.style_features(half[None, ..., 0]),
                               shortcuts.style_features(np.stack([half])))
    with pytest.raises(ValueError, match="images must be"):
        shortcuts.style_features(np.zeros((2, 8, 8, 3), np.uint8))


def test_majority_rules():
    assert list(shortcuts.majority([2, 1, 1, 2, 0], 3)) == [1, 1, 1]   # tie: lowest class
    rule = shortcuts.source_majority(["a", "a", "a", "b", "b"], [3, 3, 1, 2, 0],
                                     ["a", "b", "c"])
    assert list(rule) == [3, 0, 3]                     # unseen source: the overall commonest


def test_logistic_regression_reaches_the_optimum_of_its_convex_objective():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)) * [1, 10, 0.1, 3] + [0, 5, 0, -2]
    y = (x[:, 0] + 0.2 * x[:, 1] + rng.normal(scale=0.5, size=120) > 1).astype(int) \
        + (x[:, 3] > -2).astype(int)
    model = shortcuts.LogisticRegression(l2=0.05, steps=20000).fit(x, y, 3)
    z = (x - model.mean_) / model.scale_

    def objective(w, b):
        logits = z @ w + b
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -log_p[np.arange(len(y)), y].mean() + 0.5 * 0.05 * (w ** 2).sum()

    best = objective(model.coef_, model.intercept_)
    for _ in range(20):  # every nearby point is worse (convexity: the optimum is global)
        dw, db = rng.normal(size=model.coef_.shape), rng.normal(size=3)
        assert objective(model.coef_ + 1e-3 * dw, model.intercept_ + 1e-3 * db) >= best - 1e-12
    assert (model.predict(x) == y).mean() > np.bincount(y).max() / len(y)  # beats majority


def test_fit_on_val_chooses_on_val_and_says_whether_inside():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int)
    model, record = shortcuts.fit_on_val((x[:100], y[:100]), (x[100:], y[100:]), 2,
                                         grid=(1e-3, 1e-1, 1e3))
    scores = record["val_accuracy"]
    assert record["l2"] == record["grid"][max(range(3), key=lambda i: (scores[i], i))]
    assert record["inside"] == (record["l2"] == 1e-1)
    assert model.l2 == record["l2"]
    assert scores[2] < max(scores)                     # an absurd L2 is worse on val
