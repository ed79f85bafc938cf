"""The downstream network: a trunk plus a task head (:class:`DownstreamModel`).

Heads (per task of :data:`tfcolor.downstream.scoring.TASKS`):

* ``"classification"`` (single label): the deepest selected tap (``feature_tap``, default the
  trunk's last output, fc7 for VGG-16) is average-pooled over space (``pool="avg"``; ``"max"``
  also available), then dropout and a linear classifier. A fully convolutional VGG-16 at 224 x 224
  pools a 7 x 7 fc7 map; at the 28 x 28 of Fashion-MNIST the map is 1 x 1 and pooling is the
  identity.
* ``"multilabel"``: the same head with one sigmoid per class.
* ``"segmentation"``: a hypercolumn head, as the paper uses for VOC segmentation: every
  selected tap (default: all the trunk's outputs) is bilinearly sampled at ``P`` random pixels
  per image during training (:class:`tfcolor.layers.SparseHypercolumn`) and a hidden layer
  (``hidden`` units, ReLU, dropout) then a linear layer to the classes
  (:class:`tfcolor.layers.HistogramHead` with one group) classify each pixel. Evaluation is dense
  (:class:`tfcolor.layers.DenseHypercolumn` on the grid ``input / grid_factor``), the logits are
  bilinearly upsampled to full resolution (``upsample_grid``, same grid convention as the
  colorizer) and the argmax is compared with the label map.

:meth:`DownstreamModel.logits` (classification, multi-label: ``(B, C)``),
:meth:`DownstreamModel.point_logits` (segmentation training: ``(B, P, C)`` at sampled pixels)
and :meth:`DownstreamModel.dense_logits` (segmentation evaluation: ``(B, H, W, C)``) are what
the tasks of :mod:`tfcolor.tasks.downstream` train; :meth:`DownstreamModel.predict_scores`
gives what the scores of :mod:`tfcolor.downstream.scoring` consume.
"""
import keras
import numpy as np
import tensorflow as tf

from tfcolor import layers as tfcolor_layers
from tfcolor import readout
from tfcolor.downstream import scoring

POOLS = ("avg", "max")


