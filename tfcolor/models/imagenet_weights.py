"""ImageNet VGG-16 weights for the VGG-16 trunk: reading Keras weights files and loading them.

* :func:`read_keras_weights_file` -- ``{layer name: [arrays]}`` from a Keras weights file (the
  legacy HDF5 files of ``keras.applications``, full-model ``.h5``, Keras 3 ``.weights.h5``,
  ``.keras`` archives).
* :func:`load_vgg16_imagenet_weights` -- load a user-supplied ``keras.applications.VGG16``
  weights file into a (grey) VGG-16 trunk (conv1 summed to grey, fc6/fc7 as convolutions).

tfcolor downloads nothing: the file is the user's. The trunk's layer names and their
``keras.applications`` counterparts are :data:`tfcolor.models.vgg.KERAS_VGG16_NAMES`.
"""
import io
import os
import zipfile

import h5py
import numpy as np

from tfcolor.models import vgg

__all__ = ["CAFFE_BGR_MEANS", "read_keras_weights_file", "load_vgg16_imagenet_weights"]

# keras.applications.VGG16 expects caffe-style input: BGR, 0-255, minus these per-channel means.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)


def _read_h5_group_legacy(group):
    """{layer name: [arrays]} from a Keras 2 / legacy HDF5 weights group."""
    out = {}
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
    for name in names:
        layer_group = group[name]
        weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                        for w in layer_group.attrs.get("weight_names", [])]
        if weight_names:
            out[name] = [np.asarray(layer_group[w]) for w in weight_names]
    return out


def _read_h5_group_keras3(group):
    """{layer name: [arrays]} from a Keras 3 ``.weights.h5`` file (``layers/<path>/vars``)."""
    out = {}

    def visit(name, obj):
        if name.endswith("/vars") or name == "vars":
            if len(obj.keys()) and all(k.isdigit() for k in obj.keys()):
                layer_name = obj.attrs.get("name", name.split("/")[-2])
                if isinstance(layer_name, bytes):
                    layer_name = layer_name.decode()
                out[str(layer_name)] = [np.asarray(obj[k]) for k in sorted(obj.keys(), key=int)]
    group.visititems(visit)
    return out


