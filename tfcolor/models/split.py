"""Disjoint weights on any trunk (METHOD_CH4.md §8.2, fig. 4.3): every parameter of the network
belongs to exactly one of M task columns.

**Split-activations** (offline, §8.2.1): train M networks of one architecture, each 1/M as wide
(e.g. :func:`tfcolor.models.cifar_nets.cifar_net` with ``width_divisor=M``), then
:func:`concatenate_columns` combines them into one network whose every layer's activations are
the concatenation of the M columns' activations. Each ``Conv`` / ``Dense`` layer of the result
has one full-width kernel whose diagonal blocks are the columns' kernels and whose off-diagonal
blocks (the cross-weights, from column i to column j != i) are zero, so the combined network
computes exactly the M columns side by side; the layer reading the (shared) input image takes
the columns' kernels side by side. Because the cross-weights are ordinary kernel entries, they
"update freely after a minimally disruptive random initialization" when the combined network is
trained further: ``cross_init_stddev=s`` draws them from N(0, s^2) **[interpretation]**: the
form and scale are not specified; the default, 0, is the exact block-diagonal combination.
Biases and batch-normalisation parameters and statistics are concatenated. A ``Flatten`` of a
column feature map is preceded by a reshape and a transpose to column-major order, so the
flattened features are the concatenation of the columns' flattened features (a plain
``Flatten`` would interleave the columns position by position): the combined network's ``top``
is ``concat_m(column_m.top)``.

**Split-weights** (online, §8.2.2): one full-width network trained jointly; a weight (or bias)
belongs to the column of its *destination* unit, and only that column's task gives it a
gradient. :func:`column_masks` gives, for every trainable variable, one 0/1 mask per column
(broadcastable to the variable: Keras kernels and biases hold the destination unit on their last
axis); :class:`tfcolor.train.gradient_rules.SplitWeightsRule` (``gradient_rule=
"split_weights"``) uses them. Unit ``c`` of a layer with ``C`` units lies in column
``floor(c * M / C)`` (:func:`unit_columns`; columns differ by at most one unit when M does not
divide C, rounding not specified [interpretation]). Task m's head reads column m of the top
layer by default (:func:`column_heads`, ``own_column=True``; "task column" wording
[interpretation]); ``own_column=False`` reads the whole layer. The columns of a flattened top
layer follow its channels (:func:`top_columns`).

Supported layers: ``Conv1D/2D/3D`` (``groups=1``, channels last), ``Dense``,
``BatchNormalization`` (last axis), and parameter-free layers that act on every channel alone
(activations, dropout, pooling, padding, cropping, up-sampling, rescaling, ``Flatten``) or merge
equal-shaped tensors element-wise (``Add``, ...). Other layers raise a one-line ``ValueError``
naming them.
"""
import keras
import numpy as np

from tfcolor import surgery

__all__ = ["unit_columns", "column_masks", "top_columns", "column_heads", "concatenate_columns"]

_WEIGHTED = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
_PER_CHANNEL = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.PReLU, keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D, keras.layers.MaxPooling3D, keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D, keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D,
    keras.layers.Rescaling, keras.layers.Identity, keras.layers.ActivityRegularization,
)
_MERGE = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
          keras.layers.Maximum, keras.layers.Minimum)


def unit_columns(num_units, num_columns):
    """The column of each of ``num_units`` units: ``floor(c * M / C)`` (int array)."""
    num_units, num_columns = int(num_units), int(num_columns)
    if num_columns < 1:
        raise ValueError(f"num_columns must be >= 1, got {num_columns}")
    return (np.arange(num_units, dtype=np.int64) * num_columns) // max(num_units, 1)


def _check_layer(layer):
    """Raises ValueError unless ``layer`` is a layer this module can split."""
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        if layer.groups != 1 or layer.data_format != "channels_last":
            raise ValueError(f"layer {layer.name}: only channels-last convolutions with "
                             f"groups=1 can be split into columns")
    elif isinstance(layer, keras.layers.BatchNormalization):
        if layer.axis not in (-1, len(layer.input.shape) - 1 if layer.built else -1):
            raise ValueError(f"layer {layer.name}: batch normalisation must act on the last "
                             f"axis to be split into columns")


def column_masks(model, num_columns):
    """Split-weights: ``{variable path: [mask of column m for m in range(M)]}`` over the trainable
    variables of ``model``; each mask is a float32 0/1 array broadcastable to the variable (shape
    ``(1, ..., 1, C)``, C the layer's output units), and the M masks sum to 1: every weight and
    bias belongs to the column of its destination unit (:func:`unit_columns`).

    Raises:
        ValueError: a layer with trainable variables that is not a supported kind (named).
    """
    num_columns = int(num_columns)
    masks, bad = {}, set()
    for layer in surgery.leaf_layers(model):
        variables = layer.trainable_variables
        if not variables:
            continue
        if not isinstance(layer, _WEIGHTED + (keras.layers.BatchNormalization,)):
            bad.add(type(layer).__name__)
            continue
        _check_layer(layer)
        for v in variables:
            shape = tuple(v.shape)
            cols = unit_columns(shape[-1], num_columns).reshape((1,) * (len(shape) - 1) + (-1,))
            masks[v.path] = [(cols == m).astype(np.float32) for m in range(num_columns)]
    if bad:
        raise ValueError(f"cannot split layers of type {', '.join(sorted(bad))} into columns "
                         f"(supported: Conv1D/2D/3D, Dense, BatchNormalization)")
    return masks


