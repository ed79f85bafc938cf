"""The video network: sparse hypercolumns at pairs of locations -> relative-flow amplitude bins.

``VideoNet(arch)`` builds a trunk with :func:`tfcolor.models.build_trunk` (colour input by
default, the thesis' V filters are colourful) -- or takes a given one (``trunk=`` with
``tap_strides=``, e.g. the :class:`tfcolor.models.multitask.SharedTrunk` of a multi-task model)
-- and a :class:`RelativeFlowHead`:

1. the frame goes through the trunk once;
2. the hypercolumn (every tap by default: "complete hypercolumns from all layers", METHOD_CH4.md
   §8.5.2) is read bilinearly at the first and at the second location of every pair
   (:class:`tfcolor.layers.SparseHypercolumn`, the colorizer's sampling);
3. the head: ``merge="concat"`` (default; the thesis text, [interpretation]): the two
   hypercolumns are concatenated, ``Dense(hidden)`` (FC-1024) -> ReLU -> dropout ->
   ``Dense(bins)`` logits. ``merge="hidden"`` (the released code,
   ``selfsup/multi/methods/video_relative_flow.py``): ``Dense(hidden)`` -> ReLU -> dropout on
   each hypercolumn with shared weights, the two hidden vectors concatenated, ``Dense(bins)``.

``model.pairs(frame, first, second, training=...)`` returns the logits (B, P, bins);
``model({"frame", "first", "second"})`` is the same; ``model.hypercolumns(frame, centers)``
gives the (B, P, C) hypercolumns. Logits are in the compute dtype (float16 under mixed
precision); the task's loss casts them to float32.
"""
import collections

import keras
import tensorflow as tf

from tfcolor import layers as tfcolor_layers
from tfcolor.models import alexnet, resnet, vgg  # noqa: F401  (register the architectures)
from tfcolor.models import trunk as trunk_lib

__all__ = ["RelativeFlowHead", "VideoNet", "MERGES", "DEFAULT_DROPOUT"]

#: How the head combines a pair (see the module docstring).
MERGES = ("concat", "hidden")
#: Dropout after the hidden layer: 0.5 as in the released code (the thesis states none).
DEFAULT_DROPOUT = 0.5


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@keras.saving.register_keras_serializable(package="tfcolor")
class RelativeFlowHead(keras.layers.Layer):
    """Hypercolumns of a pair's two locations, (B, P, C) each -> logits (B, P, bins).

    Args:
        bins: amplitude bins (32).
        hidden: width of the hidden layer (1024).
        dropout: rate after the hidden layer's ReLU.
        merge: ``"concat"`` or ``"hidden"`` (module docstring).
    """

    def __init__(self, bins=32, *, hidden=1024, dropout=DEFAULT_DROPOUT, merge="concat",
                 **kwargs):
        super().__init__(**kwargs)
        _check_int("bins", bins, 2)
        _check_int("hidden", hidden)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
                0 <= dropout < 1):
            raise ValueError(f"dropout must be a rate in [0, 1), got {dropout!r}")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        self.bins, self.hidden, self.dropout, self.merge = bins, hidden, float(dropout), merge
        self.fc = keras.layers.Dense(hidden, activation="relu", name="h_fc1",
                                     dtype=self.dtype_policy)
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.classify = keras.layers.Dense(bins, name="classify", dtype=self.dtype_policy)

    def build(self, first_shape, second_shape=None):
        channels = first_shape[-1]
        if channels is None:
            raise ValueError(f"RelativeFlowHead needs a static hypercolumn width; got "
                             f"{first_shape}")
        if self.merge == "concat":
            self.fc.build((None, 2 * channels))
            self.classify.build((None, self.hidden))
        else:
            self.fc.build((None, channels))
            self.classify.build((None, 2 * self.hidden))
        self.built = True

    def call(self, first, second, training=None):
        if self.merge == "concat":
            h = self.drop(self.fc(tf.concat([first, second], axis=-1)), training=training)
        else:
            h = tf.concat([self.drop(self.fc(first), training=training),
                           self.drop(self.fc(second), training=training)], axis=-1)
        return self.classify(h)

    def get_config(self):
        return dict(super().get_config(), bins=self.bins, hidden=self.hidden,
                    dropout=self.dropout, merge=self.merge)


