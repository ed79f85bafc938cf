"""The real colour photographs shipped with tfcolor: the default data of the quick start and tests.

49 photographs (41 ``"train"``, 8 ``"validation"``, split by scene) from free-licensed Debian
packages (MATE and KDE Plasma wallpapers, Lomiri wallpapers, GCompris), downscaled to a short side
of 256 pixels and stored as JPEG (quality 90), about 1.5 MB in all. Each photo keeps its own
licence (GPL, CC-BY, CC-BY-SA, CC0 or public domain), named with its author and source in
``tfcolor/assets/photos/ATTRIBUTION.txt`` and, machine readable, ``MANIFEST.csv``; they are not
covered by tfcolor's Apache-2.0 licence.

>>> files = embedded_photos()                 # train split, sorted paths
>>> ds = tfcolor.data.pretrain_dataset()      # uses them by default
"""
import csv
import os

__all__ = ["PHOTO_DIR", "SPLITS", "embedded_photos", "embedded_manifest", "attribution_text"]

#: Folder holding the photos (licensed data lives in ``tfcolor/assets``, apart from code), ``ATTRIBUTION.txt`` and ``MANIFEST.csv``.
PHOTO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                         "photos")
SPLITS = ("train", "validation", "all")


def embedded_manifest():
    """The rows of ``MANIFEST.csv``: dicts with file, split, width, height, package,
    source_path, author, license and note."""
    path = os.path.join(PHOTO_DIR, "MANIFEST.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"the embedded photo manifest {path} is missing: the tfcolor "
                                f"installation is incomplete (package data not installed)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def embedded_photos(split="train"):
    """Sorted absolute paths of the embedded photos of ``split`` (``"train"``, ``"validation"``
    or ``"all"``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = embedded_manifest()
    files = sorted(os.path.join(PHOTO_DIR, r["file"]) for r in rows
                   if split == "all" or r["split"] == split)
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} embedded photo(s) are missing, e.g. "
                                f"{missing[0]}: the tfcolor installation is incomplete")
    return files


def attribution_text():
    """The contents of ``ATTRIBUTION.txt`` (authors, sources and licences of the photos)."""
    with open(os.path.join(PHOTO_DIR, "ATTRIBUTION.txt"), encoding="utf-8") as fh:
        return fh.read()
