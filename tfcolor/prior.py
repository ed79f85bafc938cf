"""The marginal-prior baseline: the training set's mean target histogram, read out like a model.

A colorizer that ignores its input and always predicts the average colour distribution of the
training data is the honest "knows the data set, sees nothing" baseline: beating the grey
baseline only shows that *some* colour helps, beating the marginal prior shows that the model
reads the image.

:func:`marginal_prior` computes it with the training recipe itself: the pretraining pipeline
(:func:`tfcolor.data.pretrain_dataset`) over one pass of the training source (same crops, same
sampled centres, same :class:`tfcolor.targets.TargetBuilder` and bins), and the mean of the
targets over every sampled point. So the result is exactly the mean of the histograms the loss
compares the model with (for ``hue_chroma`` the hue and chroma groups, unweighted; for
``lab_regression`` the mean (a, b)). The pass is deterministic: no repeat, the option ``seed``
for the image order, crops and centres; ``max_images`` keeps the first images of that seeded
shuffle (a representative sample even of a source sorted by class, such as an ImageNet folder).

:class:`MarginalPrior` holds the groups (``to_dict``/``from_dict`` for JSON), gives the constant
prediction vector in the head's layout (:meth:`MarginalPrior.probabilities`) and a predictor
(:meth:`MarginalPrior.predictor`, a ``tfcolor.predictors.PriorPredictor``) that
``tfcolor.predictors.colorize_image`` reads out with the same options as the model (so the
prior's colorization is a constant hue/chroma, or a/b, per pixel, recombined with each image's
own lightness).

>>> prior = marginal_prior("embedded", DataConfig(crop_size=128, points=64))
>>> rgb = predictors.colorize_image(prior.predictor(), image, options)["rgb"]
"""
import dataclasses
import logging
import math

import numpy as np
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import data as data_lib
from tfcolor import losses
from tfcolor import predictors
from tfcolor import readout
from tfcolor import targets as targets_lib
from tfcolor.losses import LOSS_KINDS

__all__ = ["MarginalPrior", "marginal_prior", "data_config_from_run_config", "histogram_kl"]

logger = logging.getLogger(__name__)


def _group_layout(kind, target_builder):
    """[(group name, start, size)] of the histogram groups in the packed target, and the
    prediction depth D (the head's output size)."""
    names = [name for name, _ in readout.GROUPS[kind]]
    sizes = list(target_builder.output_sizes)
    if len(names) != len(sizes):
        raise ValueError(f"kind {kind!r} has groups {names} but the target builder gives sizes "
                         f"{sizes}")
    layout, start = [], 0
    for name, size in zip(names, sizes):
        layout.append((name, start, size))
        start += size
    return layout, start


@dataclasses.dataclass
class MarginalPrior:
    """The mean target of a training set, per output group.

    Attributes:
        kind: loss kind (``tfcolor.losses.LOSS_KINDS``).
        groups: dict group name (``"hue"``, ``"chroma"``, ``"a"``, ``"b"``, ``"ab"``) -> float64
            array: a probability vector (sums to 1) for histogram kinds, the mean (a, b) for
            ``lab_regression``.
        points: number of sampled points averaged.
        images: number of images they came from.
        origin: description of the training source (for reports).
    """
    kind: str
    groups: dict
    points: int = 0
    images: int = 0
    origin: str = ""

    def probabilities(self):
        """The constant prediction in the head's layout (groups concatenated), float32 (D,)."""
        return np.concatenate([np.asarray(self.groups[name], np.float32)
                               for name, _ in readout.GROUPS[self.kind]])

    def predictor(self, grid_factor=4):
        """A ``tfcolor.predictors.PriorPredictor`` of this prior (for
        ``tfcolor.predictors.colorize_image``)."""
        return predictors.PriorPredictor(self, grid_factor)

    def to_dict(self):
        return {"kind": self.kind, "points": int(self.points), "images": int(self.images),
                "origin": self.origin, "groups": {k: [float(x) for x in np.asarray(v)]
                                                  for k, v in self.groups.items()}}

    @classmethod
    def from_dict(cls, d):
        kind = d.get("kind")
        if kind not in LOSS_KINDS:
            raise ValueError(f"prior kind must be one of {LOSS_KINDS}, got {kind!r}")
        groups = {k: np.asarray(v, np.float64) for k, v in dict(d.get("groups", {})).items()}
        want = [name for name, _ in readout.GROUPS[kind]]
        if sorted(groups) != sorted(want):
            raise ValueError(f"a {kind} prior needs groups {want}, got {sorted(groups)}")
        sizes = dict(zip(want, readout.group_sizes(kind)))
        for name, values in groups.items():
            if values.shape != (sizes[name],) or not np.all(np.isfinite(values)):
                raise ValueError(f"prior group {name!r} must be {sizes[name]} finite numbers, "
                                 f"got shape {values.shape}")
        return cls(kind=kind, groups=groups, points=int(d.get("points", 0)),
                   images=int(d.get("images", 0)), origin=str(d.get("origin", "")))


