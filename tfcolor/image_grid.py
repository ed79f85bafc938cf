"""Image grids: one picture of several image batches side by side, one row per image.

The colorization task's preview (grey input | colorization | original, in TensorBoard and
``colorizations.png``) is such a grid. A plain TensorFlow function with no dependency on the
training loop, so tasks and tools can use it.
"""
import tensorflow as tf

__all__ = ["image_grid"]


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
