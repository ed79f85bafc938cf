"""Losses for colorization pretraining: histogram KL, hue/chroma KL and Lab regression.

Conventions (docs/DESIGN.md): ``y_true`` is the packed target of ``tfcolor.targets``; ``y_pred``
is the concatenation of the head's groups along the last axis (logits when ``from_logits=True``,
the training default, else probabilities). With ``reduction=None`` (the default) every loss
returns one value per leading position, i.e. ``y_pred.shape[:-1]`` -- (B, P) for sparse
hypercolumns, (B, H, W) for dense maps -- so that the training loop can sum and divide by the
global number of sampled points under a distribution strategy. Any Keras reduction
(``"sum"``, ``"sum_over_batch_size"``, ...) can be passed instead.

All losses compute in float32 whatever the input dtype (mixed-precision safe); logits go through
``log_softmax`` per group. ``KL(y || q) = sum_k y_k (log y_k - log q_k)`` with ``0 log 0 = 0``;
with probabilities, ``q`` is floored at the smallest normal float32 before the log (as the
released Caffe ``SoftmaxKLDLoss`` layer does).

* :class:`HistogramKL` -- KL per softmax group, summed over groups (``lab_hist``: a and b;
  ``lab_joint``: one 256-bin group; also usable for hue/chroma without the weighting).
* :class:`HueChromaLoss` -- ``w_L * KL_C + hue_weight * y_C * KL_H`` (ECCV 2016: hue weighted by
  the chroma at the centre, lambda_H = 5). ``lightness_weight=True`` sets
  ``w_L = min(3L, 1, 3(1 - L))`` with L the mean-RGB lightness at the centre (released Caffe
  prototxt); the default ``False`` (``w_L = 1``) is the paper.
* :class:`LabRegressionLoss` -- the regression baseline: squared Euclidean distance in (a, b),
  ``(a - a')^2 + (b - b')^2`` per point (a *sum* of squares over the two channels, not a mean;
  in Lab units, so values are O(100-1000) -- scale the learning rate accordingly).

``HistogramKL.parts`` (the per-group KLs) and ``HueChromaLoss.parts`` (``{"chroma", "hue"}``)
return the per-point parts whose sum is the loss, so that a training step can log them without
evaluating any KL twice (:func:`tfcolor.tasks.colorization.build_loss`).
"""
import keras
import numpy as np
import tensorflow as tf

from tfcolor.distill.losses import (  # noqa: F401  (the distillation losses, re-exported)
        ABDivergence, ExpDistillation, TemperatureKL, ab_divergence, ab_divergence_from_logs,
        teacher_scale)

__all__ = ["LOSS_KINDS", "HistogramKL", "HueChromaLoss", "LabRegressionLoss", "kl_divergence",
           "ABDivergence", "ExpDistillation", "TemperatureKL", "ab_divergence",
           "ab_divergence_from_logs", "teacher_scale"]

#: The colorization loss kinds (``tfcolor.config.LossConfig.kind``, the targets, the head and the
#: read-out all use these names): hue/chroma KL (the paper's best), KL of the a and b marginal
#: histograms, KL of the joint ab histogram, and the Lab L2 regression baseline.
LOSS_KINDS = ("hue_chroma", "lab_hist", "lab_joint", "lab_regression")

_TINY = float(np.finfo(np.float32).tiny)


def _check_sizes(output_sizes):
    try:
        sizes = tuple(int(s) for s in output_sizes)
    except TypeError:
        raise ValueError(f"output_sizes must be a sequence of positive ints, got "
                         f"{output_sizes!r}") from None
    if not sizes or any(s < 1 for s in sizes) or any(
            isinstance(s, bool) or int(s) != s for s in output_sizes):
        raise ValueError(f"output_sizes must be a non-empty sequence of positive ints, got "
                         f"{output_sizes!r}")
    return sizes


def _check_last(name, x, expected, what):
    if x.shape.rank == 0:
        raise ValueError(f"{name} must have a last axis ({what}), got a scalar")
    last = x.shape[-1]
    if last is not None and last != expected:
        raise ValueError(f"{name} has a last axis of size {last}, expected {expected} ({what}); "
                         f"shape {x.shape}")


def _log_probs(y_pred, from_logits):
    y_pred = tf.cast(y_pred, tf.float32)
    if from_logits:
        return tf.nn.log_softmax(y_pred, axis=-1)
    return tf.math.log(tf.maximum(y_pred, _TINY))


def kl_divergence(y_true, y_pred, from_logits=True):
    """KL(y_true || q) over the last axis, float32; q = softmax(y_pred) if ``from_logits``."""
    y_true = tf.stop_gradient(tf.cast(y_true, tf.float32))
    log_q = _log_probs(y_pred, from_logits)
    return tf.reduce_sum(tf.math.xlogy(y_true, y_true) - y_true * log_q, axis=-1)


