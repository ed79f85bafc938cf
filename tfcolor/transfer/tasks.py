"""Downstream tasks: heads on a trunk, per-point losses, and the metrics of the papers.

Tasks (``TASKS``)
-----------------
* ``"classification"`` (single label): the deepest selected tap (``feature_tap``, default the
  trunk's last output, fc7 for VGG-16) is average-pooled over space (``pool="avg"``; ``"max"``
  also available), then dropout and a linear classifier. A fully convolutional VGG-16 at 224 x 224
  pools a 7 x 7 fc7 map; at the 28 x 28 of Fashion-MNIST the map is 1 x 1 and pooling is the
  identity. Metrics: top-1 and top-5 accuracy.
* ``"multilabel"``: the same head with one sigmoid per class. Labels are 1 (present), 0 (absent)
  or ``IGNORE_LABEL`` / -1 ("difficult" objects in VOC: neither positive nor negative, excluded
  from the loss and from AP). Metric: mean average precision (VOC), see
  :func:`average_precision`.
* ``"segmentation"``: a hypercolumn head, as the paper uses for VOC segmentation: every
  selected tap (default: all the trunk's outputs) is bilinearly sampled at ``P`` random pixels
  per image during training (:class:`tfcolor.layers.SparseHypercolumn`) and a hidden layer
  (``hidden`` units, ReLU, dropout) then a linear layer to the classes
  (:class:`tfcolor.layers.HistogramHead` with one group) classify each pixel. Evaluation is dense
  (:class:`tfcolor.layers.DenseHypercolumn` on the grid ``input / grid_factor``), the logits are
  bilinearly upsampled to full resolution (``tfcolor.colorize.upsample_grid``, same grid
  convention) and the argmax is compared with the label map. Pixels labelled 255 are ignored
  (never sampled for training, excluded from the confusion matrix). Metric: mean IU.

The model (:class:`TransferModel`) exposes ``sparse(images, centers, training)`` -> ``(B, P, C)``
logits so that the training loop of :mod:`tfcolor.train` (written for the colorizer's sparse
training) trains it unchanged: classification batches carry one dummy centre per image and
targets ``(B, 1, C)``. :meth:`TransferModel.predict_scores` gives what the metrics consume.

Per-point losses (``task_loss``): softmax cross-entropy against one-hot targets
(classification, segmentation; an all-zero target row contributes 0) and summed sigmoid
cross-entropy over the non-ignored classes (multilabel).

Metrics are NumPy functions of whole evaluation sets (scores are accumulated on the host):
:func:`top_k_accuracy`, :func:`average_precision` / :func:`mean_average_precision`,
:func:`confusion_matrix` / :func:`mean_iou`.
"""
import keras
import numpy as np
import tensorflow as tf

from tfcolor import layers as tfcolor_layers

TASKS = ("classification", "multilabel", "segmentation")
IGNORE_LABEL = 255
AP_METHODS = ("11point", "area")
#: How tied scores are ordered before AP: "perturb" (default) or "stable" (input order).
AP_TIES = ("perturb", "stable")
POOLS = ("avg", "max")
PRIMARY_METRIC = {"classification": "top1", "multilabel": "mAP", "segmentation": "mean_iu"}


def check_task(task):
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}.")
    return task


# ----------------------------------------------------------------------------------------------
# Metrics.


