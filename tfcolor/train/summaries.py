"""TensorBoard summaries, progress lines and PNG files of the training loop.

* Scalars (``tf.summary``): every loss term, the learning rate, images/second, the loss scale
  under mixed precision.
* Images: the task's preview (for colorization a grid of validation images, one row per image:
  grey input | colorization | original, made by :func:`tfcolor.image_grid.image_grid`).
* Progress line (absl logging): step, loss, learning rate, images/s and ETA.
"""
import math
import os

import numpy as np
import tensorflow as tf


def write_png(image, path):
    """Writes a float image in [0, 1] (H, W, 3) as an 8-bit PNG (any tf.io.gfile path)."""
    data = tf.image.convert_image_dtype(tf.clip_by_value(image, 0.0, 1.0), tf.uint8, saturate=True)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    tf.io.write_file(path, tf.io.encode_png(data))
    return path


def format_duration(seconds):
    """'2d 3h', '3h 12m', '4m 05s', '12s'."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def progress_line(step, total, losses, learning_rate, images_per_second, eta_seconds):
    """The one-line progress report logged every ``summary_every`` steps."""
    terms = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if k != "loss")
    rate = f"{images_per_second:.1f} img/s" if images_per_second else "? img/s"
    return (f"step {step}/{total} ({100.0 * step / total:.1f}%) loss {losses['loss']:.4f}"
            + (f" ({terms})" if terms else "")
            + f" lr {learning_rate:.3g} | {rate} | ETA {format_duration(eta_seconds)}")


def write_scalars(writer, step, scalars):
    """Writes a dict of Python floats as scalars at ``step``."""
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(name, value)


def to_numpy_image(image):
    """(H, W, 3) float tensor in [0, 1] -> uint8 NumPy array."""
    return np.asarray(tf.image.convert_image_dtype(
        tf.clip_by_value(image, 0.0, 1.0), tf.uint8, saturate=True))