class _Base(keras.losses.Loss):
    def __init__(self, from_logits=True, reduction=None, name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.from_logits = bool(from_logits)

    def get_config(self):
        config = super().get_config()
        config["from_logits"] = self.from_logits
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class HistogramKL(_Base):
    """Sum over softmax groups of KL(y_group || softmax(logits_group)).

    Args:
        output_sizes: group sizes, e.g. ``(32, 32)`` (lab_hist) or ``(256,)`` (lab_joint).
        group_weights: optional per-group multipliers (default all 1).
        from_logits: ``y_pred`` holds logits (default) or probabilities.
        reduction: Keras reduction; None (default) returns ``y_pred.shape[:-1]``.
    """

    def __init__(self, output_sizes=(32, 32), group_weights=None, from_logits=True,
                 reduction=None, name="histogram_kl", dtype=None):
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.output_sizes = _check_sizes(output_sizes)
        if group_weights is not None:
            group_weights = tuple(float(w) for w in group_weights)
            if len(group_weights) != len(self.output_sizes):
                raise ValueError(f"group_weights has {len(group_weights)} entries for "
                                 f"{len(self.output_sizes)} groups {self.output_sizes}")
        self.group_weights = group_weights

    def call(self, y_true, y_pred):
        losses = self.parts(y_true, y_pred)
        return tf.add_n(losses) if len(losses) > 1 else losses[0]

    def parts(self, y_true, y_pred):
        """The per-group (weighted) KLs, one ``y_pred.shape[:-1]`` float32 tensor per group, in
        group order: the loss (``reduction=None``) is their sum, each KL evaluated once."""
        y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
        total = sum(self.output_sizes)
        what = f"sum of output_sizes {self.output_sizes}"
        _check_last("y_pred", y_pred, total, what)
        _check_last("y_true", y_true, total, what)
        losses = []
        start = 0
        for i, size in enumerate(self.output_sizes):
            kl = kl_divergence(y_true[..., start:start + size], y_pred[..., start:start + size],
                               self.from_logits)
            if self.group_weights is not None:
                kl = kl * self.group_weights[i]
            losses.append(kl)
            start += size
        return losses

    def get_config(self):
        config = super().get_config()
        config.update(output_sizes=list(self.output_sizes),
                      group_weights=None if self.group_weights is None else list(
                              self.group_weights))
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class HueChromaLoss(_Base):
    """``w_L * KL_C + hue_weight * y_C * KL_H`` on the ``hue_chroma`` packed target.

    ``y_true`` (..., 2K + 2): hue histogram, chroma histogram, chroma at the centre, lightness at
    the centre. ``y_pred`` (..., 2K): hue logits then chroma logits (head ``output_sizes``
    ``(K, K)``).

    Args:
        num_bins: K (32).
        hue_weight: lambda_H (5).
        lightness_weight: multiply the chroma term by ``min(3L, 1, 3(1 - L))`` (released code);
            default False (paper).
        from_logits, reduction: as in :class:`HistogramKL`.
    """

    def __init__(self, num_bins=32, hue_weight=5.0, lightness_weight=False, from_logits=True,
                 reduction=None, name="hue_chroma_loss", dtype=None):
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.num_bins = _check_sizes([num_bins])[0]
        self.hue_weight = float(hue_weight)
        if not np.isfinite(self.hue_weight) or self.hue_weight < 0:
            raise ValueError(f"hue_weight must be finite and >= 0, got {hue_weight!r}")
        self.lightness_weight = bool(lightness_weight)

    def call(self, y_true, y_pred):
        parts = self.parts(y_true, y_pred)
        return parts["chroma"] + parts["hue"]

    def parts(self, y_true, y_pred):
        """``{"chroma": w_L * KL_C, "hue": hue_weight * y_C * KL_H}``, float32, shape
        ``y_pred.shape[:-1]``: the loss (``reduction=None``) is ``chroma + hue``, each KL
        evaluated once."""
        y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
        k = self.num_bins
        _check_last("y_pred", y_pred, 2 * k, f"hue and chroma logits, num_bins={k}")
        _check_last("y_true", y_true, 2 * k + 2,
                    f"hue_chroma packed target 2K + 2, num_bins={k}")
        y_true = tf.stop_gradient(tf.cast(y_true, tf.float32))
        kl_hue = kl_divergence(y_true[..., :k], y_pred[..., :k], self.from_logits)
        kl_chroma = kl_divergence(y_true[..., k:2 * k], y_pred[..., k:], self.from_logits)
        if self.lightness_weight:
            lightness = y_true[..., 2 * k + 1]
            kl_chroma = kl_chroma * tf.minimum(tf.minimum(3.0 * lightness, 1.0),
                                               3.0 * (1.0 - lightness))
        return {"chroma": kl_chroma, "hue": self.hue_weight * y_true[..., 2 * k] * kl_hue}

    def get_config(self):
        config = super().get_config()
        config.update(num_bins=self.num_bins, hue_weight=self.hue_weight,
                      lightness_weight=self.lightness_weight)
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class LabRegressionLoss(_Base):
    """Squared Euclidean distance in (a, b): ``(a - a')^2 + (b - b')^2`` per point.

    ``y_true`` and ``y_pred`` (..., 2) in Lab units. ``from_logits`` is accepted (for a uniform
    interface) and ignored: predictions are used as they are.
    """

    def __init__(self, reduction=None, name="lab_regression_loss", dtype=None, **kwargs):
        kwargs.pop("from_logits", None)
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        super().__init__(from_logits=False, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        _check_last("y_pred", y_pred, 2, "a and b")
        _check_last("y_true", y_true, 2, "a and b")
        diff = tf.cast(y_pred, tf.float32) - tf.stop_gradient(tf.cast(y_true, tf.float32))
        return tf.reduce_sum(tf.square(diff), axis=-1)
