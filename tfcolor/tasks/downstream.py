"""Fine-tuning on labelled tasks as :class:`~tfcolor.tasks.base.Task` objects (transfer learning).

Three tasks train a :class:`tfcolor.downstream.model.DownstreamModel` on a labelled set
(:class:`tfcolor.downstream.datasets.LabeledData`) through the generic trainer; the paper's
protocol (:func:`tfcolor.downstream.protocol.finetune`) runs them with
:func:`tfcolor.train.experiment.run`:

* :class:`ClassificationTask`: batches ``{"image", "label": (B,)}``; loss: softmax
  cross-entropy of the image logits, per image.
* :class:`MultiLabelTask`: batches ``{"image", "label": (B, C)}`` with 1 / 0 / -1 (ignored, VOC
  "difficult"); loss: sigmoid cross-entropy summed over the non-ignored classes, per image.
* :class:`SegmentationTask`: batches ``{"image", "points": (B, P, 2), "label": (B, P)}`` (``P``
  pixels sampled among the labelled ones, see :func:`tfcolor.downstream.pipelines.train_dataset`);
  loss: softmax cross-entropy of the hypercolumn logits at each sampled pixel; a point whose
  label is not a class (``IGNORE_LABEL``: a crop without any labelled pixel) costs nothing.

Normalisation (the contract's): this replica's sum of per-unit losses divided by the number of
units in the *global* batch. The unit is an image for classification and multi-label, and a
sampled pixel for segmentation: ``P`` per image, so the normaliser is ``global batch x P``
(ignored points count in it and cost 0, as in the loop this replaces; with the sampler they
only occur for crops without any labelled pixel).

The inputs carry no ``"index"``: the trainer resumes them by checkpointing the iterator (the
protocol never resumes: every run starts in a fresh directory).
"""
import tensorflow as tf

from tfcolor.downstream import model as model_lib
from tfcolor.downstream import pipelines
from tfcolor.downstream import scoring
from tfcolor.tasks import base

__all__ = ["ClassificationTask", "MultiLabelTask", "SegmentationTask", "for_data",
           "softmax_cross_entropy", "sigmoid_cross_entropy"]


def softmax_cross_entropy(labels, logits):
    """Per-unit softmax cross-entropy ``-log p(label)``; labels outside [0, C) cost 0.

    Computed as ``-sum(one_hot(label) * log_softmax(logits))``, the loss of the fine-tuning
    loop this replaces, whose one-hot targets were all-zero rows for ignored pixels.

    Args:
        labels: integer class indices, shape ``S`` (any integer dtype).
        logits: float logits, shape ``S + (C,)``.

    Returns:
        float32 losses, shape ``S``.
    """
    logits = tf.cast(logits, tf.float32)
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1])  # out of range: 0
    return -tf.reduce_sum(one_hot * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def sigmoid_cross_entropy(labels, logits):
    """Per-unit sigmoid cross-entropy summed over the classes whose label is 0 or 1 (-1 and
    ``IGNORE_LABEL``: ignored).

    Args:
        labels: (..., C) with 1 / 0 / -1 (any numeric dtype).
        logits: (..., C) float logits.

    Returns:
        float32 losses, shape ``(...)``.
    """
    labels = tf.cast(labels, tf.float32)
    mask = tf.cast((labels >= 0.0) & (labels <= 1.0), tf.float32)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.clip_by_value(labels, 0.0, 1.0),
                                                 logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask, axis=-1)


class _DownstreamTask(base.Task):
    """Shared by the three tasks: a labelled set, its training pipeline and a model function.

    Args:
        data: the labelled training set (:class:`tfcolor.downstream.datasets.LabeledData`) whose
            ``task`` is this task's name.
        model_fn: ``() -> DownstreamModel`` for this task (e.g.
            :func:`tfcolor.downstream.initialization.model_fn`), called inside the strategy's
            scope.
        batch_size: global batch size.
        crop_size, scale_range, mirror, color, seed, shuffle_buffer: the training pipeline
            (:func:`tfcolor.downstream.pipelines.train_dataset`); ``color``: the model takes RGB.
    """

    name = "downstream"

    def __init__(self, data, model_fn, *, batch_size=32, crop_size=None, scale_range=None,
                 mirror=True, color=False, seed=0, shuffle_buffer=10000):
        if getattr(data, "task", None) != self.name:
            raise ValueError(f"{type(self).__name__} trains on {self.name!r} data; got "
                             f"{getattr(data, 'task', type(data).__name__)!r}.")
        if not callable(model_fn):
            raise TypeError(f"model_fn must be a function returning a DownstreamModel; got "
                            f"{type(model_fn).__name__}.")
        self.data = data
        self.model_fn = model_fn
        self.pipeline_options = dict(batch_size=batch_size, crop_size=crop_size,
                                     scale_range=scale_range, mirror=mirror, color=color,
                                     seed=seed, shuffle_buffer=shuffle_buffer)

    def build_model(self):
        model = self.model_fn()
        if not isinstance(model, model_lib.DownstreamModel) or model.task != self.name:
            raise ValueError(f"model_fn must build a DownstreamModel for {self.name!r}; got "
                             f"{getattr(model, 'task', type(model).__name__)!r}.")
        return model

    def build_inputs(self, start=0):
        del start  # no "index": the trainer checkpoints the iterator
        return pipelines.train_dataset(self.data, **self.pipeline_options)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        missing = [k for k in self._keys if k not in element_spec]
        if missing:
            raise ValueError(f"{self.name} batches need {list(self._keys)}; missing {missing} "
                             f"in {element_spec}")

    _keys = ("image", "label")


class ClassificationTask(_DownstreamTask):
    """Single-label classification (see the module docstring)."""

    name = "classification"

    def per_image_loss(self, labels, logits):
        return softmax_cross_entropy(labels, logits)

    def compute_loss(self, model, batch, *, training, global_batch_size):
        logits = model.logits(batch["image"], training=training)
        per_image = self.per_image_loss(batch["label"], logits)
        return tf.reduce_sum(per_image) / float(global_batch_size), {}


class MultiLabelTask(ClassificationTask):
    """Multi-label classification, one sigmoid per class (see the module docstring)."""

    name = "multilabel"

    def per_image_loss(self, labels, logits):
        return sigmoid_cross_entropy(labels, logits)


class SegmentationTask(_DownstreamTask):
    """Semantic segmentation trained on sampled pixels (see the module docstring).

    Args:
        num_points: pixels sampled per image (``P``); other arguments as the other tasks.
    """

    name = "segmentation"
    _keys = ("image", "points", "label")

    def __init__(self, data, model_fn, *, num_points=256, **kwargs):
        if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
            raise ValueError(f"num_points must be a positive integer; got {num_points!r}.")
        super().__init__(data, model_fn, **kwargs)
        self.pipeline_options["num_points"] = num_points

    def compute_loss(self, model, batch, *, training, global_batch_size):
        points = batch["points"]
        logits = model.point_logits(batch["image"], points, training=training)
        per_point = softmax_cross_entropy(batch["label"], logits)
        units = float(global_batch_size) * tf.cast(tf.shape(points)[1], tf.float32)
        return tf.reduce_sum(per_point) / units, {}


_TASKS = {"classification": ClassificationTask, "multilabel": MultiLabelTask,
          "segmentation": SegmentationTask}


def for_data(data, model_fn, *, num_points=256, **kwargs):
    """The task of ``data.task`` (``num_points`` is used by segmentation only)."""
    scoring.check_task(data.task)
    if data.task == "segmentation":
        kwargs["num_points"] = num_points
    return _TASKS[data.task](data, model_fn, **kwargs)
