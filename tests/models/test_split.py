"""tfcolor.models.split: split-activations (the combined network equals its columns side by side,
on the Table 4.1 nets and the VGG trunk), split-weights masks (destination columns, a partition),
the column heads against a NumPy head, and the named errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.models import build_trunk, cifar_nets, split

M = 3


def _randomise_biases(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in v.path
                               else rng.normal(size=w.shape)
                               for v, w in zip(layer.weights, layer.get_weights())])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape) * 0.1)


def _columns(**kw):
    nets = [cifar_nets.deep_net(input_shape=(16, 16, 1), width_divisor=16, num_classes=3, **kw)
            for _ in range(M)]
    for i, net in enumerate(nets):
        _randomise_biases(net, i)
    return nets


def _concat(outputs, key):
    return np.concatenate([np.asarray(o[key]) for o in outputs], axis=-1)


def test_combined_deep_net_is_the_columns_side_by_side():
    cols = _columns()
    combined = split.concatenate_columns(cols)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    out = combined(x, training=False)
    ref = [c(x, training=False) for c in cols]
    assert out["top"].shape == (2, M * 2 * 2 * 12) and out["task"].shape == (2, M * 3)
    for key in ("top", "task"):
        # Only exact zeros are added to each column's sums: equal up to summation order.
        np.testing.assert_allclose(out[key], _concat(ref, key), rtol=1e-5, atol=1e-6)
    # The kernels are block-diagonal with the columns' kernels on the diagonal; the first
    # layer reads the shared image, so its kernels sit side by side.
    k1 = combined.get_layer("conv1").kernel.numpy()
    np.testing.assert_array_equal(k1, np.concatenate([c.get_layer("conv1").kernel.numpy()
                                                      for c in cols], axis=-1))
    k3 = combined.get_layer("conv3").kernel.numpy()
    cin, cout = cols[0].get_layer("conv3").kernel.shape[-2:]
    for i in range(M):
        for j in range(M):
            block = k3[..., i * cin:(i + 1) * cin, j * cout:(j + 1) * cout]
            if i == j:
                np.testing.assert_array_equal(block, cols[i].get_layer("conv3").kernel.numpy())
            else:
                assert not block.any()


def test_cross_weights_random_init_and_free_to_train():
    cols = _columns()
    combined = split.concatenate_columns(cols, cross_init_stddev=0.01, seed=3)
    k = combined.get_layer("conv4").kernel.numpy()
    c = cols[0].get_layer("conv4").kernel.shape[-1]
    off = k[..., :c, c:2 * c]
    assert off.any() and 0.005 < off.std() < 0.02
    np.testing.assert_array_equal(k[..., c:2 * c, c:2 * c],
                                  cols[1].get_layer("conv4").kernel.numpy())
    # Cross-weights are ordinary parameters: with exact zeros they still get gradients.
    exact = split.concatenate_columns(cols)
    x = np.random.default_rng(1).random((4, 16, 16, 1)).astype(np.float32)
    kernel = exact.get_layer("conv4").kernel
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(exact(x, training=False)["task"]))
    grad = tape.gradient(loss, kernel).numpy()
    assert np.abs(grad[..., :c, c:2 * c]).max() > 0


def test_vgg_trunk_with_batch_norm_combines():
    trunks = [build_trunk("vgg_tiny", taps=None, input_channels=3) for _ in range(2)]
    for i, t in enumerate(trunks):
        _randomise_biases(t, 10 + i)
    combined = split.concatenate_columns(trunks)
    x = np.random.default_rng(2).random((1, 32, 32, 3)).astype(np.float32)
    out = combined(x, training=False)
    ref = [t(x, training=False) for t in trunks]
    np.testing.assert_array_equal(out["data"], ref[0]["data"])   # the shared input tap
    for tap in ("conv1_1", "conv3_2", "fc7"):
        np.testing.assert_allclose(out[tap], _concat(ref, tap), rtol=1e-4, atol=1e-5)


def test_unsupported_layers_and_architectures_are_named():
    x = keras.Input((8,))
    a = keras.layers.Dense(4)(x)
    norm = keras.Model(x, keras.layers.LayerNormalization()(a))
    with pytest.raises(ValueError, match="LayerNormalization"):
        split.concatenate_columns([norm, norm])
    with pytest.raises(ValueError, match="LayerNormalization"):
        split.column_masks(norm, 2)
    y = keras.Input((8,))
    b = keras.layers.Dense(4)(y)
    cat = keras.Model(y, keras.layers.Concatenate()([b, b]))
    with pytest.raises(ValueError, match="Concatenate"):
        split.concatenate_columns([cat, cat])
    small = cifar_nets.shallow_net(input_shape=(16, 16, 1), width_divisor=8)
    wide = cifar_nets.shallow_net(input_shape=(16, 16, 1), width_divisor=4)
    with pytest.raises(ValueError, match="same architecture"):
        split.concatenate_columns([small, wide])


def test_unit_columns_and_masks_follow_the_destination_unit():
    cols = split.unit_columns(64, 10)
    assert np.all(np.diff(cols) >= 0) and cols[0] == 0 and cols[-1] == 9
    assert set(np.bincount(cols)) == {6, 7}                 # balanced: 64 = 4 x 7 + 6 x 6
    net = cifar_nets.deep_net(input_shape=(16, 16, 1), width_divisor=16, num_classes=None)
    masks = split.column_masks(net, 4)
    assert sorted(masks) == sorted(v.path for v in net.trainable_variables)
    for v in net.trainable_variables:
        ms = masks[v.path]
        assert len(ms) == 4
        np.testing.assert_array_equal(np.broadcast_to(sum(ms), v.shape), 1.0)
    k = masks["conv3/kernel"]                                # (3, 3, 4, 8): 2 units a column
    assert k[1].shape == (1, 1, 1, 8)
    np.testing.assert_array_equal(k[1].ravel(), [0, 0, 1, 1, 0, 0, 0, 0])


def test_top_columns_follow_channels_and_heads_read_their_column():
    net = cifar_nets.shallow_net(input_shape=(16, 16, 1), width_divisor=48, num_classes=None)
    # top: Flatten of (2, 2, 4) position-major; 2 columns of 2 channels each.
    np.testing.assert_array_equal(split.top_columns(net, 2), [0, 0, 1, 1] * 4)
    heads = split.column_heads(net, [3, 5], task_names=["a", "b"])
    assert heads.get_layer("head_a").kernel.shape == (8, 3)
    assert heads.get_layer("head_b").kernel.shape == (8, 5)
    x = np.random.default_rng(4).normal(size=(2, 16, 16, 1)).astype(np.float32)
    top = np.maximum(np.asarray(net(x)["top"]), 0)
    out = heads(x)
    for name, cols in (("a", [0, 1, 4, 5, 8, 9, 12, 13]), ("b", [2, 3, 6, 7, 10, 11, 14, 15])):
        kernel, bias = heads.get_layer(f"head_{name}").get_weights()
        np.testing.assert_allclose(out[name], top[:, cols] @ kernel + bias, rtol=1e-5,
                                   atol=1e-6)
    whole = split.column_heads(net, [3, 5], own_column=False)
    assert whole.get_layer("head_task0").kernel.shape == (16, 3)


def test_combined_network_and_heads_round_trip_through_their_config():
    cols = _columns()
    net = cifar_nets.shallow_net(input_shape=(16, 16, 1), width_divisor=8, num_classes=None)
    x = np.random.default_rng(5).random((2, 16, 16, 1)).astype(np.float32)
    for model in (split.concatenate_columns(cols), split.column_heads(net, [3, 5])):
        again = keras.Model.from_config(model.get_config())
        again.set_weights(model.get_weights())
        for key, value in model(x, training=False).items():
            np.testing.assert_array_equal(again(x, training=False)[key], value)
