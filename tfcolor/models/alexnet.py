"""AlexNet trunk (Caffe ``bvlc_alexnet`` layout, with local response normalization).

Layers (Caffe hyper-parameters): conv1 11x11/4, 96 -> ReLU -> LRN (``norm1``) -> 3x3/2 max-pool;
conv2 5x5, 256 -> ReLU -> LRN (``norm2``) -> 3x3/2 max-pool; conv3 3x3, 384; conv4 3x3, 384;
conv5 3x3, 256 -> 3x3/2 max-pool; fc6 as a 6x6 convolution with 4096 channels; fc7 as a 1x1
convolution with 4096 channels. LRN is :class:`tfcolor.layers.LocalResponseNormalization` with
Caffe's ``local_size=5, alpha=1e-4, beta=0.75, k=1`` (= ``tf.nn.local_response_normalization``
with radius 2, alpha 2e-5, as in the authors' TensorFlow AlexNet).

Padding: every convolution and pooling uses "same" padding (Caffe uses conv1 without padding and
"ceil-mode" 3x3 pools), so that the strides are exact for every input size: a tap with stride s
has ``ceil(H / s)`` rows. Taps and strides: data 1, conv1 4, conv2 8, conv3 16, conv4 16,
conv5 16, fc6 32, fc7 32 (1 + 96 + 256 + 384 + 384 + 256 + 4096 + 4096 = 9,569 channels).

Groups: Caffe AlexNet splits conv2, conv4 and conv5 into two groups (a two-GPU artefact); the
authors' TensorFlow AlexNet keeps the groups, and so does this trunk by default (``groups=2``,
Keras ``Conv2D(groups=2)``, which also halves those layers' weights). ``groups=1`` builds the
ungrouped ("one-tower") variant.

BN (parameter-free by default) sits after each convolution and before its ReLU, and LRN after
the ReLU, as in the released ``selfsup/model/alex_bn.py``; the conv1/conv2 taps are the ReLU
outputs (before LRN). Convolutions keep their biases (see :mod:`tfcolor.models.vgg`).
"""
from tfcolor import layers as tfcolor_layers
import tfcolor.models.trunk as trunk

ALEXNET_TAP_STRIDES = [("data", 1), ("conv1", 4), ("conv2", 8), ("conv3", 16), ("conv4", 16),
                       ("conv5", 16), ("fc6", 32), ("fc7", 32)]
# name: (filters, kernel, stride, grouped)
_CONVS = {
        "conv1": (96, 11, 4, False),
        "conv2": (256, 5, 1, True),
        "conv3": (384, 3, 1, False),
        "conv4": (384, 3, 1, True),
        "conv5": (256, 3, 1, True),
        "fc6": (4096, 6, 1, False),
        "fc7": (4096, 1, 1, False),
}
LRN_CONFIG = {"depth_radius": 2, "bias": 1.0, "alpha": 1e-4, "beta": 0.75,
              "alpha_convention": "caffe"}


def _build_alexnet(x, ctx, groups=2):
    if groups not in (1, 2):
        raise ValueError(f"AlexNet groups must be 1 or 2; got {groups!r}.")
    for name, (filters, kernel, stride, grouped) in _CONVS.items():
        x = ctx.conv_bn_relu(x, filters, kernel, name, strides=stride,
                             groups=groups if grouped else 1)
        ctx.tap(name, x)
        if ctx.done:
            return x
        if name in ("conv1", "conv2"):
            x = tfcolor_layers.LocalResponseNormalization(
                    **LRN_CONFIG, name="norm" + name[-1])(x)
        if name in ("conv1", "conv2", "conv5"):
            x = ctx.max_pool(x, 3, 2, name="pool" + name[-1])
    return x


trunk.register_arch("alexnet", _build_alexnet, ALEXNET_TAP_STRIDES,
                    presets={"hypercolumn": "all", "no_data": "conv1-fc7"})


def build_alexnet(**kwargs):
    """``build_trunk("alexnet", **kwargs)``; ``groups=1`` for the ungrouped variant."""
    return trunk.build_trunk("alexnet", **kwargs)
