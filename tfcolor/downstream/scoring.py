"""Downstream tasks' names and their scores: the metrics of the papers.

Tasks (``TASKS``) and their primary metric (``PRIMARY_METRIC``, the protocol's validation
score):

* ``"classification"`` (single label): top-1 and top-5 accuracy (:func:`top_k_accuracy`);
* ``"multilabel"``: labels are 1 (present), 0 (absent) or ``IGNORE_LABEL`` / -1 ("difficult"
  objects in VOC: neither positive nor negative, excluded from the loss and from AP); mean
  average precision as the VOC devkit computes it (:func:`average_precision` /
  :func:`mean_average_precision`, tied scores perturbed as in the CVPR 2017 paper);
* ``"segmentation"``: pixels labelled ``IGNORE_LABEL`` (255) are excluded; mean IU
  (:func:`confusion_matrix` / :func:`mean_iou`).

The scores are NumPy functions of whole evaluation sets (scores are accumulated on the host by
:func:`tfcolor.downstream.protocol.score`). The network is :mod:`tfcolor.downstream.model`.
"""
import numpy as np

TASKS = ("classification", "multilabel", "segmentation")
IGNORE_LABEL = 255
AP_METHODS = ("11point", "area")
#: How tied scores are ordered before AP: "perturb" (default) or "stable" (input order).
AP_TIES = ("perturb", "stable")
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
