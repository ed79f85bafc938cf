"""Labelled data for fine-tuning: :class:`LabeledData` and its loaders.

:class:`LabeledData` holds images (a uint8/float array ``(N, H, W[, C])``, a list of arrays of
different sizes, or a list of file paths) and labels:

* ``"classification"``: ``(N,)`` integers in [0, C);
* ``"multilabel"``: ``(N, C)`` with 1 / 0 / -1 (ignored, e.g. VOC "difficult");
* ``"segmentation"``: label maps, same forms as the images (uint8 arrays or PNG paths; palette
  PNGs are read as their indices), 255 = ignore.

Loaders: :func:`from_arrays`, :func:`load_npz` (keys ``x``/``y``, ``images``/``labels`` or
``x_train``/``y_train``/``x_test``/``y_test``; ``masks`` for segmentation), :func:`load_folder`
(one sub-folder per class), :func:`load_voc_segmentation` (``JPEGImages``,
``SegmentationClass``, ``ImageSets/Segmentation/{split}.txt``), :func:`load_tfds` (needs
``tensorflow-datasets``; clear error otherwise; presets for ``voc/2007`` and ``voc/2012``
multi-label classification) and :func:`load` dispatching on a string (``*.npz[:split]``,
``tfds:NAME[:SPLIT]``, ``voc:ROOT[:SPLIT]``, a folder).

:meth:`LabeledData.split` gives the protocol's 90/10 split (stratified by class for
single-label data, by ``groups`` when given so that near-duplicates stay on one side).

The tf.data pipelines that turn a :class:`LabeledData` into training and evaluation batches
are in :mod:`tfcolor.downstream.pipelines`.
"""
import dataclasses
import logging
import os
import typing

import numpy as np

from tfcolor.data import sources
from tfcolor.downstream import scoring

IGNORE_LABEL = scoring.IGNORE_LABEL
_LOG = logging.getLogger("tfcolor.downstream")


