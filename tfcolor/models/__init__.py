"""Convolutional trunks (VGG-16, AlexNet, ResNet-152), their hypercolumn tap tables, the colorizer.

``build_trunk(arch, ...)`` returns a functional ``keras.Model``: grey image in [0, 1] ->
{tap name: feature map}; ``TAP_STRIDES[arch]`` maps every tap to its stride in hypercolumn
order. See :mod:`tfcolor.models.trunk`. ``build_colorizer(config)`` (:mod:`tfcolor.models.factory`)
is the one way to build the :class:`Colorizer` a ``PretrainConfig`` (or ``config.json``) describes.
:mod:`tfcolor.models.imagenet_weights` loads ImageNet ``keras.applications.VGG16`` weights into
the VGG-16 trunk.
"""
from tfcolor.models.trunk import (  # noqa: F401
        BATCH_NORM_CHOICES, DEFAULT_INPUT_MEAN, FOV_TAP_STRIDES, TAP_PRESETS, TAP_STRIDES,
        architectures, build_trunk, resolve_taps, tap_channels, tap_strides)
# Importing the architecture modules registers them with build_trunk.
from tfcolor.models import alexnet, resnet, vgg  # noqa: F401,E402
from tfcolor.models.colorizer import Colorizer  # noqa: F401,E402
from tfcolor.models.factory import build_colorizer  # noqa: F401,E402
from tfcolor.models.multitask import MultiTaskModel, SharedTrunk  # noqa: F401,E402
