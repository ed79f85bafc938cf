"""Ground-truth targets: RGB crop + sparse centres -> packed ``y_true`` for one loss kind.

``TargetBuilder(kind, window=7, ...)(rgb, centers)`` with ``rgb`` (B, H, W, 3) float in [0, 1]
and ``centers`` (B, P, 2) (y, x) returns ``y_true`` (B, P, D) float32 laid out as in
docs/DESIGN.md:

============== ========= ==================================================================
kind           D         last axis
============== ========= ==================================================================
hue_chroma     2K + 2    hue histogram (K), chroma histogram (K), chroma at the centre,
                         lightness at the centre (mean RGB, as in the released code's
                         lightness weight)
lab_hist       2K        a histogram (K), b histogram (K) (Gaussian-quantile bins)
lab_joint      Ka * Kb   joint a/b histogram, a-major
lab_regression 2         a, b at the centre (Lab units)
============== ========= ==================================================================

Histograms are the empirical distributions of bins over the R x R window around each centre
(``tfcolor.bins``): pixels outside the image are not counted, empty windows are uniform, float
centres are rounded to the nearest pixel.

Everything is TF ops, so the same object runs in ``tf.data.Dataset.map`` and inside a
``tf.function`` training step (also with ``jit_compile=True``), with batch, point and image sizes
unknown at trace time. With the default ``histogram_method="gather"`` only the ``P * R^2`` window
pixels are gathered and converted to HCL/Lab (for P = 128, R = 7 on 352 x 352 crops that is 5% of
the pixels), then one-hot summed; ``"summed_area"`` converts the whole crop and uses integral
images (same result, cheaper only for dense targets). See ``tfcolor.bins``.
"""
import keras
import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor import color as color_lib
from tfcolor.losses import LOSS_KINDS as KINDS

__all__ = ["TargetBuilder", "KINDS"]


def _stack(channels):
    if isinstance(channels, (tuple, list)):
        return tf.stack(list(channels), axis=-1)
    return channels


