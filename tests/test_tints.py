"""tfcolor.tints: the constant-tint and lightness-lookup baselines."""
import numpy as np
import pytest

from tfcolor import color, config, metrics, tints


def test_geometric_median_minimises_the_sum_of_distances():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(20, 2)) + 50.0])
    m = tints.geometric_median(points)

    def cost(y):
        return np.linalg.norm(points - y, axis=1).sum()
    for _ in range(50):   # convex: no nearby point is better
        assert cost(m + 1e-3 * rng.normal(size=2)) >= cost(m) - 1e-9
    assert np.linalg.norm(m) < 0.5          # robust: the far cluster barely moves it
    # three collinear points: the middle one (hand value)
    np.testing.assert_allclose(tints.geometric_median([[0, 0], [1, 0], [5, 0]]), [1, 0],
                               atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        tints.geometric_median(np.zeros((0, 2)))


def test_constant_tint_keeps_the_grey_and_has_its_alphabeta():
    rng = np.random.default_rng(1)
    image = rng.uniform(0.2, 0.8, size=(5, 7, 3)).astype(np.float32)
    tint = tints.ConstantTint((0.1, -0.05))
    out = tint.colorize(image).numpy()
    np.testing.assert_allclose(out.mean(-1), image.mean(-1), atol=1e-6)     # no clipping here
    ab = color.rgb_to_alphabeta(out).numpy()
    np.testing.assert_allclose(ab, np.broadcast_to([0.1, -0.05], ab.shape), atol=1e-4)
    assert tints.ConstantTint.from_dict(tint.to_dict()) == tint
    # (0, 0) is the grey baseline
    np.testing.assert_allclose(tints.ConstantTint((0.0, 0.0)).colorize(image).numpy(),
                               metrics.gray_baseline(image).numpy(), atol=1e-6)


def test_fitted_tints_are_the_best_of_their_kind_on_their_training_pixels():
    """On pixels whose colour depends on grey level, the lookup recovers each level's colour and
    the constant tint is the geometric median of all: each beats grey on those pixels, the
    lookup beats the tint."""
    rng = np.random.default_rng(2)
    gray = rng.uniform(0.05, 0.95, size=4000)
    dark, light = np.array([0.3, 0.1]), np.array([-0.2, 0.05])
    ab = np.where(gray[:, None] < 0.5, dark, light) + rng.normal(scale=0.02, size=(4000, 2))
    tint = tints.ConstantTint.fit(gray, ab)
    lookup = tints.LightnessLookup.fit(gray, ab, bins=4, min_pixels=10)
    np.testing.assert_allclose(tint.alphabeta, tints.geometric_median(ab))
    np.testing.assert_allclose(lookup.table[0], dark, atol=0.01)
    np.testing.assert_allclose(lookup.table[3], light, atol=0.01)

    def error(pred_ab):
        return np.linalg.norm(ab - pred_ab, axis=1).mean()
    level = np.minimum((gray * 4).astype(int), 3)
    assert error(np.asarray(lookup.table)[level]) < error(np.asarray(tint.alphabeta)) < error(0.0)
    assert tints.LightnessLookup.from_dict(lookup.to_dict()) == lookup
    # an empty level falls back to the constant tint
    sparse = tints.LightnessLookup.fit(np.full(100, 0.9), ab[:100], bins=4, min_pixels=10)
    np.testing.assert_allclose(sparse.table[0], tints.geometric_median(ab[:100]))


def test_fit_tints_on_the_shipped_photos_reads_their_crops():
    data_config = config.DataConfig(crop_size=32, points=8)
    gray, ab = tints.pixel_samples("embedded", data_config, stride=8, max_images=5)
    assert gray.shape == (5 * 4 * 4,) and ab.shape == (80, 2)
    assert np.all((gray >= 0) & (gray <= 1)) and np.all(np.isfinite(ab))
    fitted = tints.fit_tints("embedded", data_config, stride=8, max_images=5, bins=2)
    assert list(fitted) == list(tints.TINT_BASELINES)
    np.testing.assert_allclose(fitted["constant_tint"].alphabeta, tints.geometric_median(ab))
