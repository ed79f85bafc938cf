"""The colorizer: trunk -> hypercolumn (sparse for training, dense for inference) -> histogram head.

``Colorizer(arch, taps=..., kind=...)`` builds the trunk with :func:`tfcolor.models.build_trunk`,
reads the selected taps (``TAP_STRIDES[arch]`` gives their strides, in hypercolumn order), and
applies a :class:`tfcolor.layers.HistogramHead` whose ``output_sizes`` follow the loss kind
(``TargetBuilder(kind).output_sizes``: hue/chroma ``(32, 32)``, Lab marginals ``(32, 32)``, joint
``(256,)``, regression ``(2,)``).

* ``model.sparse(gray, centers, training=...)`` -> head output at the centres, ``(B, P, D)``
  (training: the sparse hypercolumn of the paper).
* ``model.dense(gray, grid_factor=4, training=False)`` -> ``(B, ceil(H/g), ceil(W/g), D)``; grid
  cell ``(i, j)`` equals ``sparse`` at centre ``(i * g, j * g)``.
* ``model(gray)`` is ``model.dense(gray)``; ``model({"gray": gray, "centers": centers})`` is
  ``model.sparse(gray, centers)`` (the input of Keras ``fit``, below).

Both paths share one set of weights. The head's output is logits unless
``head_activation="softmax"`` (the losses take ``from_logits=True`` by default).

Tap selection (``taps=``): ``None``/``"all"`` (the full hypercolumn, data..fc7), a range such as
``"conv4_1-fc7"`` or ``"fc6-fc7"`` (the papers' ablations), a preset of the trunk
(``TAP_PRESETS[arch]``) or a list; see :func:`tfcolor.models.resolve_taps`.

Dense path methods
------------------
``dense_method="factored"`` (default) uses the linearity of ``h_fc1`` and of bilinear resampling:
``h_fc1(concat_i up_i(x_i)) = sum_i up_i(x_i W_i) + b`` where ``W_i`` is the block of ``h_fc1``'s
kernel reading tap ``i``. Taps coarser than the grid (stride > g) are projected to the hidden
width at their own resolution and then resampled; finer taps are resampled first. The
12,417-channel dense hypercolumn of VGG-16 is never materialised, so inference memory scales
with the hidden width (1024) instead. ``dense_method="concat"`` builds the dense hypercolumn
explicitly (``DenseHypercolumn`` then the head), as the paper describes. Both compute the same
function (tested to float tolerance).

Custom trunks
-------------
Instead of ``arch``, pass ``trunk=`` (a ``keras.Model`` from ``(B, H, W, 1)`` to a dict of maps)
and ``tap_strides=`` (ordered ``{tap: stride}``); ``taps`` is then ``None`` or a list of names.
``get_config`` stores the architecture name and trunk options (the trunk is rebuilt by
:meth:`from_config`); only a custom trunk is serialised as a Keras object.

Keras ``compile`` / ``fit``
--------------------------
The colorizer trains as a plain Keras model::

    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                  loss=tfcolor.losses.HueChromaLoss())
    model.fit(dataset)  # elements ({"gray": (B, S, S, 1), "centers": (B, P, 2)}, targets (B, P, D))

``call`` on that dict returns the sparse logits (B, P, D). The tfcolor losses return one value
per point (``reduction=None``, the training loop's convention); :meth:`Colorizer.compile` gives
Keras a copy with ``reduction="sum_over_batch_size"``, the mean over every sampled point, which
is the trainer's data loss (under a distribution strategy Keras divides it by the number of
replicas and the optimizer sums the gradients). This path has none of the trainer's Caffe-style
weight decay, bias learning-rate multiplier or global-norm clipping; for those (and for any
other task) use :class:`tfcolor.train.keras_fit.TaskModel`.

Mixed precision: the trunk, hypercolumn layers and head follow the global dtype policy at
construction (or the ``dtype=`` passed to the colorizer, applied while building the trunk), so
under ``mixed_float16`` the outputs are float16 with float32 variables.
"""
import collections
import collections.abc
import contextlib

import keras
import tensorflow as tf

from tfcolor import layers as tfcolor_layers
from tfcolor import targets
from tfcolor.models import alexnet, resnet, vgg  # noqa: F401  (register the architectures)
from tfcolor.models import trunk as trunk_lib

