"""Crop arrays of the corpus photos (``pretrain_S.npy``, ``val_S.npy``, ``holdout_S.npy``).

:func:`random_crops`: ``k`` square crops of one photo resized to ``size``, the first centred for
evaluation crops, the others of a log-uniform side.
"""
import numpy as np
from PIL import Image


def random_crops(path, k, size, seed, centre_first):
    arr = np.asarray(Image.open(path).convert("RGB"))
    h, w = arr.shape[:2]
    rng = np.random.default_rng(seed)
    out = np.empty((k, size, size, 3), np.uint8)
    m = min(h, w)
    for j in range(k):
        if centre_first and j == 0:
            s, y, x = m, (h - m) // 2, (w - m) // 2
        else:  # square side log-uniform in [min(size, m), m]
            lo = min(size, m)
            s = int(round(np.exp(rng.uniform(np.log(lo), np.log(m)))))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = Image.fromarray(arr[y:y + s, x:x + s])
        out[j] = np.asarray(crop.resize((size, size), Image.BICUBIC if s < size else Image.BOX))
    return out