@keras.saving.register_keras_serializable(package="tfcolor")
class TargetBuilder:
    """Builds packed ground-truth targets for one loss kind.

    Args:
        kind: ``"hue_chroma"`` (default), ``"lab_hist"``, ``"lab_joint"`` or ``"lab_regression"``.
        window: R, the side of the histogram window (7 in the papers; 1 gives one-hot targets,
            i.e. plain log loss). Ignored by ``"lab_regression"``.
        num_bins: K for the hue/chroma and the a/b marginal histograms (32).
        joint_bins: bins per axis of the joint a/b grid (16).
        lab_mean, lab_stddev: the Gaussian whose quantiles bin a and b (0, 25).
        histogram_method: ``"gather"`` (default) or ``"summed_area"``.
    """

    def __init__(self, kind="hue_chroma", window=7, num_bins=32, joint_bins=16, lab_mean=0.0,
                 lab_stddev=25.0, histogram_method="gather"):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if histogram_method not in bins_lib.HISTOGRAM_METHODS:
            raise ValueError(f"histogram_method must be one of {bins_lib.HISTOGRAM_METHODS}, got "
                             f"{histogram_method!r}")
        self.kind = kind
        self.window = bins_lib._check_positive_int("window", window)
        self.num_bins = bins_lib._check_positive_int("num_bins", num_bins)
        self.joint_bins = bins_lib._check_positive_int("joint_bins", joint_bins)
        self.lab_mean = float(lab_mean)
        self.lab_stddev = float(lab_stddev)
        self.histogram_method = histogram_method
        if kind == "hue_chroma":
            self.bin_specs = (bins_lib.UniformBins(self.num_bins, circular=True),
                              bins_lib.UniformBins(self.num_bins))
        elif kind == "lab_hist":
            marginal = bins_lib.GaussianQuantileBins(self.num_bins, self.lab_mean, self.lab_stddev)
            self.bin_specs = (marginal, marginal)
        elif kind == "lab_joint":
            marginal = bins_lib.GaussianQuantileBins(self.joint_bins, self.lab_mean,
                                                     self.lab_stddev)
            self.bin_specs = (bins_lib.JointBins(marginal, marginal),)
        else:
            self.bin_specs = ()

    @property
    def output_sizes(self):
        """Softmax group sizes the head must produce (regression: ``(2,)``, no softmax)."""
        if self.kind == "lab_regression":
            return (2,)
        return tuple(spec.num_bins for spec in self.bin_specs)

    @property
    def target_dim(self):
        """D, the size of the last axis of ``y_true``."""
        if self.kind == "hue_chroma":
            return 2 * self.num_bins + 2
        return sum(self.output_sizes)

    def __call__(self, rgb, centers):
        """Packed targets (B, P, D) float32 for ``rgb`` (B, H, W, 3) in [0, 1] and ``centers``
        (B, P, 2) (y, x)."""
        rgb = tf.convert_to_tensor(rgb)
        if not rgb.dtype.is_floating:
            raise TypeError(f"rgb must be a float tensor in [0, 1], got dtype {rgb.dtype.name}")
        if rgb.shape.rank is not None and rgb.shape.rank != 4:
            raise ValueError(f"rgb must be (batch, height, width, 3), got shape {rgb.shape}")
        if rgb.shape[-1] is not None and rgb.shape[-1] != 3:
            raise ValueError(f"rgb must have 3 channels, got shape {rgb.shape}")
        rgb = tf.cast(rgb, tf.float32)
        centers = bins_lib._check_centers(centers)
        if self.kind == "lab_regression":
            pixels, _ = bins_lib.gather_windows(rgb, centers, 1)  # (B, P, 1, 3)
            lab = _stack(color_lib.rgb_to_lab(pixels))
            out = tf.cast(lab[:, :, 0, 1:3], tf.float32)
        elif self.histogram_method == "gather":
            out = self._gather_targets(rgb, centers)
        else:
            out = self._summed_area_targets(rgb, centers)
        static = out.shape.as_list()
        return tf.ensure_shape(out, [static[0], static[1], self.target_dim])

    def _convert(self, pixels):
        if self.kind == "hue_chroma":
            return tf.cast(_stack(color_lib.rgb_to_hcl(pixels)), tf.float32)
        return tf.cast(_stack(color_lib.rgb_to_lab(pixels)), tf.float32)

    def _gather_targets(self, rgb, centers):
        pixels, valid = bins_lib.gather_windows(rgb, centers, self.window)  # (B, P, R*R, 3)
        converted = self._convert(pixels)
        if self.kind == "hue_chroma":
            hue_spec, chroma_spec = self.bin_specs
            hue = bins_lib.histogram_from_indices(hue_spec.encode(converted[..., 0]),
                                                  hue_spec.num_bins, valid)
            chroma = bins_lib.histogram_from_indices(chroma_spec.encode(converted[..., 1]),
                                                     chroma_spec.num_bins, valid)
            middle = (self.window // 2) * self.window + self.window // 2
            centre_chroma = converted[:, :, middle, 1:2]
            centre_lightness = tf.reduce_mean(pixels[:, :, middle, :], axis=-1, keepdims=True)
            return tf.concat([hue, chroma, centre_chroma, centre_lightness], axis=-1)
        if self.kind == "lab_hist":
            spec = self.bin_specs[0]
            return tf.concat([
                    bins_lib.histogram_from_indices(spec.encode(converted[..., c]), spec.num_bins,
                                                    valid) for c in (1, 2)], axis=-1)
        spec = self.bin_specs[0]
        return bins_lib.histogram_from_indices(spec.encode(converted[..., 1:3]), spec.num_bins,
                                               valid)

    def _summed_area_targets(self, rgb, centers):
        converted = self._convert(rgb)  # (B, H, W, 3)
        method = "summed_area"
        if self.kind == "hue_chroma":
            hue_spec, chroma_spec = self.bin_specs
            hue = hue_spec.window_histogram(converted[..., 0], centers, self.window, method)
            chroma = chroma_spec.window_histogram(converted[..., 1], centers, self.window, method)
            at_centre, _ = bins_lib.gather_windows(
                    tf.concat([converted[..., 1:2], tf.reduce_mean(rgb, -1, keepdims=True)], -1),
                    centers, 1)
            return tf.concat([hue, chroma, at_centre[:, :, 0, :]], axis=-1)
        if self.kind == "lab_hist":
            spec = self.bin_specs[0]
            return tf.concat([spec.window_histogram(converted[..., c], centers, self.window, method)
                              for c in (1, 2)], axis=-1)
        return self.bin_specs[0].window_histogram(converted[..., 1:3], centers, self.window,
                                                  method)

    def split(self, y_true):
        """Splits packed targets into a dict of named parts (e.g. ``"hue"``, ``"chroma"``,
        ``"chroma_center"``, ``"lightness_center"``)."""
        k = self.num_bins
        if self.kind == "hue_chroma":
            return {"hue": y_true[..., :k], "chroma": y_true[..., k:2 * k],
                    "chroma_center": y_true[..., 2 * k], "lightness_center": y_true[..., 2 * k + 1]}
        if self.kind == "lab_hist":
            return {"a": y_true[..., :k], "b": y_true[..., k:2 * k]}
        if self.kind == "lab_joint":
            return {"ab": y_true}
        return {"a": y_true[..., 0], "b": y_true[..., 1]}

    def get_config(self):
        return {"kind": self.kind, "window": self.window, "num_bins": self.num_bins,
                "joint_bins": self.joint_bins, "lab_mean": self.lab_mean,
                "lab_stddev": self.lab_stddev, "histogram_method": self.histogram_method}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TargetBuilder({args})"
