"""The video proxy (relative optical-flow amplitude) as a :class:`~tfcolor.tasks.base.Task`.

METHOD_CH4.md §8.5.1 "Video (V)": from one frame, predict into which of 32 bins the amplitude of
the relative Farnebäck flow of a pair of locations falls. See docs/video.md.

Inputs: :func:`tfcolor.data.video.video_dataset` over a corpus' frame-and-flow TFRecords
(``tools/build_video_corpus.py``; default ``~/.cache/tfcolor-video/train``), configured by a
:class:`tfcolor.config.DataConfig` (:func:`default_data_config`: 128 x 128 crops of the
160-pixel frames, 128 pairs per frame, batch 8) and the pairs' ``offset_stddev`` and
``border``. Every batch carries ``"index"``, so the trainer resumes the stream exactly.

Model: :class:`tfcolor.models.video.VideoNet` (trunk, sparse hypercolumns at both locations,
FC-1024, 32 logits); :meth:`VideoTask.build_model_on` builds it on a multi-task model's shared
trunk.

Loss (the contract's normalisation, a unit being a pair): ``sum over this replica's pairs of
the softmax cross-entropy of the bin``, divided by the number of pairs in the *global* batch.
Logged term: ``accuracy``, the fraction of the global batch's pairs whose bin is the arg-max
(chance: 1/32 with the fitted quantile bins), with the same normalisation.

Preview: for ``validation_images`` fixed frames (seed :data:`PREVIEW_SEED`, no shuffle, no
mirror), one row each: the frame, its flow colour-coded (hue: direction, saturation:
amplitude), and the frame with each pair's first location marked by a dot coloured by the
predicted bin (blue: the smallest, red: the largest amplitude) next to one coloured by the true
bin.
"""
import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.baselines import inputs
from tfcolor.config import ConfigError
from tfcolor.data import video as video_data
from tfcolor.image_grid import image_grid
from tfcolor.models import video as video_model
from tfcolor.tasks import base

__all__ = ["VideoTask", "default_data_config", "DEFAULT_CORPUS", "PREVIEW_SEED"]

#: Where ``tools/build_video_corpus.py`` writes the corpus by default.
DEFAULT_CORPUS = "~/.cache/tfcolor-video"
#: Seed of the preview's frames and pairs (the same for every run).
PREVIEW_SEED = 20160525


def default_data_config(**fields):
    """The video task's default :class:`tfcolor.config.DataConfig`; ``fields`` override.

    ``data``: the corpus' training split; ``crop_size`` 128 from frames kept at their stored
    160-pixel short side (``min_side = max_side = 160``: no rescaling, the flow stays in the
    frame's pixels, the scale the bins were fitted at); ``points`` 128 pairs per frame (the
    released code); ``edge_buffer`` 0 (the thesis samples first locations uniformly over the
    image; the released code kept 32 of 227 pixels away from the border); batch 8 (thesis, one
    task alone).
    """
    side = video_data.DEFAULT_SHORT_SIDE
    values = dict(data=os.path.join(DEFAULT_CORPUS, "train"), batch_size=8, crop_size=128,
                  min_side=side, max_side=side, points=128, edge_buffer=0)
    values.update(fields)
    return config_lib.DataConfig(**values)


