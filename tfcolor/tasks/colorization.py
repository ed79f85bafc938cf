"""Colorization as a :class:`~tfcolor.tasks.base.Task`: the paper's pretraining objective.

A batch holds lightness crops ``"gray"`` (B, S, S, 1), sampled pixel centres ``"centers"``
(B, P, 2) and either the targets at those centres ``"targets"`` (B, P, D), built in tf.data, or
the colour crops ``"rgb"``, from which a :class:`tfcolor.targets.TargetBuilder` builds the targets
on the device inside the step. The model is any colorizer with
``model.sparse(gray, centers, training)`` returning logits (B, P, D) (a
:class:`tfcolor.models.Colorizer`); the loss returns one value per point and the data loss is
their sum over the replica divided by the *global* number of points (global batch x P), the
contract's normalisation. A loss may instead return its named parts, ``{name: (B, P)}``: the
per-point loss is then their sum and each part is a logged term, so a step evaluates every KL
once (:func:`build_loss`: hue and chroma for ``hue_chroma``, a and b for ``lab_hist``).

:meth:`ColorizationTask.from_config` builds the whole task of a
:class:`tfcolor.config.PretrainConfig` (data pipeline, colorizer, loss, preview photos);
the constructor takes the pieces, for custom models, losses or datasets.
"""
import tensorflow as tf
from absl import logging

from tfcolor import data as data_lib
from tfcolor import losses
from tfcolor import predictors
from tfcolor import targets
from tfcolor.image_grid import image_grid
from tfcolor.models import factory
from tfcolor.tasks import base

__all__ = ["ColorizationTask", "build_loss", "build_target_builder", "build_dataset",
           "heldout_batches", "preview_images", "make_preview_fn", "PREVIEW_MAX_SIZE"]

#: Largest side of the preview photos (the grid in TensorBoard and ``colorizations.png``).
PREVIEW_MAX_SIZE = 256


