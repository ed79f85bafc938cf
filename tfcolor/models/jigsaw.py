"""The jigsaw network: one trunk applied to every piece (shared weights), a head over the four.

``JigsawNet(arch)`` builds a trunk with :func:`tfcolor.models.build_trunk` -- the same kind of
object as the colorizer's trunk (a functional ``keras.Model`` from an image in [0, 1] to a dict of
tap maps), so that a multi-task model can pass one trunk to several task models (``trunk=``) --
and a :class:`JigsawHead`:

1. the four pieces ``(B, 4, p, p, C)`` go through the trunk as one batch of ``4B`` images
   (siamese: one set of weights; batch normalization, if any, sees the ``4B`` pieces together);
2. each piece's feature is the trunk's ``tap`` map (default ``fc7``) averaged over space. The
   trunks are fully convolutional with "same" padding, so a 227-pixel piece gives an 8 x 8 fc7
   map on AlexNet instead of Caffe's 1 x 1; the spatial mean is the size-independent reading;
3. the head (documented choice, the released code's ``selfsup/multi/methods/jigsaw.py`` for the
   2x2 puzzle): a linear layer shared by the pieces reduces each feature to ``reduce_channels``
   (128) with a ReLU, the four reduced features are concatenated **in slot order** (the order
   the pieces are given in), and a linear layer gives the 24 permutation logits. The released
   code initialises both layers with N(0, 1e-4) (``init_stddev``). ``reduce_channels=None``
   drops the reduction: the four features themselves are concatenated and classified (the
   reading of the thesis text, after Noroozi & Favaro).

``model(pieces)`` returns the logits (B, 24); ``model.features(pieces)`` the pooled per-piece
features (B, 4, F); ``model.trunk`` and ``model.head`` are the two parts (the head gets the
optimizer's head weight decay).
"""
import keras
import tensorflow as tf

from tfcolor.models import trunk as trunk_lib

__all__ = ["JigsawHead", "JigsawNet", "DEFAULT_REDUCE_CHANNELS", "DEFAULT_INIT_STDDEV"]

#: Width of the per-piece reduction of the released code.
DEFAULT_REDUCE_CHANNELS = 128
#: Standard deviation of the head's initial weights in the released code.
DEFAULT_INIT_STDDEV = 1e-4


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@keras.saving.register_keras_serializable(package="tfcolor")
class JigsawHead(keras.layers.Layer):
    """Per-piece features (B, N, F) -> permutation logits (B, classes).

    Args:
        classes: number of permutations (24 for 2x2).
        reduce_channels: width of the shared per-piece linear + ReLU reduction; None: none.
        init_stddev: standard deviation of the normal initial weights (biases start at 0).
    """

    def __init__(self, classes=24, *, reduce_channels=DEFAULT_REDUCE_CHANNELS,
                 init_stddev=DEFAULT_INIT_STDDEV, **kwargs):
        super().__init__(**kwargs)
        _check_int("classes", classes, 2)
        if reduce_channels is not None:
            _check_int("reduce_channels", reduce_channels)
        if isinstance(init_stddev, bool) or not isinstance(init_stddev, (int, float)) or not (
                init_stddev > 0):
            raise ValueError(f"init_stddev must be a number > 0, got {init_stddev!r}")
        self.classes = classes
        self.reduce_channels = reduce_channels
        self.init_stddev = float(init_stddev)
        init = keras.initializers.RandomNormal(stddev=self.init_stddev)
        self.reduce = (None if reduce_channels is None else keras.layers.Dense(
                reduce_channels, activation="relu", kernel_initializer=init, name="reduce",
                dtype=self.dtype_policy))
        self.classify = keras.layers.Dense(classes, kernel_initializer=init, name="classify",
                                           dtype=self.dtype_policy)

    def build(self, input_shape):
        pieces, features = input_shape[-2], input_shape[-1]
        if pieces is None or features is None:
            raise ValueError(f"JigsawHead needs a static number of pieces and feature width; "
                             f"got input shape {input_shape}")
        if self.reduce is not None:
            self.reduce.build((None, features))
            features = self.reduce_channels
        self.classify.build((None, pieces * features))
        self.built = True

    def call(self, features):
        x = features
        if self.reduce is not None:
            x = self.reduce(x)
        x = tf.reshape(x, [-1, x.shape[-2] * x.shape[-1]])
        return self.classify(x)

    def get_config(self):
        return dict(super().get_config(), classes=self.classes,
                    reduce_channels=self.reduce_channels, init_stddev=self.init_stddev)


