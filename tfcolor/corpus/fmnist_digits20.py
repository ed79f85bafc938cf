"""``fmnist_digits20``: a 20-class labelled set at 32 x 32 x 3, built offline from two Debian
packages, that stands in for CIFAR-100 in the chapter's controlled experiments (METHOD_CH4.md
§8.4: Tables 4.2-4.6). It is *not* CIFAR: it is smaller, grey, and far easier.

Classes 0-9 are Fashion-MNIST's ten (``dataset-fashion-mnist``, 28 x 28 grey), classes 10-19
OpenCV's handwritten digits 0-9 (``opencv-doc``'s ``digits.png``, 20 x 20 grey, 500 of each).
Every image is zero-padded to 32 x 32 (Fashion-MNIST by 2 pixels a side; a digit by 6, which
keeps MNIST's layout of a 20 x 20 digit box centred in a larger black field) and repeated into
three channels, ``uint8``; no resampling.

Splits (per class, balanced; every image appears at most once; a test image equal byte for
byte to a train image is skipped):

* ``train``: ``train_per_class`` (default 300) images of each class, 6,000 in all;
  Fashion-MNIST's drawn from its official training set.
* ``test``: ``test_per_class`` (default 200) of each class, 4,000 in all; Fashion-MNIST's drawn
  from its official test set. The digits are only 500 a class, so they bound the split sizes
  (``train_per_class + test_per_class <= 500``): the defaults give the digits all 500 and keep
  the test split 40% of the set and balanced, twice CIFAR-100's 100 test images a class, so a
  test accuracy's standard error stays below 0.8 points.

The draw is a seeded permutation per class and source (``seed``, default 0): the same inputs and
seed give the same arrays. The train split's order is shuffled so that its **first 80%**
holds exactly 80% of every class (``train_per_class * 4 / 5``), the last 20% the rest.

How the CIFAR-100 protocol maps (METHOD_CH4.md §8.4):

* Table 4.2 "all 50,000 samples" = the whole ``train`` split; "first 40,000" / "last 10,000" =
  the first 80% / last 20% of ``train`` (:func:`protocol_split`: ``"pretrain"`` and
  ``"probe"``; every class at 80% / 20%, where CIFAR's first 40,000 are 80% only in
  expectation); "the CIFAR-100 test set" = ``test``.
* Table 4.5: the pretraining 80% is split into M tasks by :func:`task_subsets`, by class (x% of
  the 20 classes, each with all its pretraining samples: ∪̇25% = 4 tasks of 5 classes, ∪̇50% =
  2 of 10, ∪̇10% = 10 of 2; "∪ 50%" = 4 tasks each drawing 10 classes independently, so a class
  may be in no task) or by sample (∪̇25% = 4 disjoint quarters of the samples, all classes);
  the probe is trained on the last 20% and tested on ``test``. Class subsets are a seeded
  permutation of all 20 classes, so a task usually mixes clothes and digits.

Written by ``binaries/build_corpus`` (the existing-sets step) as ``labeled/fmnist_digits20.npz``
next to ``fashion_mnist.npz`` and ``digits_opencv.npz``, with the keys ``x_train``,
``y_train``, ``x_test``, ``y_test`` (so ``tfcolor.downstream.datasets.load`` reads
``fmnist_digits20.npz:train``), ``classes`` (20 names), ``source_train`` / ``source_test``
(where each image came from, e.g. ``fmnist_train:123``, ``digits:4567``) and ``seed``.
"""
import os

import numpy as np

__all__ = ["NAME", "CLASSES", "build", "write", "load", "protocol_split", "task_subsets"]

NAME = "fmnist_digits20"
FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot")
CLASSES = FASHION_CLASSES + tuple(f"digit {d}" for d in range(10))
SIZE = 32
PRETRAIN_FRACTION = 0.8


def _pad(images):
    """(N, h, w) grey -> (N, 32, 32, 3), centred on black."""
    n, h, w = images.shape
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out = np.zeros((n, SIZE, SIZE), np.uint8)
    out[:, top:top + h, left:left + w] = images
    return np.repeat(out[..., None], 3, axis=-1)


def _draw(rng, indices, count, images, taken, what):
    """``count`` of ``indices`` in a seeded order, skipping images whose bytes are in ``taken``."""
    chosen = []
    for i in rng.permutation(indices):
        key = images[i].tobytes()
        if key in taken:
            continue
        taken.add(key)
        chosen.append(int(i))
        if len(chosen) == count:
            return np.array(chosen, np.int64)
    raise ValueError(f"{what}: only {len(chosen)} distinct images for {count} wanted")