def top_k_accuracy(scores, labels, k=1):
    """Fraction of examples whose label is among the ``k`` highest scores.

    Ties count in the label's favour only if fewer than ``k`` classes score *strictly* higher
    (the rank of the label is the number of classes with a strictly greater score).

    Args:
        scores: (N, C) scores or logits.
        labels: (N,) integer labels in [0, C).
        k: positive int (k >= C gives 1.0).

    Returns:
        float in [0, 1].
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, C) and labels (N,); got {scores.shape} and "
                         f"{labels.shape}.")
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    if labels.size == 0:
        raise ValueError("top_k_accuracy of an empty set.")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must be in [0, {scores.shape[1]}); got range "
                         f"[{labels.min()}, {labels.max()}].")
    true_scores = scores[np.arange(labels.size), labels]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    return float(np.mean(rank < int(k)))


def average_precision(scores, labels, method="11point", ties="perturb", seed=0):
    """Average precision of one class, as the PASCAL VOC devkit computes it.

    Examples are sorted by decreasing score; precision and recall are computed at every rank.

    Tied scores (CVPR 2017, Table 3.1 caption: the author "perturbs the detection scores before
    computing mAP, since otherwise even a trivial solution can incorrectly get around 53%"): with
    ``ties="perturb"`` (the default) examples with equal scores are put in a seeded random order,
    which is adding an infinitesimal random perturbation to the scores (the order of unequal
    scores never changes, whatever their gap). A constant predictor then scores about the class
    prior instead of whatever the order of the evaluation set gives it. ``ties="stable"`` keeps
    tied examples in input order (what a plain stable sort does; a constant predictor on a set
    listed positives-first gets AP 1). The perturbation's kind and size are not given in the
    paper; this is the limit of a small one.

    * ``"11point"`` (VOC 2007 devkit, the default and what VOC 2007 classification results are
      reported with): mean over t in {0, 0.1, ..., 1} of the maximum precision at recall >= t
      (0 when recall t is never reached).
    * ``"area"`` (VOC 2010+ devkit): area under the precision envelope (precision made
      non-increasing from the right), summed over the recall steps.

    Args:
        scores: (N,) scores.
        labels: (N,) 1 positive, 0 negative, -1 or ``IGNORE_LABEL`` ignored ("difficult").
        method: ``"11point"`` or ``"area"``.
        ties: ``"perturb"`` or ``"stable"`` (see above).
        seed: seed of the random order of tied scores.

    Returns:
        AP as float, or NaN when there is no positive example.
    """
    if method not in AP_METHODS:
        raise ValueError(f"method must be one of {AP_METHODS}; got {method!r}.")
    if ties not in AP_TIES:
        raise ValueError(f"ties must be one of {AP_TIES}; got {ties!r}.")
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length; got {scores.shape} and "
                         f"{labels.shape}.")
    keep = (labels != -1) & (labels != IGNORE_LABEL)
    scores, labels = scores[keep], labels[keep]
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise ValueError(f"multi-label labels must be 0, 1, -1 or {IGNORE_LABEL}; got "
                         f"{np.unique(labels[bad])[:5]}.")
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    if ties == "perturb":
        tie_break = np.random.default_rng(seed).permutation(scores.size)
        order = np.lexsort((tie_break, -scores))  # by score, then a random rank among ties
    else:
        order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(np.float64)
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, 1e-300)
    if method == "11point":
        ap = 0.0
        for t in np.linspace(0.0, 1.0, 11):
            reached = precision[recall >= t - 1e-12]
            ap += (reached.max() if reached.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(mpre.size - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def mean_average_precision(scores, labels, method="11point", ties="perturb", seed=0):
    """Mean over classes of :func:`average_precision`; classes without positives are skipped.

    Args:
        scores: (N, C).
        labels: (N, C) with 1 / 0 / -1 or 255 (ignored).
        method, ties: see :func:`average_precision`.
        seed: class ``c`` breaks ties with seed ``seed + c``.

    Returns:
        ``(mAP, per_class)`` with ``per_class`` a length-C array (NaN for skipped classes).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be (N, C); got {scores.shape} and "
                         f"{labels.shape}.")
    per_class = np.array([average_precision(scores[:, c], labels[:, c], method, ties=ties,
                                            seed=seed + c)
                          for c in range(scores.shape[1])])
    valid = per_class[~np.isnan(per_class)]
    return (float(valid.mean()) if valid.size else float("nan")), per_class


