"""Jigsaw 2x2 pretraining as a :class:`~tfcolor.tasks.base.Task` (a proxy task of chapter 4).

Inputs: the pretraining pipeline of :mod:`tfcolor.data` (:func:`tfcolor.baselines.inputs.
pretraining_batches`: the same sources, shuffling, decoding, sharding and exact resume as
colorization; each batch carries ``"index"``) with ``crop_size`` as the source image side
(thesis: 500), then one puzzle per image drawn from ``(seed, index)``
(:func:`tfcolor.data.jigsaw.jigsaw_batches`): four ``piece_size`` pieces (227) with wiggle room,
shuffled by one of the 24 permutations, the permutation's index as the label.

How the thesis gets its 500 x 500 images is not specified; by default (:func:`default_data_config`)
the short side is scaled to 500 and a random 500 x 500 crop is taken, randomly mirrored (the
released code crops at the original scale). Any :class:`tfcolor.config.DataConfig` can be given
instead (its ``crop_size`` is the source side; ``min_side``/``max_side`` the scale range).

Model: :class:`tfcolor.models.jigsaw.JigsawNet` (one trunk applied to the four pieces, the pooled
``fc7`` features reduced, concatenated in slot order and classified into 24 permutations).

Loss (the contract's normalisation): ``sum over this replica's images of the softmax
cross-entropy of the permutation``, divided by the number of images in the *global* batch.
Logged term: ``accuracy``, the fraction of the global batch whose permutation is the arg-max
(chance: 1/24), with the same normalisation (it is not part of the loss).

Preview: for ``validation_images`` fixed puzzles (seed :data:`PREVIEW_SEED`, no shuffle, no
mirror), one row each of three 2x2 boards: the pieces as the network sees them (slot order), put
back by the predicted permutation, and put back by the true one (the image's cells).
"""
import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.baselines import inputs
from tfcolor.config import ConfigError
from tfcolor.data import jigsaw as jigsaw_data
from tfcolor.image_grid import image_grid
from tfcolor.models import jigsaw as jigsaw_model
from tfcolor.tasks import base

__all__ = ["JigsawTask", "default_data_config", "PREVIEW_SEED"]

#: Seed of the preview's puzzles (the same for every run).
PREVIEW_SEED = 20160525


def default_data_config(**fields):
    """The jigsaw's default :class:`tfcolor.config.DataConfig`: 500 x 500 source crops of the
    image scaled to a short side of 500, batch 8 (thesis, one task alone); ``fields`` override
    (e.g. ``data``, ``batch_size``)."""
    side = jigsaw_data.SOURCE_SIZE
    values = dict(crop_size=side, min_side=side, max_side=side, points=1, edge_buffer=0)
    values.update(fields)
    return config_lib.DataConfig(**values)