class VideoTask(base.Task):
    """Predict the binned amplitude of the relative optical flow of pairs of locations.

    Args:
        data_config: a :class:`tfcolor.config.DataConfig` (default: :func:`default_data_config`).
        source: the records (path, folder, glob or list of files) instead of
            ``data_config.data``.
        model_kwargs: arguments of :class:`~tfcolor.models.video.VideoNet` (``arch``, ``taps``,
            ``hidden``, ``dropout``, ``merge``, ...) except ``bins``, which is the task's.
        bins: number of amplitude bins (32).
        bin_edges: the ``bins - 1`` inner edges; None: the corpus' fitted ``flow_bins.json``,
            else the released code's tanh bins (:func:`tfcolor.data.video.load_bin_edges`).
        offset_stddev: standard deviation of the second location's offset, a fraction of the
            crop side (0.2, the released code; [interpretation]: zero mean, independent axes).
        border: ``"truncate"`` or ``"clip"`` (:data:`tfcolor.data.video.BORDERS`).
        seed: seed of the crops, mirrors and pairs and (unless ``pipeline_options`` give
            another) of the shuffle.
        pipeline_options: further :class:`tfcolor.data.pretrain.PipelineOptions` (``cache``,
            ``deterministic``, ``random_mirror``, ...); ``start`` and ``include_index`` are the
            task's.

    Raises:
        tfcolor.config.ConfigError: a bad option or field, named.
    """

    name = "video"

    def __init__(self, data_config=None, *, source=None, model_kwargs=None,
                 bins=video_data.DEFAULT_BINS, bin_edges=None,
                 offset_stddev=video_data.DEFAULT_OFFSET_STDDEV, border="truncate", seed=0,
                 pipeline_options=None):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an int, got {seed!r}", "seed")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ConfigError(f"bins must be an integer >= 2, got {bins!r}", "bins")
        if isinstance(offset_stddev, bool) or not isinstance(offset_stddev, (int, float)) or not (
                0 <= offset_stddev < 10):
            raise ConfigError(f"offset_stddev must be a number in [0, 10), got "
                              f"{offset_stddev!r}", "offset_stddev")
        if border not in video_data.BORDERS:
            raise ConfigError(f"border must be one of {video_data.BORDERS}, got {border!r}",
                              "border")
        self.data_config = inputs.check_data_config(
                default_data_config() if data_config is None else data_config)
        self.model_kwargs = dict(model_kwargs or {})
        if "bins" in self.model_kwargs:
            raise ConfigError("bins is set by the task (VideoTask(bins=...)), not by "
                              "model_kwargs", "bins")
        self.source = source
        self.pipeline_options = inputs.check_pipeline_options(pipeline_options, seed)
        self.bins = bins
        if bin_edges is not None:
            edges = np.asarray(bin_edges, np.float32)
            if edges.shape != (bins - 1,) or not np.all(np.diff(edges) > 0):
                raise ConfigError(f"bin_edges must be {bins - 1} strictly increasing inner "
                                  "edges", "bin_edges")
            bin_edges = edges
        self._bin_edges = bin_edges
        self.offset_stddev = float(offset_stddev)
        self.border = border
        self.seed = seed
        self._preview_batch = None

    @property
    def records(self):
        """The records read (``source`` or ``data_config.data``)."""
        return self.source if self.source is not None else self.data_config.data

    @property
    def bin_edges(self):
        """The inner bin edges (loaded from the corpus on first use)."""
        if self._bin_edges is None:
            records = self.records
            if isinstance(records, (str, os.PathLike)):
                records = os.path.expanduser(os.fspath(records))
            self._bin_edges, where = video_data.load_bin_edges(records, self.bins)
            logging.info("video task: bin edges from %s", where)
        return self._bin_edges

    def build_model(self):
        return video_model.VideoNet(bins=self.bins, **self.model_kwargs)

    def build_model_on(self, trunk):
        """A :class:`~tfcolor.models.video.VideoNet` on ``trunk``, a
        :class:`tfcolor.models.multitask.SharedTrunk` (its ``taps`` from ``model_kwargs``;
        default every tap)."""
        kwargs = {k: v for k, v in self.model_kwargs.items()
                  if k not in ("arch", "batch_norm", "sync_batch_norm", "input_mean",
                               "trunk_options", "taps", "input_channels")}
        return video_model.VideoNet(bins=self.bins, trunk=trunk.model,
                                    tap_strides=trunk.tap_strides(self.model_kwargs.get("taps")),
                                    input_channels=trunk.input_channels, **kwargs)

    def _dataset(self, config, options, start=None, **kwargs):
        if start is not None:
            options = dict(options, start=int(start), include_index=True)
        return video_data.video_dataset(config, source=self.source, bin_edges=self.bin_edges,
                                        offset_stddev=self.offset_stddev, border=self.border,
                                        **dict(options, **kwargs))

    def build_inputs(self, start=0):
        return self._dataset(self.data_config, self.pipeline_options, start)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        missing = [k for k in ("frame", "first", "second", "label") if k not in element_spec]
        if missing:
            raise ValueError(f"video batches lack {missing}; got {sorted(element_spec)}")
        label = element_spec["label"].shape
        if label.rank != 2 or label[0] is None or label[1] is None:
            raise ValueError("the dataset must have a static batch size and number of pairs "
                             f"(drop_remainder=True); got label {label}")

    def batch_size(self, element_spec):
        return element_spec["label"].shape[0]

    def compute_loss(self, model, batch, *, training, global_batch_size):
        logits = tf.cast(model.pairs(batch["frame"], batch["first"], batch["second"],
                                     training=training), tf.float32)
        labels = tf.cast(batch["label"], tf.int32)
        per_pair = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels),
                          tf.float32)
        units = float(global_batch_size * batch["label"].shape[1])
        return tf.reduce_sum(per_pair) / units, {"accuracy": tf.reduce_sum(correct) / units}

    def preview_batch(self):
        """The preview's fixed frames, ``{"frame", "flow", "first", "second", "label"}`` NumPy
        arrays, or None (no ``validation_images``, or the records cannot be read)."""
        count = self.data_config.validation_images
        if not count:
            return None
        if self._preview_batch is None:
            config = dataclasses.replace(self.data_config, batch_size=count, points=min(
                    self.data_config.points, 64))
            options = dict(self.pipeline_options, seed=PREVIEW_SEED, shuffle=False,
                           random_mirror=False)
            try:
                batch = next(iter(self._dataset(config, options, include_flow=True)))
            except (ValueError, OSError, StopIteration, tf.errors.OpError) as e:
                logging.warning("no video preview (%s)", e)
                return None
            self._preview_batch = {k: v.numpy() for k, v in batch.items()}
        return self._preview_batch

    def preview(self, model):
        """Rows of frame | flow colour-coded | predicted bins | true bins (module docstring);
        None without preview frames."""
        batch = self.preview_batch()
        if batch is None:
            return None
        logits = model.pairs(tf.constant(batch["frame"]), tf.constant(batch["first"]),
                             tf.constant(batch["second"]), training=False)
        predicted = np.argmax(np.asarray(logits, np.float32), axis=-1)
        frames = batch["frame"]
        return image_grid([frames, flow_to_rgb(batch["flow"]),
                           _mark(frames, batch["first"], predicted, self.bins),
                           _mark(frames, batch["first"], batch["label"], self.bins)])


