"""Labelled sets: the square images of the debphoto set and the existing sets.

:func:`square_image` makes a labelled image (cut-outs padded on grey, photos centre-cropped);
:func:`within_source` keeps the images of one package (a set in which the source cannot
predict the class);
:func:`write_existing_sets` writes ``fashion_mnist.npz``, ``digits_opencv.npz`` and
``gcompris5.npz`` from their packages, and ``fmnist_digits20.npz`` from the first two
(:mod:`tfcolor.corpus.fmnist_digits20`).
"""
import gzip
import hashlib
import os

import numpy as np
from PIL import Image, ImageOps

from tfcolor.corpus.bundles import unpack_rcc
from tfcolor.corpus import fmnist_digits20
from tfcolor.corpus.curation import GREY_BACKGROUND, load_image
from tfcolor.corpus.packages import path_match
from tfcolor.corpus.sources import DIGITS_FILE, FMNIST_DIR, GCOMPRIS5, GCOMPRIS5_BUNDLE


def square_image(path, size):
    """Labelled-set image: cut-outs (a grey border) padded to a square, photos centre-cropped."""
    im = Image.open(path).convert("RGB")
    arr = np.asarray(im)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    if (np.abs(border.astype(int) - GREY_BACKGROUND).max(-1) <= 2).mean() > 0.9:
        return np.asarray(ImageOps.pad(im, (size, size), Image.LANCZOS, color=GREY_BACKGROUND))
    return np.asarray(ImageOps.fit(im, (size, size), Image.LANCZOS))


def within_source(arrays, package, min_per_split=1):
    """The images of ``package`` alone, from the arrays of a debphoto set (``x``, ``y``,
    ``classes``, ``group``, ``split``, ``id``, ``package``): a labelled set whose classes all
    come from one source, so that the source predicts nothing. The splits are the set's own
    (by scene group); classes with fewer than ``min_per_split`` images of this package in any
    of train, val and test are left out, the others renumbered in order. None if fewer than
    two classes remain."""
    keep = arrays["package"] == package
    split, y = arrays["split"][keep], arrays["y"][keep]
    classes = [c for c in np.unique(y)
               if all((y[split == s] == c).sum() >= min_per_split for s in ("train", "val",
                                                                            "test"))]
    if len(classes) < 2:
        return None
    keep &= np.isin(arrays["y"], classes)
    out = {k: arrays[k][keep] for k in ("x", "group", "split", "id", "package")}
    out["y"] = np.searchsorted(np.asarray(classes), arrays["y"][keep]).astype(np.int64)
    out["classes"] = arrays["classes"][classes]
    for s in ("train", "val", "test"):
        out[f"x_{s}"], out[f"y_{s}"] = out["x"][out["split"] == s], out["y"][out["split"] == s]
    return out


def write_existing_sets(root, cache, lab, recs):
    """fashion_mnist.npz, digits_opencv.npz and gcompris5.npz as the shared builder writes them.

    gcompris5: the 140 photos of GCompris' categorisation activity (5 folder labels), centre
    cropped to 128 x 128; ``group`` / ``photo_split`` come from this build's manifests, so a
    split can respect the pretraining holdout (the "others" folder is in no manifest).
    """
    os.makedirs(lab, exist_ok=True)
    written = []
    fm = os.path.join(root, "dataset-fashion-mnist", FMNIST_DIR)
    if os.path.isdir(fm):
        def idx(name, offset):
            with gzip.open(os.path.join(fm, name)) as f:
                return np.frombuffer(f.read(), np.uint8, offset=offset)
        np.savez_compressed(
            os.path.join(lab, "fashion_mnist.npz"),
            x_train=idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            y_train=idx("train-labels-idx1-ubyte.gz", 8),
            x_test=idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            y_test=idx("t10k-labels-idx1-ubyte.gz", 8))
        written.append("fashion_mnist")
    digits = os.path.join(root, "opencv-doc", DIGITS_FILE)
    if os.path.exists(digits):   # 50 x 100 grid of 20 x 20 digits, 500 of each in order
        im = np.asarray(Image.open(digits).convert("L"))
        x = im.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(-1, 20, 20)
        np.savez_compressed(os.path.join(lab, "digits_opencv.npz"), x=x,
                            y=np.repeat(np.arange(10), 500))
        written.append("digits_opencv")
    if fmnist_digits20.write(lab):   # the 20-class stand-in for CIFAR-100, from the two above
        written.append(fmnist_digits20.NAME)
    bundle = os.path.join(root, "gcompris-qt-data", GCOMPRIS5_BUNDLE[0])
    if os.path.exists(bundle):
        files = unpack_rcc(bundle, os.path.join(cache, "rcc", "gcompris-qt-data",
                                                GCOMPRIS5_BUNDLE[0]))
        known = {r["path"]: r for r in recs if r["package"] == "gcompris-qt-data"}
        xs, ys, gs, ss = [], [], [], []
        for c, name in enumerate(GCOMPRIS5):
            for m in sorted(f for f in files if path_match(f, GCOMPRIS5_BUNDLE[1] + name + "/*")):
                r = known.get(f"{GCOMPRIS5_BUNDLE[0]}!{m}", {})
                im = load_image(files[m], for_label=True)[0]
                xs.append(np.asarray(ImageOps.fit(im, (128, 128), Image.LANCZOS)))
                ys.append(c)
                gs.append(r.get("group") or "gc5_" + hashlib.sha1(m.encode()).hexdigest()[:10])
                ss.append(r.get("split") or "labeled_only")
        if xs:
            np.savez_compressed(os.path.join(lab, "gcompris5.npz"), x=np.stack(xs),
                                y=np.array(ys), classes=np.array(GCOMPRIS5), group=np.array(gs),
                                photo_split=np.array(ss))
            written.append("gcompris5")
    return written
