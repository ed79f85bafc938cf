"""Split-brain autoencoder (Zhang, Isola & Efros, CVPR 2017) in the colorizer's framework.

The image is split into two disjoint channel groups; two disjoint sub-networks ("halves"), each
with half the channels of the trunk (``width_factor=0.5`` on every convolution), predict one
group from the other, each with a softmax cross-entropy on the *quantised* other group:

* half ``a`` sees group 1 and predicts group 2; half ``b`` sees group 2 and predicts group 1.

Splits (``SPLITS``; every channel is first mapped to [0, 1], which is also the halves' input):

========================= ==================================== ==================================
split                     group 1 (1 channel)                  group 2 (2 channels)
========================= ==================================== ==================================
``"lab"`` (default)       L / 100                              (a + 110) / 220, (b + 110) / 220
``"rescaled_lab"``        L rescaled per image to [0, 1]       a, b rescaled per image to [0, 1]
                          ((v - min) / (max - min) over the
                          image)
``"rgb"``                 G (the channel closest to            R, B
                          luminance)
========================= ==================================== ==================================

Quantisation (the student version cited in the method's baseline list): a 1-channel group into
``l_bins`` (100) uniform bins on [0, 1] (L: 1 unit of L each); a 2-channel group into a joint
``ab_bins`` x ``ab_bins`` (10 x 10) grid of uniform bins on [0, 1] (a, b: 22 Lab units on
[-110, 110]), index ``i * ab_bins + j``. Targets are the bins of the centre pixel (no window),
at ``P`` sparse pixels per image, as in the colorizer: each half is trunk -> sparse hypercolumn
of its taps -> ``h_fc1`` (hidden, ReLU, dropout) -> softmax. Zhang et al. predict dense maps of a
fully convolutional AlexNet; sparse hypercolumn training is this library's framework, so the two
proxy tasks differ only in their targets and in the split.

Downstream (:meth:`SplitBrainAutoencoder.downstream_trunk`) the two halves run side by side on
the image (converted to the split space inside the model, TF ops) and every tap is the
concatenation of both halves' maps, so a half-width split-brain trunk has the tap names, strides
and channel counts of the full-width trunk.

Grey downstream data (e.g. Fashion-MNIST) is a handicap for the Lab splits: the grey image is
replicated to RGB, so a = b = 0 everywhere and half ``b`` sees a constant image; its features
do not depend on the input, so half of the concatenated features carry no information (the
``"rgb"`` split is not affected: R = G = B, half ``b`` sees the grey twice). Zhang et al. evaluate
their split-brain features on colour images; we found no grey-input protocol of theirs to
follow, so the trunk is fed as is and the handicap is *reported*: :func:`grey_input_handicap`
says whether a split has it, :meth:`SplitBrainAutoencoder.downstream_trunk` logs it for
``color_input=False``, and ``binaries/reproduce`` marks the split-brain numbers on grey sets
with it.

The objective is :class:`tfcolor.tasks.split_brain.SplitBrainTask`. The halves are built by
:func:`resized_trunk`, which edits the functional config of a ``build_trunk`` model (filters
scaled, input channels changed).
"""
import keras
import tensorflow as tf
from absl import logging

from tfcolor import color
from tfcolor import layers as tfcolor_layers
from tfcolor import models
from tfcolor import surgery

SPLITS = ("lab", "rescaled_lab", "rgb")
AB_RANGE = 110.0
#: Defaults of the split and the quantisation (the model's, the targets' and the task's).
DEFAULT_SPLIT = "lab"
DEFAULT_L_BINS = 100
DEFAULT_AB_BINS = 10


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    return split


def grey_input_handicap(split):
    """A sentence describing the handicap of ``split`` on grey downstream data, or None."""
    _check_split(split)
    if split == "rgb":
        return None
    return (f"split-brain ({split}) on grey data: half b sees a = b = 0, nothing of the image, "
            "so half of its features carry no information")