def top_columns(model, num_columns, layer="top"):
    """The column of every unit of ``model``'s ``layer`` output (int array over its last axis).
    For a ``Flatten`` of a (..., C) feature map a unit's column is its channel's (the flattened
    order is position-major, channel-minor); otherwise :func:`unit_columns` of the units."""
    target = model.get_layer(layer)
    width = int(target.output.shape[-1])
    if isinstance(target, keras.layers.Flatten):
        shape = tuple(target.input.shape[1:])
        if len(shape) > 1:
            channels = int(shape[-1])
            return np.tile(unit_columns(channels, num_columns), width // channels)
    return unit_columns(width, num_columns)


def column_heads(model, num_classes, *, own_column=True, layer="top", relu=True,
                 task_names=None):
    """Split-weights heads: a functional model ``image -> {task m: logits}`` on ``model``'s
    ``layer`` (its variables are ``model``'s plus one ``Dense`` per task, named
    ``head_<task>``).

    Args:
        model: the full-width network (e.g. :func:`tfcolor.models.cifar_nets.cifar_net` with
            ``num_classes=None``).
        num_classes: one class count per task (M tasks = M columns, in order).
        own_column: task m reads only column m of the layer (:func:`top_columns`); False: the
            whole layer.
        relu: a ReLU before the heads (the top layer is pre-ReLU, §8.1.2).
        task_names: names of the outputs (default ``task0``, ``task1``, ...).
    """
    num_classes = [int(n) for n in num_classes]
    names = list(task_names or [f"task{m}" for m in range(len(num_classes))])
    if len(names) != len(num_classes) or len(set(names)) != len(names) or not names:
        raise ValueError(f"need one distinct task name per class count, got {names} for "
                         f"{num_classes}")
    features = model.get_layer(layer).output
    if relu:
        features = keras.layers.ReLU(name=f"{layer}_head_relu")(features)
    columns = top_columns(model, len(names), layer)
    outputs = {}
    for m, (name, n) in enumerate(zip(names, num_classes)):
        x = features
        if own_column:
            x = keras.ops.take(features, np.flatnonzero(columns == m), axis=-1)
        outputs[name] = keras.layers.Dense(n, name=f"head_{name}")(x)
    return keras.Model(model.input, outputs, name=f"{model.name}_heads")


class _Combiner:
    """State of one :func:`concatenate_columns` call (the clone and call functions)."""

    def __init__(self, models, cross_init_stddev, seed):
        self.models = models
        self.m = len(models)
        self.std = float(cross_init_stddev)
        self.rng = np.random.default_rng(seed)
        layers = [_flat_layers(model) for model in models]
        for other in layers[1:]:
            if len(other) != len(layers[0]) or any(
                    type(a) is not type(b) or [tuple(v.shape) for v in a.weights]
                    != [tuple(v.shape) for v in b.weights] for a, b in zip(layers[0], other)):
                raise ValueError("the column networks must have the same architecture (the same "
                                 "layers with the same weight shapes, in the same order)")
        self.index = {id(layer): i for i, layer in enumerate(layers[0])}
        self.columns = layers
        self.old_of = {}
        self.width = {}    # id(KerasTensor) -> column width on the last axis
        self.done = set()

    def clone(self, layer):
        if not isinstance(layer, keras.layers.Layer) or id(layer) not in self.index:
            return layer
        config = layer.get_config()
        if isinstance(layer, _WEIGHTED):
            _check_layer(layer)
            key = "units" if isinstance(layer, keras.layers.Dense) else "filters"
            config[key] = config[key] * self.m
        new = type(layer).from_config(config)
        self.old_of[id(new)] = layer
        return new

    def call(self, layer, *args, **kwargs):
        old = self.old_of.get(id(layer))
        inputs = keras.tree.flatten((args, kwargs))
        tensors = [t for t in inputs if isinstance(t, keras.KerasTensor)]
        widths = [self.width.get(id(t)) for t in tensors]
        columnar = any(w is not None for w in widths)
        kind = type(old if old is not None else layer).__name__
        if old is None:
            if columnar:
                raise ValueError(f"cannot split {kind} into columns")
            return layer(*args, **kwargs)
        if isinstance(old, keras.layers.Flatten) and columnar and len(tensors[0].shape) > 2:
            return self._flatten(old, layer, tensors[0], widths[0])
        outputs = layer(*args, **kwargs)
        if isinstance(old, _WEIGHTED):
            self._set_kernel(old, layer, widths[0])
            self._mark(outputs, int(old.kernel.shape[-1]))
        elif isinstance(old, keras.layers.BatchNormalization):
            if not columnar:
                raise ValueError(f"layer {old.name}: batch normalisation of the shared input "
                                 "cannot be split into columns")
            _check_layer(old)
            self._set_concatenated(old, layer)
            self._mark(outputs, widths[0])
        elif isinstance(old, _MERGE):
            if columnar and (None in widths or len(set(widths)) != 1):
                raise ValueError(f"layer {old.name}: {kind} of column and non-column tensors")
            if columnar:
                self._mark(outputs, widths[0])
        elif old.weights:
            raise ValueError(f"cannot split layers of type {kind} into columns (supported: "
                             "Conv1D/2D/3D, Dense, BatchNormalization and per-channel layers)")
        elif columnar:
            if not isinstance(old, _PER_CHANNEL + (keras.layers.Flatten,)):
                raise ValueError(f"cannot split layers of type {kind} into columns (supported: "
                                 "Conv1D/2D/3D, Dense, BatchNormalization and per-channel "
                                 "layers)")
            self._mark(outputs, widths[0])
        return outputs

    def _mark(self, outputs, width):
        for t in keras.tree.flatten(outputs):
            self.width[id(t)] = int(width)

    def _flatten(self, old, layer, x, width):
        spatial = tuple(x.shape[1:-1])
        if any(d is None for d in spatial):
            raise ValueError(f"layer {old.name}: flattening column maps needs a known spatial "
                             f"shape, got {tuple(x.shape)}")
        k = len(spatial)
        x = keras.layers.Reshape(spatial + (self.m, width), name=f"{old.name}_columns")(x)
        x = keras.layers.Permute((k + 1,) + tuple(range(1, k + 1)) + (k + 2,),
                                 name=f"{old.name}_column_major")(x)
        out = layer(x)
        self._mark(out, int(np.prod(spatial)) * width)
        return out

    def _column_layers(self, old):
        i = self.index[id(old)]
        return [layers[i] for layers in self.columns]

    def _set_concatenated(self, old, new):
        cols = self._column_layers(old)
        new.set_weights([np.concatenate([c.get_weights()[j] for c in cols], axis=-1)
                         for j in range(len(old.weights))])

    def _set_kernel(self, old, new, in_width):
        if id(new) in self.done:
            return
        self.done.add(id(new))
        cols = self._column_layers(old)
        kernels = [np.asarray(c.kernel.numpy()) for c in cols]
        cin, cout = kernels[0].shape[-2:]
        if in_width is None:
            kernel = np.concatenate(kernels, axis=-1)
        else:
            if in_width != cin:
                raise ValueError(f"layer {old.name}: its input columns are {in_width} wide, its "
                                 f"kernel reads {cin}")
            shape = kernels[0].shape[:-2] + (self.m * cin, self.m * cout)
            kernel = (self.rng.normal(0.0, self.std, shape) if self.std > 0
                      else np.zeros(shape)).astype(kernels[0].dtype)
            for m, k in enumerate(kernels):
                kernel[..., m * cin:(m + 1) * cin, m * cout:(m + 1) * cout] = k
        weights = [kernel]
        if old.use_bias:
            weights.append(np.concatenate([np.asarray(c.bias.numpy()) for c in cols]))
        new.set_weights(weights)


def _flat_layers(model):
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise ValueError(f"the columns must be functional keras models, got "
                         f"{type(model).__name__}")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ValueError(f"nested model {layer.name}: concatenate flat functional models")
    return list(model.layers)


def concatenate_columns(models, *, cross_init_stddev=0.0, seed=None, name=None):
    """Split-activations: combines M separately trained column networks of one architecture
    into one network whose every layer is the concatenation of the columns (see the module
    docstring).

    Args:
        models: the M column networks (functional Keras models, same architecture, built).
        cross_init_stddev: standard deviation of the cross-weights (off-diagonal kernel
            blocks); 0 (default): zeros, the exact concatenation.
        seed: seed of the cross-weights' draw.
        name: the combined model's name (default ``<first column's name>_x<M>``).

    Returns:
        a functional ``keras.Model`` with the columns' input and output structure; every
        column output is the concatenation of the columns' outputs on its last axis (for
        ``cross_init_stddev=0``; outputs computed from the shared input alone, e.g. a
        rescaled image tap, are the columns' common value).

    Raises:
        ValueError: unsupported layers (named), different architectures, fewer than one model.
    """
    models = list(models)
    if not models:
        raise ValueError("concatenate_columns needs at least one column network")
    if not float(cross_init_stddev) >= 0.0:
        raise ValueError(f"cross_init_stddev must be >= 0, got {cross_init_stddev!r}")
    combiner = _Combiner(models, cross_init_stddev, seed)
    combined = keras.models.clone_model(models[0], clone_function=combiner.clone,
                                        call_function=combiner.call)
    return keras.Model(combined.input, combined.output,
                       name=name or f"{models[0].name}_x{len(models)}")
