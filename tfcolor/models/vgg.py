"""VGG-16 trunk (and ``vgg_tiny``, the same network at reduced widths for tests / CPU demos).

Structure (Simonyan & Zisserman configuration D, as used by Larsson et al.): conv1_1..conv5_3 are
3x3 convolutions with ReLU, a 2x2 stride-2 max-pool between blocks (``pool1``..``pool5``), then
fc6 as a 7x7 convolution with 4096 channels after pool5 and fc7 as a 1x1 convolution with 4096
channels ("fully convolutional" VGG-16, like the released code's ``convolutional=True`` path).
Every convolution and pooling uses "same" padding, so tap ``t`` has spatial size
``ceil(H / stride_t)``. There is no dropout in the trunk (the released code's fc6/fc7 dropout
belongs to the classification setting; add it downstream if wanted).

Per convolution the layers are ``<name>`` (Conv2D, bias kept), ``<name>_bn`` (BN, absent with
``batch_norm="none"``) and ``<name>_relu``; the tap is the ReLU output. Convolutions keep their
bias even when followed by BN: the released code does the same, the bias is then a harmless
no-op during training, and keeping it gives every convolution the kernel + bias layout of
``keras.applications.VGG16`` (so ImageNet weights load 1:1, see
:func:`tfcolor.models.imagenet_weights.load_vgg16_imagenet_weights`) and of the network after
:func:`tfcolor.surgery.absorb_batch_norm`.

Layer names follow the Caffe / paper names (``conv1_1`` ... ``fc7``); ``KERAS_VGG16_NAMES`` maps
them to the names of ``keras.applications.VGG16`` (``block1_conv1`` ... ``block5_conv3``, and
``fc1``/``fc2``, the dense layers whose weights reshape to fc6/fc7). Kernel shapes equal Keras'
except conv1_1's input channels (1 instead of 3) and fc6/fc7 (convolutional instead of dense).

Taps and strides: data 1, conv1_1 1, conv1_2 1, conv2_1 2, conv2_2 2, conv3_1-3 4, conv4_1-3 8,
conv5_1-3 16, fc6 32, fc7 32: 12,417 channels (``vgg_tiny``: 785 channels, widths
8, 16, 32, 64, 64 per block and 128 for fc6/fc7).
"""
import tfcolor.models.trunk as trunk

# (block, convs per block) of configuration D.
_BLOCKS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
VGG16_WIDTHS = {"blocks": (64, 128, 256, 512, 512), "fc": 4096}
VGG_TINY_WIDTHS = {"blocks": (8, 16, 32, 64, 64), "fc": 128}
FC6_KERNEL = 7

CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in _BLOCKS for i in range(1, n + 1))
# tfcolor layer name -> keras.applications.VGG16 layer name.
KERAS_VGG16_NAMES = dict(
        [(f"conv{b}_{i}", f"block{b}_conv{i}") for b, n in _BLOCKS for i in range(1, n + 1)]
        + [("fc6", "fc1"), ("fc7", "fc2")])

VGG16_TAP_STRIDES = ([("data", 1)]
                     + [(f"conv{b}_{i}", 2 ** (b - 1)) for b, n in _BLOCKS
                        for i in range(1, n + 1)]
                     + [("fc6", 32), ("fc7", 32)])


def _build_vgg(widths):
    def build(x, ctx):
        for (block, n), width in zip(_BLOCKS, widths["blocks"]):
            if block > 1:
                x = ctx.max_pool(x, 2, 2, name=f"pool{block - 1}")
            for i in range(1, n + 1):
                name = f"conv{block}_{i}"
                x = ctx.conv_bn_relu(x, width, 3, name)
                ctx.tap(name, x)
                if ctx.done:
                    return x
        x = ctx.max_pool(x, 2, 2, name="pool5")
        x = ctx.conv_bn_relu(x, widths["fc"], FC6_KERNEL, "fc6")
        ctx.tap("fc6", x)
        if ctx.done:
            return x
        x = ctx.conv_bn_relu(x, widths["fc"], 1, "fc7")
        ctx.tap("fc7", x)
        return x
    return build


# Named selections; any other ablation is a range such as "conv4_1-fc7" or "fc6-fc7".
# "released": the authors' TensorFlow code (selfsup/multi/basenets/vgg16.py) reads conv1_1..fc7
# without the data layer (12,416 channels); the paper's hypercolumn (the default) includes it.
_PRESETS = {
        "hypercolumn": "all",
        "no_data": "conv1_1-fc7",
        "released": "conv1_1-fc7",
        "block_heads": ["data", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1", "fc7"],
}

trunk.register_arch("vgg16", _build_vgg(VGG16_WIDTHS), VGG16_TAP_STRIDES, presets=_PRESETS)
trunk.register_arch("vgg_tiny", _build_vgg(VGG_TINY_WIDTHS), VGG16_TAP_STRIDES,
                    presets=_PRESETS)


def build_vgg16(**kwargs):
    """``build_trunk("vgg16", **kwargs)``."""
    return trunk.build_trunk("vgg16", **kwargs)


def build_vgg_tiny(**kwargs):
    """``build_trunk("vgg_tiny", **kwargs)``: VGG-16's structure and taps at 1/8 width."""
    return trunk.build_trunk("vgg_tiny", **kwargs)