def _check_label_values(labels, what):
    """Integer-valued labels: numeric, finite and whole (floats such as 1.0 are fine)."""
    labels = np.asarray(labels)
    if labels.dtype == object or not (np.issubdtype(labels.dtype, np.integer)
                                      or np.issubdtype(labels.dtype, np.floating)
                                      or labels.dtype == bool):
        raise ValueError(f"{what} must be integers, got dtype {labels.dtype}.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all():
            raise ValueError(f"{what} must be integers, got NaN or infinite values.")
        if not np.equal(np.round(labels), labels).all():
            raise ValueError(f"{what} must be integers, got fractional values.")
    return labels


@dataclasses.dataclass
class LabeledData:
    """Images and labels of one labelled set (see the module docstring)."""
    images: typing.Any
    labels: typing.Any
    task: str = "classification"
    num_classes: int = 0
    class_names: typing.Optional[list] = None
    groups: typing.Optional[np.ndarray] = None

    def __post_init__(self):
        scoring.check_task(self.task)
        n = len(self.images)
        if n == 0:
            raise ValueError("LabeledData has no images.")
        if len(self.labels) != n:
            raise ValueError(f"LabeledData: {n} images but {len(self.labels)} labels.")
        if self.task == "classification":
            labels = _check_label_values(self.labels, "classification labels")
            if labels.ndim > 1 and labels.size != n:
                raise ValueError(f"classification labels must be (N,) class indices; got shape "
                                 f"{labels.shape}.")
            self.labels = labels.astype(np.int64).reshape(-1)
            if not self.num_classes:
                self.num_classes = int(self.labels.max()) + 1
            if self.labels.min() < 0 or self.labels.max() >= self.num_classes:
                raise ValueError(f"classification labels must be in [0, {self.num_classes}); "
                                 f"got [{self.labels.min()}, {self.labels.max()}].")
        elif self.task == "multilabel":
            self.labels = _check_label_values(self.labels, "multilabel labels").astype(np.int64)
            if self.labels.ndim != 2:
                raise ValueError(f"multilabel labels must be (N, C); got {self.labels.shape}.")
            self.labels[self.labels == IGNORE_LABEL] = -1
            if not np.isin(self.labels, (-1, 0, 1)).all():
                raise ValueError("multilabel labels must be 1, 0 or -1/255 (ignored).")
            self.num_classes = self.num_classes or self.labels.shape[1]
        elif not self.num_classes:
            raise ValueError("segmentation data needs num_classes (without the ignore label).")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if len(self.groups) != n:
                raise ValueError(f"groups has {len(self.groups)} entries for {n} images.")

    def __len__(self):
        return len(self.images)

    def subset(self, index):
        index = np.asarray(index, np.int64)
        pick = (lambda x: x[index]) if isinstance(self.images, np.ndarray) else (
            lambda x: [x[i] for i in index])
        labels = self.labels[index] if isinstance(self.labels, np.ndarray) else [
            self.labels[i] for i in index]
        return LabeledData(pick(self.images), labels, self.task, self.num_classes,
                           self.class_names,
                           None if self.groups is None else self.groups[index])

    def split(self, fraction=0.1, seed=0):
        """(train, held-out) with ``fraction`` of the data held out (the protocol's 90/10).

        Single-label data is stratified (each class gives ``round(fraction * n_c)`` images, at
        least one when it has two or more); with ``groups``, whole groups go to one side.
        """
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"fraction must be in (0, 1); got {fraction!r}.")
        rng = np.random.default_rng(seed)
        n = len(self)
        if self.groups is not None:
            unique = np.unique(self.groups)
            rng.shuffle(unique)
            held_groups, count = [], 0
            for g in unique:
                if count >= fraction * n:
                    break
                held_groups.append(g)
                count += int(np.sum(self.groups == g))
            held = np.where(np.isin(self.groups, held_groups))[0]
        elif self.task == "classification":
            held = []
            for c in range(self.num_classes):
                idx = np.where(self.labels == c)[0]
                rng.shuffle(idx)
                k = int(round(fraction * idx.size))
                if k == 0 and idx.size >= 2:
                    k = 1
                held.extend(idx[:k].tolist())
            held = np.array(sorted(held), np.int64)
        else:
            perm = rng.permutation(n)
            held = np.sort(perm[:max(1, int(round(fraction * n)))])
        keep = np.setdiff1d(np.arange(n), held)
        if keep.size == 0 or held.size == 0:
            raise ValueError(f"cannot split {n} examples {1 - fraction:.0%}/{fraction:.0%}: one "
                             f"side would be empty.")
        return self.subset(keep), self.subset(held)

    def per_class(self, count, seed=0):
        """A subset with the first ``count`` (shuffled) images of every class."""
        if self.task != "classification":
            raise ValueError("per_class() needs single-label classification data.")
        rng = np.random.default_rng(seed)
        chosen = []
        for c in range(self.num_classes):
            idx = np.where(self.labels == c)[0]
            rng.shuffle(idx)
            if idx.size < count:
                raise ValueError(f"class {c} has {idx.size} images, fewer than {count}.")
            chosen.extend(idx[:count].tolist())
        return self.subset(sorted(chosen))


# ----------------------------------------------------------------------------------------------
# Loaders.


def from_arrays(images, labels, task="classification", num_classes=0, class_names=None,
                groups=None):
    """LabeledData from arrays (``images`` (N, H, W[, C]) uint8 or float in [0, 1])."""
    images = np.asarray(images) if not isinstance(images, list) else images
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3); got "
                             f"{images.shape}.")
        if images.dtype != np.uint8:
            if not np.issubdtype(images.dtype, np.floating):
                raise ValueError(f"images must be uint8 or float in [0, 1]; got {images.dtype}.")
            if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
                raise ValueError("float images must be finite and in [0, 1].")
    return LabeledData(images, labels, task, num_classes, class_names, groups)


