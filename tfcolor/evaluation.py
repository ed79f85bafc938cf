"""Evaluating a colorizer against honest baselines, with per-image paired statistics.

:func:`evaluate_with_baselines` colorizes every readable image of the inputs with the model and
scores, on the same images and with the metrics of :mod:`tfcolor.metrics`:

- ``"model"``: the colorizer (a ``tfcolor.predictors.Predictor``), read out with the given
  :class:`tfcolor.predictors.ColorizeOptions`;
- ``"gray"``: no colour at all (:func:`tfcolor.metrics.gray_baseline`);
- ``"prior"`` (when a :class:`tfcolor.prior.MarginalPrior` is given): the training set's mean
  histogram at every pixel, read out with the *same* options as the model
  (:class:`tfcolor.predictors.PriorPredictor`), i.e. a constant hue/chroma (or a/b) recombined
  with each image's own lightness. It sees the data set but not the image.
- ``"constant_tint"`` and ``"lightness_lookup"`` (when ``tints`` are given,
  :func:`tfcolor.tints.fit_tints`): the training pixels' best single colour, and their best
  colour per grey level, in the error's own alpha-beta plane. They too see the data set but not
  the image: a colorizer that only tints does not beat them.

Besides the aggregate metrics (a :class:`tfcolor.metrics.ColorizationMetrics`), it keeps per-image
values of three metrics:

- ``alphabeta_mean``: the mean over the image's pixels of the per-pixel Euclidean alpha-beta
  error (:func:`tfcolor.metrics.alphabeta_error`);
- ``alphabeta_rms``: the root of the image's pixel-mean squared alpha-beta error;
- ``psnr``: the image's RGB PSNR (:func:`tfcolor.metrics.psnr`; ``inf`` for a perfect image);

and :func:`tfcolor.paired_statistics.paired_comparisons` turns them into model - baseline
statistics for every baseline and metric (mean difference, fraction of images improved,
bootstrap 95% CI).
Unreadable files, and inputs whose colorization fails, are skipped and listed with their reason
(as ``binaries/colorize`` does); the run goes on with the others.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfcolor import image_files
from tfcolor import metrics
from tfcolor import paired_statistics
from tfcolor import predictors

__all__ = ["PER_IMAGE_METRICS", "EvaluationResult", "per_image_metrics",
           "evaluate_with_baselines"]

#: Per-image metrics kept for the paired statistics (see the module docstring).
PER_IMAGE_METRICS = ("alphabeta_mean", "alphabeta_rms", "psnr")
#: Which of them are better when higher.
HIGHER_IS_BETTER = {"alphabeta_mean": False, "alphabeta_rms": False, "psnr": True}


@dataclasses.dataclass
class EvaluationResult:
    """What :func:`evaluate_with_baselines` returns.

    Attributes:
        metrics: the filled :class:`tfcolor.metrics.ColorizationMetrics` (``"model"``,
            ``"gray"`` and, with a prior, ``"prior"``).
        per_image: predictor name -> metric name -> list of per-image values (image order).
        images: paths of the evaluated images, in that order.
        skipped: ``(path, reason)`` of unreadable files and of inputs whose colorization failed.
        paired: :func:`tfcolor.paired_statistics.paired_comparisons` of the model against the baselines.
        prior: the :class:`tfcolor.prior.MarginalPrior` used, or None.
        tints: the tint baselines used, ``{name: baseline}`` (:mod:`tfcolor.tints`).
    """
    metrics: object
    per_image: dict
    images: list
    skipped: list
    paired: dict
    prior: object = None
    tints: dict = dataclasses.field(default_factory=dict)

    def report(self):
        """The JSON-able additions to ``metrics.json``: ``paired``, ``per_image`` (with the
        image paths), ``prior`` and the definitions of the per-image metrics."""
        return {"paired": self.paired,
                "per_image": {"images": list(self.images), **{
                        name: {m: [float(v) for v in values] for m, values in by_metric.items()}
                        for name, by_metric in self.per_image.items()}},
                "prior": None if self.prior is None else self.prior.to_dict(),
                "tints": {name: t.to_dict() for name, t in self.tints.items()},
                "paired_definitions": {
                        "alphabeta_mean": "per image: mean over pixels of the Euclidean "
                                          "alpha-beta error",
                        "alphabeta_rms": "per image: sqrt of the pixel-mean squared alpha-beta "
                                         "error",
                        "psnr": "per image: 10 log10(1 / MSE_RGB)",
                        "mean_difference": "mean over images of (model - baseline)",
                        "fraction_improved": "share of images where the model is strictly "
                                             "better (lower error, higher PSNR)",
                        "ci_low/ci_high": "percentile bootstrap CI of the mean difference "
                                          "(images resampled with replacement, seeded)",
                        "excluded": "pairs with a non-finite value (e.g. infinite PSNR)"}}


def per_image_metrics(rgb_true, rgb_pred):
    """Per-image ``alphabeta_mean``, ``alphabeta_rms`` and ``psnr`` of (B, H, W, 3) (or one
    (H, W, 3)) images in [0, 1]; dict of float64 NumPy arrays of shape (B,)."""
    rgb_true = tf.convert_to_tensor(rgb_true)
    rgb_pred = tf.convert_to_tensor(rgb_pred)
    if rgb_true.shape.rank == 3:
        rgb_true, rgb_pred = rgb_true[None], rgb_pred[None]
    err = metrics.alphabeta_error(rgb_true, rgb_pred).numpy().astype(np.float64)
    err = err.reshape(err.shape[0], -1)
    return {"alphabeta_mean": err.mean(axis=1),
            "alphabeta_rms": np.sqrt((err * err).mean(axis=1)),
            "psnr": metrics.psnr(rgb_true, rgb_pred).numpy().astype(np.float64).reshape(-1)}


def evaluate_with_baselines(predictor, inputs, options=None, *, prior=None, tints=None,
                            t_max=None, max_images=None, recursive=False, progress=None,
                            n_resamples=10000, confidence=0.95, seed=0):
    """The model, the grey baseline and the marginal prior on colour images (module docstring).

    Args:
        predictor: the model, a ``tfcolor.predictors.Predictor`` (``KerasPredictor``,
            ``SavedModelPredictor``; see ``tfcolor.predictors.load_predictor``).
        inputs: files, folders or globs of colour images.
        options: ``tfcolor.predictors.ColorizeOptions`` (used for the model and the prior).
        prior: a :class:`tfcolor.prior.MarginalPrior` of the model's kind, or None.
        tints: ``{name: baseline}`` of :func:`tfcolor.tints.fit_tints` (anything with
            ``colorize(rgb) -> rgb``), or None.
        t_max: largest threshold of the cumulative error curve (default
            ``tfcolor.metrics.DEFAULT_T_MAX``).
        max_images: stop after this many readable images (None: all).
        recursive: descend into folders.
        progress: callable ``progress(i, n, path)`` after each image.
        n_resamples, confidence, seed: of the bootstrap (:mod:`tfcolor.paired_statistics`).

    Returns:
        An :class:`EvaluationResult`.
    """
    if prior is not None and prior.kind != predictor.kind:
        raise ValueError(f"the prior is of kind {prior.kind!r} but the model predicts "
                         f"{predictor.kind!r}")
    items = image_files.expand_inputs(inputs, recursive=recursive)
    if not items:
        raise ValueError(f"no image found in {inputs}")
    tints = dict(tints or {})
    clash = sorted(set(tints) & {"model", "gray", "prior"})
    if clash:
        raise ValueError(f"tint baselines cannot be named {clash}")
    names = ["model", "gray"] + (["prior"] if prior is not None else []) + list(tints)
    acc = metrics.ColorizationMetrics(names, t_max=metrics.DEFAULT_T_MAX if t_max is None
                                      else t_max)
    prior_predictor = prior.predictor(predictor.grid_factor) if prior is not None else None
    per_image = {n: {m: [] for m in PER_IMAGE_METRICS} for n in names}
    done, skipped = [], []
    for i, (path, _) in enumerate(items):
        if max_images is not None and len(done) >= max_images:
            break
        try:
            rgb = image_files.read_image(path)
        except image_files.ImageReadError as e:
            skipped.append((path, str(e)))
            continue
        try:
            predictions = {"model": predictors.colorize_image(predictor, rgb, options)["rgb"],
                           "gray": metrics.gray_baseline(rgb)}
            if prior_predictor is not None:
                predictions["prior"] = predictors.colorize_image(prior_predictor, rgb,
                                                                 options)["rgb"]
            for name, tint in tints.items():
                predictions[name] = tint.colorize(rgb)
        except (tf.errors.OpError, ValueError) as e:  # one input must not end the run
            message = str(e).strip().splitlines()
            skipped.append((path, f"failed: {type(e).__name__}: {message[0] if message else ''}"))
            continue
        for name in names:
            acc.update(name, rgb, predictions[name])
            for metric, values in per_image_metrics(rgb, predictions[name]).items():
                per_image[name][metric].extend(values.tolist())
        done.append(path)
        if progress is not None:
            progress(i + 1, len(items), path)
    if not done:
        raise ValueError(f"none of the {len(items)} input files could be read")
    paired = paired_statistics.paired_comparisons(per_image, "model", tuple(names[1:]),
                                           higher_is_better=HIGHER_IS_BETTER,
                                           n_resamples=n_resamples, confidence=confidence,
                                           seed=seed)
    return EvaluationResult(metrics=acc, per_image=per_image, images=done, skipped=skipped,
                            paired=paired, prior=prior, tints=tints)
