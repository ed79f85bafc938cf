"""ResNet-152 trunk (bottleneck v1, Caffe layout and names of He et al.'s released model).

conv1: 7x7/2 convolution, 64 channels, BN (``bn_conv1``), ReLU -- the ``conv1`` tap (stride 2) --
then a 3x3/2 max-pool (``pool1``). Four stages of bottleneck blocks (1x1 -> 3x3 -> 1x1 with 4x
expansion; the projection shortcut ``branch1`` on each stage's first block; the stride on the
first 1x1 convolution, as in the Caffe model and ``keras.applications.ResNet152``):

| stage | blocks | widths | stride |
| --- | --- | --- | --- |
| res2 | res2a, res2b, res2c | 64 / 256 | 4 |
| res3 | res3a, res3b1..res3b7 | 128 / 512 | 8 |
| res4 | res4a, res4b1..res4b35 | 256 / 1024 | 16 |
| res5 | res5a, res5b, res5c | 512 / 2048 | 32 |

Layer names follow Caffe: ``res3b4_branch2a`` (conv) / ``bn3b4_branch2a`` (BN), ``res3b4``
(the addition) and ``res3b4_relu`` (the block output, which is the tap). Every convolution and
pooling uses "same" padding, so tap ``t`` has ``ceil(H / stride_t)`` rows.

Hypercolumn taps: conv1 2, res2a-c 4, res3b1/b4/b7 8, res4b5/10/15/20/25/30/35 16, res5c 32.
These are the paper's *downstream* (segmentation) hypercolumn. Its ResNet-152 colorizer is
pretrained without a hypercolumn (``configs/resnet152_224.flags``: ``--taps=res5c``);
``tfcolor.downstream.initialization.with_downstream_taps`` exposes the other taps of such a trunk for
fine-tuning.

Batch normalization: ResNet keeps *standard* BN (learned gamma/beta) by default -- it is part of
the architecture (He et al.; the authors' ``resnet152_bn`` also keeps it, and METHOD.md says not
to absorb BN for ResNet downstream). ``batch_norm="parameter_free"`` and ``"none"`` are
available. Convolutions have no bias when followed by BN (as in Caffe's ResNet), and a bias with
``batch_norm="none"``.
"""
import keras

import tfcolor.models.trunk as trunk

_STAGES = (  # (stage, blocks, bottleneck width, first stride)
        (2, 3, 64, 1),
        (3, 8, 128, 2),
        (4, 36, 256, 2),
        (5, 3, 512, 2),
)
EXPANSION = 4

RESNET152_TAP_STRIDES = ([("conv1", 2), ("res2a", 4), ("res2b", 4), ("res2c", 4)]
                         + [(f"res3b{i}", 8) for i in (1, 4, 7)]
                         + [(f"res4b{i}", 16) for i in range(5, 36, 5)]
                         + [("res5c", 32)])


def block_names(stage, blocks):
    """Caffe names of a stage's blocks: res2a..res2c for 3 blocks, else res3a, res3b1, ..."""
    if blocks <= 3:
        return [f"res{stage}{c}" for c in "abc"[:blocks]]
    return [f"res{stage}a"] + [f"res{stage}b{i}" for i in range(1, blocks)]


def _bottleneck(x, ctx, name, width, strides, project):
    suffix = name[3:]  # "3b4" for res3b4
    use_bias = ctx.batch_norm == "none"
    shortcut = x
    if project:
        shortcut = ctx.conv(x, width * EXPANSION, 1, f"{name}_branch1", strides=strides,
                            use_bias=use_bias)
        shortcut = ctx.bn(shortcut, f"bn{suffix}_branch1")
    y = x
    for branch, filters, kernel, stride in (("2a", width, 1, strides), ("2b", width, 3, 1),
                                            ("2c", width * EXPANSION, 1, 1)):
        y = ctx.conv(y, filters, kernel, f"{name}_branch{branch}", strides=stride,
                     use_bias=use_bias)
        y = ctx.bn(y, f"bn{suffix}_branch{branch}")
        if branch != "2c":
            y = _relu(y, f"{name}_branch{branch}_relu")
    y = _add([shortcut, y], name)
    return _relu(y, f"{name}_relu")


def _relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def _add(xs, name):
    return keras.layers.Add(name=name)(xs)


def _build_resnet152(x, ctx):
    use_bias = ctx.batch_norm == "none"
    x = ctx.conv(x, 64, 7, "conv1", strides=2, use_bias=use_bias)
    x = ctx.bn(x, "bn_conv1")
    x = _relu(x, "conv1_relu")
    ctx.tap("conv1", x)
    if ctx.done:
        return x
    x = ctx.max_pool(x, 3, 2, name="pool1")
    for stage, blocks, width, first_stride in _STAGES:
        for i, name in enumerate(block_names(stage, blocks)):
            x = _bottleneck(x, ctx, name, width, first_stride if i == 0 else 1, project=i == 0)
            if name in trunk.TAP_STRIDES["resnet152"]:
                ctx.tap(name, x)
                if ctx.done:
                    return x
    return x


trunk.register_arch("resnet152", _build_resnet152, RESNET152_TAP_STRIDES,
                    default_batch_norm="standard", presets={"hypercolumn": "all"})


def build_resnet152(**kwargs):
    """``build_trunk("resnet152", **kwargs)``."""
    return trunk.build_trunk("resnet152", **kwargs)
