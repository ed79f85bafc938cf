"""Denoising autoencoder pretraining (salt-and-pepper noise), in the colorizer's framework.

Task: the grey input is corrupted with salt-and-pepper noise -- each pixel independently, with
probability ``rate`` (5%), is replaced by 0 or 1 (equally likely) -- and the network
reconstructs the *clean* grey value.

Decoder design (documented choice): the "decoder" is the colorizer's hypercolumn head. The
trunk (same architecture as colorization) sees the noisy image; at ``P`` random pixels per image
the sparse hypercolumn of the selected taps feeds ``h_fc1`` (1024, ReLU, dropout) and a single
linear output: the clean grey value at that pixel, trained with a squared error. So the model,
:class:`DenoisingAutoencoder`, is a ``tfcolor.models.Colorizer`` with one linear output, and the
trainer, data pipeline, sampling and downstream transfer are exactly those of colorization
pretraining: only the target differs, which is the controlled comparison the baseline is for.
The objective is :class:`tfcolor.tasks.denoising.DenoisingTask`. Because the hypercolumn reads
shallow layers, copying the input would be trivial for the 95% clean pixels; the ``data`` tap is
left out by default (``taps=None``: every tap but ``data``) and ``corrupted_weight`` (Vincent et
al. 2010's "emphasised" denoising) can up-weight the corrupted pixels, whose value must be
inferred from context.

Noise and targets are TF ops in the tf.data pipeline (:func:`denoising_batches`), stateless and
seeded per image by its position in the record stream.
"""
import keras
import tensorflow as tf

from tfcolor import models
from tfcolor import surgery
from tfcolor.models import colorizer as colorizer_lib

DEFAULT_RATE = 0.05


def salt_and_pepper(images, rate=DEFAULT_RATE, seed=(0, 0)):
    """Salt-and-pepper noise: each pixel, with probability ``rate``, becomes 0 or 1 (50/50).

    All channels of a pixel get the same value. Args: ``images`` (..., H, W, C) float in
    [0, 1]; ``seed``: a stateless seed (shape (2,) ints).

    Returns:
        ``(noisy, corrupted)``: the noisy images and a float mask (..., H, W, 1) of the
        corrupted pixels.
    """
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise ValueError(f"salt_and_pepper expects float images in [0, 1]; got {images.dtype}.")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"rate must be in [0, 1]; got {rate!r}.")
    shape = tf.concat([tf.shape(images)[:-1], [1]], 0)
    u = tf.random.stateless_uniform(shape, seed)
    corrupted = u < rate
    value = tf.cast(u >= rate / 2.0, images.dtype)  # u < rate/2: pepper (0), else salt (1)
    noisy = tf.where(corrupted, value, images)
    return noisy, tf.cast(corrupted, images.dtype)


@keras.saving.register_keras_serializable(package="tfcolor")
class DenoisingAutoencoder(colorizer_lib.Colorizer):
    """The denoising network: a ``Colorizer`` with one linear output (the clean grey value).

    Args:
        arch: trunk architecture.
        taps: hypercolumn taps; ``None`` selects every tap of the trunk except ``data`` (the
            noisy input itself).
        hidden, dropout: the head's ``h_fc1`` width and dropout.
        **kwargs: further :class:`tfcolor.models.Colorizer` arguments (``batch_norm``, ``fov``,
            ``convention``, ...) except ``kind``, ``output_sizes`` and ``head_activation``, which
            are fixed (one linear output).
    """

    def __init__(self, arch="vgg16", *, taps=None, hidden=1024, dropout=0.5, **kwargs):
        for fixed, value in (("kind", "lab_regression"), ("output_sizes", [1]),
                             ("head_activation", None)):
            given = kwargs.pop(fixed, value)
            if (list(given) if isinstance(given, (list, tuple)) else given) != value:
                raise ValueError(f"DenoisingAutoencoder has a fixed {fixed}={value!r}; got "
                                 f"{given!r}.")
        if taps is None and kwargs.get("trunk") is None:
            fov = bool(kwargs.get("fov", False))
            taps = [t for t in models.resolve_taps(arch, None, fov) if t != "data"]
        super().__init__(arch, taps=taps, kind="lab_regression", output_sizes=(1,),
                         hidden=hidden, dropout=dropout, **kwargs)

    def downstream_trunk(self, absorb_bn="auto", color_input=False):
        """The trunk, prepared for fine-tuning (:func:`tfcolor.surgery.prepare_trunk`)."""
        return surgery.prepare_trunk(self.trunk, arch=self.arch, absorb_bn=absorb_bn,
                                     color_input=color_input)

    def get_config(self):
        config = super().get_config()
        for fixed in ("kind", "output_sizes", "head_activation"):
            config.pop(fixed, None)
        return config


def denoising_loss(corrupted_weight=1.0):
    """Per-point loss ``w * (prediction - clean)^2``, ``w = corrupted_weight`` on corrupted
    pixels and 1 elsewhere; targets (B, P, 2) = (clean grey, corrupted flag)."""
    corrupted_weight = float(corrupted_weight)

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        err = tf.square(tf.cast(y_pred[..., 0], tf.float32) - y_true[..., 0])
        return err * (1.0 + (corrupted_weight - 1.0) * y_true[..., 1])

    return loss


def denoising_batches(dataset, rate=DEFAULT_RATE, seed=0):
    """Maps pretraining batches ``{"gray", "centers", "index", ...}`` to denoising batches.

    Each image's noise is drawn from the stateless seed ``(seed, index)``, ``index`` being its
    position in the pipeline's record stream (``include_index=True``): the noise of an image
    does not depend on the batching, and a run resumed at a stream position sees the noise an
    uninterrupted run would.

    Returns batches ``{"gray": noisy grey, "centers", "targets": (B, P, 2), "index"}`` where the
    targets are the clean grey value and the corrupted flag at each centre.
    """
    missing = [k for k in ("gray", "centers", "index") if k not in dataset.element_spec]
    if missing:
        raise ValueError(f"denoising_batches needs batches with 'gray', 'centers' and 'index' "
                         f"(include_index=True); missing {missing}.")

    def add_noise(batch):
        gray, centers, index = batch["gray"], batch["centers"], batch["index"]
        seeds = tf.stack([tf.fill(tf.shape(index), tf.cast(seed, tf.int64)),
                          tf.cast(index, tf.int64)], axis=-1)
        noisy, corrupted = tf.map_fn(
                lambda args: salt_and_pepper(args[0], rate, args[1]), (gray, seeds),
                fn_output_signature=(gray.dtype, gray.dtype))
        clean = tf.gather_nd(gray[..., 0], centers, batch_dims=1)
        flag = tf.gather_nd(corrupted[..., 0], centers, batch_dims=1)
        return {"gray": noisy, "centers": centers, "targets": tf.stack([clean, flag], axis=-1),
                "index": index}

    return dataset.map(add_noise, num_parallel_calls=tf.data.AUTOTUNE)


__all__ = ["salt_and_pepper", "DenoisingAutoencoder", "denoising_loss", "denoising_batches",
           "DEFAULT_RATE"]