def read_keras_weights_file(path):
    """Reads a Keras weights file into ``{layer name: [arrays]}``.

    Supports the legacy HDF5 weights files of ``keras.applications`` (e.g.
    ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and its ``_notop`` variant), full-model
    legacy ``.h5`` files (``model.save("m.h5")``), Keras 3 ``.weights.h5`` files
    (``model.save_weights``) and ``.keras`` archives.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not one of these formats.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}.")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    raise ValueError(f"{path!r} is a zip archive without model.weights.h5; not a "
                                     f".keras file.")
                handle = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        else:
            handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"Cannot read {path!r} as a Keras HDF5 weights file: {error}.") from None
    with handle as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in group.attrs:
            return _read_h5_group_legacy(group)
        if "layers" in group:
            return _read_h5_group_keras3(group["layers"])
    raise ValueError(f"{path!r} is an HDF5 file but not a Keras weights file (no 'layer_names' "
                     f"attribute and no 'layers' group).")


def load_vgg16_imagenet_weights(trunk, weights_path, *, pixel_scale=255.0,
                                channel_means=None):
    """Loads ``keras.applications.VGG16`` weights into a grey VGG-16 trunk.

    Mapping: ``block{b}_conv{i}`` -> ``conv{b}_{i}``; with a ``include_top=True`` file, ``fc1``
    (25088 x 4096) -> fc6 reshaped to a 7x7x512x4096 convolution (Keras flattens pool5 in
    (row, column, channel) order, the kernel's layout) and ``fc2`` -> fc7 as a 1x1 convolution.
    With a ``notop`` file fc6/fc7 keep their initialization. ``predictions`` is ignored.

    conv1_1 is collapsed from RGB to grey by *summing* its kernel over the input channels: that is
    the inverse of :func:`tfcolor.surgery.gray_to_rgb_conv1` (replicate / 3), chosen so that the
    grey trunk on a grey image ``g`` computes what the RGB network computes on ``g`` replicated to
    three channels. Since the three channels are equal, the BGR (Caffe / Keras VGG-16) versus RGB
    order does not matter. Keras' VGG-16 takes pixel values in [0, 255] minus per-channel means
    (``CAFFE_BGR_MEANS``), while the trunk takes [0, 1] minus one mean (``input_mean``, 0.4488 ~
    114.4 / 255); the kernel is multiplied by ``pixel_scale`` (255) to account for the range.
    With ``channel_means=None`` (default) nothing else changes and the trunk on ``g`` equals the
    Keras network on ``255 * (g - input_mean)`` replicated to three channels -- exactly,
    borders included. With ``channel_means=CAFFE_BGR_MEANS`` conv1_1's bias absorbs the
    difference between the per-channel means and the trunk's single mean, so that away from the
    image border (zero padding sees different values) the trunk equals the Keras network on
    ``keras.applications.vgg16.preprocess_input(255 * g)``.

    The trunk should be built with ``batch_norm="none"`` (ImageNet VGG-16 has no BN); with BN
    layers the kernels load but the BN layers keep their own statistics.

    Args:
        trunk: a VGG-16 trunk from ``build_trunk("vgg16", ...)`` (any taps: missing layers are
            skipped).
        weights_path: path of the weights file (see :func:`read_keras_weights_file`).
        pixel_scale: input range of the Keras network divided by the trunk's (255 / 1).
        channel_means: ``None`` or the 3 per-channel means of the Keras network's preprocessing.

    Returns:
        The sorted names of the trunk layers that were loaded.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if the file holds no VGG-16 conv layers or a shape does not match.
    """
    weights = read_keras_weights_file(weights_path)
    conv_keys = [vgg.KERAS_VGG16_NAMES[n] for n in vgg.CONV_NAMES]
    if not any(k in weights for k in conv_keys):
        raise ValueError(f"{os.fspath(weights_path)!r} holds no keras.applications.VGG16 conv "
                         f"layers (expected names like 'block1_conv1'); found layers "
                         f"{sorted(weights)[:10]}.")
    trunk_layers = {layer.name: layer for layer in trunk.layers}
    loaded = []
    for ours, theirs in vgg.KERAS_VGG16_NAMES.items():
        if ours not in trunk_layers or theirs not in weights:
            continue
        layer = trunk_layers[ours]
        values = weights[theirs]
        if len(values) != 2:
            raise ValueError(f"Layer {theirs!r} in {os.fspath(weights_path)!r} has "
                             f"{len(values)} arrays; expected a kernel and a bias.")
        kernel, bias = (np.asarray(v, np.float64) for v in values)
        target = tuple(layer.kernel.shape)
        if ours == "conv1_1":
            if kernel.ndim != 4 or kernel.shape[2] != 3:
                raise ValueError(f"{theirs!r} kernel has shape {kernel.shape}; expected "
                                 f"(3, 3, 3, 64) RGB weights.")
            if channel_means is not None:
                means = np.asarray(channel_means, np.float64)
                if means.shape != (3,):
                    raise ValueError(f"channel_means must hold 3 values; got {channel_means!r}.")
                input_mean = -float(trunk.get_layer("data").offset)
                # Keras sees 255 g - mu_c; the trunk gives 255 (g - input_mean): add the rest.
                bias = bias + np.einsum("hwco,c->o", kernel, pixel_scale * input_mean - means)
            kernel = kernel.sum(axis=2, keepdims=True) * pixel_scale
        elif ours in ("fc6", "fc7") and kernel.ndim == 2:
            if kernel.size != int(np.prod(target)):
                raise ValueError(f"{theirs!r} has shape {kernel.shape}, which does not reshape "
                                 f"to {ours!r}'s kernel {target}.")
            kernel = kernel.reshape(target)
        if kernel.shape != target or bias.shape != tuple(layer.bias.shape):
            raise ValueError(f"Shape mismatch loading {theirs!r} into {ours!r}: file has kernel "
                             f"{kernel.shape} / bias {bias.shape}, trunk has {target} / "
                             f"{tuple(layer.bias.shape)} (is the trunk a full-width VGG-16?).")
        layer.set_weights([kernel.astype(layer.kernel.dtype), bias.astype(layer.bias.dtype)])
        loaded.append(ours)
    return sorted(loaded)
