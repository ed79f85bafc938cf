"""Denoising autoencoder pretraining as a :class:`~tfcolor.tasks.base.Task` (a baseline).

Inputs: the pretraining pipeline of :mod:`tfcolor.data` on the same images, crops, mirrors and
pixel centres as colorization (:func:`tfcolor.baselines.inputs.pretraining_batches`: no colour
targets are built; each batch carries ``"index"``, so the trainer resumes the stream exactly).
Salt-and-pepper noise is then drawn per image from ``(seed, index)`` and the targets are the
clean grey value and the corrupted flag at each centre
(:func:`tfcolor.baselines.denoising.denoising_batches`).

Model: :class:`tfcolor.baselines.denoising.DenoisingAutoencoder`, whose hypercolumn head predicts
the clean grey value at each centre of the noisy image.

Loss (the contract's normalisation): ``sum over this replica's points of w * (prediction -
clean)^2``, divided by the number of points in the *global* batch (global batch x P); ``w`` is
``corrupted_weight`` on corrupted pixels and 1 elsewhere. Logged terms: ``clean`` and
``corrupted``, the parts of that sum from clean and from corrupted pixels (they add up to the
loss).
"""
import tensorflow as tf

from tfcolor.baselines import denoising
from tfcolor.baselines import inputs
from tfcolor.config import ConfigError
from tfcolor.tasks import base

__all__ = ["DenoisingTask"]


class DenoisingTask(base.Task):
    """Reconstruct the clean grey value of sampled pixels of a salt-and-pepper corrupted crop.

    Args:
        data_config: the pretraining pipeline's :class:`tfcolor.config.DataConfig` (default:
            the paper's recipe on ``data``; ``targets_on_device`` is set by the task).
        source: the images, anything :func:`tfcolor.data.as_source` accepts (default:
            ``data_config.data``).
        model_kwargs: arguments of :class:`~tfcolor.baselines.denoising.DenoisingAutoencoder`
            (``arch``, ``taps``, ``hidden``, ...).
        noise_rate: fraction of corrupted pixels, in [0, 1] (5%).
        corrupted_weight: loss weight of the corrupted pixels (>= 0; 1: plain denoising).
        seed: seed of the noise and (unless ``pipeline_options`` give another) of the
            pipeline's shuffle, crops and centres.
        pipeline_options: further :class:`tfcolor.data.pretrain.PipelineOptions` (``cache``,
            ``deterministic``, ...); ``start`` and ``include_index`` are the task's.

    Raises:
        tfcolor.config.ConfigError: a bad option or field, named.
    """

    name = "denoising"

    def __init__(self, data_config=None, *, source=None, model_kwargs=None,
                 noise_rate=denoising.DEFAULT_RATE, corrupted_weight=1.0, seed=0,
                 pipeline_options=None):
        if isinstance(noise_rate, bool) or not isinstance(noise_rate, (int, float)) or not (
                0.0 <= noise_rate <= 1.0):
            raise ConfigError(f"noise_rate must be a number in [0, 1], got {noise_rate!r}",
                              "noise_rate")
        if isinstance(corrupted_weight, bool) or not isinstance(
                corrupted_weight, (int, float)) or not corrupted_weight >= 0.0:
            raise ConfigError(f"corrupted_weight must be a number >= 0, got "
                              f"{corrupted_weight!r}", "corrupted_weight")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an int, got {seed!r}", "seed")
        self.data_config = inputs.check_data_config(data_config)
        self.source = source
        self.pipeline_options = inputs.check_pipeline_options(pipeline_options, seed)
        self.model_kwargs = dict(model_kwargs or {})
        self.noise_rate = float(noise_rate)
        self.corrupted_weight = float(corrupted_weight)
        self.seed = seed
        self._loss = denoising.denoising_loss(self.corrupted_weight)

    def build_model(self):
        return denoising.DenoisingAutoencoder(**self.model_kwargs)

    def build_model_on(self, trunk):
        """The denoising autoencoder on a shared trunk (a
        :class:`tfcolor.models.multitask.SharedTrunk`): its hypercolumn reads every tap but the
        input itself (``data``: the noisy pixel would give the answer away), as alone."""
        options = {k: v for k, v in self.model_kwargs.items()
                   if k not in ("arch", "batch_norm", "sync_batch_norm", "input_mean", "fov",
                                "trunk_options", "trunk", "tap_strides", "taps")}
        taps = self.model_kwargs.get("taps")
        strides = trunk.tap_strides(taps)
        if taps is None:
            strides = {k: v for k, v in strides.items() if k != "data"}
        return denoising.DenoisingAutoencoder(trunk=trunk.model, tap_strides=strides,
                                              input_channels=trunk.input_channels, **options)

    def build_inputs(self, start=0):
        batches = inputs.pretraining_batches(self.data_config, self.source,
                                             self.pipeline_options, start)
        return denoising.denoising_batches(batches, self.noise_rate, self.seed)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        base.check_point_batches(element_spec, ("gray", "centers", "targets"), "denoising")

    def batch_size(self, element_spec):
        return element_spec["centers"].shape[0]

    def compute_loss(self, model, batch, *, training, global_batch_size):
        centers = batch["centers"]
        points = centers.shape[1]
        prediction = model.sparse(batch["gray"], centers, training=training)
        targets = tf.cast(batch["targets"], tf.float32)
        per_point = tf.cast(self._loss(targets, prediction), tf.float32)
        units = float(global_batch_size * points)
        corrupted = targets[..., 1]
        loss = tf.reduce_sum(per_point) / units
        terms = {"clean": tf.reduce_sum(per_point * (1.0 - corrupted)) / units,
                 "corrupted": tf.reduce_sum(per_point * corrupted) / units}
        return loss, terms
