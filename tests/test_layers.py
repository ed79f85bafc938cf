"""Tests of tfcolor.layers: hypercolumns against a loop-based NumPy reference, sparse vs dense,
the head as 1x1 convolutions, LRN against its formula, and the Keras plumbing (config round trip,
functional models, tf.function, MirroredStrategy, mixed precision)."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfcolor import layers as L
from tfcolor.train.strategy import make_strategy  # one strategy per device set

sys.path.insert(0, os.path.dirname(__file__))
import layer_testing  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Independent references (plain loops in float64, written from the method description).

def _ref_axis(pixel, stride, size, convention, eps):
    local = pixel / stride if convention == "released" else (pixel + 0.5) / stride - 0.5
    local = min(max(local, 0.0), max(size - 1 - eps, 0.0))
    if size == 1:
        return 0, 0, 0.0
    lo = min(int(np.floor(local)), size - 2)
    return lo, lo + 1, local - lo


def ref_sparse(maps, strides, centers, convention="released", eps=1e-4):
    """Hypercolumns (B, P, C) and, given `grad_out`, the map gradients (scatter to 4 neighbours)."""
    centers = np.asarray(centers, np.float64)
    b, p = centers.shape[:2]
    out = []
    for m, s in zip(maps, strides):
        m = np.asarray(m, np.float64)
        _, h, w, c = m.shape
        col = np.zeros((b, p, c))
        for n in range(b):
            for k in range(p):
                y0, y1, fy = _ref_axis(centers[n, k, 0], s, h, convention, eps)
                x0, x1, fx = _ref_axis(centers[n, k, 1], s, w, convention, eps)
                col[n, k] = ((1 - fy) * ((1 - fx) * m[n, y0, x0] + fx * m[n, y0, x1])
                             + fy * ((1 - fx) * m[n, y1, x0] + fx * m[n, y1, x1]))
        out.append(col)
    return np.concatenate(out, axis=-1)


def ref_sparse_grad(maps, strides, centers, grad_out, convention="released", eps=1e-4):
    centers = np.asarray(centers, np.float64)
    b, p = centers.shape[:2]
    grads, offset = [], 0
    for m, s in zip(maps, strides):
        _, h, w, c = m.shape
        g = np.zeros(m.shape)
        go = grad_out[..., offset:offset + c]
        offset += c
        for n in range(b):
            for k in range(p):
                y0, y1, fy = _ref_axis(centers[n, k, 0], s, h, convention, eps)
                x0, x1, fx = _ref_axis(centers[n, k, 1], s, w, convention, eps)
                g[n, y0, x0] += (1 - fy) * (1 - fx) * go[n, k]
                g[n, y0, x1] += (1 - fy) * fx * go[n, k]
                g[n, y1, x0] += fy * (1 - fx) * go[n, k]
                g[n, y1, x1] += fy * fx * go[n, k]
        grads.append(g)
    return grads


def make_maps(rng, batch, height, width, strides, channels=3, dtype="float32"):
    return [rng.normal(size=(batch, -(-height // s), -(-width // s), channels + i)).astype(dtype)
            for i, s in enumerate(strides)]


def random_centers(rng, batch, points, height, width, margin=3.0):
    """Float centres, some beyond the image (exercises the clamp), plus integer ones."""
    ys = rng.uniform(-margin, height - 1 + margin, size=(batch, points))
    xs = rng.uniform(-margin, width - 1 + margin, size=(batch, points))
    ys[:, :3] = [0, height - 1, height // 2]
    xs[:, :3] = [width - 1, 0, width // 2]
    return np.stack([ys, xs], -1).astype("float32")


# ----------------------------------------------------------------------------------------------
# SparseHypercolumn

@pytest.mark.parametrize("convention", ["released", "half_pixel"])
@pytest.mark.parametrize("eps", [1e-4, 0.0])
@pytest.mark.parametrize("hw", [(11, 29), (29, 11)])  # wide and tall: catches swapped H/W
def test_sparse_matches_reference(convention, eps, hw):
    rng = np.random.default_rng(1)
    height, width = hw
    strides = [1, 2, 4, 8, 3]
    maps = make_maps(rng, 2, height, width, strides)
    centers = random_centers(rng, 2, 17, height, width)
    layer = L.SparseHypercolumn(strides, convention=convention, edge_eps=eps)
    got = layer(maps, centers).numpy()
    np.testing.assert_allclose(got, ref_sparse(maps, strides, centers, convention, eps),
                               atol=1e-5)
    assert got.shape == (2, 17, sum(m.shape[-1] for m in maps))


@pytest.mark.parametrize("hw", [(6, 23), (23, 6)])
def test_sparse_gradient_non_square(hw):
    """The released TF op zeroed its input gradient over x < height (not width): on a wide map
    columns x >= height kept garbage, on a tall one it wrote out of bounds. Check every cell of
    non-square maps, including columns beyond the height, against the reference scatter."""
    rng = np.random.default_rng(2)
    height, width = hw
    strides = [1, 2]
    maps = make_maps(rng, 2, height, width, strides)
    centers = random_centers(rng, 2, 40, height, width)
    centers[0, 3] = [1.0, width - 1.5]  # right edge of a wide map, beyond the height
    grad_out = rng.normal(size=(2, 40, sum(m.shape[-1] for m in maps)))
    variables = [tf.Variable(m) for m in maps]
    layer = L.SparseHypercolumn(strides)
    with tf.GradientTape() as tape:
        out = layer(variables, centers)
        loss = tf.reduce_sum(out * tf.constant(grad_out, tf.float32))
    grads = tape.gradient(loss, variables)
    for g, want in zip(grads, ref_sparse_grad(maps, strides, centers, grad_out)):
        np.testing.assert_allclose(tf.convert_to_tensor(g).numpy(), want, atol=1e-5)
    # The check covers gradient mass in columns beyond the height (the buggy region).
    if width > height:
        assert np.abs(ref_sparse_grad(maps, strides, centers, grad_out)[0][:, :, height:]).sum() > 0


def test_sparse_gradient_numerical_check():
    rng = np.random.default_rng(3)
    maps = make_maps(rng, 1, 5, 7, [1, 2], channels=2)
    centers = random_centers(rng, 1, 6, 5, 7)
    layer = L.SparseHypercolumn([1, 2])
    m0 = tf.constant(maps[0], tf.float64)

    def f(m):
        return layer([tf.cast(m, tf.float32), maps[1]], centers)

    theoretical, numerical = tf.test.compute_gradient(
            lambda m: tf.cast(f(m), tf.float64), [m0], delta=1e-3)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)


def test_sparse_transpose_equivariance():
    """Sampling transposed maps at (x, y) equals sampling the maps at (y, x)."""
    rng = np.random.default_rng(4)
    strides = [1, 4, 16]
    maps = make_maps(rng, 2, 37, 70, strides)
    centers = random_centers(rng, 2, 25, 37, 70)
    layer = L.SparseHypercolumn(strides)
    a = layer(maps, centers)
    b = layer([np.transpose(m, (0, 2, 1, 3)) for m in maps], centers[..., ::-1].copy())
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_sparse_hand_values():
    """Released convention: centre (k*s, l*s) reads cell (k, l); half way between cells averages."""
    fmap = np.arange(2 * 3 * 4, dtype="float32").reshape(1, 3, 4, 2)  # (y, x, c)
    layer = L.SparseHypercolumn([4], edge_eps=0.0)
    centers = np.array([[[4, 8], [0, 0], [2, 6], [100, 100]]], "float32")
    got = layer([fmap], centers).numpy()[0]
    np.testing.assert_allclose(got[0], fmap[0, 1, 2])
    np.testing.assert_allclose(got[1], fmap[0, 0, 0])
    np.testing.assert_allclose(got[2], fmap[0, :2, 1:3].mean(axis=(0, 1)))
    np.testing.assert_allclose(got[3], fmap[0, 2, 3])  # clamped to the last cell
    # Half-pixel: the centre of the block of cell (1, 2) is pixel (1.5*4 - 0.5, 2.5*4 - 0.5).
    half = L.SparseHypercolumn([4], convention="half_pixel", edge_eps=0.0)
    got = half([fmap], np.array([[[5.5, 9.5]]], "float32")).numpy()[0, 0]
    np.testing.assert_allclose(got, fmap[0, 1, 2])
    # Released edge_eps: 0.9999 * last + 0.0001 * second to last (the Caffe clamp).
    got = L.SparseHypercolumn([1])([fmap], np.array([[[0, 50]]], "float32")).numpy()[0, 0]
    np.testing.assert_allclose(got, 0.9999 * fmap[0, 0, 3] + 0.0001 * fmap[0, 0, 2], rtol=1e-6)


def test_sparse_integer_centers_and_size_one_maps():
    rng = np.random.default_rng(5)
    maps = [rng.normal(size=(2, 1, 1, 3)).astype("f4"), rng.normal(size=(2, 1, 5, 2)).astype("f4")]
    centers = np.array([[[0, 0], [31, 50]], [[7, 3], [2, 9]]], np.int32)
    got = L.SparseHypercolumn([32, 8])(maps, centers).numpy()
    np.testing.assert_allclose(got, ref_sparse(maps, [32, 8], centers), atol=1e-6)


def test_no_gradient_to_centers():
    rng = np.random.default_rng(6)
    maps = make_maps(rng, 1, 8, 8, [1])
    centers = tf.Variable(random_centers(rng, 1, 4, 8, 8))
    with tf.GradientTape() as tape:
        out = L.SparseHypercolumn([1])(maps, centers)
    assert tape.gradient(out, centers) is None


def test_sparse_unknown_shapes_under_tf_function():
    rng = np.random.default_rng(7)
    strides = [1, 2, 8]
    layer = L.SparseHypercolumn(strides)
    spec = [tf.TensorSpec([None, None, None, 3 + i]) for i in range(3)]

    @tf.function(input_signature=[spec, tf.TensorSpec([None, None, 2])])
    def f(maps, centers):
        return layer(maps, centers)

    for hw in [(9, 20), (20, 9)]:
        maps = make_maps(rng, 2, *hw, strides)
        centers = random_centers(rng, 2, 5, *hw)
        np.testing.assert_allclose(f(maps, centers).numpy(), ref_sparse(maps, strides, centers),
                                   atol=1e-5)
    assert len(f.get_concrete_function().graph.get_operations()) > 0


def test_sparse_gradient_is_gather_based():
    """The map gradient comes from gather (IndexedSlices), not a dense (B, H, W, C) per point."""
    rng = np.random.default_rng(8)
    fmap = tf.constant(make_maps(rng, 2, 16, 16, [1])[0])
    centers = random_centers(rng, 2, 8, 16, 16)
    layer = L.SparseHypercolumn([1])

    @tf.function
    def grad(m):
        with tf.GradientTape() as tape:
            tape.watch(m)
            loss = tf.reduce_sum(layer([m], centers))
        return tape.gradient(loss, m)

    ops = {op.type for op in grad.get_concrete_function(fmap).graph.get_operations()}
    assert "UnsortedSegmentSum" in ops
    assert grad(fmap).shape == fmap.shape


def test_sparse_bad_inputs():
    maps = [np.zeros((1, 4, 4, 2), "f4")]
    with pytest.raises(ValueError, match="strides"):
        L.SparseHypercolumn([1, 0])
    with pytest.raises(ValueError, match="strides"):
        L.SparseHypercolumn("1")
    with pytest.raises(ValueError, match="convention"):
        L.SparseHypercolumn([1], convention="align_corners")
    with pytest.raises(ValueError, match="edge_eps"):
        L.SparseHypercolumn([1], edge_eps=-1)
    with pytest.raises(ValueError, match="2 feature maps but 1 strides"):
        L.SparseHypercolumn([1])(maps * 2, np.zeros((1, 3, 2), "f4"))
    with pytest.raises(ValueError, match="centers must have shape"):
        L.SparseHypercolumn([1])(maps, np.zeros((1, 3, 3), "f4"))
    with pytest.raises(ValueError, match="rank 4"):
        L.SparseHypercolumn([1])([np.zeros((4, 4, 2), "f4")], np.zeros((1, 3, 2), "f4"))
    with pytest.raises(ValueError, match="batch"):
        L.SparseHypercolumn([1])(maps, np.zeros((2, 3, 2), "f4"))


# ----------------------------------------------------------------------------------------------
# DenseHypercolumn

@pytest.mark.parametrize("convention", ["released", "half_pixel"])
@pytest.mark.parametrize("grid_factor,hw", [(4, (37, 22)), (3, (22, 37)), (1, (9, 13))])
def test_dense_equals_sparse_on_grid(convention, grid_factor, hw):
    rng = np.random.default_rng(9)
    strides = list(rng.choice([1, 2, 4, 8, 16, 32, 3, 6], size=5))
    height, width = hw
    maps = make_maps(rng, 2, height, width, strides)
    dense = L.DenseHypercolumn(strides, grid_factor=grid_factor, convention=convention)
    sparse = L.SparseHypercolumn(strides, convention=convention)
    grid = dense(maps, (height, width)).numpy()
    h, w = -(-height // grid_factor), -(-width // grid_factor)
    assert grid.shape == (2, h, w, sum(m.shape[-1] for m in maps))
    ys, xs = np.meshgrid(np.arange(h) * grid_factor, np.arange(w) * grid_factor, indexing="ij")
    centers = np.repeat(np.stack([ys.ravel(), xs.ravel()], -1)[None], 2, 0).astype("f4")
    np.testing.assert_allclose(grid.reshape(2, h * w, -1), sparse(maps, centers).numpy(),
                               atol=1e-5)


def test_dense_image_shape_forms_and_unknown_sizes():
    rng = np.random.default_rng(10)
    strides = [1, 4, 16]
    maps = make_maps(rng, 1, 19, 30, strides)
    layer = L.DenseHypercolumn(strides)
    a = layer(maps, (19, 30))
    b = layer(maps, np.zeros((1, 19, 30, 1), "f4"))
    c = layer(maps, tf.constant([19, 30]))
    d = layer(maps, (19, 30), grid_factor=2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(a.numpy(), d.numpy()[:, ::2, ::2])
    spec = [tf.TensorSpec([None, None, None, m.shape[-1]]) for m in maps]

    @tf.function(input_signature=[spec, tf.TensorSpec([None, None, None, 1])])
    def f(ms, image):
        return layer(ms, image)

    np.testing.assert_allclose(f(maps, np.zeros((1, 19, 30, 1), "f4")).numpy(), a.numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="image"):
        layer(maps, np.zeros((19, 30, 1, 1, 1), "f4"))
    with pytest.raises(ValueError, match="grid_factor"):
        L.DenseHypercolumn(strides, grid_factor=0)


def test_dense_gradient_equals_sparse_gradient():
    rng = np.random.default_rng(11)
    strides = [1, 2, 8]
    maps = make_maps(rng, 1, 12, 20, strides)
    h, w = 3, 5
    ys, xs = np.meshgrid(np.arange(h) * 4, np.arange(w) * 4, indexing="ij")
    centers = np.stack([ys.ravel(), xs.ravel()], -1)[None].astype("f4")
    weights = rng.normal(size=(1, h * w, sum(m.shape[-1] for m in maps))).astype("f4")
    variables = [tf.Variable(m) for m in maps]
    with tf.GradientTape(persistent=True) as tape:
        ls = tf.reduce_sum(L.SparseHypercolumn(strides)(variables, centers) * weights)
        ld = tf.reduce_sum(L.DenseHypercolumn(strides)(variables, (12, 20))
                           * weights.reshape(1, h, w, -1))
    for gs, gd in zip(tape.gradient(ls, variables), tape.gradient(ld, variables)):
        np.testing.assert_allclose(tf.convert_to_tensor(gs).numpy(),
                                   tf.convert_to_tensor(gd).numpy(), atol=1e-5)


def test_grid_centers():
    ys, xs = L.grid_centers((9, 4), 4)
    np.testing.assert_array_equal(ys.numpy(), [0, 4, 8])
    np.testing.assert_array_equal(xs.numpy(), [0])


# ----------------------------------------------------------------------------------------------
# HistogramHead

def test_head_sparse_equals_dense_and_formula():
    rng = np.random.default_rng(12)
    head = L.HistogramHead((5, 3), hidden=7)
    dense_in = rng.normal(size=(2, 3, 4, 6)).astype("f4")
    dense_out = head(dense_in).numpy()
    sparse_out = head(dense_in.reshape(2, 12, 6)).numpy()
    np.testing.assert_allclose(dense_out.reshape(2, 12, 8), sparse_out, atol=1e-6)
    w1, b1 = head.h_fc1.get_weights()
    w2, b2 = head.output_dense.get_weights()
    want = np.maximum(dense_in @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(dense_out, want, atol=1e-5)
    # Same weights as a 1x1 convolution over the dense map.
    conv = tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(dense_in, w1[None, None], 1, "VALID") + b1),
                        w2[None, None], 1, "VALID") + b2
    np.testing.assert_allclose(dense_out, conv.numpy(), atol=1e-5)


def test_head_softmax_groups_split_and_dropout():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(3, 4, 10)).astype("f4")
    logits_head = L.HistogramHead((4, 6, 2), hidden=8, dropout=0.5)
    soft_head = L.HistogramHead((4, 6, 2), hidden=8, dropout=0.5, activation="softmax")
    logits_head(x)
    soft_head(x)
    soft_head.set_weights(logits_head.get_weights())
    logits = logits_head(x)
    probs = soft_head(x)
    groups = soft_head.split(probs)
    assert [g.shape[-1] for g in groups] == [4, 6, 2]
    for g, lg in zip(groups, logits_head.split(logits)):
        np.testing.assert_allclose(g.numpy(), tf.nn.softmax(lg).numpy(), atol=1e-6)
        np.testing.assert_allclose(g.numpy().sum(-1), 1.0, atol=1e-5)
    # Dropout acts only in training; inference is deterministic.
    np.testing.assert_array_equal(logits_head(x).numpy(), logits_head(x, training=False).numpy())
    assert not np.allclose(logits_head(x, training=True).numpy(), logits.numpy())
    # Regression output: no softmax, a single group.
    reg = L.HistogramHead((2,), hidden=8)
    assert reg(x).shape == (3, 4, 2) and len(reg.split(reg(x))) == 1
    with pytest.raises(ValueError, match="last axis"):
        soft_head.split(x)


def test_head_started_at_a_prior_predicts_it_when_its_other_weights_are_zero():
    rng = np.random.default_rng(14)
    prior = np.concatenate([rng.dirichlet(np.ones(5)), [0.0, 0.25, 0.75]])  # an empty bin
    head = L.HistogramHead((5, 3), hidden=7)
    head.build((None, 6))
    kernel_before = head.output_dense.kernel.numpy().copy()
    head.start_at_prior(prior)
    np.testing.assert_array_equal(head.output_dense.kernel.numpy(), kernel_before)  # bias only
    for layer in (head.h_fc1, head.output_dense):
        layer.kernel.assign(np.zeros(layer.kernel.shape, "f4"))
    head.h_fc1.bias.assign(rng.normal(size=7).astype("f4"))  # whatever h_fc1 does
    x = rng.normal(size=(2, 4, 6)).astype("f4")
    hue, chroma = head.split(head(x))
    floored = np.array([0.0, 0.25, 0.75]) + [L.PRIOR_BIAS_FLOOR, 0, 0]
    for group, want in ((hue, prior[:5]), (chroma, floored / floored.sum())):
        np.testing.assert_allclose(tf.nn.softmax(group).numpy(),
                                   np.broadcast_to(want, group.shape), rtol=1e-5, atol=1e-7)
    reg = L.HistogramHead((2,), hidden=4)
    reg.build((None, 3))
    reg.start_at_prior([0.1, -0.2], regression=True)
    np.testing.assert_allclose(reg.output_dense.bias.numpy(), [0.1, -0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="8 finite numbers"):
        head.start_at_prior(prior[:4])
    with pytest.raises(ValueError, match=">= 0"):
        head.start_at_prior(-prior)


def test_head_bad_config():
    with pytest.raises(ValueError, match="output_sizes"):
        L.HistogramHead((32, 0))
    with pytest.raises(ValueError, match="output_sizes"):
        L.HistogramHead(())
    with pytest.raises(ValueError, match="hidden"):
        L.HistogramHead(hidden=0)
    with pytest.raises(ValueError, match="dropout"):
        L.HistogramHead(dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        L.HistogramHead(activation="sigmoid")


# ----------------------------------------------------------------------------------------------
# LocalResponseNormalization, MeanShift

def ref_lrn(x, size, bias, alpha, beta):
    """Caffe LRN (ACROSS_CHANNELS): x / (k + alpha / n * sum of squares over n channels)^beta."""
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    r = size // 2
    out = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - r), min(c, i + r + 1)
        out[..., i] = x[..., i] / (bias + alpha / size * (x[..., lo:hi] ** 2).sum(-1)) ** beta
    return out


def test_lrn_matches_caffe_formula():
    rng = np.random.default_rng(14)
    x = rng.normal(scale=30.0, size=(2, 3, 4, 9)).astype("f4")
    got = L.LocalResponseNormalization()(x).numpy()  # Caffe bvlc_alexnet: n=5, 1e-4, 0.75, k=1
    np.testing.assert_allclose(got, ref_lrn(x, 5, 1.0, 1e-4, 0.75), rtol=1e-5)
    # AlexNet paper / TF convention: alpha is not divided by the window size.
    tf_style = L.LocalResponseNormalization(2, bias=2.0, alpha=1e-4, beta=0.75,
                                            alpha_convention="tf")
    np.testing.assert_allclose(tf_style(x).numpy(), ref_lrn(x, 5, 2.0, 5e-4, 0.75), rtol=1e-5)
    assert L.LocalResponseNormalization().tf_alpha == pytest.approx(2e-5)
    with pytest.raises(ValueError, match="alpha_convention"):
        L.LocalResponseNormalization(alpha_convention="paper")
    with pytest.raises(ValueError, match="depth_radius"):
        L.LocalResponseNormalization(depth_radius=-1)


def test_mean_shift():
    x = np.array([[0.0, 0.4488, 1.0]], "f4")
    np.testing.assert_allclose(L.MeanShift()(x).numpy(), [[-0.4488, 0.0, 0.5512]], atol=1e-7)
    np.testing.assert_allclose(L.MeanShift(0.5, 2.0)(x).numpy(), [[-1.0, -0.1024, 1.0]],
                               atol=1e-6)
    with pytest.raises(ValueError, match="mean"):
        L.MeanShift(mean="grey")


# ----------------------------------------------------------------------------------------------
# Keras plumbing: the layer test harness, functional models, MirroredStrategy, mixed precision.

STRIDES = [1, 2, 4]


def _maps_and_centers(seed=15, batch=2, hw=(10, 14)):
    rng = np.random.default_rng(seed)
    return make_maps(rng, batch, *hw, STRIDES), random_centers(rng, batch, 6, *hw)


def _harness_cases():
    maps, centers = _maps_and_centers()
    image = np.zeros((2, 10, 14, 1), "f4")
    x = np.random.default_rng(16).normal(size=(2, 3, 4, 12)).astype("f4")
    channels = sum(m.shape[-1] for m in maps)
    return {
        "sparse": (L.SparseHypercolumn, dict(strides=STRIDES, convention="half_pixel",
                                             edge_eps=0.0), (maps, centers), (2, 6, channels), 0),
        "sparse_int_centers": (L.SparseHypercolumn, dict(strides=STRIDES),
                               (maps, centers.astype("int32")), (2, 6, channels), 0),
        "dense_image": (L.DenseHypercolumn, dict(strides=STRIDES, grid_factor=2), (maps, image),
                        (2, 5, 7, channels), 0),
        "dense_size": (L.DenseHypercolumn, dict(strides=STRIDES, convention="half_pixel"),
                       (maps, (10, 14)), (2, 3, 4, channels), 0),
        "head": (L.HistogramHead, dict(output_sizes=(4, 6), hidden=8, activation="softmax"), x,
                 (2, 3, 4, 10), 4),
        "head_logits": (L.HistogramHead, dict(output_sizes=(3,), hidden=5, dropout=0.0),
                        x[:, 0], (2, 4, 3), 4),
        "lrn": (L.LocalResponseNormalization, dict(depth_radius=1, bias=2.0, alpha=1e-3,
                                                   beta=0.5), x, x.shape, 0),
        "mean_shift": (L.MeanShift, dict(mean=0.3, scale=2.0), x, x.shape, 0),
    }


@pytest.mark.parametrize("case", list(_harness_cases()))
def test_keras_layer_contract(case):
    """Config and keras.saving round trips, symbolic/eager/tf.function calls, float32 and mixed
    float16/bfloat16 policies, a training step (tests/layer_testing.py)."""
    cls, kwargs, data, shape, trainable = _harness_cases()[case]
    layer_testing.run_layer_test(cls, kwargs, data, expected_output_shape=shape,
                                 expected_num_trainable_weights=trainable,
                                 expected_num_non_trainable_weights=0)


def test_functional_model_and_saving(tmp_path):
    maps, centers = _maps_and_centers()
    ins = [keras.Input((None, None, m.shape[-1])) for m in maps]
    cin = keras.Input((None, 2))
    image = keras.Input((None, None, 1))
    head = L.HistogramHead((4, 6), hidden=8)
    sparse = head(L.SparseHypercolumn(STRIDES)(ins, cin))
    dense = head(L.DenseHypercolumn(STRIDES)(ins, image))
    lrn = L.LocalResponseNormalization()(L.MeanShift()(ins[0]))
    model = keras.Model(ins + [cin, image], [sparse, dense, lrn])
    feed = maps + [centers, np.zeros((2, 10, 14, 1), "f4")]
    want = model(feed)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(loaded(feed), want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_mirrored_strategy():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.skip("needs the two logical CPUs of tests/conftest.py")
    strategy = make_strategy("mirrored", devices=devices[:2])
    maps, centers = _maps_and_centers(batch=4)
    with strategy.scope():
        sparse = L.SparseHypercolumn(STRIDES)
        dense = L.DenseHypercolumn(STRIDES)
        head = L.HistogramHead((4, 6), hidden=8, dropout=0.0)
        lrn = L.LocalResponseNormalization()
        head(np.zeros((1, sum(m.shape[-1] for m in maps)), "f4"))
    dataset = tf.data.Dataset.from_tensor_slices((tuple(maps), centers)).batch(4)
    dist = strategy.experimental_distribute_dataset(dataset)

    @tf.function
    def step(inputs):
        ms, cs = inputs
        with tf.GradientTape() as tape:
            out = head(sparse(list(ms), cs), training=True)
            grid = head(dense(list(ms), tf.constant([10, 14])))
            loss = tf.reduce_sum(out ** 2) + tf.reduce_sum(grid) + tf.reduce_sum(lrn(ms[0]))
        grads = tape.gradient(loss, head.trainable_variables)
        return loss, [tf.norm(g) for g in grads]

    @tf.function
    def dist_step(inputs):
        loss, norms = strategy.run(step, args=(inputs,))
        return strategy.reduce("SUM", loss, axis=None), norms

    for batch in dist:
        loss, norms = dist_step(batch)
    with tf.GradientTape() as tape:
        out = head(sparse(maps, centers), training=False)
        grid = head(dense(maps, tf.constant([10, 14])))
        want = tf.reduce_sum(out ** 2) + tf.reduce_sum(grid) + tf.reduce_sum(lrn(maps[0]))
    np.testing.assert_allclose(loss.numpy(), want.numpy(), rtol=1e-5)
    assert len(strategy.experimental_local_results(norms[0])) == 2
    local = strategy.experimental_local_results(norms[-1])  # output bias grad per replica
    assert all(np.isfinite(v.numpy()) and v.numpy() > 0 for v in local)


def test_mixed_precision_keeps_centres_float32():
    """Centres are not autocast: a fractional coordinate above 1024 keeps its fraction (float16
    would round 2000.75 to 2000.0); the generic dtype checks are in test_keras_layer_contract."""
    policy = "mixed_float16"  # float16(2000.75) == 2001
    big = np.zeros((1, 1, 3000, 1), "f4")
    big[0, 0, 2001, 0] = 1.0
    far = np.array([[[0.0, 2000.75]]], "f4")
    assert float(L.SparseHypercolumn([1], dtype=policy)([big], far)[0, 0, 0]) == pytest.approx(0.75)


def test_hypercolumns_under_xla():
    rng = np.random.default_rng(17)
    strides = [1, 4]
    maps = [tf.constant(m) for m in make_maps(rng, 2, 13, 21, strides)]
    centers = tf.constant(random_centers(rng, 2, 7, 13, 21))
    sparse, dense = L.SparseHypercolumn(strides), L.DenseHypercolumn(strides)

    def loss_and_grads(ms, cs):
        with tf.GradientTape() as tape:
            tape.watch(ms)
            loss = (tf.reduce_sum(sparse(ms, cs) ** 2)
                    + tf.reduce_sum(dense(ms, tf.constant([13, 21])) ** 2))
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, ms)]

    xla_loss, xla_grads = tf.function(loss_and_grads, jit_compile=True)(maps, centers)
    loss, grads = loss_and_grads(maps, centers)
    np.testing.assert_allclose(xla_loss.numpy(), loss.numpy(), rtol=1e-5)
    for a, b in zip(xla_grads, grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