class JigsawTask(base.Task):
    """Recover which of the 24 permutations shuffled the four pieces of an image.

    Args:
        data_config: the pretraining pipeline's :class:`tfcolor.config.DataConfig`, whose
            ``crop_size`` is the source image side (default: :func:`default_data_config`;
            ``targets_on_device`` is set by the task).
        source: the images, anything :func:`tfcolor.data.as_source` accepts (default:
            ``data_config.data``).
        model_kwargs: arguments of :class:`~tfcolor.models.jigsaw.JigsawNet` (``arch``,
            ``tap``, ``reduce_channels``, ``trunk``, ...) except ``color``, which is the
            task's.
        piece_size: side of a piece (227), at most ``crop_size // 2``.
        color: colour pieces (True, the thesis) or grey ones (the colorizer's input).
        seed: seed of the puzzles and (unless ``pipeline_options`` give another) of the
            pipeline's shuffle, crops and mirrors.
        pipeline_options: further :class:`tfcolor.data.pretrain.PipelineOptions` (``cache``,
            ``deterministic``, ...); ``start`` and ``include_index`` are the task's.

    Raises:
        tfcolor.config.ConfigError: a bad option or field, named.
    """

    name = "jigsaw"

    def __init__(self, data_config=None, *, source=None, model_kwargs=None,
                 piece_size=jigsaw_data.PIECE_SIZE, color=True, seed=0, pipeline_options=None):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an int, got {seed!r}", "seed")
        if color not in (True, False):
            raise ConfigError(f"color must be True or False, got {color!r}", "color")
        self.data_config = inputs.check_data_config(
                default_data_config() if data_config is None else data_config)
        crop = self.data_config.crop_size
        if isinstance(piece_size, bool) or not isinstance(piece_size, int) or not (
                0 < piece_size <= crop // jigsaw_data.GRID):
            raise ConfigError(f"piece_size must be an integer in [1, crop_size // 2 = "
                              f"{crop // jigsaw_data.GRID}], got {piece_size!r}", "piece_size")
        self.model_kwargs = dict(model_kwargs or {})
        if "color" in self.model_kwargs:
            raise ConfigError("color is set by the task (JigsawTask(color=...)), not by "
                              "model_kwargs", "color")
        self.source = source
        self.pipeline_options = inputs.check_pipeline_options(pipeline_options, seed)
        self.piece_size = piece_size
        self.color = bool(color)
        self.seed = seed
        self._preview_batch = None

    def build_model(self):
        return jigsaw_model.JigsawNet(color=self.color, pieces=jigsaw_data.PIECES,
                                      classes=len(jigsaw_data.PERMUTATIONS), **self.model_kwargs)

    def build_model_on(self, trunk):
        """The jigsaw network on a shared trunk (a
        :class:`tfcolor.models.multitask.SharedTrunk`; colour pieces need a 3-channel one)."""
        options = {k: v for k, v in self.model_kwargs.items()
                   if k not in ("arch", "batch_norm", "sync_batch_norm", "input_mean",
                                "trunk_options", "trunk")}
        return jigsaw_model.JigsawNet(color=self.color, pieces=jigsaw_data.PIECES,
                                      classes=len(jigsaw_data.PERMUTATIONS), trunk=trunk.model,
                                      **options)

    def build_inputs(self, start=0):
        batches = inputs.pretraining_batches(self.data_config, self.source,
                                             self.pipeline_options, start)
        return jigsaw_data.jigsaw_batches(batches, piece_size=self.piece_size, seed=self.seed,
                                          color=self.color)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        missing = [k for k in ("pieces", "label") if k not in element_spec]
        if missing:
            raise ValueError(f"jigsaw batches lack {missing}; got {sorted(element_spec)}")
        if element_spec["label"].shape[0] is None:
            raise ValueError("the dataset must have a static batch size (drop_remainder=True); "
                             f"got label {element_spec['label'].shape}")

    def batch_size(self, element_spec):
        return element_spec["label"].shape[0]

    def compute_loss(self, model, batch, *, training, global_batch_size):
        logits = tf.cast(model(batch["pieces"], training=training), tf.float32)
        labels = tf.cast(batch["label"], tf.int32)
        per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels),
                          tf.float32)
        units = float(global_batch_size)
        return tf.reduce_sum(per_image) / units, {"accuracy": tf.reduce_sum(correct) / units}

    def preview_batch(self):
        """The preview's fixed puzzles, ``{"pieces", "label"}`` NumPy arrays, or None (no
        ``validation_images``, or no decodable image)."""
        count = self.data_config.validation_images
        if not count:
            return None
        if self._preview_batch is None:
            config = dataclasses.replace(self.data_config, batch_size=count)
            options = dict(self.pipeline_options, seed=PREVIEW_SEED, shuffle=False,
                           random_mirror=False)
            try:
                batches = jigsaw_data.jigsaw_batches(
                        inputs.pretraining_batches(config, self.source, options),
                        piece_size=self.piece_size, seed=PREVIEW_SEED, color=self.color)
                batch = next(iter(batches))
            except (ValueError, OSError, StopIteration, tf.errors.OpError) as e:
                logging.warning("no jigsaw preview (%s)", e)
                return None
            self._preview_batch = {k: batch[k].numpy() for k in ("pieces", "label")}
        return self._preview_batch

    def preview(self, model):
        """Rows of three 2x2 boards: the input pieces, put back by the predicted permutation,
        put back by the true one (see the module docstring); None without preview puzzles."""
        batch = self.preview_batch()
        if batch is None:
            return None
        logits = model(tf.constant(batch["pieces"]), training=False)
        predicted = np.argmax(np.asarray(logits), axis=-1)
        pieces = batch["pieces"]
        return image_grid([_board(pieces), _board(jigsaw_data.reassemble(pieces, predicted)),
                           _board(jigsaw_data.reassemble(pieces, batch["label"]))])


def _board(pieces):
    """(N, 4, p, p, C) -> (N, 2p, 2p, C): position k at row k // 2, column k % 2."""
    grid = jigsaw_data.GRID
    rows = [np.concatenate([pieces[:, r * grid + c] for c in range(grid)], axis=-2)
            for r in range(grid)]
    return np.concatenate(rows, axis=-3)