def load_npz(path, split=None, task=None, num_classes=0):
    """A ``.npz`` labelled set (see the module docstring); ``split`` selects ``x_<split>``.

    Every problem is a one-line ``ValueError`` naming the file and the key: an unreadable
    archive, a missing image or label key, pickled (object) arrays, wrong ranks or dtypes,
    NaN/infinite values, labels out of range, image and label counts that differ.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such .npz file: {path!r}.")
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as err:  # BadZipFile, OSError, ValueError, ...  pylint: disable=broad-except
        raise ValueError(f"cannot read {path!r} as an .npz archive "
                         f"({type(err).__name__}: {err}).") from None
    if split:
        xk, yk = f"x_{split}", f"y_{split}"
        if xk not in keys:
            raise ValueError(f"{path!r} has no split {split!r}: no key {xk!r} (keys: "
                             f"{sorted(keys)}).")
    else:
        for xk, yk in (("x", "y"), ("images", "labels"), ("x_train", "y_train")):
            if xk in keys:
                break
        else:
            raise ValueError(f"{path!r} holds none of the image keys x, images, x_train; keys: "
                             f"{sorted(keys)}.")

    def array(key):
        try:
            return data[key]
        except Exception as err:  # object arrays need pickle  pylint: disable=broad-except
            raise ValueError(f"{path!r}: key {key!r} cannot be read ({type(err).__name__}: "
                             f"{err}).") from None

    masks, mk = None, None
    for key in ("masks", f"masks_{split}" if split else "masks_train"):
        if key in keys:
            masks, mk = array(key), key
    if masks is None and task == "segmentation":
        raise ValueError(f"{path!r}: segmentation needs a 'masks' key; keys: {sorted(keys)}.")
    if masks is None and yk not in keys:
        raise ValueError(f"{path!r} has the images {xk!r} but no labels {yk!r}; keys: "
                         f"{sorted(keys)}.")
    images = array(xk)
    labels = masks if masks is not None and task in (None, "segmentation") else array(yk)
    lk = mk if labels is masks else yk
    if task is None:
        task = "segmentation" if masks is not None else (
            "multilabel" if labels.ndim == 2 and labels.shape[1] > 1 else "classification")
    if len(images) != len(labels):
        raise ValueError(f"{path!r}: {xk!r} has {len(images)} images but {lk!r} has "
                         f"{len(labels)} labels.")
    names = [str(c) for c in array("classes")] if "classes" in keys else None
    groups = array("group") if "group" in keys and not split else None
    try:
        return from_arrays(images, labels, task, num_classes or (len(names) if names else 0),
                           names, groups)
    except ValueError as err:
        key = xk if "images" in str(err) else lk
        raise ValueError(f"{path!r}: key {key!r}: {err}") from None


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF")


def _readable_image(path):
    """Whether ``path`` is a readable file that starts like a JPEG/PNG/GIF/BMP/WebP (a cheap
    header check at load time; broken data past the header is skipped by the pipelines)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:  # a directory, a dangling link, no permission
        return False
    return head.startswith(_MAGIC)


def load_folder(root):
    """Class-per-folder tree: every sub-folder of ``root`` is a class (sorted names).

    Files whose header is not an image (empty, text, HTML, unreadable) are left out with one
    logged line per class; a class folder with no usable image is an error naming it.
    """
    if not os.path.exists(root):
        raise FileNotFoundError(f"no such folder: {root!r}.")
    if not os.path.isdir(root):
        raise ValueError(f"{root!r} is a file, not a folder of class sub-folders.")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise ValueError(f"{root!r} has no class sub-folders (expected ROOT/CLASS/IMAGE).")
    paths, labels = [], []
    for i, name in enumerate(classes):
        folder = os.path.join(root, name)
        try:
            files = sources.list_image_files(folder)
        except sources.SourceError:
            files = []
        good = [f for f in files if _readable_image(f)]
        if len(good) < len(files):
            kept = set(good)
            bad = [f for f in files if f not in kept]
            _LOG.warning("tfcolor.downstream: class %r: left out %d file(s) that are not images "
                         "(e.g. %s)", name, len(bad), bad[0])
        if not good:
            raise ValueError(f"class folder {folder!r} holds no usable image file ("
                             f"{len(files)} file(s) with an image extension, none readable as "
                             f"an image).")
        paths.extend(good)
        labels.extend([i] * len(good))
    return LabeledData(paths, np.array(labels), "classification", len(classes), classes)


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def load_voc_segmentation(root, split="train"):
    """PASCAL VOC segmentation from its folder layout (21 classes: background + 20)."""
    listing = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    if not os.path.exists(listing):
        raise FileNotFoundError(f"{listing!r} not found: expected the VOC layout "
                                f"ROOT/ImageSets/Segmentation/{split}.txt, JPEGImages/, "
                                f"SegmentationClass/.")
    with open(listing) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise ValueError(f"{listing!r} lists no image.")
    images = [os.path.join(root, "JPEGImages", i + ".jpg") for i in ids]
    masks = [os.path.join(root, "SegmentationClass", i + ".png") for i in ids]
    missing = [p for pair in zip(images, masks) for p in pair if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{len(missing)} image/mask file(s) listed in {listing!r} are missing, "
                         f"e.g. {missing[0]!r}.")
    return LabeledData(images, masks, "segmentation", 21, ["background"] + list(VOC_CLASSES))


