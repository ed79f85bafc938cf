"""Jigsaw 2x2 puzzles: four pieces of an image, shuffled by one of the 24 permutations of four.

The puzzle of chapter 4 of Larsson's thesis (the jigsaw proxy task of Noroozi & Favaro 2016,
reduced from 3x3 to 2x2 so that every layer, fc6 and fc7 included, is trained): a source image
of ``S x S`` pixels (thesis: 500) is divided into a 2x2 grid of cells of ``S // 2`` pixels (250),
and one square piece of ``piece_size`` pixels (thesis: 227, AlexNet's input) is cut from each
cell. The spare pixels (250 - 227 = 23 per cell) are the "wiggle room": each piece sits at a
random offset inside its cell, drawn uniformly per piece and axis from ``[0, S // 2 -
piece_size]`` (the released code, ``selfsup/multi/methods/jigsaw.py``, does the same, with one
offset per cell shared by the whole batch; here every image draws its own), so that neighbouring
pieces are 0 to 46 pixels apart and edge continuity alone does not solve the puzzle.

Cells are numbered in row-major order (0 top-left, 1 top-right, 2 bottom-left, 3
bottom-right). The label ``y`` is an index into :data:`PERMUTATIONS`, the 24 permutations of
``(0, 1, 2, 3)`` in lexicographic order (``itertools.permutations``); slot ``k`` of the network's
input holds the piece cut from cell ``PERMUTATIONS[y][k]``. So ``y = 0`` is the unshuffled image,
and the pieces go back to their cells with the inverse permutation (``argsort``).

Randomness is stateless and keyed by ``(seed, index)``, ``index`` being the element's position in
the pretraining pipeline's record stream (``include_index=True``): an image's label and offsets do
not depend on the batching, and a run resumed at a stream position sees exactly the puzzles an
uninterrupted run would.

The source images are the pretraining pipeline's crops (:func:`tfcolor.data.pretrain_dataset`
with ``crop_size = S``, the colour crop ``"rgb"`` yielded): how the thesis obtains its 500 x 500
images is not specified; :class:`tfcolor.tasks.jigsaw.JigsawTask` scales the short side to ``S``
and takes a random ``S x S`` crop with a random mirror by default.
"""
import itertools

import numpy as np
import tensorflow as tf

__all__ = ["GRID", "PIECES", "PERMUTATIONS", "SOURCE_SIZE", "PIECE_SIZE", "puzzle",
           "jigsaw_batches", "reassemble"]

#: Pieces per side of the puzzle (2x2).
GRID = 2
#: Pieces per puzzle.
PIECES = GRID * GRID
#: The classes: every permutation of the four cells, lexicographic; (24, 4) int32.
PERMUTATIONS = np.array(list(itertools.permutations(range(PIECES))), np.int32)
#: Side of the source image the pieces are cut from (thesis: 500).
SOURCE_SIZE = 500
#: Side of a piece (thesis: 227, the canonical AlexNet input).
PIECE_SIZE = 227