class ColorizationTask(base.Task):
    """Predict the colour histograms (or Lab values) of sampled pixels from lightness.

    Args:
        model_fn: ``model_fn() -> model`` with ``model.sparse(gray, centers, training)``; an
            optional ``model.head`` layer gets ``head_weight_decay``.
        loss_fn: ``loss_fn(y_true, y_pred) -> (B, P)`` per-point losses (``y_pred``: float32
            logits), or ``-> {name: (B, P)}``, the loss's parts: the per-point loss is their
            sum (in the dict's order) and each part is logged as the term ``name``.
        dataset: a function ``dataset(start) -> tf.data.Dataset`` of global batches (dicts with
            ``"gray"``, ``"centers"``, ``"targets"`` or ``"rgb"``, and ``"index"``, each
            element's position in a deterministic stream, the stream fast-forwarded to
            ``start``: exact resume with small checkpoints), or a ``tf.data.Dataset`` of such
            batches (its ``"index"``, if any, is dropped: the trainer then checkpoints the
            iterator). It should repeat forever. ``model_fn`` and ``dataset`` may be None for a
            task used only to compute losses (e.g. by :class:`tfcolor.train.heldout.HeldOutLoss`).
        target_builder: ``target_builder(rgb, centers) -> y_true`` for on-device targets.
        preview_images: (N, H, W, 3) RGB images in [0, 1] for the preview grid.
        preview_fn: ``preview_fn(model, rgb) -> colorized rgb`` (with ``preview_images``).
        model_on_fn: ``model_on_fn(trunk) -> model`` on a
            :class:`tfcolor.models.multitask.SharedTrunk` (multi-task training; see
            :meth:`build_model_on`), or None.
    """

    name = "colorization"

    def __init__(self, *, loss_fn, model_fn=None, dataset=None, target_builder=None,
                 preview_images=None, preview_fn=None, model_on_fn=None):
        self.model_fn = model_fn
        self.model_on_fn = model_on_fn
        self.loss_fn = loss_fn
        self.target_builder = target_builder
        self.preview_images = preview_images
        self.preview_fn = preview_fn
        if isinstance(dataset, tf.data.Dataset):
            if isinstance(dataset.element_spec, dict) and "index" in dataset.element_spec:
                dataset = dataset.map(lambda b: {k: v for k, v in b.items() if k != "index"})
            self._dataset, self._dataset_fn = dataset, None
        elif callable(dataset) or dataset is None:
            self._dataset, self._dataset_fn = None, dataset
        else:
            raise TypeError("dataset must be a tf.data.Dataset or a function start -> Dataset, "
                            f"got {type(dataset).__name__}")

    @classmethod
    def from_config(cls, config):
        """The task of a :class:`tfcolor.config.PretrainConfig` (pipeline, colorizer, loss,
        preview photos decoded with the library's defaults)."""
        loss_fn = build_loss(config.loss)
        first, target_builder = build_dataset(config, include_index=True)

        def dataset_fn(start):
            if start == 0:
                return first
            return build_dataset(config, start=start, include_index=True)[0]
        return cls(model_fn=lambda: factory.build_colorizer(config),
                   model_on_fn=lambda trunk: factory.build_colorizer(config, trunk=trunk),
                   loss_fn=loss_fn,
                   dataset=dataset_fn, target_builder=target_builder,
                   preview_images=preview_images(config),
                   preview_fn=make_preview_fn(config.loss.kind))

    # -- the Task contract ----------------------------------------------------------------

    def build_model(self):
        if self.model_fn is None:
            raise ValueError("this ColorizationTask has no model_fn")
        return self.model_fn()

    def build_model_on(self, trunk):
        """The colorizer on a shared trunk (multi-task training). With a 3-channel trunk the
        colorizer feeds it an RGB-encoded grey image (METHOD_CH4.md §8.5.1)."""
        if self.model_on_fn is None:
            raise NotImplementedError("this ColorizationTask has no model_on_fn (build it with "
                                      "ColorizationTask.from_config, or pass model_on_fn=)")
        return self.model_on_fn(trunk)

    def build_inputs(self, start=0):
        if self._dataset is not None:
            return self._dataset
        if self._dataset_fn is None:
            raise ValueError("this ColorizationTask has no dataset")
        dataset = self._dataset_fn(start)
        if not isinstance(dataset.element_spec, dict) or "index" not in dataset.element_spec:
            raise ValueError("a dataset function must yield batches with 'index' (the stream "
                             f"position of each element), got {dataset.element_spec}")
        return dataset

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        missing = [k for k in ("gray", "centers") if k not in element_spec]
        if missing:
            raise ValueError(f"dataset elements lack {missing}; expected keys 'gray', 'centers' "
                             f"and 'targets' (or 'rgb'), got {sorted(element_spec)}")
        if "targets" not in element_spec and not (
                "rgb" in element_spec and self.target_builder is not None):
            raise ValueError("dataset elements have no 'targets'; with 'rgb' (targets on device) "
                             "pass target_builder=")
        gray, centers = element_spec["gray"], element_spec["centers"]
        if gray.shape[0] is None or centers.shape[1] is None:
            raise ValueError("the dataset must have a static batch size and number of points "
                             f"(batch with drop_remainder=True); got gray {gray.shape}, "
                             f"centers {centers.shape}")

    def batch_size(self, element_spec):
        return element_spec["gray"].shape[0]

    def targets(self, batch):
        """The batch's targets: given, or built on the device from ``"rgb"``."""
        if "targets" in batch:
            return batch["targets"]
        return self.target_builder(batch["rgb"], batch["centers"])

    def compute_loss(self, model, batch, *, training, global_batch_size):
        centers = batch["centers"]
        global_points = float(global_batch_size * centers.shape[1])
        y_true = self.targets(batch)
        logits = tf.cast(model.sparse(batch["gray"], centers, training=training), tf.float32)
        per_point = self.loss_fn(y_true, logits)
        terms = {}
        if isinstance(per_point, dict):   # the loss's parts: logged, and summed once
            if not per_point:
                raise ValueError("loss_fn returned no parts (an empty dict)")
            parts = {name: tf.cast(value, tf.float32) for name, value in per_point.items()}
            per_point = None
            for name, value in parts.items():
                _check_per_point(value, f"part {name!r}")
                terms[name] = tf.reduce_sum(value) / global_points
                per_point = value if per_point is None else per_point + value
        else:
            per_point = tf.cast(per_point, tf.float32)
            _check_per_point(per_point, "the loss")
        return tf.reduce_sum(per_point) / global_points, terms

    def preview(self, model):
        """Grid of the preview images (grey | colorized | original), or None without previews."""
        if self.preview_images is None or self.preview_fn is None:
            return None
        rgb = tf.convert_to_tensor(self.preview_images, tf.float32)
        colorized = self.preview_fn(model, rgb)
        gray = tf.reduce_mean(rgb, axis=-1, keepdims=True)
        return image_grid([gray, colorized, rgb])