DENSE_METHODS = ("factored", "concat")


def output_sizes_for_kind(kind, **target_kwargs):
    """Head group sizes for a loss kind (``tfcolor.targets.TargetBuilder(kind).output_sizes``)."""
    return tuple(targets.TargetBuilder(kind, **target_kwargs).output_sizes)


def _mean_over_points(loss):
    """A per-point Keras loss (``reduction=None``) as a mean over all points, else unchanged."""
    if isinstance(loss, keras.losses.Loss) and loss.reduction in (None, "none"):
        config = dict(loss.get_config(), reduction="sum_over_batch_size")
        return type(loss).from_config(config)
    return loss


@contextlib.contextmanager
def _global_policy(policy):
    """Temporarily makes ``policy`` the global dtype policy (the trunk builder reads it)."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="tfcolor")
class Colorizer(keras.Model):
    """Hypercolumn colorizer on a convolutional trunk.

    Args:
        arch: trunk architecture for :func:`tfcolor.models.build_trunk` (``"vgg16"``,
            ``"alexnet"``, ``"resnet152"``, the small ``"vgg_tiny"``, ...). Ignored when
            ``trunk`` is given.
        taps: tap selection (see the module docstring); ``None`` = every tap.
        kind: loss kind giving the head's ``output_sizes`` (``"hue_chroma"``, ``"lab_hist"``,
            ``"lab_joint"``, ``"lab_regression"``).
        output_sizes: explicit head group sizes (overrides ``kind``).
        hidden: width of the head's ``h_fc1`` (1024).
        dropout: dropout after ``h_fc1`` (0.5, released code).
        head_activation: ``None`` (logits) or ``"softmax"`` (per group). Regression
            (``kind="lab_regression"``) needs ``None``.
        grid_factor: default grid factor of the dense path (4: input / 4).
        convention: hypercolumn sampling convention, ``"released"`` or ``"half_pixel"``.
        edge_eps: hypercolumn clamp margin (see :mod:`tfcolor.layers`).
        dense_method: ``"factored"`` (default) or ``"concat"``, see the module docstring.
        batch_norm, sync_batch_norm, fov, input_mean: trunk options (``build_trunk``).
        trunk_options: further ``build_trunk`` keyword arguments (e.g. ``{"groups": 1}``).
        trunk: optional custom trunk model (then ``tap_strides`` is required).
        tap_strides: ``{tap: stride}`` in hypercolumn order for a custom trunk.
        input_channels: channels the trunk takes: 1 (the grey image, the papers) or 3 (an
            *RGB-encoded grey* image: the lightness repeated in three channels, so the trunk can
            be shared with colour tasks, METHOD_CH4.md §8.5.1). The colorizer's input is grey
            either way; it repeats it itself.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, arch="vgg16", *, taps=None, kind="hue_chroma", output_sizes=None,
                 hidden=1024, dropout=0.5, head_activation=None, grid_factor=4,
                 convention="released", edge_eps=tfcolor_layers.DEFAULT_EDGE_EPS,
                 dense_method="factored", batch_norm=None, sync_batch_norm=False, fov=False,
                 input_mean=None, trunk_options=None, trunk=None, tap_strides=None, input_channels=1,
                 **kwargs):
        dtype = kwargs.get("dtype")
        super().__init__(**kwargs)
        if dense_method not in DENSE_METHODS:
            raise ValueError(f"dense_method must be one of {DENSE_METHODS}; got {dense_method!r}.")
        if kind == "lab_regression" and head_activation is not None:
            raise ValueError("kind='lab_regression' predicts (a, b) values: head_activation must "
                             f"be None, got {head_activation!r}.")
        self.kind = kind
        self.output_sizes = tuple(output_sizes_for_kind(kind) if output_sizes is None
                                  else ([output_sizes] if isinstance(output_sizes, int)
                                        else output_sizes))
        self.hidden = hidden
        self.dropout = dropout
        self.head_activation = head_activation
        self.grid_factor = grid_factor
        self.convention = convention
        self.edge_eps = edge_eps
        self.dense_method = dense_method
        self.trunk_options = trunk_lib.merge_options(
                trunk_options, batch_norm=batch_norm, sync_batch_norm=sync_batch_norm,
                input_mean=input_mean, fov=fov)
        if input_channels not in (1, 3):
            raise ValueError(f"input_channels must be 1 or 3; got {input_channels!r}.")
        self.input_channels = input_channels
        if input_channels != 1:
            self.trunk_options["input_channels"] = input_channels
        self.custom_trunk = trunk is not None
        with _global_policy(self.dtype_policy if dtype is not None else None):
            if self.custom_trunk:
                self.arch = None
                self.trunk, self.tap_strides = self._custom_trunk(trunk, tap_strides, taps)
            else:
                self.arch = arch
                self.trunk, self.tap_strides = self._built_trunk(arch, taps)
        self.taps = list(self.tap_strides)
        strides = list(self.tap_strides.values())
        self.tap_channels = [int(self.trunk.output[name].shape[-1]) for name in self.taps]
        policy = self.dtype_policy
        self.sparse_hypercolumn = tfcolor_layers.SparseHypercolumn(
                strides, convention=convention, edge_eps=edge_eps, name="sparse_hypercolumn",
                dtype=policy)
        self.dense_hypercolumn = tfcolor_layers.DenseHypercolumn(
                strides, grid_factor=grid_factor, convention=convention, edge_eps=edge_eps,
                name="dense_hypercolumn", dtype=policy)
        self.head = tfcolor_layers.HistogramHead(
                self.output_sizes, hidden=hidden, dropout=dropout, activation=head_activation,
                name="head", dtype=policy)
        self.head.build((None, sum(self.tap_channels)))
        self.built = True

    # -- construction ---------------------------------------------------------------------------

    def _built_trunk(self, arch, taps):
        fov = bool(self.trunk_options.get("fov", False))
        names = trunk_lib.resolve_taps(arch, taps, fov)
        table = trunk_lib.tap_strides(arch, names, fov)
        trunk = trunk_lib.build_trunk(arch, taps=names, **self.trunk_options)
        missing = [n for n in names if n not in trunk.output]
        if missing:
            raise ValueError(f"build_trunk({arch!r}) did not output taps {missing}.")
        return trunk, collections.OrderedDict(table)

    def _custom_trunk(self, trunk, tap_strides, taps):
        if isinstance(trunk, dict):
            trunk = keras.saving.deserialize_keras_object(trunk)
        if not isinstance(trunk, keras.Model) or not isinstance(trunk.output, dict):
            raise ValueError("trunk must be a functional keras.Model whose output is a dict "
                             f"{{tap: feature map}}; got {trunk!r}.")
        if not tap_strides:
            raise ValueError("A custom trunk needs tap_strides={tap: stride} in hypercolumn order.")
        order = list(tap_strides.items()) if isinstance(tap_strides, dict) else [
                tuple(item) for item in tap_strides]
        if taps not in (None, "all"):
            wanted = [taps] if isinstance(taps, str) else list(taps)
            unknown = [t for t in wanted if t not in dict(order)]
            if unknown:
                raise ValueError(f"Unknown taps {unknown}; the custom trunk has {list(dict(order))}.")
            order = [(n, s) for n, s in order if n in wanted]
        missing = [n for n, _ in order if n not in trunk.output]
        if missing:
            raise ValueError(f"The custom trunk does not output taps {missing}; it outputs "
                             f"{list(trunk.output)}.")
        if trunk.input.shape[-1] != self.input_channels:
            raise ValueError(f"input_channels={self.input_channels} needs a trunk taking "
                             f"{self.input_channels} channels; the custom trunk takes "
                             f"{trunk.input.shape[-1]}.")
        return trunk, collections.OrderedDict(order)

    def build(self, input_shape=None):
        self.built = True

    # -- forward paths --------------------------------------------------------------------------

    def _check_gray(self, gray):
        gray = tf.convert_to_tensor(gray)
        if gray.shape.rank is not None and (gray.shape.rank != 4 or gray.shape[-1] not in (1, None)):
            raise ValueError("Colorizer expects a grey batch (B, H, W, 1) in [0, 1]; got shape "
                             f"{gray.shape}.")
        if not gray.dtype.is_floating:
            raise ValueError(f"Colorizer expects a float grey image in [0, 1]; got {gray.dtype}.")
        return gray

    def features(self, gray, training=None):
        """The selected tap maps, in hypercolumn order."""
        gray = self._check_gray(gray)
        if self.input_channels != 1:
            gray = tf.repeat(gray, self.input_channels, axis=-1)
        maps = self.trunk(gray, training=training)
        return [maps[name] for name in self.taps]

    def sparse(self, gray, centers, training=None):
        """Head output (B, P, D) at ``centers`` (B, P, 2) (y, x) in input pixels."""
        maps = self.features(gray, training=training)
        return self.head(self.sparse_hypercolumn(maps, centers), training=training)

    def sparse_hypercolumns(self, gray, centers, training=None):
        """The sparse hypercolumns (B, P, C) themselves (e.g. for feature analysis)."""
        return self.sparse_hypercolumn(self.features(gray, training=training), centers)

    def dense(self, gray, grid_factor=None, training=False, method=None):
        """Head output maps (B, ceil(H/g), ceil(W/g), D); cell (i, j) is centre (i*g, j*g)."""
        method = self.dense_method if method is None else method
        if method not in DENSE_METHODS:
            raise ValueError(f"method must be one of {DENSE_METHODS}; got {method!r}.")
        gray = self._check_gray(gray)
        g = self.grid_factor if grid_factor is None else grid_factor
        maps = self.features(gray, training=training)
        if method == "concat":
            return self.head(self.dense_hypercolumn(maps, gray, grid_factor=g), training=training)
        return self._dense_factored(maps, gray, g, training)

    def _dense_factored(self, maps, gray, grid_factor, training):
        dense = self.dense_hypercolumn
        ys, xs = dense.grid(gray, grid_factor)
        dtype = self.head.compute_dtype
        kernel = tf.cast(self.head.h_fc1.kernel, dtype)
        total, start = None, 0
        for fmap, stride, channels in zip(maps, dense.strides, self.tap_channels):
            fmap = tf.cast(fmap, dtype)
            block = kernel[start:start + channels]
            start += channels
            if stride > grid_factor:  # coarse map: project, then resample the hidden maps
                part = dense.resample(tf.tensordot(fmap, block, axes=1), stride, ys, xs)
            else:  # fine map: resample to the grid first
                part = tf.tensordot(dense.resample(fmap, stride, ys, xs), block, axes=1)
            total = part if total is None else total + part
        total = total + tf.cast(self.head.h_fc1.bias, dtype)
        return self.head.from_hidden(total, training=training)

    def call(self, inputs, training=False):
        """``dense(inputs)`` for a grey batch; ``sparse(gray, centers)`` for a dict with
        ``"gray"`` and ``"centers"`` (Keras ``fit``)."""
        if isinstance(inputs, collections.abc.Mapping):
            missing = [k for k in ("gray", "centers") if k not in inputs]
            if missing:
                raise ValueError(f"Colorizer called on a dict needs 'gray' and 'centers' (sparse "
                                 f"logits at the centres); missing {missing}, got "
                                 f"{sorted(inputs)}.")
            return self.sparse(inputs["gray"], inputs["centers"], training=training)
        return self.dense(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """``keras.Model.compile``; a loss with ``reduction=None`` (the tfcolor losses'
        per-point default) is replaced by a copy with ``reduction="sum_over_batch_size"`` (the
        mean over all sampled points; see the module docstring)."""
        super().compile(optimizer=optimizer, loss=_mean_over_points(loss), **kwargs)

    def compile_from_config(self, config):
        """Compiles from ``get_compile_config()`` when a ``.keras`` file is loaded (Keras skips
        compiling a model whose ``compile`` is overridden unless this is overridden too)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # -- serialisation --------------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
                kind=self.kind, output_sizes=list(self.output_sizes), hidden=self.hidden,
                dropout=self.dropout, head_activation=self.head_activation,
                grid_factor=self.grid_factor, convention=self.convention,
                edge_eps=self.edge_eps, dense_method=self.dense_method,
                trunk_options={k: v for k, v in self.trunk_options.items()
                               if k != "input_channels"},
                input_channels=self.input_channels)
        if self.custom_trunk:
            config.update(arch=None, taps=None, trunk=keras.saving.serialize_keras_object(self.trunk),
                          tap_strides=[[n, s] for n, s in self.tap_strides.items()])
        else:
            config.update(arch=self.arch, taps=list(self.taps))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        arch = config.pop("arch", None)
        if config.get("trunk") is None:
            config.pop("trunk", None)
            config.pop("tap_strides", None)
            return cls(arch, **config)
        return cls(**config)