def data_config_from_run_config(run_config, **options):
    """``(source, DataConfig, LossConfig, options)`` of a training run's ``config.json`` dict (or a
    ``tfcolor.config.PretrainConfig``): its data source, crops, points, loss kind and window, and
    the pipeline options ``seed`` (the run's) plus ``options``."""
    if isinstance(run_config, dict):
        run_config = config_lib.PretrainConfig.from_dict(run_config)
    return (run_config.data.data, run_config.data, run_config.loss,
            dict(dict(seed=run_config.train.seed), **options))


def marginal_prior(source=None, data_config=None, loss_config=None, *, target_builder=None,
                   max_images=None, skip_counter=None, **options):
    """The mean training target per group: see the module docstring.

    Args:
        source: the training source (anything :func:`tfcolor.data.as_source` takes; ``None``:
            ``data_config.data``; ``"embedded"``: the shipped train photos).
        data_config: the training's :class:`tfcolor.config.DataConfig` (crop size, points, edge
            buffer, ...; default: the paper's). On-device targets are turned off; everything
            else is used as given.
        loss_config: the training's :class:`tfcolor.config.LossConfig` (target kind and window;
            default: the paper's).
        target_builder: the training's ``TargetBuilder`` (default: from ``loss_config``).
        max_images: average over the first this many images of the seeded shuffle only
            (None: one whole pass).
        skip_counter: as in :func:`tfcolor.data.pretrain_dataset`.
        **options: pipeline options of :func:`tfcolor.data.pretrain_dataset` (``seed``, ...);
            ``shuffle``, ``repeat``, ``drop_remainder`` and ``deterministic`` are set here (the
            images are shuffled with ``seed``, default 0, in one deterministic pass).

    Returns:
        A :class:`MarginalPrior`.
    """
    data_config = data_config or config_lib.DataConfig()
    loss_config = loss_config or config_lib.LossConfig()
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images <= 0):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
    if target_builder is None:
        target_builder = targets_lib.TargetBuilder(loss_config.kind, window=loss_config.window)
    kind = target_builder.kind
    options = dict(options, shuffle=True, repeat=False, drop_remainder=False, deterministic=True,
                   seed=options.get("seed") or 0)
    # A DataConfig, not a PretrainConfig: that would switch on the embedded-photo cache (another
    # shuffle, other prior figures).
    data_config = dataclasses.replace(data_config, targets_on_device=False)
    ds = data_lib.pretrain_dataset(data_config, loss_config, source=source,
                                   target_builder=target_builder, skip_counter=skip_counter,
                                   purpose="marginal prior estimated", **options)
    if source is None:
        source = data_config.data
    if isinstance(source, str) and source == "embedded":
        source = None
    layout, depth = _group_layout(kind, target_builder)
    total = np.zeros(depth, np.float64)
    points = images = 0
    for batch in ds:
        t = batch["targets"].numpy().astype(np.float64)
        if max_images is not None:
            t = t[:max_images - images]
        images += t.shape[0]
        points += t.shape[0] * t.shape[1]
        total += t.reshape(-1, t.shape[-1])[:, :depth].sum(axis=0)
        if max_images is not None and images >= max_images:
            break
    if points == 0:
        raise data_lib.SourceError(f"no decodable image in {source!r}: cannot compute a "
                                   "marginal prior")
    mean = total / points
    groups = {}
    for name, start, size in layout:
        values = mean[start:start + size]
        if kind != "lab_regression":
            values = values / values.sum()
        groups[name] = values
    desc = "embedded" if source is None else (
            str(source) if isinstance(source, (str, list, tuple)) else repr(type(source)))
    logger.info("marginal prior (%s) from %d points of %d images of %s", kind, points, images, desc)
    return MarginalPrior(kind=kind, groups=groups, points=points, images=images, origin=desc)


def histogram_kl(prior, targets, target_builder=None):
    """Mean per-point KL of the prior's prediction to packed targets (B, P, D) (or (N, D)):
    the sum over histogram groups of ``KL(target || prior)``, ``tfcolor.losses.HistogramKL``
    with probabilities. Empty prior bins are floored at the smallest float32 (as the losses do),
    so a target with mass there gives a large, finite KL."""
    if prior.kind == "lab_regression":
        raise ValueError("histogram_kl needs a histogram prior, not lab_regression")
    builder = target_builder or targets_lib.TargetBuilder(prior.kind)
    sizes = builder.output_sizes
    depth = sum(sizes)
    targets = tf.cast(tf.convert_to_tensor(targets), tf.float32)[..., :depth]
    pred = tf.broadcast_to(tf.constant(prior.probabilities()), tf.shape(targets))
    kl = losses.HistogramKL(sizes, from_logits=False)(targets, pred)
    value = float(tf.reduce_mean(kl))
    return value if math.isfinite(value) else math.inf
