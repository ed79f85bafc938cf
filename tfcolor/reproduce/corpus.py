"""The photo corpus of a reproduction: its splits as folders, its labelled set, a fake one.

The corpus is the folder the corpus builder (``tfcolor-build-corpus``) writes: ``manifest.csv``
(one row per photo with its ``split``: ``train``, ``val``, ``holdout`` or ``labeled_only``),
``photos/ID.png`` and ``labeled/SET.npz``. Pretraining reads the ``train`` photos, the held-out
loss the ``val`` photos, the colorizer evaluation the ``holdout`` photos (scene-disjoint from
both), and the downstream protocols the labelled set, whose scene groups never enter the other
splits.
"""
import csv
import glob
import os
import shutil

import numpy as np
from PIL import Image

__all__ = ["CorpusError", "VideoCorpusError", "read_manifest", "split_folders",
           "labeled_set_path", "check_video_corpus", "make_fake_corpus", "SPLITS"]

#: The manifest splits a reproduction reads.
SPLITS = ("train", "val", "holdout")

_BUILD_HINT = ("build it with `tfcolor-build-corpus --out DIR` (in a checkout: "
               "`binaries/build_corpus --out DIR`), or pass --fake_data for a synthetic smoke run")


class CorpusError(ValueError):
    """The corpus folder is missing or incomplete (the message says how to build it)."""

    #: The option (flag) that names the folder.
    flag = "corpus"


class VideoCorpusError(CorpusError):
    """The video corpus of an arm with the video task is missing (one line, with the build
    command)."""

    flag = "video_corpus"


def check_video_corpus(path):
    """Raises :class:`VideoCorpusError` unless ``path`` (``~`` expanded) holds the video corpus'
    training records, ``train/*.tfrecord``; returns the expanded path."""
    folder = os.path.expanduser(path)
    if not glob.glob(os.path.join(folder, "train", "*.tfrecord")):
        raise VideoCorpusError(f"video corpus {path!r} has no train/*.tfrecord: build it with "
                               f"`python tools/build_video_corpus.py` (it writes "
                               f"~/.cache/tfcolor-video), or leave out the arms with video.")
    return folder


def read_manifest(corpus):
    """``{split: [photo path, ...]}`` of the corpus's ``manifest.csv`` (sorted by id)."""
    manifest = os.path.join(corpus, "manifest.csv")
    if not os.path.isfile(manifest):
        raise CorpusError(f"corpus {corpus!r} has no manifest.csv: {_BUILD_HINT}.")
    out = {s: [] for s in SPLITS}
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"id", "split"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{manifest} lacks the columns {sorted(missing)}: {_BUILD_HINT}.")
        for row in sorted(reader, key=lambda r: r["id"]):
            if row["split"] in out:
                out[row["split"]].append(os.path.join(corpus, "photos", row["id"] + ".png"))
    for split, paths in out.items():
        if not paths:
            raise CorpusError(f"{manifest} has no {split!r} photo: {_BUILD_HINT}.")
    for split, paths in out.items():
        absent = [p for p in paths if not os.path.isfile(p)]
        if absent:
            raise CorpusError(f"{len(absent)} {split} photos of {manifest} are missing, e.g. "
                              f"{absent[0]}: rebuild the corpus.")
    return out


def split_folders(corpus, out_dir):
    """One folder per split under ``out_dir`` holding links to its photos (copies where links
    are not possible); returns ``{split: folder}``. Existing links are kept (a resumed run)."""
    folders = {}
    for split, paths in read_manifest(corpus).items():
        folder = os.path.join(out_dir, split)
        os.makedirs(folder, exist_ok=True)
        for path in paths:
            link = os.path.join(folder, os.path.basename(path))
            if os.path.lexists(link):
                continue
            try:
                os.symlink(os.path.abspath(path), link)
            except OSError:
                shutil.copyfile(path, link)
        folders[split] = folder
    return folders


def labeled_set_path(corpus, name):
    """The ``labeled/NAME.npz`` of the corpus, checked for its train / val / test keys."""
    path = os.path.join(corpus, "labeled", f"{name}.npz")
    if not os.path.isfile(path):
        raise CorpusError(f"corpus {corpus!r} has no labelled set {path}: {_BUILD_HINT}.")
    with np.load(path) as data:
        missing = [k for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
                   if k not in data.files]
    if missing:
        raise CorpusError(f"{path} lacks {missing}: the reproduction needs the set's own "
                          f"train / val / test splits (rebuild the corpus).")
    return path


def _smooth_image(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(2, 8), rng.uniform(2, 8), rng.uniform(0, 6.3)
        out[..., c] = 0.5 + 0.4 * np.sin(a * yy + b * xx + p)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def make_fake_corpus(root, *, labeled_set="debphoto15", photos=12, classes=3, per_class=(4, 3, 4),
                     side=48, seed=0):
    """A tiny synthetic corpus with the layout of ``tfcolor-build-corpus`` (smooth colour
    fields as photos; a labelled set whose classes differ in colour and layout): for tests and
    smoke runs, not for results. Returns ``root``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    os.makedirs(os.path.join(root, "labeled"), exist_ok=True)
    splits = ["train"] * (photos - 4) + ["val"] * 2 + ["holdout"] * 2
    with open(os.path.join(root, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "group", "split"])
        writer.writeheader()
        for i, split in enumerate(splits):
            name = f"{i:04d}"
            Image.fromarray(_smooth_image(rng, side + 8, side + 20)).save(
                    os.path.join(root, "photos", name + ".png"))
            writer.writerow({"id": name, "group": f"g{i}", "split": split})
    arrays = {}
    for split, count in zip(("train", "val", "test"), per_class):
        y = np.repeat(np.arange(classes), count)
        x = np.stack([_smooth_image(rng, side, side) for _ in y])
        for i, label in enumerate(y):
            x[i, :, :, label % 3] = 255
            x[i, : side // (label + 2)] //= 2
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y.astype(np.int64)
    np.savez(os.path.join(root, "labeled", f"{labeled_set}.npz"),
             classes=np.array([f"class{c}" for c in range(classes)]), **arrays)
    return root
