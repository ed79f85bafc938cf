"""Tests of tfcolor.models.colorizer.Colorizer on the small vgg_tiny trunk (VGG-16's taps and
strides at 1/8 width): sparse equals dense, factored equals concat, tap subsets, loss kinds,
config / checkpoint round trips, MirroredStrategy equals one device, mixed precision; the Keras
plumbing through tests/layer_testing.py."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfcolor import layers as tfcolor_layers
from tfcolor import losses
from tfcolor.models.colorizer import Colorizer
from tfcolor.train.strategy import make_strategy  # one strategy per device set

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import layer_testing  # noqa: E402  (tests/layer_testing.py)

ARCH = "vgg_tiny"
HIDDEN = 32


def _gray(seed=0, batch=2, hw=(40, 56)):
    return np.random.default_rng(seed).uniform(size=(batch,) + hw + (1,)).astype("float32")


def _grid_centers(hw, g, batch):
    h, w = -(-hw[0] // g), -(-hw[1] // g)
    ys, xs = np.meshgrid(np.arange(h) * g, np.arange(w) * g, indexing="ij")
    return np.repeat(np.stack([ys.ravel(), xs.ravel()], -1)[None], batch, 0).astype("f4"), (h, w)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return Colorizer(ARCH, hidden=HIDDEN)


@pytest.mark.parametrize("method", ["factored", "concat"])
@pytest.mark.parametrize("grid_factor,hw", [(4, (40, 56)), (3, (37, 29))])
def test_sparse_equals_dense(model, method, grid_factor, hw):
    gray = _gray(hw=hw)
    dense = model.dense(gray, grid_factor=grid_factor, method=method).numpy()
    centers, (h, w) = _grid_centers(hw, grid_factor, 2)
    assert dense.shape == (2, h, w, 64)
    sparse = model.sparse(gray, centers, training=False).numpy()
    np.testing.assert_allclose(dense.reshape(2, h * w, 64), sparse, atol=2e-5, rtol=1e-5)


def test_call_is_dense_and_half_pixel_convention():
    keras.utils.set_random_seed(2)
    m = Colorizer(ARCH, hidden=HIDDEN, convention="half_pixel", taps="conv3_1-fc7")
    gray = _gray(3)
    np.testing.assert_allclose(m(gray).numpy(), m.dense(gray, method="concat").numpy(), atol=2e-5)
    centers, (h, w) = _grid_centers((40, 56), 4, 2)
    np.testing.assert_allclose(m(gray).numpy().reshape(2, h * w, -1),
                               m.sparse(gray, centers).numpy(), atol=2e-5)


def test_tap_selection_and_kinds():
    all_taps = Colorizer(ARCH, hidden=HIDDEN)
    assert all_taps.taps[0] == "data" and all_taps.taps[-1] == "fc7"
    assert sum(all_taps.tap_channels) == 785  # vgg_tiny's full hypercolumn
    fc = Colorizer(ARCH, hidden=HIDDEN, taps="fc6-fc7", kind="lab_joint")
    assert fc.taps == ["fc6", "fc7"] and fc.head.h_fc1.kernel.shape == (256, HIDDEN)
    assert fc.sparse(_gray(), np.zeros((2, 5, 2), "int32")).shape == (2, 5, 256)
    conv4 = Colorizer(ARCH, hidden=HIDDEN, taps=["fc7", "conv4_1-conv4_3"], kind="lab_regression")
    assert conv4.taps == ["conv4_1", "conv4_2", "conv4_3", "fc7"]
    assert conv4.output_sizes == (2,) and conv4(_gray()).shape == (2, 10, 14, 2)
    hist = Colorizer(ARCH, hidden=HIDDEN, taps="conv5_1-fc7", kind="lab_hist",
                     head_activation="softmax")
    probs = hist(_gray()).numpy()
    np.testing.assert_allclose(probs[..., :32].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs[..., 32:].sum(-1), 1.0, atol=1e-5)
    fov = Colorizer(ARCH, hidden=HIDDEN, fov=True, taps="fc7-fov2")
    assert fov.taps == ["fc7", "fov1", "fov2"]
    assert fov.sparse_hypercolumn.strides == [32, 64, 128]
    assert Colorizer.from_config(fov.get_config()).taps == fov.taps
    with pytest.raises(ValueError, match="Unknown tap"):
        Colorizer(ARCH, taps="conv9_1")
    with pytest.raises(ValueError, match="head_activation"):
        Colorizer(ARCH, kind="lab_regression", head_activation="softmax")
    with pytest.raises(ValueError, match="dense_method"):
        Colorizer(ARCH, dense_method="upsample")


def test_bad_gray_input(model):
    with pytest.raises(ValueError, match="grey batch"):
        model.dense(np.zeros((1, 16, 16, 3), "f4"))
    with pytest.raises(ValueError, match="float"):
        model.dense(np.zeros((1, 16, 16, 1), "uint8"))


def test_one_set_of_weights_and_training_flag(model):
    gray = _gray(4)
    centers = np.array([[[8, 8], [20, 30]]] * 2, "f4")
    with tf.GradientTape(persistent=True) as tape:
        sparse = tf.reduce_sum(model.sparse(gray, centers, training=True) ** 2)
        dense = tf.reduce_sum(model.dense(gray, training=True) ** 2)
    gs = tape.gradient(sparse, model.trainable_variables)
    gd = tape.gradient(dense, model.trainable_variables)
    assert all(g is not None for g in gs) and all(g is not None for g in gd)
    trunk_vars = {id(v) for v in model.trunk.trainable_variables}
    head_vars = {id(v) for v in model.head.trainable_variables}
    assert {id(v) for v in model.trainable_variables} == trunk_vars | head_vars
    # Dropout (and BN batch statistics) only with training=True.
    a = model.sparse(gray, centers, training=False).numpy()
    np.testing.assert_array_equal(a, model.sparse(gray, centers, training=False).numpy())
    assert not np.allclose(a, model.sparse(gray, centers, training=True).numpy())


def test_unknown_input_size_under_tf_function(model):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1]),
                                  tf.TensorSpec([None, None, 2])])
    def f(gray, centers):
        return model.sparse(gray, centers), model.dense(gray)

    for hw in [(33, 47), (50, 21)]:
        gray = _gray(5, hw=hw)
        centers, (h, w) = _grid_centers(hw, 4, 2)
        sparse, dense = f(gray, centers)
        assert dense.shape == (2, h, w, 64)
        np.testing.assert_allclose(dense.numpy().reshape(2, h * w, 64), sparse.numpy(),
                                   atol=2e-5, rtol=1e-5)


def test_keras_model_contract():
    """Config and keras.saving round trips, symbolic, eager and tf.function calls (the dense
    path), mixed float16 and bfloat16 (global policy and dtype=), a training step on every trunk
    and head weight (tests/layer_testing.py). Batch 2: training-mode BN over one 1x1 map would
    zero the gradients of fc6 and fc7."""
    result = layer_testing.run_layer_test(
            Colorizer, dict(arch=ARCH, hidden=HIDDEN, taps="conv2_1-fc7"), _gray(6, hw=(24, 24)),
            expected_output_shape=(2, 6, 6, 64), expected_num_trainable_weights=2 * 15 + 4)
    config = result.layer.get_config()
    assert config["arch"] == ARCH and "trunk" not in config


def test_keras_file(model, tmp_path):
    gray = _gray(6)
    path = str(tmp_path / "colorizer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Colorizer) and loaded.taps == model.taps
    np.testing.assert_allclose(loaded(gray).numpy(), model(gray).numpy(), atol=1e-6)


def test_checkpoint_round_trip(model, tmp_path):
    gray = _gray(7)
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    keras.utils.set_random_seed(99)
    fresh = Colorizer(ARCH, hidden=HIDDEN)
    assert not np.allclose(fresh(gray).numpy(), model(gray).numpy())
    tf.train.Checkpoint(model=fresh).restore(prefix).assert_consumed()
    np.testing.assert_allclose(fresh(gray).numpy(), model(gray).numpy(), atol=1e-6)


def test_custom_trunk_round_trip():
    gray_in = keras.Input((None, None, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(gray_in)
    b = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="b")(a)
    trunk = keras.Model(gray_in, {"a": a, "b": b})
    m = Colorizer(trunk=trunk, tap_strides={"a": 1, "b": 2}, output_sizes=(3, 5), hidden=8)
    gray = _gray(8, hw=(12, 18))
    centers, (h, w) = _grid_centers((12, 18), 4, 2)
    np.testing.assert_allclose(m(gray).numpy().reshape(2, h * w, 8),
                               m.sparse(gray, centers).numpy(), atol=1e-5)
    layer_testing.run_serialization_test(m, call_args=(gray,))
    only_b = Colorizer(trunk=trunk, tap_strides={"a": 1, "b": 2}, taps=["b"], hidden=8)
    assert only_b.taps == ["b"]
    with pytest.raises(ValueError, match="tap_strides"):
        Colorizer(trunk=trunk)
    with pytest.raises(ValueError, match="does not output"):
        Colorizer(trunk=trunk, tap_strides={"a": 1, "c": 4})


def _train_step_fn(model, optimizer, loss_fn, global_points):
    def step(gray, centers, targets):
        with tf.GradientTape() as tape:
            logits = model.sparse(gray, centers, training=True)
            loss = tf.reduce_sum(loss_fn(targets, logits)) / global_points
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return step


def _random_targets(rng, batch, points, k=32):
    hue = rng.dirichlet(np.ones(k), size=(batch, points))
    chroma = rng.dirichlet(np.ones(k), size=(batch, points))
    extra = rng.uniform(size=(batch, points, 2))
    return np.concatenate([hue, chroma, extra], -1).astype("f4")


def test_mirrored_strategy_matches_one_device():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.skip("needs the two logical CPUs of tests/conftest.py")
    rng = np.random.default_rng(9)
    gray = _gray(9, batch=4, hw=(32, 32))
    centers = rng.integers(0, 32, size=(4, 6, 2)).astype("f4")
    targets = _random_targets(rng, 4, 6)
    loss_fn = losses.HueChromaLoss()
    # No BN and no dropout, so the distributed step is exactly the whole-batch step.
    kwargs = dict(hidden=HIDDEN, dropout=0.0, batch_norm="none", taps="conv3_1-fc7")
    keras.utils.set_random_seed(3)
    single = Colorizer(ARCH, **kwargs)
    initial = single.get_weights()
    single_opt = keras.optimizers.SGD(0.1, momentum=0.9)
    single_loss = tf.function(_train_step_fn(single, single_opt, loss_fn, 24.0))(
            gray, centers, targets)

    strategy = make_strategy("mirrored", devices=devices[:2])
    with strategy.scope():
        dist = Colorizer(ARCH, **kwargs)
        dist.set_weights(initial)
        dist_opt = keras.optimizers.SGD(0.1, momentum=0.9)
        dist_opt.build(dist.trainable_variables)  # not lazily inside the replica context
    step = _train_step_fn(dist, dist_opt, loss_fn, 24.0)
    dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((gray, centers, targets)).batch(4))

    @tf.function
    def dist_step(batch):
        per_replica = strategy.run(step, args=batch)
        return strategy.reduce("SUM", per_replica, axis=None)

    dist_loss = dist_step(next(iter(dataset)))
    np.testing.assert_allclose(dist_loss.numpy(), single_loss.numpy(), rtol=1e-5)
    for a, b in zip(dist.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(initial, single.get_weights()))


def test_mixed_precision():
    """Beyond the harness's checks: dtype= leaves the global policy alone, factored equals concat
    and the sparse path trains with the loss under mixed_float16."""
    previous = keras.config.dtype_policy()
    with layer_testing.global_dtype_policy("mixed_float16"):
        keras.utils.set_random_seed(4)
        m = Colorizer(ARCH, hidden=HIDDEN, taps="conv2_1-fc7")
    explicit = Colorizer(ARCH, hidden=HIDDEN, taps="fc6-fc7", dtype="mixed_float16")
    assert keras.config.dtype_policy().name == previous.name
    assert explicit.trunk.get_layer("fc7").compute_dtype == "float16"
    gray = _gray(10)
    centers = np.array([[[3, 5], [39, 55]]] * 2, "f4")
    dense = m.dense(gray).numpy().astype("f4")
    concat = m.dense(gray, method="concat").numpy().astype("f4")
    np.testing.assert_allclose(dense, concat, atol=0.05, rtol=0.02)
    targets = _random_targets(np.random.default_rng(10), 2, 2)
    with tf.GradientTape() as tape:
        logits = m.sparse(gray, centers, training=True)
        assert logits.dtype == tf.float16
        loss = tf.reduce_mean(losses.HueChromaLoss()(targets, logits))
    grads = tape.gradient(loss, m.trainable_variables)
    assert all(g.dtype == tf.float32 and np.all(np.isfinite(g.numpy())) for g in grads)


def test_layers_are_the_tfcolor_layers(model):
    assert isinstance(model.sparse_hypercolumn, tfcolor_layers.SparseHypercolumn)
    assert isinstance(model.dense_hypercolumn, tfcolor_layers.DenseHypercolumn)
    assert model.sparse_hypercolumn.strides == [1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32]
    assert model.head.h_fc1.name == "h_fc1" and model.head.dropout == 0.5


def test_called_on_gray_and_centers_is_sparse_and_compiles_with_a_per_point_loss(tmp_path):
    """Keras fit's input: model({"gray", "centers"}) == sparse; compile(loss=HueChromaLoss())
    (reduction None, one value per point) trains on the mean over points; the compiled loss
    survives a .keras round trip."""
    keras.utils.set_random_seed(6)
    m = Colorizer(ARCH, hidden=HIDDEN, taps="fc6-fc7", dropout=0.0)
    gray = _gray(11)
    centers = np.array([[[3, 5], [39, 55], [20, 7]]] * 2, "f4")
    sparse = m({"gray": gray, "centers": centers})
    np.testing.assert_allclose(sparse.numpy(), m.sparse(gray, centers).numpy(), rtol=1e-6)
    np.testing.assert_allclose(m(gray).numpy(), m.dense(gray).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="'centers'"):
        m({"gray": gray})
    m.compile(optimizer="sgd", loss=losses.HueChromaLoss(hue_weight=2.0))
    assert m.loss.reduction == "sum_over_batch_size" and m.loss.hue_weight == 2.0
    targets = _random_targets(np.random.default_rng(11), 2, 3)
    expected = np.mean(losses.HueChromaLoss(hue_weight=2.0)(targets, sparse).numpy())
    got = m.evaluate({"gray": gray, "centers": centers}, targets, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    path = str(tmp_path / "colorizer.keras")
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == m.get_config()
    assert loaded.loss.hue_weight == 2.0 and loaded.loss.reduction == "sum_over_batch_size"
    np.testing.assert_allclose(loaded({"gray": gray, "centers": centers}).numpy(),
                               sparse.numpy(), rtol=1e-6)