def flow_to_rgb(flow, max_amplitude=None):
    """Colour-coded flow (..., H, W, 2) (dy, dx) -> RGB in [0, 1]: hue the direction, saturation
    the amplitude relative to ``max_amplitude`` (default: the 99th percentile), value 1."""
    flow = np.asarray(flow, np.float32)
    amplitude = np.hypot(flow[..., 0], flow[..., 1])
    top = max_amplitude or max(float(np.percentile(amplitude, 99)), 1e-6)
    hue = (np.arctan2(flow[..., 0], flow[..., 1]) / (2 * np.pi)) % 1.0
    sat = np.clip(amplitude / top, 0, 1)
    k = (hue[..., None] * 6 + np.array([5, 3, 1])) % 6   # HSV -> RGB with V = 1
    return 1 - sat[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _mark(frames, points, labels, bins):
    """Frames (darkened) with a 3 x 3 dot at each point, blue (bin 0) to red (last bin)."""
    out = np.array(frames, np.float32) * 0.5
    size = out.shape[1]
    t = np.asarray(labels, np.float32) / (bins - 1)
    colours = np.stack([t, 0.2 * np.ones_like(t), 1 - t], axis=-1)
    for b in range(out.shape[0]):
        for (y, x), colour in zip(np.round(points[b]).astype(int), colours[b]):
            out[b, max(y - 1, 0):min(y + 2, size), max(x - 1, 0):min(x + 2, size)] = colour
    return out