_TFDS_PRESETS = {
        # name prefix: (task, label key, num classes)
        "voc/": ("multilabel", "labels", 20),
}


def load_tfds(name, split="train", *, task=None, image_key="image", label_key=None,
              num_classes=0, data_dir=None, max_examples=None):
    """A TFDS builder's split, materialised in memory (small downstream sets).

    ``voc/2007`` and ``voc/2012`` default to multi-label classification from the ``labels``
    feature (``labels_no_difficult`` marks the rest of the objects as difficult: they are
    ignored, as in the VOC devkit). Other builders need ``task`` and ``label_key`` (e.g.
    ``label`` for classification, ``segmentation_mask`` for segmentation).

    Raises:
        ImportError: when ``tensorflow-datasets`` is not installed (the message says how).
    """
    try:
        # optional: tensorflow_datasets (the 'tfds' extra)
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ImportError(f"loading 'tfds:{name}' needs the tensorflow-datasets package, which "
                          f"is not installed: pip install tensorflow-datasets (or pass an .npz "
                          f"file, a class-per-folder tree or a VOC folder instead).") from None
    preset = next((p for k, p in _TFDS_PRESETS.items() if name.startswith(k)), None)
    task = task or (preset[0] if preset else "classification")
    label_key = label_key or (preset[1] if preset else "label")
    num_classes = num_classes or (preset[2] if preset else 0)
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare()
    if not num_classes and label_key in builder.info.features:
        num_classes = getattr(builder.info.features[label_key], "num_classes", 0)
    ds = builder.as_dataset(split=split)
    images, labels = [], []
    for i, ex in enumerate(tfds.as_numpy(ds)):
        if max_examples is not None and i >= max_examples:
            break
        images.append(ex[image_key])
        value = ex[label_key]
        if task == "multilabel":
            row = np.zeros(num_classes, np.int64)
            row[np.asarray(value, np.int64)] = 1
            if "labels_no_difficult" in ex:
                hard = set(np.asarray(value).tolist()) - set(
                    np.asarray(ex["labels_no_difficult"]).tolist())
                row[list(hard)] = -1
            value = row
        elif task == "segmentation":
            value = np.asarray(value).squeeze(-1) if np.ndim(value) == 3 else np.asarray(value)
        labels.append(value)
    if task != "segmentation":
        labels = np.stack(labels)
    return LabeledData(images, labels, task, num_classes)


def load(spec, split=None, task=None, num_classes=0):
    """Dispatches on a data specification string (see the module docstring)."""
    spec = str(spec)
    if spec.startswith("tfds:"):
        rest = spec[len("tfds:"):]
        name, _, tsplit = rest.partition(":")
        return load_tfds(name, tsplit or split or "train", task=task, num_classes=num_classes)
    if spec.startswith("voc:"):
        root, _, vsplit = spec[len("voc:"):].partition(":")
        return load_voc_segmentation(os.path.expanduser(root), vsplit or split or "train")
    spec = os.path.expanduser(spec)   # "~/.cache/tfcolor-corpus/...": flag files name the home
    path, _, nsplit = spec.partition(":") if ".npz:" in spec else (spec, "", "")
    if path.endswith(".npz"):
        return load_npz(path, nsplit or split, task=task, num_classes=num_classes)
    if os.path.isdir(spec):
        return load_folder(spec)
    what = "a file" if os.path.exists(spec) else "no such file or folder"
    raise ValueError(f"cannot read labelled data {spec!r} ({what}): expected FILE.npz[:split], "
                     f"a class-per-folder directory, voc:ROOT[:split] or tfds:NAME[:split].")
