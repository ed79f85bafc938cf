"""Network surgery: re-balancing, BN absorption, grey -> RGB conv1, trunk preparation.

All functions work on functional Keras models (the trunks of :mod:`tfcolor.models`, and also
``keras.applications`` models) whose layers are each called once. They read the graph from the
model's functional config, so they need no knowledge of a particular architecture.

* :func:`rebalance` -- rescale a network without BN so that every layer's activations have unit
  second moment (METHOD.md section 3), in place.
* :func:`absorb_batch_norm` -- a new model without BN layers whose convolutions carry the BN
  statistics (inference-mode equivalent).
* :func:`gray_to_rgb_conv1` -- a 1-channel conv1 (kernel or model) made 3-channel by replicating
  it over the channels and dividing by 3.
* :func:`leaf_layers` -- every layer of a model, nested models expanded.
* :func:`prepare_trunk` -- a pretrained grey trunk made ready for downstream training (BN
  absorbed except for ResNet, optionally RGB input).

Loading ImageNet VGG-16 weights into a trunk is :mod:`tfcolor.models.imagenet_weights`.
"""
import keras
import numpy as np

# Layers that commute with multiplying their input by a positive scalar m: f(m x) = m f(x).
_HOMOGENEOUS = (
        keras.layers.ReLU, keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
        keras.layers.MaxPooling3D, keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
        keras.layers.AveragePooling3D, keras.layers.GlobalAveragePooling1D,
        keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling1D,
        keras.layers.GlobalMaxPooling2D, keras.layers.Dropout, keras.layers.SpatialDropout2D,
        keras.layers.Flatten, keras.layers.Reshape, keras.layers.ZeroPadding2D,
        keras.layers.Cropping2D, keras.layers.Identity,
)
_HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")
_WEIGHTED = (keras.layers.Conv2D, keras.layers.Dense)


