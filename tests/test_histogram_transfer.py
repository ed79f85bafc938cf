"""Tests for tfcolor.histogram_transfer: quantile matching and the global-bias energy."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import bins
from tfcolor import histogram_transfer as ht


def test_quantile_match_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000).astype(np.float32)
    ref = rng.exponential(size=3000).astype(np.float32)
    y = ht.quantile_match(x, ref).numpy()
    # Order preserving and distributed like the reference (compare quantiles).
    assert np.all(np.diff(y[np.argsort(x)]) >= -1e-6)
    qs = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(np.quantile(y, qs), np.quantile(ref, qs), atol=0.03)
    # Matching to itself is the identity (distinct values).
    np.testing.assert_allclose(ht.quantile_match(x, x).numpy(), x, atol=1e-6)
    # Ties share one value.
    tied = ht.quantile_match(np.array([1.0, 1.0, 2.0], np.float32), ref).numpy()
    assert tied[0] == tied[1] < tied[2]


def test_quantile_transfer_keeps_lightness_and_moves_colour_to_the_reference():
    rng = np.random.default_rng(1)
    rgb = np.clip(rng.uniform(0.2, 0.8, size=(16, 16, 3)), 0, 1).astype(np.float32)
    ref = np.zeros((12, 9, 3), np.float32)
    ref[..., 0] = rng.uniform(0.6, 0.9, size=(12, 9))
    ref[..., 1:] = ref[..., :1] * 0.3  # reddish reference
    out = ht.quantile_transfer(rgb, ref).numpy()
    np.testing.assert_allclose(out.mean(-1), rgb.mean(-1), atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1
    ratio = lambda im: (im[..., 0] / im.mean(-1)).mean()  # noqa: E731
    assert ratio(out) > ratio(rgb) + 0.5
    assert abs(ratio(out) - ratio(ref)) < abs(ratio(rgb) - ratio(ref)) / 3
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ht.quantile_transfer(rgb[..., :2], ref)
    with pytest.raises(ValueError, match="brighter"):
        ht.quantile_transfer(rgb, np.zeros((4, 4, 3), np.float32))


def test_target_histogram_hand_computed():
    # Two pixels: pure red (hue 0, chroma 1) and grey (hue 0 by convention, chroma 0).
    ref = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]], np.float32)
    chroma = ht.target_histogram(ref, "chroma", "chroma").numpy()
    assert chroma[31] == pytest.approx(0.5) and chroma[0] == pytest.approx(0.5)
    hue = ht.target_histogram(ref, "hue", "hue").numpy()
    assert hue[0] == pytest.approx(1.0)  # the grey pixel has weight (chroma) 0
    a = ht.target_histogram(ref, "lab_a", "a").numpy()
    spec = bins.get("lab_a")
    from skimage.color import rgb2lab
    lab = rgb2lab(ref.astype(np.float64))
    want = np.bincount(spec.encode(lab[..., 1].astype(np.float32)).numpy().ravel(), minlength=32)
    np.testing.assert_allclose(a, want / 2.0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown channel"):
        ht.target_histogram(ref, "hue", "saturation")


def test_energy_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    p = tf.nn.softmax(rng.normal(size=(20, 6)).astype(np.float64)).numpy()
    target = tf.constant(rng.dirichlet(np.ones(6)))
    log_p = tf.constant(np.log(p))
    b = tf.Variable(rng.normal(size=6) * 0.3)
    with tf.GradientTape() as tape:
        e = ht.transfer_energy(b, log_p, target, lam=3.0)
    grad = tape.gradient(e, b).numpy()
    eps = 1e-6
    fd = []
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        fd.append((ht.transfer_energy(b + d, log_p, target, 3.0)
                   - ht.transfer_energy(b - d, log_p, target, 3.0)).numpy() / (2 * eps))
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    # At b = 0 the KL term vanishes: E = lam * chi2(mean p, t).
    e0 = ht.transfer_energy(tf.zeros(6, tf.float64), log_p, target, lam=3.0).numpy()
    u, t = p.mean(0), target.numpy()
    assert e0 == pytest.approx(3.0 * ((u - t) ** 2 / (u + t)).sum(), rel=1e-6)


def test_fit_global_bias_pulls_the_pooled_histogram_to_the_target():
    rng = np.random.default_rng(3)
    probs = tf.nn.softmax(rng.normal(size=(8, 8, 32)) * 2).numpy().astype(np.float32)
    target = np.zeros(32, np.float32)
    target[5:9] = 0.25
    chi = lambda u: float(ht.chi2_distance(tf.constant(u), tf.constant(target)))  # noqa: E731
    before = chi(probs.reshape(-1, 32).mean(0))
    bias, post = ht.fit_global_bias(probs, target, lam=10.0, steps=300)
    assert post.shape == probs.shape
    np.testing.assert_allclose(post.numpy().sum(-1), 1.0, atol=1e-5)
    after = chi(post.numpy().reshape(-1, 32).mean(0))
    assert after < before / 3
    e = lambda b: float(ht.transfer_energy(  # noqa: E731
            b, tf.math.log(tf.reshape(probs, [-1, 32])), target, 10.0))
    assert e(bias) < e(tf.zeros(32))
    # A stronger pull (larger lambda) ends closer to the target.
    _, post_weak = ht.fit_global_bias(probs, target, lam=0.5, steps=300)
    assert chi(post_weak.numpy().reshape(-1, 32).mean(0)) > after
    # lambda = 0: nothing to gain, b stays 0 and the prediction is unchanged.
    b0, same = ht.fit_global_bias(probs, target, lam=0.0, steps=20)
    np.testing.assert_allclose(b0.numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(same.numpy(), probs, atol=1e-5)


def test_fit_global_bias_bad_arguments():
    probs = np.full((4, 8), 1 / 8, np.float32)
    with pytest.raises(ValueError, match="target must have shape"):
        ht.fit_global_bias(probs, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="lam"):
        ht.fit_global_bias(probs, np.ones(8, np.float32), lam=-1)