def _check_sizes(image_size, piece_size):
    for name, value in (("image_size", image_size), ("piece_size", piece_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if GRID * piece_size > image_size:
        raise ValueError(f"piece_size={piece_size} does not fit a {GRID}x{GRID} grid of a "
                         f"{image_size} x {image_size} image (cells of {image_size // GRID} "
                         "pixels)")


def puzzle(image, seed, piece_size=PIECE_SIZE):
    """One puzzle of one square image.

    Args:
        image: (S, S, C) tensor with a static S.
        seed: stateless seed, shape (2,) integers (e.g. ``(seed, index)``).
        piece_size: side of a piece, at most ``S // 2``.

    Returns:
        ``(pieces, label, offsets)``: the (4, piece_size, piece_size, C) pieces in slot order
        (slot ``k`` holds cell ``PERMUTATIONS[label][k]``), the int32 label in [0, 24), and the
        (4, 2) int32 top-left corners (row, column) in ``image`` of the pieces of cells 0..3.
    """
    image = tf.convert_to_tensor(image)
    size = image.shape[0]
    if image.shape.rank != 3 or size is None or image.shape[1] != size:
        raise ValueError(f"puzzle expects a square (S, S, C) image with a static size; got "
                         f"{image.shape}")
    _check_sizes(int(size), piece_size)
    cell = int(size) // GRID
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    label = tf.random.stateless_uniform([], seeds[0], 0, len(PERMUTATIONS), dtype=tf.int32)
    wiggle = tf.random.stateless_uniform([PIECES, 2], seeds[1], 0, cell - piece_size + 1,
                                         dtype=tf.int32)
    corners = np.array([[(c // GRID) * cell, (c % GRID) * cell] for c in range(PIECES)],
                       np.int32)
    offsets = corners + wiggle
    channels = image.shape[-1]
    pieces = tf.stack([tf.slice(image, [offsets[c, 0], offsets[c, 1], 0],
                                [piece_size, piece_size, -1]) for c in range(PIECES)])
    order = tf.gather(tf.constant(PERMUTATIONS), label)
    pieces = tf.ensure_shape(tf.gather(pieces, order),
                             [PIECES, piece_size, piece_size, channels])
    return pieces, label, offsets


def reassemble(pieces, label):
    """The pieces of :func:`puzzle` put back in cell order (NumPy): ``(..., 4, p, p, C)`` and
    labels ``(...)`` -> ``(..., 4, p, p, C)`` with cell ``c`` at position ``c``."""
    pieces = np.asarray(pieces)
    label = np.asarray(label)
    inverse = np.argsort(PERMUTATIONS[label], axis=-1)
    return np.take_along_axis(pieces, inverse[..., None, None, None], axis=-4)


def jigsaw_batches(dataset, *, piece_size=PIECE_SIZE, seed=0, color=True, include_offsets=False):
    """Maps pretraining batches ``{"rgb", "gray", "index", ...}`` to jigsaw batches.

    Args:
        dataset: batches of the pretraining pipeline with the colour crop and the stream index
            (``targets_on_device=True``, ``include_index=True``); the crops are the source images.
        piece_size: side of a piece, at most ``crop_size // 2``.
        seed: seed of the labels and offsets; each image's puzzle is drawn from ``(seed,
            index)``.
        color: cut the pieces from the colour crop (``"rgb"``, the thesis' input); False: from
            the grey one (``"gray"``, the colorizer's input).
        include_offsets: also yield ``"offsets"`` (B, 4, 2), the pieces' top-left corners in the
            crop in cell order (for tests and pictures).

    Returns:
        Batches ``{"pieces": (B, 4, p, p, C) float32, "label": (B,) int32, "index"}``.

    Raises:
        ValueError: the batches lack a key, or the pieces do not fit the crop.
    """
    image_key = "rgb" if color else "gray"
    spec = dataset.element_spec
    missing = [k for k in (image_key, "index") if k not in spec]
    if missing:
        raise ValueError(f"jigsaw_batches needs batches with {image_key!r} and 'index' "
                         f"(targets_on_device=True, include_index=True); missing {missing}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    size = spec[image_key].shape[1]
    if size is None:
        raise ValueError(f"jigsaw_batches needs a static crop size; got {spec[image_key].shape}")
    _check_sizes(int(size), piece_size)

    def make(batch):
        images, index = batch[image_key], batch["index"]
        seeds = tf.stack([tf.fill(tf.shape(index), tf.cast(seed, tf.int64)),
                          tf.cast(index, tf.int64)], axis=-1)
        pieces, label, offsets = tf.map_fn(
                lambda args: puzzle(args[0], args[1], piece_size), (images, seeds),
                fn_output_signature=(images.dtype, tf.int32, tf.int32))
        out = {"pieces": pieces, "label": label, "index": index}
        if include_offsets:
            out["offsets"] = offsets
        return out

    return dataset.map(make, num_parallel_calls=tf.data.AUTOTUNE)