def split_channels(rgb, split=DEFAULT_SPLIT, eps=1e-6):
    """RGB (B, H, W, 3) or grey (B, H, W, 1) in [0, 1] -> (group 1 (B, H, W, 1), group 2
    (B, H, W, 2)), every channel in [0, 1] (see the module docstring)."""
    _check_split(split)
    rgb = tf.cast(tf.convert_to_tensor(rgb), tf.float32)
    if rgb.shape[-1] == 1:
        rgb = tf.tile(rgb, [1, 1, 1, 3])
    if split == "rgb":
        return rgb[..., 1:2], tf.stack([rgb[..., 0], rgb[..., 2]], axis=-1)
    lab = color.rgb_to_lab(tf.clip_by_value(rgb, 0.0, 1.0), validate=False)
    if split == "lab":
        lightness = tf.clip_by_value(lab[..., :1] / 100.0, 0.0, 1.0)
        ab = tf.clip_by_value((lab[..., 1:] + AB_RANGE) / (2.0 * AB_RANGE), 0.0, 1.0)
        return lightness, ab
    lo = tf.reduce_min(lab, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(lab, axis=[1, 2], keepdims=True)
    scaled = tf.clip_by_value((lab - lo) / tf.maximum(hi - lo, eps), 0.0, 1.0)
    return scaled[..., :1], scaled[..., 1:]


def quantize(values, bins):
    """Uniform bins on [0, 1]: (..., 1) -> index in [0, bins); (..., 2) -> joint index
    ``i * bins + j`` in [0, bins^2). Returns int32 (...)."""
    values = tf.convert_to_tensor(values)
    idx = tf.clip_by_value(tf.cast(tf.floor(values * bins), tf.int32), 0, bins - 1)
    if values.shape[-1] == 1:
        return idx[..., 0]
    if values.shape[-1] == 2:
        return idx[..., 0] * bins + idx[..., 1]
    raise ValueError(f"quantize takes 1 or 2 channels; got shape {values.shape}.")


def split_brain_targets(rgb, centers, split=DEFAULT_SPLIT, l_bins=DEFAULT_L_BINS,
                        ab_bins=DEFAULT_AB_BINS):
    """(B, P, 2) float32 targets: (bin of group 1, joint bin of group 2) at each centre."""
    g1, g2 = split_channels(rgb, split)
    t1 = tf.gather_nd(quantize(g1, l_bins), centers, batch_dims=1)
    t2 = tf.gather_nd(quantize(g2, ab_bins), centers, batch_dims=1)
    return tf.cast(tf.stack([t1, t2], axis=-1), tf.float32)


def split_brain_loss(targets, logits_a, logits_b):
    """Per-point cross-entropies ``(ce_a, ce_b)``, each (B, P) float32: half a's logits
    against the group-2 bin (``targets[..., 1]``), half b's against the group-1 bin
    (``targets[..., 0]``); ``targets`` as :func:`split_brain_targets` makes them."""
    targets = tf.convert_to_tensor(targets)
    t1 = tf.cast(targets[..., 0], tf.int32)
    t2 = tf.cast(targets[..., 1], tf.int32)
    ce_a = tf.nn.sparse_softmax_cross_entropy_with_logits(t2, tf.cast(logits_a, tf.float32))
    ce_b = tf.nn.sparse_softmax_cross_entropy_with_logits(t1, tf.cast(logits_b, tf.float32))
    return ce_a, ce_b


def split_brain_batches(dataset, split=DEFAULT_SPLIT, l_bins=DEFAULT_L_BINS,
                        ab_bins=DEFAULT_AB_BINS):
    """Pretraining batches with ``"rgb"`` -> ``{"rgb", "centers", "targets"}`` (and
    ``"index"`` when the batches carry it). The model converts the RGB crop to the split space
    itself."""
    missing = [k for k in ("rgb", "centers") if k not in dataset.element_spec]
    if missing:
        raise ValueError("split_brain_batches needs batches with 'rgb' and 'centers' (the "
                         f"pipeline's targets_on_device=True); missing {missing}.")

    def convert(batch):
        out = {"rgb": batch["rgb"], "centers": batch["centers"],
               "targets": split_brain_targets(batch["rgb"], batch["centers"], split, l_bins,
                                              ab_bins)}
        if "index" in batch:
            out["index"] = batch["index"]
        return out

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def resized_trunk(arch, *, input_channels=1, width_factor=1.0, name=None, **trunk_kwargs):
    """``build_trunk(arch, ...)`` with every Conv2D's filters scaled by ``width_factor`` and
    ``input_channels`` input channels (weights freshly initialised)."""
    trunk = models.build_trunk(arch, **trunk_kwargs)
    if input_channels == 1 and width_factor == 1.0:
        return trunk if name is None else keras.Model(trunk.input, trunk.output, name=name)
    config = trunk.get_config()
    for layer in config["layers"]:
        layer.pop("build_config", None)
        cfg = layer["config"]
        if layer["class_name"] == "InputLayer":
            cfg["batch_shape"] = list(cfg["batch_shape"][:-1]) + [int(input_channels)]
        elif layer["class_name"] == "Conv2D":
            filters = max(1, int(round(cfg["filters"] * width_factor)))
            groups = int(cfg.get("groups", 1))
            cfg["filters"] = max(groups, filters // groups * groups)
    if name is not None:
        config["name"] = name
    del trunk
    return keras.Model.from_config(config)


@keras.saving.register_keras_serializable(package="tfcolor")
class SplitInput(keras.layers.Layer):
    """RGB / grey image -> [group 1, group 2] of a split (see :func:`split_channels`)."""

    def __init__(self, split=DEFAULT_SPLIT, **kwargs):
        super().__init__(**kwargs)
        self.split = _check_split(split)

    def call(self, images):
        g1, g2 = split_channels(images, self.split)
        return [tf.cast(g1, self.compute_dtype), tf.cast(g2, self.compute_dtype)]

    def compute_output_shape(self, input_shape):
        base = tuple(input_shape[:-1])
        return [base + (1,), base + (2,)]

    def get_config(self):
        config = super().get_config()
        config["split"] = self.split
        return config


@keras.saving.register_keras_serializable(package="tfcolor")
class SplitBrainAutoencoder(keras.Model):
    """Two half-width trunks predicting each other's channels (see the module docstring).

    Args:
        arch: trunk architecture of both halves.
        split: ``"lab"``, ``"rescaled_lab"`` or ``"rgb"``.
        taps: hypercolumn taps of both halves (default: all).
        width_factor: channel fraction of each half (0.5: the two halves together have the
            width of one trunk).
        l_bins, ab_bins: quantisation of the 1-channel group and (per axis) of the 2-channel
            group.
        hidden, dropout: each half's head.
        batch_norm, convention: trunk BN and hypercolumn sampling convention.
    """

    def __init__(self, arch="vgg16", *, split=DEFAULT_SPLIT, taps=None, width_factor=0.5,
                 l_bins=DEFAULT_L_BINS, ab_bins=DEFAULT_AB_BINS, hidden=1024, dropout=0.5,
                 batch_norm=None, convention="released", **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        self.split = _check_split(split)
        self.width_factor = float(width_factor)
        if not 0.0 < self.width_factor <= 1.0:
            raise ValueError(f"width_factor must be in (0, 1]; got {width_factor!r}.")
        self.l_bins, self.ab_bins = int(l_bins), int(ab_bins)
        if self.l_bins < 2 or self.ab_bins < 2:
            raise ValueError(f"l_bins and ab_bins must be >= 2; got {l_bins}, {ab_bins}.")
        self.hidden, self.dropout = int(hidden), float(dropout)
        self.batch_norm, self.convention = batch_norm, convention
        self.taps = models.resolve_taps(arch, taps)
        self.tap_strides = models.tap_strides(arch, self.taps)
        common = dict(width_factor=self.width_factor, taps=self.taps, batch_norm=batch_norm,
                      input_mean=0.5)
        self.trunk_a = resized_trunk(arch, input_channels=1, name="half_a", **common)
        self.trunk_b = resized_trunk(arch, input_channels=2, name="half_b", **common)
        strides = list(self.tap_strides.values())
        self.split_input = SplitInput(self.split, name="split_input")
        self.sparse_a = tfcolor_layers.SparseHypercolumn(strides, convention=convention,
                                                         name="sparse_a")
        self.sparse_b = tfcolor_layers.SparseHypercolumn(strides, convention=convention,
                                                         name="sparse_b")
        self.head_a = tfcolor_layers.HistogramHead((self.ab_bins ** 2,), hidden=self.hidden,
                                                   dropout=self.dropout, name="head_a")
        self.head_b = tfcolor_layers.HistogramHead((self.l_bins,), hidden=self.hidden,
                                                   dropout=self.dropout, name="head_b")
        for head, trunk in ((self.head_a, self.trunk_a), (self.head_b, self.trunk_b)):
            head.build((None, sum(int(t.shape[-1]) for t in trunk.output.values())))
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def cross_predictions(self, images, centers, training=None):
        """Both halves' logits at ``centers`` (B, P, 2): ``(logits_a, logits_b)``, half a's
        (B, P, ab_bins^2) over the bins of group 2 and half b's (B, P, l_bins) over the bins of
        group 1 (in the compute dtype)."""
        g1, g2 = self.split_input(images)
        maps_a = self.trunk_a(g1, training=training)
        maps_b = self.trunk_b(g2, training=training)
        logits_a = self.head_a(self.sparse_a([maps_a[t] for t in self.taps], centers),
                               training=training)
        logits_b = self.head_b(self.sparse_b([maps_b[t] for t in self.taps], centers),
                               training=training)
        return logits_a, logits_b

    def call(self, images, training=False):
        return self.downstream_features(images, training=training)

    def downstream_features(self, images, training=False):
        g1, g2 = self.split_input(images)
        maps_a = self.trunk_a(g1, training=training)
        maps_b = self.trunk_b(g2, training=training)
        return {t: tf.concat([maps_a[t], maps_b[t]], axis=-1) for t in self.taps}

    def downstream_trunk(self, absorb_bn="auto", color_input=True):
        """A functional trunk image -> {tap: concat(half a, half b)} for fine-tuning.

        Each half is prepared (BN absorbed) separately. ``color_input=False`` takes grey
        (1-channel) images, replicated to RGB inside: for the Lab splits half ``b`` then sees a
        constant image (logged; see :func:`grey_input_handicap`).
        """
        handicap = None if color_input else grey_input_handicap(self.split)
        if handicap:
            logging.warning("%s", handicap)
        half_a = surgery.prepare_trunk(self.trunk_a, arch=self.arch, absorb_bn=absorb_bn)
        half_b = surgery.prepare_trunk(self.trunk_b, arch=self.arch, absorb_bn=absorb_bn)
        images = keras.Input((None, None, 3 if color_input else 1), name="images")
        g1, g2 = SplitInput(self.split, name="split_input")(images)
        fa, fb = half_a(g1), half_b(g2)
        outputs = {t: keras.layers.Concatenate(name=f"{t}_concat")([fa[t], fb[t]])
                   for t in self.taps}
        return keras.Model(images, outputs, name=f"split_brain_{self.arch}")

    def get_config(self):
        config = super().get_config()
        config.update(arch=self.arch, split=self.split, taps=list(self.taps),
                      width_factor=self.width_factor, l_bins=self.l_bins, ab_bins=self.ab_bins,
                      hidden=self.hidden, dropout=self.dropout, batch_norm=self.batch_norm,
                      convention=self.convention)
        return config


def disjoint(model):
    """True when the two halves share no variable (by identity)."""
    a = {id(v) for v in model.trunk_a.weights + model.head_a.weights}
    b = {id(v) for v in model.trunk_b.weights + model.head_b.weights}
    return not (a & b)


__all__ = ["SPLITS", "DEFAULT_SPLIT", "DEFAULT_L_BINS", "DEFAULT_AB_BINS", "grey_input_handicap",
           "split_channels", "quantize", "split_brain_targets", "split_brain_loss",
           "split_brain_batches", "resized_trunk", "SplitInput", "SplitBrainAutoencoder",
           "disjoint"]
