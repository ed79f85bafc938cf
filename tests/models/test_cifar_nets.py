"""tfcolor.models.cifar_nets: the Deep and Shallow nets of Table 4.1, checked against the table's
rows (written out here), the flatten sizes the text computes (3,072 and 768), a NumPy top ->
task layer, and a config round trip."""
import keras
import numpy as np
import pytest

from tfcolor.models import cifar_nets

# (kernel size, channels, dropout) per conv and where the poolings are, copied from Table 4.1.
DEEP = [(5, 64, 0), (3, 64, 0), "pool", (3, 128, .1), (3, 128, .1), "pool", (3, 192, .2),
        (3, 192, .2), "pool", (3, 192, .3), (3, 192, .3), "pool"]
SHALLOW = [(5, 8, 0), "pool", (3, 16, .1), "pool", (3, 32, .2), "pool", (3, 32, .3),
           (3, 192, .3), "pool"]


def _structure(model):
    """The conv / pool sequence of a built net, with each conv's dropout rate."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.strides == (1, 1) and layer.padding == "same"
            out.append([layer.kernel_size[0], layer.filters, 0])
        elif isinstance(layer, keras.layers.MaxPooling2D):
            assert layer.pool_size == (2, 2) and layer.strides == (2, 2)
            out.append("pool")
        elif isinstance(layer, keras.layers.Dropout):
            conv = [r for r in out if r != "pool"][-1]
            conv[2] = layer.rate
    return [tuple(r) if r != "pool" else r for r in out]


@pytest.mark.parametrize("arch,rows", [("deep", DEEP), ("shallow", SHALLOW)])
def test_the_rows_of_table_4_1(arch, rows):
    four = cifar_nets.cifar_net(arch, poolings=4)
    assert _structure(four) == rows
    assert four.output["top"].shape[-1] == 768          # 2 x 2 x 192, the rows as listed
    three = cifar_nets.cifar_net(arch)                   # default: the printed 3,072
    assert _structure(three) == rows[:-1]                # the last pooling dropped
    assert three.output["top"].shape[-1] == 3072 == cifar_nets.top_size(arch)
    assert three.output["task"].shape[-1] == 100
    assert cifar_nets.top_size(arch, poolings=4) == 768
    assert [isinstance(layer, keras.layers.Conv2D) for layer in three.layers].count(True) == (
        8 if arch == "deep" else 5)


def test_thin_columns_round_channels_up_and_no_dropout_student():
    net = cifar_nets.deep_net(width_divisor=10, dropout=False, num_classes=7)
    assert [r[1] for r in _structure(net) if r != "pool"] == [7, 7, 13, 13, 20, 20, 20, 20]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in net.layers)
    assert net.output["top"].shape[-1] == 4 * 4 * 20
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    a, b = net(x, training=True), net(x, training=True)
    np.testing.assert_array_equal(a["task"], b["task"])  # nothing random without dropout
    assert cifar_nets.thin_channels(192, 4) == 48 and cifar_nets.thin_channels(8, 3) == 3


def test_top_is_pre_relu_and_the_task_layer_reads_its_relu():
    net = cifar_nets.shallow_net(input_shape=(16, 16, 1), num_classes=5)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 1)).astype(np.float32)
    out = net(x, training=False)
    top = np.asarray(out["top"])
    assert top.shape == (4, 2 * 2 * 192) and (top < 0).any()   # pre-ReLU
    kernel, bias = net.get_layer("task").get_weights()
    np.testing.assert_allclose(out["task"], np.maximum(top, 0) @ kernel + bias,
                               rtol=1e-5, atol=1e-5)
    # The top is the last conv's output, flattened position-major (Keras' Flatten).
    conv = keras.Model(net.input, net.get_layer("conv5").output)(x, training=False)
    np.testing.assert_allclose(top, np.asarray(conv).reshape(4, -1), rtol=1e-6, atol=1e-6)


def test_trunk_without_task_layer_and_config_round_trip():
    trunk = cifar_nets.deep_net(input_shape=(16, 16, 1), width_divisor=16, num_classes=None)
    assert sorted(trunk.output) == ["top"]
    net = cifar_nets.deep_net(input_shape=(16, 16, 1), width_divisor=16, num_classes=3)
    again = keras.Model.from_config(net.get_config())
    again.set_weights(net.get_weights())
    x = np.random.default_rng(2).random((2, 16, 16, 1)).astype(np.float32)
    for key in ("top", "task"):
        np.testing.assert_array_equal(again(x)[key], net(x)[key])


@pytest.mark.parametrize("kwargs,words", [
    (dict(arch="wide"), "arch"), (dict(poolings=5), "poolings"),
    (dict(width_divisor=0), "width_divisor"), (dict(num_classes=0), "num_classes"),
    (dict(input_shape=(30, 30, 3)), "multiples of 8"), (dict(input_shape=(32, 32)), "input_shape"),
])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        cifar_nets.cifar_net(**kwargs)