def build(fashion, digits, *, train_per_class=300, test_per_class=200, seed=0):
    """The set as a dict of arrays (see the module docstring).

    Args:
        fashion: ``{"x_train", "y_train", "x_test", "y_test"}`` of Fashion-MNIST (28 x 28).
        digits: ``{"x", "y"}`` of OpenCV's digits (20 x 20, 500 a class).
        train_per_class, test_per_class: images of each class in each split.
        seed: the draw's seed.
    """
    train_per_class, test_per_class = int(train_per_class), int(test_per_class)
    if train_per_class < 5 or test_per_class < 1:
        raise ValueError("train_per_class must be >= 5 and test_per_class >= 1")
    rng = np.random.default_rng(seed)
    parts = {"train": ([], [], []), "test": ([], [], [])}
    taken = set()
    # Train first: a test image equal to a train image is skipped.
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        xs, ys, srcs = parts[split]
        fx, fy = np.asarray(fashion[f"x_{split}"]), np.asarray(fashion[f"y_{split}"])
        for c in range(10):
            idx = _draw(rng, np.flatnonzero(fy == c), count, fx, taken,
                        f"Fashion-MNIST {split} class {c}")
            xs.append(_pad(fx[idx]))
            ys.append(np.full(count, c, np.int64))
            srcs.append(np.array([f"fmnist_{split}:{i}" for i in idx]))
    dx, dy = np.asarray(digits["x"]), np.asarray(digits["y"])
    for d in range(10):
        members = np.flatnonzero(dy == d)
        if len(members) < train_per_class + test_per_class:
            raise ValueError(f"digit {d} has {len(members)} images, fewer than train_per_class "
                             f"+ test_per_class = {train_per_class + test_per_class}")
        tr = _draw(rng, members, train_per_class, dx, taken, f"digit {d} train")
        te = _draw(rng, np.setdiff1d(members, tr), test_per_class, dx, taken, f"digit {d} test")
        for split, idx in (("train", tr), ("test", te)):
            xs, ys, srcs = parts[split]
            xs.append(_pad(dx[idx]))
            ys.append(np.full(len(idx), 10 + d, np.int64))
            srcs.append(np.array([f"digits:{i}" for i in idx]))
    out = {"classes": np.array(CLASSES), "seed": np.int64(seed)}
    for split, (xs, ys, srcs) in parts.items():
        x, y, src = np.concatenate(xs), np.concatenate(ys), np.concatenate(srcs)
        order = _protocol_order(rng, y) if split == "train" else rng.permutation(len(y))
        out[f"x_{split}"], out[f"y_{split}"], out[f"source_{split}"] = (
            x[order], y[order], src[order])
    return out


def _protocol_order(rng, y):
    """A shuffle whose first 80% holds 80% of every class."""
    head, tail = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(len(members) * PRETRAIN_FRACTION))
        head.append(members[:cut])
        tail.append(members[cut:])
    head, tail = np.concatenate(head), np.concatenate(tail)
    return np.concatenate([rng.permutation(head), rng.permutation(tail)])


def write(labeled_dir, *, seed=0, **kwargs):
    """Builds the set from ``fashion_mnist.npz`` and ``digits_opencv.npz`` in ``labeled_dir``
    and writes ``fmnist_digits20.npz`` there; returns its path, or None if a source is
    missing."""
    paths = [os.path.join(labeled_dir, f"{n}.npz") for n in ("fashion_mnist", "digits_opencv")]
    if not all(os.path.exists(p) for p in paths):
        return None
    with np.load(paths[0]) as fashion, np.load(paths[1]) as digits:
        data = build(dict(fashion), dict(digits), seed=seed, **kwargs)
    path = os.path.join(labeled_dir, f"{NAME}.npz")
    np.savez_compressed(path, **data)
    return path


def load(path):
    """The written set as ``{key: NumPy array}`` (``path``: the ``.npz`` or the directory that
    holds it)."""
    if os.path.isdir(path):
        path = os.path.join(path, f"{NAME}.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {NAME} set at {path!r}: run binaries/build_corpus (it "
                                "writes labeled/fmnist_digits20.npz)")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def protocol_split(data, part):
    """``(x, y)`` of a part of the CIFAR protocol: ``"all"`` (the train split, Table 4.2's
    "all 50,000"), ``"pretrain"`` (its first 80%, "first 40,000"), ``"probe"`` (its last 20%,
    "last 10,000") or ``"test"``."""
    if part == "test":
        return data["x_test"], data["y_test"]
    x, y = data["x_train"], data["y_train"]
    cut = int(round(len(y) * PRETRAIN_FRACTION))
    slices = {"all": slice(None), "pretrain": slice(None, cut), "probe": slice(cut, None)}
    if part not in slices:
        raise ValueError(f"part must be all, pretrain, probe or test, got {part!r}")
    return x[slices[part]], y[slices[part]]


def task_subsets(y, num_tasks, fraction, *, by="class", disjoint=True, seed=0):
    """Table 4.5's tasks: a list of ``num_tasks`` index arrays into ``y`` (sorted).

    Args:
        y: the labels of the samples to split (e.g. ``protocol_split(data, "pretrain")[1]``).
        num_tasks: M.
        fraction: x / 100: each task's share of the classes (``by="class"``) or of the
            samples (``by="sample"``).
        by: ``"class"`` (a task gets its classes' samples, all of them) or ``"sample"``.
        disjoint: ∪̇ (a partition: ``num_tasks * fraction <= 1``) or ∪ (each task draws
            independently, tasks may overlap).
        seed: the draw's seed.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if by not in ("class", "sample"):
        raise ValueError(f"by must be 'class' or 'sample', got {by!r}")
    if num_tasks < 1 or not 0 < fraction <= 1:
        raise ValueError(f"need num_tasks >= 1 and 0 < fraction <= 1, got {num_tasks}, "
                         f"{fraction}")
    if disjoint and num_tasks * fraction > 1 + 1e-9:
        raise ValueError(f"{num_tasks} disjoint tasks of {fraction:.0%} do not fit in 100%")
    units = np.unique(y) if by == "class" else np.arange(len(y))
    per_task = int(round(len(units) * fraction))
    if per_task < 1:
        raise ValueError(f"{fraction:.0%} of {len(units)} {by}es is nothing")
    if disjoint:
        order = rng.permutation(units)
        picks = [order[m * per_task:(m + 1) * per_task] for m in range(num_tasks)]
    else:
        picks = [rng.choice(units, per_task, replace=False) for _ in range(num_tasks)]
    if by == "sample":
        return [np.sort(p) for p in picks]
    return [np.flatnonzero(np.isin(y, p)) for p in picks]