@keras.saving.register_keras_serializable(package="tfcolor")
class DownstreamModel(keras.Model):
    """A trunk plus a task head (see the module docstring).

    Args:
        trunk: functional ``keras.Model`` from images (B, H, W, C_in) to a dict {tap: map}
            (a trunk of :func:`tfcolor.models.build_trunk`, possibly after
            :mod:`tfcolor.surgery`, or a baseline's downstream trunk).
        task: one of :data:`tfcolor.downstream.scoring.TASKS`.
        num_classes: number of classes (segmentation: without the ignore label).
        tap_strides: ordered {tap: stride} of the trunk's outputs (segmentation needs it; see
            :func:`tfcolor.downstream.initialization.trunk_tap_strides`).
        taps: segmentation: the taps of the hypercolumn (default: all trunk outputs).
        feature_tap: classification: the pooled tap (default: the trunk's last output).
        hidden: segmentation: hidden units of the hypercolumn head (1024, as the colorizer).
        dropout: dropout before the classifier (classification) / after the hidden layer
            (segmentation).
        pool: ``"avg"`` or ``"max"`` spatial pooling (classification).
        grid_factor: segmentation: dense evaluation grid (input / grid_factor).
        convention: hypercolumn sampling convention (``"released"`` or ``"half_pixel"``).
    """

    def __init__(self, trunk, task="classification", num_classes=10, *, tap_strides=None,
                 taps=None, feature_tap=None, hidden=1024, dropout=0.5, pool="avg",
                 grid_factor=4, convention="released", **kwargs):
        super().__init__(**kwargs)
        if isinstance(trunk, dict):
            trunk = keras.saving.deserialize_keras_object(trunk)
        if not isinstance(trunk, keras.Model) or not isinstance(trunk.output, dict):
            raise ValueError("trunk must be a functional keras.Model whose output is a dict "
                             f"{{tap: feature map}}; got {type(trunk).__name__}.")
        self.task = scoring.check_task(task)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or \
                num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; got {pool!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
        self.trunk = trunk
        self.num_classes = int(num_classes)
        self.hidden = int(hidden)
        self.dropout_rate = float(dropout)
        self.pool = pool
        self.grid_factor = int(grid_factor)
        self.convention = convention
        outputs = list(trunk.output)
        self.input_channels = int(trunk.inputs[0].shape[-1])
        if self.task == "segmentation":
            if tap_strides is None:
                raise ValueError("segmentation needs tap_strides={tap: stride} for the trunk's "
                                 "outputs (see tfcolor.downstream.initialization."
                                 "trunk_tap_strides).")
            tap_strides = dict(tap_strides.items() if isinstance(tap_strides, dict)
                               else [tuple(t) for t in tap_strides])
            names = outputs if taps in (None, "all") else ([taps] if isinstance(taps, str)
                                                           else list(taps))
            unknown = [n for n in names if n not in outputs or n not in tap_strides]
            if unknown:
                raise ValueError(f"unknown segmentation taps {unknown}; the trunk outputs "
                                 f"{outputs} with strides for {sorted(tap_strides)}.")
            self.taps = [n for n in outputs if n in names]
            self.tap_strides = {n: int(tap_strides[n]) for n in self.taps}
            strides = [self.tap_strides[n] for n in self.taps]
            self.sparse_hypercolumn = tfcolor_layers.SparseHypercolumn(
                    strides, convention=convention, name="sparse_hypercolumn")
            self.dense_hypercolumn = tfcolor_layers.DenseHypercolumn(
                    strides, grid_factor=self.grid_factor, convention=convention,
                    name="dense_hypercolumn")
            self.head = tfcolor_layers.HistogramHead(
                    (self.num_classes,), hidden=self.hidden, dropout=self.dropout_rate,
                    activation=None, name="head")
            channels = sum(int(trunk.output[n].shape[-1]) for n in self.taps)
            self.head.build((None, channels))
        else:
            tap = feature_tap or outputs[-1]
            if tap not in outputs:
                raise ValueError(f"feature_tap {tap!r} is not a trunk output; outputs: {outputs}.")
            self.taps = [tap]
            self.tap_strides = dict(tap_strides) if tap_strides else None
            self.pooling = (keras.layers.GlobalAveragePooling2D(name="pool") if pool == "avg"
                            else keras.layers.GlobalMaxPooling2D(name="pool"))
            self.drop = keras.layers.Dropout(self.dropout_rate, name="dropout")
            self.head = keras.layers.Dense(self.num_classes, name="head")
            self.head.build((None, int(trunk.output[tap].shape[-1])))
        self.feature_tap = self.taps[-1]
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def _check_images(self, images):
        images = tf.convert_to_tensor(images)
        if images.shape.rank is not None and images.shape.rank != 4:
            raise ValueError(f"images must be a (B, H, W, C) batch; got shape {images.shape}.")
        if images.shape[-1] is not None and images.shape[-1] != self.input_channels:
            raise ValueError(f"the trunk takes {self.input_channels}-channel images; got shape "
                             f"{images.shape} (grey input: 1 channel; colour input: 3, after "
                             f"tfcolor.surgery.gray_to_rgb_conv1).")
        if images.dtype == tf.uint8:
            images = tf.cast(images, tf.float32) / 255.0
        return images

    def features(self, images, training=None):
        """The trunk's tap maps (dict)."""
        return self.trunk(self._check_images(images), training=training)

    def logits(self, images, training=None):
        """Classification: (B, C) logits."""
        if self.task == "segmentation":
            raise ValueError("logits() is for classification; use dense_logits() for "
                             "segmentation.")
        fmap = self.features(images, training=training)[self.feature_tap]
        pooled = self.pooling(fmap)
        return self.head(self.drop(pooled, training=training))

    def point_logits(self, images, points, training=None):
        """Segmentation: (B, P, C) logits at the pixels ``points`` (B, P, 2) int (y, x)."""
        if self.task != "segmentation":
            raise ValueError("point_logits() is for segmentation; use logits() for "
                             "classification.")
        maps = self.features(images, training=training)
        return self.head(self.sparse_hypercolumn([maps[n] for n in self.taps], points),
                         training=training)

    def dense_logits(self, images, training=False):
        """Segmentation: full-resolution logits (B, H, W, C)."""
        images = self._check_images(images)
        maps = self.features(images, training=training)
        grid = self.dense_hypercolumn([maps[n] for n in self.taps], images)
        out = self.head(grid, training=training)
        return readout.upsample_grid(out, tf.shape(images)[1:3], self.grid_factor)

    def predict_scores(self, images):
        """What the metrics consume: class probabilities (B, C), per-class sigmoids (B, C), or
        full-resolution segmentation logits (B, H, W, C)."""
        if self.task == "segmentation":
            return self.dense_logits(images, training=False)
        out = tf.cast(self.logits(images, training=False), tf.float32)
        return tf.sigmoid(out) if self.task == "multilabel" else tf.nn.softmax(out)

    def call(self, images, training=False):
        if self.task == "segmentation":
            return self.dense_logits(images, training=training)
        return self.logits(images, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(trunk=keras.saving.serialize_keras_object(self.trunk), task=self.task,
                      num_classes=self.num_classes,
                      tap_strides=None if self.tap_strides is None else
                      [[n, s] for n, s in self.tap_strides.items()],
                      taps=list(self.taps) if self.task == "segmentation" else None,
                      feature_tap=self.feature_tap if self.task != "segmentation" else None,
                      hidden=self.hidden, dropout=self.dropout_rate, pool=self.pool,
                      grid_factor=self.grid_factor, convention=self.convention)
        return config