@keras.saving.register_keras_serializable(package="tfcolor")
class JigsawNet(keras.Model):
    """The jigsaw network (see the module docstring).

    Args:
        arch: trunk architecture for :func:`tfcolor.models.build_trunk` (``"alexnet"``, the
            thesis' base; ``"vgg16"``, ``"vgg_tiny"``, ...). Ignored when ``trunk`` is given.
        tap: the trunk output the pieces' features are read from (``"fc7"``: every layer is
            trained, the point of the 2x2 puzzle).
        color: colour pieces (3-channel input, the thesis) or grey ones (1 channel, the
            colorizer's input).
        pieces: pieces per puzzle (4).
        classes: permutations (24).
        reduce_channels, init_stddev: the head's (:class:`JigsawHead`).
        batch_norm, sync_batch_norm, input_mean: trunk options (``build_trunk``).
        trunk_options: further ``build_trunk`` keyword arguments (e.g. ``{"groups": 1}``).
        trunk: a trunk to use instead of building one (e.g. shared with another task's model):
            a model from (B, H, W, C) to a dict of maps holding ``tap``; it is not serialised by
            :meth:`get_config`.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, arch="alexnet", *, tap="fc7", color=True, pieces=4, classes=24,
                 reduce_channels=DEFAULT_REDUCE_CHANNELS, init_stddev=DEFAULT_INIT_STDDEV,
                 batch_norm=None, sync_batch_norm=False, input_mean=None, trunk_options=None,
                 trunk=None, **kwargs):
        super().__init__(**kwargs)
        _check_int("pieces", pieces, 2)
        self.tap = tap
        self.color = bool(color)
        self.pieces = pieces
        self.trunk_options = trunk_lib.merge_options(
                trunk_options, batch_norm=batch_norm, sync_batch_norm=sync_batch_norm,
                input_mean=input_mean)
        channels = 3 if self.color else 1
        self.custom_trunk = trunk is not None
        if self.custom_trunk:
            self.arch = None
            outputs = trunk.output if isinstance(trunk.output, dict) else {}
            if tap not in outputs:
                raise ValueError(f"the given trunk does not output tap {tap!r}; it outputs "
                                 f"{sorted(outputs)}")
            if trunk.input.shape[-1] != channels:
                raise ValueError(f"color={self.color} needs a {channels}-channel trunk; the "
                                 f"given trunk takes {trunk.input.shape[-1]} channels")
            self.trunk = trunk
        else:
            self.arch = arch
            self.trunk = trunk_lib.build_trunk(arch, taps=[tap], input_channels=channels,
                                               **self.trunk_options)
        features = int(self.trunk.output[tap].shape[-1])
        self.head = JigsawHead(classes, reduce_channels=reduce_channels,
                               init_stddev=init_stddev, name="head", dtype=self.dtype_policy)
        self.head.build((None, pieces, features))
        self.built = True

    def features(self, pieces, training=None):
        """Pooled per-piece features: (B, N, p, p, C) -> (B, N, F)."""
        pieces = tf.convert_to_tensor(pieces)
        if pieces.shape.rank != 5 or pieces.shape[1] != self.pieces:
            raise ValueError(f"JigsawNet expects pieces (B, {self.pieces}, p, p, C); got "
                             f"{pieces.shape}")
        flat = tf.reshape(pieces, tf.concat([[-1], tf.shape(pieces)[2:]], 0))
        maps = self.trunk(flat, training=training)[self.tap]
        pooled = tf.reduce_mean(maps, axis=[1, 2])
        return tf.reshape(pooled, [-1, self.pieces, pooled.shape[-1]])

    def call(self, pieces, training=None):
        return self.head(self.features(pieces, training=training))

    def get_config(self):
        config = dict(super().get_config(), arch=self.arch, tap=self.tap, color=self.color,
                      pieces=self.pieces, classes=self.head.classes,
                      reduce_channels=self.head.reduce_channels,
                      init_stddev=self.head.init_stddev, trunk_options=self.trunk_options)
        return config