def confusion_matrix(predictions, labels, num_classes, ignore_label=IGNORE_LABEL):
    """(C, C) counts: row = true class, column = predicted class; ``ignore_label`` pixels skipped.

    Labels outside [0, C) other than ``ignore_label`` raise ValueError.
    """
    predictions = np.asarray(predictions).astype(np.int64).reshape(-1)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions and labels must have the same number of pixels; got "
                         f"{predictions.size} and {labels.size}.")
    keep = labels != ignore_label
    labels, predictions = labels[keep], predictions[keep]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}) or {ignore_label}; got values "
                         f"in [{labels.min()}, {labels.max()}].")
    if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
        raise ValueError(f"predictions must be in [0, {num_classes}).")
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_iou(confusion):
    """Mean intersection over union from a confusion matrix (VOC segmentation metric).

    IU_c = TP_c / (TP_c + FP_c + FN_c); classes that appear neither in the labels nor in the
    predictions (denominator 0) are excluded from the mean (the VOC devkit's classes all
    appear in its test set). Returns ``(mean IU, per-class IU with NaN for excluded, pixel
    accuracy)``.
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iu = np.where(denominator > 0, tp / denominator, np.nan)
    valid = iu[~np.isnan(iu)]
    total = confusion.sum()
    return ((float(valid.mean()) if valid.size else float("nan")), iu,
            float(tp.sum() / total) if total else float("nan"))


# ----------------------------------------------------------------------------------------------
# Losses.


def task_loss(task):
    """``loss(y_true, logits) -> (B, P)`` per-point loss of a task (see the module docstring)."""
    check_task(task)

    def softmax_cross_entropy(y_true, logits):
        y_true = tf.stop_gradient(tf.cast(y_true, tf.float32))
        logp = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        return -tf.reduce_sum(y_true * logp, axis=-1)

    def sigmoid_cross_entropy(y_true, logits):
        y_true = tf.stop_gradient(tf.cast(y_true, tf.float32))
        mask = tf.cast((y_true >= 0.0) & (y_true <= 1.0), tf.float32)
        labels = tf.clip_by_value(y_true, 0.0, 1.0)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                     logits=tf.cast(logits, tf.float32))
        return tf.reduce_sum(ce * mask, axis=-1)

    return sigmoid_cross_entropy if task == "multilabel" else softmax_cross_entropy


# ----------------------------------------------------------------------------------------------
# The model.


@keras.saving.register_keras_serializable(package="tfcolor")
class TransferModel(keras.Model):
    """A trunk plus a task head (see the module docstring).

    Args:
        trunk: functional ``keras.Model`` from images (B, H, W, C_in) to a dict {tap: map}
            (a trunk of :func:`tfcolor.models.build_trunk`, possibly after
            :mod:`tfcolor.surgery`, or a baseline's downstream trunk).
        task: one of ``TASKS``.
        num_classes: number of classes (segmentation: without the ignore label).
        tap_strides: ordered {tap: stride} of the trunk's outputs (segmentation needs it; see
            :func:`tfcolor.transfer.init.trunk_tap_strides`).
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
        self.task = check_task(task)
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
                                 "outputs (see tfcolor.transfer.init.trunk_tap_strides).")
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

    def sparse(self, images, centers, training=None):
        """(B, P, C) logits: per sampled pixel (segmentation) or the image logits repeated."""
        if self.task == "segmentation":
            maps = self.features(images, training=training)
            return self.head(self.sparse_hypercolumn([maps[n] for n in self.taps], centers),
                             training=training)
        out = self.logits(images, training=training)[:, None, :]
        points = tf.shape(centers)[1]
        return tf.tile(out, [1, points, 1])

    def dense_logits(self, images, training=False):
        """Segmentation: full-resolution logits (B, H, W, C)."""
        from tfcolor import colorize  # pylint: disable=import-outside-toplevel
        images = self._check_images(images)
        maps = self.features(images, training=training)
        grid = self.dense_hypercolumn([maps[n] for n in self.taps], images)
        out = self.head(grid, training=training)
        return colorize.upsample_grid(out, tf.shape(images)[1:3], self.grid_factor)

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
