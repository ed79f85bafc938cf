"""Stand-in model, loss and data that follow the DESIGN.md contracts, for the training-loop tests.

They are deliberately tiny and independent of tfcolor.models / tfcolor.losses / tfcolor.data, so
the loop is tested on its own (and fast).
"""
import keras
import tensorflow as tf

DEPTH = 4  # output bins of the stand-in head


class StandInColorizer(keras.Model):
    """conv -> BN -> ReLU, sampled at the centres, Dense head: ``sparse`` -> (B, P, DEPTH)."""

    def __init__(self, sync_batch_norm=False, dropout=0.0, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(6, 3, padding="same", name="conv")
        self.bn = (keras.layers.BatchNormalization(synchronized=sync_batch_norm, center=False,
                                                   scale=False, name="bn")
                   if batch_norm else None)
        self.drop = keras.layers.Dropout(dropout) if dropout else None
        self.head = keras.layers.Dense(DEPTH, name="head")

    def features(self, gray, training=False):
        x = self.conv(gray)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return tf.nn.relu(x)

    def sparse(self, gray, centers, training=False):
        f = self.features(gray, training=training)
        cols = tf.gather_nd(f, tf.cast(centers, tf.int32), batch_dims=1)
        if self.drop is not None:
            cols = self.drop(cols, training=training)
        return self.head(cols)

    def dense(self, gray):
        return self.head(self.features(gray))

    def call(self, gray, training=False):
        return self.dense(gray)


def per_point_loss(y_true, y_pred):
    """Cross-entropy of histogram targets (B, P, D) against logits: (B, P)."""
    return -tf.reduce_sum(y_true * tf.nn.log_softmax(y_pred, axis=-1), axis=-1)


def per_point_parts(y_true, y_pred):
    """:func:`per_point_loss` as a loss of two parts (logged terms): the first two bins' and the
    rest's contributions, whose sum is the per-point loss."""
    logp = tf.nn.log_softmax(y_pred, axis=-1)
    return {"low": -tf.reduce_sum(y_true[..., :2] * logp[..., :2], -1),
            "high": -tf.reduce_sum(y_true[..., 2:] * logp[..., 2:], -1)}


def make_dataset(batch_size=4, size=8, points=5, seed=0, nan_from=None, on_device=False):
    """Deterministic, checkpointable dataset of global batches following the pretraining contract.

    Element i depends only on (seed, i) (stateless random ops), so the order is reproducible and
    the iterator state is a position. ``nan_from``: elements from this index on have NaN targets.
    """
    def element(i):
        s = tf.stack([tf.cast(seed, tf.int64), i])
        gray = tf.random.stateless_uniform([size, size, 1], s)
        centers = tf.random.stateless_uniform([points, 2], s + 1, 0, size, dtype=tf.int32)
        rgb = tf.random.stateless_uniform([size, size, 3], s + 2)
        out = {"gray": gray, "centers": centers}
        if on_device:
            out["rgb"] = rgb
        else:
            out["targets"] = targets_from_rgb(rgb[None], centers[None])[0]
            if nan_from is not None:
                out["targets"] = tf.where(i >= nan_from, float("nan"), out["targets"])
        return out

    ds = tf.data.Dataset.range(1 << 30).map(element)
    return ds.batch(batch_size, drop_remainder=True)


def make_dataset_fn(batch_size=4, size=8, points=5, seed=0, drop_every=0, prefetch=2):
    """``dataset(start)`` for the Trainer's input-position checkpoints: the stream of
    :func:`make_dataset` from record ``start`` on, each element with its ``"index"``.
    ``drop_every``: records whose index is a multiple of it are dropped (like unreadable images),
    so batches are not aligned with ``step * batch_size``."""
    def dataset(start):
        ds = tf.data.Dataset.range(start, 1 << 30)
        if drop_every:
            ds = ds.filter(lambda i: i % drop_every != 0)

        def element(i):
            s = tf.stack([tf.cast(seed, tf.int64), i])
            rgb = tf.random.stateless_uniform([size, size, 3], s + 2)
            centers = tf.random.stateless_uniform([points, 2], s + 1, 0, size, dtype=tf.int32)
            return {"gray": tf.random.stateless_uniform([size, size, 1], s),
                    "centers": centers, "index": i,
                    "targets": targets_from_rgb(rgb[None], centers[None])[0]}
        ds = ds.map(element, num_parallel_calls=2, deterministic=True)
        return ds.batch(batch_size, drop_remainder=True).prefetch(prefetch)
    return dataset


def targets_from_rgb(rgb, centers):
    """A stand-in TargetBuilder: softmax of the RGB (+ mean) at the centres, (B, P, DEPTH)."""
    px = tf.gather_nd(rgb, tf.cast(centers, tf.int32), batch_dims=1)
    feats = tf.concat([px, tf.reduce_mean(px, -1, keepdims=True)], -1) * 4.0
    return tf.nn.softmax(feats, axis=-1)