def leaf_layers(model):
    """Every layer of ``model`` that is not itself a model, nested models expanded in order."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


# ----------------------------------------------------------------------------------------------
# Graph helpers (from the functional config).


def _check_functional(model, what):
    if not isinstance(model, keras.Model) or not hasattr(model, "get_config"):
        raise TypeError(f"{what} needs a functional keras.Model; got {type(model).__name__}.")
    try:
        config = model.get_config()
    except NotImplementedError:
        config = None
    if not config or "layers" not in config:
        raise TypeError(f"{what} needs a functional keras.Model (with a layer graph); got a "
                        f"{type(model).__name__} without a functional config.")
    for layer in config["layers"]:
        if len(layer.get("inbound_nodes", [])) > 1:
            raise ValueError(f"{what}: layer {layer['name']!r} is called more than once; shared "
                             f"layers are not supported.")
    return config


def _histories(obj):
    """Every ``keras_history`` [layer name, node index, tensor index] inside a config object."""
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            yield obj["config"]["keras_history"]
            return
        for value in obj.values():
            yield from _histories(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _histories(value)


def _walk_consumers(model, consumers, start, is_target, passes_through):
    """Follows the layers reading ``start``'s output, depth first.

    A layer for which ``is_target(layer)`` holds is collected and not followed further; one for
    which ``passes_through(layer)`` holds is followed; any other layer stops the walk along that
    path. Returns ``(targets, others)``: the names of the target layers reached and of the
    layers that stopped the walk.
    """
    targets, others, stack, seen = [], [], list(consumers[start]), set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        layer = model.get_layer(current)
        if is_target(layer):
            targets.append(current)
        elif passes_through(layer):
            stack.extend(consumers[current])
        else:
            others.append(current)
    return targets, others


def _graph(config):
    """({layer: [input layers]}, {layer: [consumer layers]}, {layer: class name}, outputs)."""
    inputs, consumers, classes = {}, {}, {}
    for layer in config["layers"]:
        name = layer["name"]
        classes[name] = layer["class_name"]
        inputs[name] = [h[0] for h in _histories(layer.get("inbound_nodes", []))]
        consumers.setdefault(name, [])
        for parent in inputs[name]:
            consumers.setdefault(parent, []).append(name)
    outputs = {t[0] for t in _triples(config["output_layers"])}
    return inputs, consumers, classes, outputs


def _triples(obj):
    """The [name, node, tensor] triples of ``input_layers`` / ``output_layers``."""
    if (isinstance(obj, (list, tuple)) and len(obj) == 3 and isinstance(obj[0], str)
            and isinstance(obj[1], int)):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _triples(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _triples(value)


def _rename_references(obj, mapping):
    """Replaces layer names in keras_history entries and [name, node, tensor] triples."""
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            history = obj["config"]["keras_history"]
            if history[0] in mapping:
                obj["config"]["keras_history"] = [mapping[history[0]]] + list(history[1:])
            return obj
        for key, value in obj.items():
            obj[key] = _rename_references(value, mapping)
        return obj
    if isinstance(obj, (list, tuple)):
        if len(obj) == 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
            return type(obj)([mapping.get(obj[0], obj[0])] + list(obj[1:]))
        return type(obj)(_rename_references(value, mapping) for value in obj)
    return obj


def _is_homogeneous(layer):
    if isinstance(layer, keras.layers.ReLU):  # also leaky: f(m x) = m f(x) for m > 0
        cfg = layer.get_config()
        return not cfg.get("threshold") and cfg.get("max_value") is None
    if isinstance(layer, keras.layers.Activation):
        return layer.get_config()["activation"] in _HOMOGENEOUS_ACTIVATIONS
    return isinstance(layer, _HOMOGENEOUS)


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


# ----------------------------------------------------------------------------------------------
# Re-balancing.


def _feature_models_inputs(sample_inputs):
    if isinstance(sample_inputs, (list, tuple)) and sample_inputs and not isinstance(
            sample_inputs[0], (int, float)) and np.ndim(sample_inputs[0]) == 4:
        return list(sample_inputs)
    try:
        ndim = np.ndim(sample_inputs)
    except (TypeError, ValueError):
        ndim = None
    if ndim == 4:
        return [sample_inputs]
    if hasattr(sample_inputs, "__iter__"):  # a tf.data.Dataset or another iterable of batches
        return sample_inputs
    raise ValueError(f"sample_inputs must be a (B, H, W, C) batch or an iterable of batches; got "
                     f"{type(sample_inputs).__name__}.")


def rebalance(model, sample_inputs, *, layers=None, epsilon=1e-12):
    """Re-balances a network without BN to unit second moment per layer, in place.

    For each selected convolution / dense layer ``l`` with activations ``x_l`` (its output after
    its ReLU, if a ReLU follows), ``m_l = 1 / sqrt(E[x_l^2])`` over the sample, and

        ``W_l <- m_l W_l``,  ``b_l <- m_l b_l``,  ``W_(l+1) <- W_(l+1) / m_l``

    for every weighted layer ``l+1`` that reads ``x_l`` (through max-pooling, ReLU, dropout,
    flatten and other positively homogeneous layers). Because ReLU and max-pooling commute with a
    positive scale, re-balancing layer ``l`` multiplies ``x_l`` by ``m_l`` (so E[x_l^2] = 1) and
    leaves the pre-activations of layer ``l+1`` -- hence every later activation -- unchanged.
    Re-balancing all layers therefore maps every activation to ``x_l / sqrt(E[x_l^2])`` (a
    per-layer positive rescaling); a model output that is a re-balanced layer's activation (a
    trunk tap) is rescaled the same way, and a layer that is not re-balanced (e.g. a softmax
    classifier) keeps its output exactly. All statistics come from the original network, so one
    pass suffices and the order of the layers does not matter.

    Args:
        model: functional ``keras.Model`` without BatchNormalization layers (absorb BN first).
        sample_inputs: a batch (array / tensor) or an iterable of batches (e.g. a
            ``tf.data.Dataset`` of inputs) over which E[x^2] is estimated.
        layers: names of the layers to re-balance; ``None`` = every Conv2D / Dense layer whose
            activation is linear or ReLU and whose output reaches other weighted layers only
            through positively homogeneous layers (others are skipped).
        epsilon: added to E[x^2] before the square root (dead layers keep a finite scale).

    Returns:
        ``{layer name: m_l}`` for the re-balanced layers.

    Raises:
        ValueError: if the model has BN layers, or an explicitly requested layer cannot be
            re-balanced exactly (non-homogeneous activation, or its output reaches another
            weighted layer through e.g. LRN, Add or Concatenate).
    """
    config = _check_functional(model, "rebalance")
    inputs, consumers, classes, _ = _graph(config)
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        raise ValueError("rebalance expects a network without BatchNormalization; call "
                         "absorb_batch_norm(model) first.")
    weighted = [layer.name for layer in model.layers if isinstance(layer, _WEIGHTED)]

    def activation_layer(name):
        """The layer whose output is x_l: the ReLU right after ``name``, if any."""
        layer = model.get_layer(name)
        nxt = consumers[name]
        if len(nxt) == 1 and _activation_name(layer) == "linear":
            candidate = model.get_layer(nxt[0])
            if isinstance(candidate, (keras.layers.ReLU, keras.layers.Activation)) and \
                    _is_homogeneous(candidate):
                return candidate
        return layer

    def successors(name):
        """Weighted layers reading ``name``'s output through homogeneous layers, or a reason."""
        found, blocking = _walk_consumers(model, consumers, name,
                                          lambda layer: isinstance(layer, _WEIGHTED),
                                          _is_homogeneous)
        if blocking:
            return None, f"its output reaches {blocking[0]!r} ({classes[blocking[0]]}), which " \
                         f"does not commute with a positive scale"
        several = [current for current in found if len(inputs[current]) != 1]
        if several:
            return None, f"{several[0]!r} has several inputs"
        return found, None

    plan = {}
    requested = weighted if layers is None else list(layers)
    for name in requested:
        if name not in weighted:
            raise ValueError(f"rebalance: {name!r} is not a Conv2D/Dense layer of the model; "
                             f"weighted layers: {weighted}.")
        layer = model.get_layer(name)
        reason = None
        if _activation_name(layer) not in _HOMOGENEOUS_ACTIVATIONS:
            reason = f"its activation {_activation_name(layer)!r} is not positively homogeneous"
        nxt, why = successors(name)
        reason = reason or why
        if reason:
            if layers is not None:
                raise ValueError(f"rebalance: cannot re-balance {name!r} exactly: {reason}.")
            continue
        plan[name] = nxt
    if not plan:
        return {}

    names = list(plan)
    probe = keras.Model(model.inputs, [activation_layer(n).output for n in names])
    sums = np.zeros(len(names))
    counts = np.zeros(len(names))
    for batch in _feature_models_inputs(sample_inputs):
        outs = probe(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            out = np.asarray(out, dtype=np.float64)
            sums[i] += np.square(out).sum()
            counts[i] += out.size
    if not counts.all():
        raise ValueError("rebalance: sample_inputs held no data.")
    scales = {n: float(1.0 / np.sqrt(s / c + epsilon)) for n, s, c in zip(names, sums, counts)}

    incoming = {}  # layer -> scale of the (re-balanced) layer feeding it
    for name, nxt in plan.items():
        for succ in nxt:
            incoming[succ] = scales[name]
    for name in set(scales) | set(incoming):
        layer = model.get_layer(name)
        m = scales.get(name, 1.0)
        weights = layer.get_weights()
        weights[0] = weights[0] * (m / incoming.get(name, 1.0))
        if layer.use_bias:
            weights[1] = weights[1] * m
        layer.set_weights(weights)
    return scales


# ----------------------------------------------------------------------------------------------
# BN absorption.


def absorb_batch_norm(model):
    """A new model with every BatchNormalization folded into the convolution before it.

    For BN ``y = gamma (z - mu) / sqrt(var + eps) + beta`` (inference mode; ``gamma = 1`` and
    ``beta = 0`` for parameter-free BN) on ``z = W * x + b``, the folded layer has
    ``W' = W gamma / sqrt(var + eps)`` (per output channel) and
    ``b' = (b - mu) gamma / sqrt(var + eps) + beta`` (a bias is added to convolutions built
    without one). The new model has the same inputs, output structure and (other) layer names;
    in inference mode it computes the same function. The original model is not modified.

    Args:
        model: functional ``keras.Model`` whose BN layers each follow a Conv2D or Dense layer
            (with a linear activation) that feeds nothing else.

    Returns:
        A new functional ``keras.Model`` without BatchNormalization layers.

    Raises:
        ValueError: if a BN layer cannot be folded (it follows something else, the convolution
            has a non-linear activation or other consumers, or BN's axis is not the last).
    """
    config = _check_functional(model, "absorb_batch_norm")
    inputs, consumers, classes, outputs = _graph(config)
    folds = {}  # bn name -> conv name
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        parents = inputs[layer.name]
        parent = model.get_layer(parents[0]) if len(parents) == 1 else None
        if parent is None or not isinstance(parent, _WEIGHTED):
            raise ValueError(f"absorb_batch_norm: {layer.name!r} does not follow a Conv2D/Dense "
                             f"layer (its input comes from {parents}).")
        if _activation_name(parent) != "linear":
            raise ValueError(f"absorb_batch_norm: {parent.name!r} applies the activation "
                             f"{_activation_name(parent)!r} before {layer.name!r}; cannot fold.")
        if consumers[parent.name] != [layer.name] or parent.name in outputs:
            raise ValueError(f"absorb_batch_norm: {parent.name!r} feeds other layers besides "
                             f"{layer.name!r}; folding would change them.")
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        if axis not in (-1, len(layer.input.shape) - 1):
            raise ValueError(f"absorb_batch_norm: {layer.name!r} normalizes axis {axis}; only "
                             f"the channel (last) axis is supported.")
        folds[layer.name] = parent.name
    if not folds:
        return keras.Model.from_config(config)

    new_layers = []
    folded_convs = set(folds.values())
    for layer in config["layers"]:
        if layer["name"] in folds:
            continue
        if layer["name"] in folded_convs:
            layer["config"]["use_bias"] = True
        new_layers.append(layer)
    config["layers"] = new_layers
    config = _rename_references(config, folds)
    new_model = keras.Model.from_config(config)

    for layer in new_model.layers:
        old = model.get_layer(layer.name)
        if layer.name not in folded_convs:
            layer.set_weights(old.get_weights())
            continue
        bn = model.get_layer([b for b, c in folds.items() if c == layer.name][0])
        kernel = np.asarray(old.kernel.numpy(), np.float64)
        bias = np.asarray(old.bias.numpy(), np.float64) if old.use_bias else 0.0
        inv_std = 1.0 / np.sqrt(np.asarray(bn.moving_variance.numpy(), np.float64) + bn.epsilon)
        gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else 1.0
        beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else 0.0
        mean = np.asarray(bn.moving_mean.numpy(), np.float64)
        factor = gamma * inv_std
        new_bias = (bias - mean) * factor + beta
        dtype = layer.kernel.dtype
        layer.set_weights([(kernel * factor).astype(dtype),
                           np.broadcast_to(new_bias, (kernel.shape[-1],)).astype(dtype)])
    return new_model


# ----------------------------------------------------------------------------------------------
# Grey conv1 -> RGB conv1.


def gray_to_rgb_conv1(model_or_kernel, *, layer_name=None):
    """Turns a 1-channel first convolution into a 3-channel one: replicate, divide by 3.

    With ``K_rgb[..., c, :] = K_gray / 3`` the RGB network on an image whose three channels equal
    the grey image ``g`` computes ``sum_c K_gray / 3 * g = K_gray * g``: exactly the grey network.
    On a colour image it sees the channel average, (R + G + B) / 3, which is the library's
    desaturation: the grey trunk's pretraining input.

    Args:
        model_or_kernel: a kernel array of shape (kh, kw, 1, out), or a functional model whose
            input has 1 channel (e.g. a trunk: the ``data`` mean-shift then becomes per channel,
            which is the same offset on each channel).
        layer_name: the convolution to convert (default: the Conv2D layers fed by the model input
            through weight-free layers; each must have 1 input channel).

    Returns:
        The (kh, kw, 3, out) kernel, or a new model with a 3-channel input and the same outputs.

    Raises:
        ValueError: if the kernel / input does not have 1 channel.
    """
    def convert(kernel):
        kernel = np.asarray(kernel)
        if kernel.ndim != 4 or kernel.shape[2] != 1:
            raise ValueError(f"gray_to_rgb_conv1 expects a (kh, kw, 1, out) kernel; got shape "
                             f"{kernel.shape}.")
        return np.repeat(kernel / 3.0, 3, axis=2).astype(kernel.dtype)

    if not isinstance(model_or_kernel, keras.Model):
        return convert(model_or_kernel)
    return _convert_input_channels(model_or_kernel, 1, 3, convert, "gray_to_rgb_conv1",
                                   layer_name)


def rgb_to_gray_conv1(model_or_kernel, *, layer_name=None):
    """Turns a 3-channel first convolution into a 1-channel one: sum over the input channels.

    A trunk trained on *RGB-encoded grey* images (the grey image repeated in three channels, the
    colorizer's input when it shares a colour trunk with other tasks, METHOD_CH4.md §8.5.1)
    computes on a grey image ``g`` exactly ``sum_c K[..., c, :] * g``: the 1-channel network with
    the summed kernel. On a colour trunk (jigsaw, video) it is that network on grey images, which
    it saw as the special case R = G = B.

    Args:
        model_or_kernel: a (kh, kw, 3, out) kernel, or a functional model whose input has 3
            channels.
        layer_name: as :func:`gray_to_rgb_conv1`.

    Returns:
        The (kh, kw, 1, out) kernel, or a new model with a 1-channel input and the same outputs.
    """
    def convert(kernel):
        kernel = np.asarray(kernel)
        if kernel.ndim != 4 or kernel.shape[2] != 3:
            raise ValueError(f"rgb_to_gray_conv1 expects a (kh, kw, 3, out) kernel; got shape "
                             f"{kernel.shape}.")
        return kernel.sum(axis=2, keepdims=True).astype(kernel.dtype)

    if not isinstance(model_or_kernel, keras.Model):
        return convert(model_or_kernel)
    return _convert_input_channels(model_or_kernel, 3, 1, convert, "rgb_to_gray_conv1",
                                   layer_name)


def _convert_input_channels(model, before, after, convert, what, layer_name):
    """A copy of the one-input functional ``model`` whose input has ``after`` channels instead of
    ``before``, the first convolutions' kernels mapped by ``convert``."""
    config = _check_functional(model, what)
    inputs, consumers, classes, _ = _graph(config)
    input_names = [t[0] for t in _triples(config["input_layers"])]
    if len(input_names) != 1:
        raise ValueError(f"{what} expects a model with one input; got {input_names}.")
    if layer_name is not None:
        targets = [layer_name]
    else:
        targets, _ = _walk_consumers(
                model, consumers, input_names[0],
                lambda layer: isinstance(layer, keras.layers.Conv2D),
                lambda layer: not layer.weights or isinstance(layer, keras.layers.Rescaling))
    if not targets:
        raise ValueError(f"{what}: no Conv2D layer is fed by the model input.")
    for layer_config in config["layers"]:
        if layer_config["name"] == input_names[0]:
            shape = list(layer_config["config"]["batch_shape"])
            if shape[-1] != before:
                raise ValueError(f"{what} expects a {before}-channel model input; got input "
                                 f"shape {shape}.")
            layer_config["config"]["batch_shape"] = shape[:-1] + [after]
        if "build_config" in layer_config and layer_config["name"] not in input_names:
            layer_config.pop("build_config")
    new_model = keras.Model.from_config(config)
    for layer in new_model.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name in targets:
            if weights[0].shape[2] != before:
                raise ValueError(f"{what}: {layer.name!r} has {weights[0].shape[2]} input "
                                 f"channels, not {before}.")
            weights[0] = convert(weights[0])
        layer.set_weights(weights)
    return new_model


# ----------------------------------------------------------------------------------------------
# A pretrained trunk made ready for downstream training.


def is_resnet(arch):
    """True for the ResNet trunks, which keep their batch normalization downstream."""
    return bool(arch) and str(arch).startswith("resnet")


def prepare_trunk(trunk, *, arch=None, absorb_bn="auto", color_input=False):
    """A pretrained trunk made ready for downstream training (a new model).

    The paper's protocol: batch normalization is absorbed into the convolutions and training
    continues without it, except for ResNet (``absorb_bn="auto"``). The input follows
    ``color_input``: a grey (1-channel) trunk gets an RGB conv1 for colour input
    (:func:`gray_to_rgb_conv1`); a 3-channel trunk (pretrained on colour or RGB-encoded grey,
    multi-task runs) keeps its conv1 for colour input and gets the channel sum for grey input
    (:func:`rgb_to_gray_conv1`).
    """
    if absorb_bn == "auto":
        absorb_bn = not is_resnet(arch)
    if absorb_bn not in (True, False):
        raise ValueError(f"absorb_bn must be True, False or 'auto'; got {absorb_bn!r}.")
    if absorb_bn and any(isinstance(l, keras.layers.BatchNormalization) for l in trunk.layers):
        trunk = absorb_batch_norm(trunk)
    channels = trunk.input.shape[-1]
    if color_input and channels == 1:
        trunk = gray_to_rgb_conv1(trunk)
    elif not color_input and channels == 3:
        trunk = rgb_to_gray_conv1(trunk)
    return trunk