@keras.saving.register_keras_serializable(package="tfcolor")
class VideoNet(keras.Model):
    """The video proxy's network (see the module docstring).

    Args:
        arch: trunk architecture for :func:`tfcolor.models.build_trunk` (``"alexnet"``, the
            thesis' base; ``"vgg_tiny"``, ...). Ignored when ``trunk`` is given.
        taps: the hypercolumn's taps (a preset, a list, a range; None: every tap).
        input_channels: channels of the trunk's input (3: colour frames, the thesis; 1: grey,
            e.g. a shared grey trunk: colour frames are turned grey, the mean of R, G, B).
        hidden, bins, dropout, merge: the head's (:class:`RelativeFlowHead`).
        convention, edge_eps: hypercolumn sampling (:class:`tfcolor.layers.SparseHypercolumn`).
        batch_norm, sync_batch_norm, input_mean: trunk options (``build_trunk``).
        trunk_options: further ``build_trunk`` keyword arguments.
        trunk: a trunk to use instead of building one (shared with other tasks' models): a
            functional model from (B, H, W, input_channels) to a dict of maps; needs
            ``tap_strides``. Not serialised by :meth:`get_config`.
        tap_strides: ``{tap: stride}`` in hypercolumn order, for a given ``trunk``.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, arch="alexnet", *, taps=None, input_channels=3, hidden=1024, bins=32,
                 dropout=DEFAULT_DROPOUT, merge="concat", convention="released",
                 edge_eps=tfcolor_layers.DEFAULT_EDGE_EPS, batch_norm=None,
                 sync_batch_norm=False, input_mean=None, trunk_options=None, trunk=None,
                 tap_strides=None, **kwargs):
        super().__init__(**kwargs)
        if input_channels not in (1, 3):
            raise ValueError(f"input_channels must be 1 or 3, got {input_channels!r}")
        self.input_channels = input_channels
        self.trunk_options = trunk_lib.merge_options(
                trunk_options, batch_norm=batch_norm, sync_batch_norm=sync_batch_norm,
                input_mean=input_mean)
        self.custom_trunk = trunk is not None
        if self.custom_trunk:
            if tap_strides is None:
                raise ValueError("a given trunk needs tap_strides ({tap: stride}, in "
                                 "hypercolumn order; SharedTrunk.tap_strides(taps))")
            outputs = trunk.output if isinstance(trunk.output, dict) else {}
            table = collections.OrderedDict(tap_strides)
            missing = [t for t in table if t not in outputs]
            if missing:
                raise ValueError(f"the given trunk does not output taps {missing}; it outputs "
                                 f"{sorted(outputs)}")
            if trunk.input.shape[-1] != input_channels:
                raise ValueError(f"input_channels={input_channels} needs a trunk taking "
                                 f"{input_channels} channels; the given trunk takes "
                                 f"{trunk.input.shape[-1]}")
            self.arch = None
            self.trunk = trunk
            self.tap_strides = table
        else:
            fov = bool(self.trunk_options.get("fov", False))
            names = trunk_lib.resolve_taps(arch, taps, fov)
            self.arch = arch
            self.tap_strides = collections.OrderedDict(trunk_lib.tap_strides(arch, names, fov))
            self.trunk = trunk_lib.build_trunk(arch, taps=names, input_channels=input_channels,
                                               **self.trunk_options)
        self.taps = list(self.tap_strides)
        self.convention = convention
        self.edge_eps = float(edge_eps)
        self.sparse_hypercolumn = tfcolor_layers.SparseHypercolumn(
                list(self.tap_strides.values()), convention=convention, edge_eps=edge_eps,
                name="sparse_hypercolumn", dtype=self.dtype_policy)
        channels = sum(int(self.trunk.output[t].shape[-1]) for t in self.taps)
        self.head = RelativeFlowHead(bins, hidden=hidden, dropout=dropout, merge=merge,
                                     name="head", dtype=self.dtype_policy)
        self.head.build((None, None, channels))
        self.built = True

    def features(self, frame, training=None):
        """The tap maps in hypercolumn order."""
        frame = tf.convert_to_tensor(frame)
        if self.input_channels == 1 and frame.shape.rank == 4 and frame.shape[-1] == 3:
            frame = tf.reduce_mean(frame, axis=-1, keepdims=True)  # grey: (R + G + B) / 3
        if frame.shape.rank != 4 or frame.shape[-1] != self.input_channels:
            raise ValueError(f"VideoNet expects frames (B, H, W, {self.input_channels}); got "
                             f"{frame.shape}")
        maps = self.trunk(frame, training=training)
        return [maps[t] for t in self.taps]

    def hypercolumns(self, frame, centers, training=None):
        """Sparse hypercolumns (B, P, C) at ``centers`` (B, P, 2) (y, x) pixels."""
        return self.sparse_hypercolumn(self.features(frame, training=training), centers)

    def pairs(self, frame, first, second, training=None):
        """Logits (B, P, bins) of the relative-flow amplitude of each pair ``(first[b, p],
        second[b, p])``, (y, x) pixel locations (B, P, 2)."""
        maps = self.features(frame, training=training)
        points = tf.shape(first)[1]
        both = tf.concat([tf.cast(first, tf.float32), tf.cast(second, tf.float32)], axis=1)
        columns = self.sparse_hypercolumn(maps, both)
        return self.head(columns[:, :points], columns[:, points:], training=training)

    def call(self, inputs, training=None):
        missing = [k for k in ("frame", "first", "second") if k not in inputs]
        if missing:
            raise ValueError(f"VideoNet is called on {{'frame', 'first', 'second'}}; missing "
                             f"{missing}")
        return self.pairs(inputs["frame"], inputs["first"], inputs["second"],
                          training=training)

    def get_config(self):
        if self.custom_trunk:
            raise NotImplementedError("a VideoNet on a given (shared) trunk is not "
                                      "serialised; save the multi-task model's weights")
        return dict(super().get_config(), arch=self.arch, taps=list(self.taps),
                    input_channels=self.input_channels, hidden=self.head.hidden,
                    bins=self.head.bins, dropout=self.head.dropout, merge=self.head.merge,
                    convention=self.convention, edge_eps=self.edge_eps,
                    trunk_options=dict(self.trunk_options))
