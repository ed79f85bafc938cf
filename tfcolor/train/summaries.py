"""TensorBoard summaries, progress lines and colorization grids of the training loop.

* Scalars (``tf.summary``): every loss term, the learning rate, images/second, the loss scale
  under mixed precision.
* Images: a grid of validation images, one row per image: grey input | colorization | original.
* Progress line (absl logging): step, loss, learning rate, images/s and ETA.
"""
import math
import os

import numpy as np
import tensorflow as tf


def image_grid(rows, pad=2):
    """Builds one image from ``rows``: a list of (N, H, W, 3) tensors placed side by side.

    Args:
        rows: list of C tensors of shape (N, H, W, 3) (or (N, H, W, 1): repeated to RGB), float
            in [0, 1], all with the same N, H, W. Image i of every tensor goes in row i.
        pad: white pixels between cells.

    Returns:
        A float32 (N*(H+pad)-pad, C*(W+pad)-pad, 3) tensor in [0, 1].
    """
    cols = []
    for t in rows:
        t = tf.convert_to_tensor(t, tf.float32)
        if t.shape[-1] == 1:
            t = tf.repeat(t, 3, axis=-1)
        cols.append(tf.clip_by_value(t, 0.0, 1.0))
    n, h, w = cols[0].shape[0], cols[0].shape[1], cols[0].shape[2]
    for c in cols:
        if tuple(c.shape[:3]) != (n, h, w):
            raise ValueError(f"image_grid: all columns must have shape (N, H, W, ...) = "
                             f"{(n, h, w)}, got {tuple(c.shape)}")
    white_v = tf.ones([n, h, pad, 3])
    parts = []
    for i, c in enumerate(cols):
        if i:
            parts.append(white_v)
        parts.append(c)
    strip = tf.concat(parts, axis=2)  # (N, H, W', 3)
    width = strip.shape[2]
    white_h = tf.ones([pad, width, 3])
    out = []
    for i in range(n):
        if i:
            out.append(white_h)
        out.append(strip[i])
    return tf.concat(out, axis=0)


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
