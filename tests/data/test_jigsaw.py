"""Tests for tfcolor.data.jigsaw: the pieces, the labels and their determinism."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfcolor.data import jigsaw


def _batches(images, batch, *, start=0, **kwargs):
    """Pretraining-like batches {"rgb", "gray", "index"} of ``images`` from stream ``start``."""
    images = np.asarray(images, np.float32)
    index = np.arange(start, start + len(images), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices(
            {"rgb": images, "gray": images.mean(-1, keepdims=True), "index": index})
    return jigsaw.jigsaw_batches(ds.batch(batch, drop_remainder=True), **kwargs)


def _images(n, size=20, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


def test_permutations_are_the_24_orders_of_four_cells():
    assert jigsaw.PERMUTATIONS.shape == (24, 4)
    assert sorted(map(tuple, jigsaw.PERMUTATIONS)) == list(itertools.permutations(range(4)))
    np.testing.assert_array_equal(jigsaw.PERMUTATIONS[0], [0, 1, 2, 3])


@pytest.mark.parametrize("color", [True, False])
def test_pieces_are_crops_of_their_cells_and_reassemble_to_them(color):
    size, piece = 20, 7  # cells of 10 pixels: 4 pixels of wiggle room per axis
    images = _images(6, size)
    batch = next(iter(_batches(images, 6, piece_size=piece, seed=3, color=color,
                               include_offsets=True)))
    pieces, labels, offsets = (batch[k].numpy() for k in ("pieces", "label", "offsets"))
    channels = 3 if color else 1
    assert pieces.shape == (6, 4, piece, piece, channels) and labels.dtype == np.int32
    source = images if color else images.mean(-1, keepdims=True)
    cells = jigsaw.reassemble(pieces, labels)
    for b in range(6):
        for c in range(4):
            row, col = divmod(c, 2)
            oy, ox = offsets[b, c]
            # Inside its own cell, with room to spare up to the cell's edge.
            assert 10 * row <= oy <= 10 * row + 10 - piece
            assert 10 * col <= ox <= 10 * col + 10 - piece
            np.testing.assert_array_equal(cells[b, c], source[b, oy:oy + piece, ox:ox + piece])
            # Slot k holds cell PERMUTATIONS[label][k].
            slot = list(jigsaw.PERMUTATIONS[labels[b]]).index(c)
            np.testing.assert_array_equal(pieces[b, slot], cells[b, c])


def test_labels_are_uniform_and_offsets_cover_the_wiggle_room():
    n = 2400
    images = np.zeros((n, 8, 8, 1), np.float32)
    batch = next(iter(_batches(np.repeat(images, 3, -1), n, piece_size=3, seed=11,
                               include_offsets=True)))
    counts = np.bincount(batch["label"].numpy(), minlength=24)
    assert counts.shape == (24,)
    expected = n / 24
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # 23 degrees of freedom: P(chi2 > 75) = 2e-7 under uniform labels; a missing class alone
    # adds 100.
    assert chi2 < 75, counts
    wiggle = batch["offsets"].numpy() % 4  # cells of 4 pixels, pieces of 3: offsets 0 or 1
    assert set(np.unique(wiggle)) == {0, 1}
    assert abs(wiggle.mean() - 0.5) < 0.05


def test_puzzles_depend_only_on_seed_and_index():
    images = _images(6)
    whole = next(iter(_batches(images, 6, piece_size=5, seed=7)))
    pairs = list(_batches(images, 2, piece_size=5, seed=7))
    for key in ("pieces", "label", "index"):
        np.testing.assert_array_equal(np.concatenate([p[key] for p in pairs]), whole[key])
    # The stream resumed at position 4 draws the puzzles of elements 4 and 5.
    resumed = next(iter(_batches(images[4:], 2, start=4, piece_size=5, seed=7)))
    for key in ("pieces", "label", "index"):
        np.testing.assert_array_equal(resumed[key], pairs[2][key])
    other = next(iter(_batches(images, 6, piece_size=5, seed=8)))
    assert not np.array_equal(other["pieces"], whole["pieces"])


def test_bad_inputs_are_named():
    ds = tf.data.Dataset.from_tensor_slices({"rgb": _images(2)}).batch(2)
    with pytest.raises(ValueError, match="index"):
        jigsaw.jigsaw_batches(ds)
    with pytest.raises(ValueError, match="piece_size=11 does not fit"):
        _batches(_images(2), 2, piece_size=11)
    with pytest.raises(ValueError, match="piece_size"):
        _batches(_images(2), 2, piece_size=0)
    with pytest.raises(ValueError, match="seed"):
        _batches(_images(2), 2, piece_size=4, seed="1")
