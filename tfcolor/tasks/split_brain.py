"""Split-brain autoencoder pretraining as a :class:`~tfcolor.tasks.base.Task` (a baseline).

Inputs: the pretraining pipeline of :mod:`tfcolor.data` on the same images, crops, mirrors and
pixel centres as colorization, with the colour crop and ``"index"`` (the trainer resumes the
stream exactly; :func:`tfcolor.baselines.inputs.pretraining_batches`); the targets are the
quantised bins of both channel groups of the split at each centre
(:func:`tfcolor.baselines.split_brain.split_brain_batches`): batches ``{"rgb", "centers",
"targets": (B, P, 2), "index"}``.

Model: :class:`tfcolor.baselines.split_brain.SplitBrainAutoencoder`; half a predicts the bins of
group 2 from group 1, half b those of group 1 from group 2.

Loss (the contract's normalisation): the sum over this replica's points of both halves'
cross-entropies, divided by the number of points in the *global* batch (global batch x P).
Logged terms: ``half_a`` and ``half_b``, each half's part (they add up to the loss). The two
heads are the model's head for ``head_weight_decay`` (:meth:`SplitBrainTask.head_variables`).
"""
import tensorflow as tf

from tfcolor.baselines import inputs
from tfcolor.baselines import split_brain
from tfcolor.config import ConfigError
from tfcolor.tasks import base

__all__ = ["SplitBrainTask"]


class SplitBrainTask(base.Task):
    """Each half of a split-brain network predicts the quantised channels of the other.

    Args:
        data_config: the pretraining pipeline's :class:`tfcolor.config.DataConfig` (default:
            the paper's recipe on ``data``; ``targets_on_device`` is set by the task).
        source: the images, anything :func:`tfcolor.data.as_source` accepts (default:
            ``data_config.data``).
        model_kwargs: arguments of :class:`~tfcolor.baselines.split_brain.SplitBrainAutoencoder`
            (``arch``, ``split``, ``taps``, ``l_bins``, ``ab_bins``, ``hidden``, ...); ``split``,
            ``l_bins`` and ``ab_bins`` also define the targets.
        seed: seed of the pipeline's shuffle, crops and centres (unless ``pipeline_options``
            give another).
        pipeline_options: further :class:`tfcolor.data.pretrain.PipelineOptions` (``cache``,
            ``deterministic``, ...); ``start`` and ``include_index`` are the task's.

    Raises:
        tfcolor.config.ConfigError: a bad option or field, named.
    """

    name = "split_brain"

    def __init__(self, data_config=None, *, source=None, model_kwargs=None, seed=0,
                 pipeline_options=None):
        self.data_config = inputs.check_data_config(data_config)
        self.source = source
        self.pipeline_options = inputs.check_pipeline_options(pipeline_options, seed)
        self.model_kwargs = dict(model_kwargs or {})
        self.split = self.model_kwargs.get("split", split_brain.DEFAULT_SPLIT)
        if self.split not in split_brain.SPLITS:
            raise ConfigError(f"split must be one of {split_brain.SPLITS}, got {self.split!r}",
                              "split")
        self.l_bins = self.model_kwargs.get("l_bins", split_brain.DEFAULT_L_BINS)
        self.ab_bins = self.model_kwargs.get("ab_bins", split_brain.DEFAULT_AB_BINS)
        for name, value in (("l_bins", self.l_bins), ("ab_bins", self.ab_bins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"{name} must be an integer >= 2, got {value!r}", name)

    def build_model(self):
        return split_brain.SplitBrainAutoencoder(**self.model_kwargs)

    def build_inputs(self, start=0):
        batches = inputs.pretraining_batches(self.data_config, self.source,
                                             self.pipeline_options, start)
        return split_brain.split_brain_batches(batches, self.split, l_bins=self.l_bins,
                                               ab_bins=self.ab_bins)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        base.check_point_batches(element_spec, ("rgb", "centers", "targets"), "split-brain")

    def batch_size(self, element_spec):
        return element_spec["centers"].shape[0]

    def compute_loss(self, model, batch, *, training, global_batch_size):
        centers = batch["centers"]
        units = float(global_batch_size * centers.shape[1])
        logits_a, logits_b = model.cross_predictions(batch["rgb"], centers, training=training)
        ce_a, ce_b = split_brain.split_brain_loss(batch["targets"], logits_a, logits_b)
        loss = tf.reduce_sum(ce_a + ce_b) / units
        return loss, {"half_a": tf.reduce_sum(ce_a) / units, "half_b": tf.reduce_sum(ce_b) / units}

    def head_variables(self, model):
        """Both halves' heads (``h_fc1`` and the softmax layer of each)."""
        return list(model.head_a.trainable_variables) + list(model.head_b.trainable_variables)