def _check_per_point(value, what):
    if value.shape.rank != 2:
        raise ValueError(f"loss_fn must return one value per point, shape (B, P); {what} has "
                         f"shape {value.shape} (use reduction=None)")


# -- pieces built from a PretrainConfig ----------------------------------------------------

def build_loss(loss_config):
    """``loss_fn(y_true, y_pred)`` of the loss kind, for :class:`ColorizationTask`.

    ``hue_chroma`` and ``lab_hist`` return their parts, ``{"chroma", "hue"}`` and ``{"a",
    "b"}`` (B, P) (:meth:`tfcolor.losses.HueChromaLoss.parts`,
    :meth:`tfcolor.losses.HistogramKL.parts`), whose sum is the loss: the task logs them as
    terms without evaluating a KL again. ``lab_joint`` and ``lab_regression`` return the
    per-point loss (B, P) (no terms).
    """
    kind = loss_config.kind
    if kind == "hue_chroma":
        return losses.HueChromaLoss(hue_weight=loss_config.hue_weight,
                                    lightness_weight=loss_config.lightness_weight).parts
    if kind == "lab_hist":
        loss = losses.HistogramKL((32, 32))

        def parts(y_true, y_pred):
            a, b = loss.parts(y_true, y_pred)
            return {"a": a, "b": b}
        return parts
    if kind == "lab_joint":
        return losses.HistogramKL((256,))
    return losses.LabRegressionLoss()


def build_target_builder(config):
    """The :class:`tfcolor.targets.TargetBuilder` of the run's loss kind and window."""
    return targets.TargetBuilder(config.loss.kind, window=config.loss.window)


def build_dataset(config, start=0, include_index=False):
    """``(dataset, target_builder or None)``: global batches, targets in tf.data or on device.

    ``start`` fast-forwards the (seeded) record stream to that position; ``include_index`` adds
    each element's stream position ``"index"`` to the batches
    (:func:`tfcolor.data.pretrain_dataset`).
    """
    builder = build_target_builder(config)
    on_device = data_lib.resolve_targets_on_device(config.data.targets_on_device)
    dataset = data_lib.pretrain_dataset(config, start=start, include_index=include_index,
                                        target_builder=None if on_device else builder)
    return dataset, (builder if on_device else None)


def heldout_batches(config):
    """The fixed held-out batches of ``config.data.heldout_data`` (None when it is not set);
    see :func:`tfcolor.data.heldout_batches`."""
    if not config.data.heldout_data:
        return None
    return data_lib.heldout_batches(config.data.heldout_data, config.data, config.loss,
                                    build_target_builder(config),
                                    images=config.data.heldout_images)


def preview_images(config):
    """The validation images of the colorization grids, (N, S, S, 3) in [0, 1], or None."""
    count = config.data.validation_images
    if not count:
        return None
    source = config.data.data
    source = None if source == "embedded" or source.startswith("embedded:") else source
    size = min(config.data.crop_size, PREVIEW_MAX_SIZE)
    try:
        return data_lib.load_images(source, count=count, size=size)
    except (ValueError, OSError, tf.errors.OpError) as e:
        logging.warning("no preview images (%s): colorization grids are skipped", e)
        return None


def make_preview_fn(kind):
    """``preview_fn(model, rgb) -> colorized rgb`` with the default decoding (released fading)."""

    def preview(model, rgb):
        return predictors.colorize_batch(model, rgb, kind=kind, fading="released")
    return preview
