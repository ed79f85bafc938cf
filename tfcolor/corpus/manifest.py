"""The manifests: ``manifest.csv`` (corpus photos), ``labelled_manifest.csv`` and the CSV writer.

A manifest row: id (the first 12 hex digits of the source file's sha256), package, package
version, path inside the package (``BUNDLE!MEMBER`` for a bundle member), licence as stated by
the package's copyright file, sha256 of the source file, width, height, scene group and split;
the labelled manifest adds the class.
"""
import csv
import os


MANIFEST_FIELDS = ["id", "package", "version", "path", "licence", "sha256", "width", "height",
                   "group", "split"]


LABEL_FIELDS = MANIFEST_FIELDS[:-1] + ["class", "split"]


def write_csv(path, rows, fields):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
