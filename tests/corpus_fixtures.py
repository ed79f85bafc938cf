"""Test data of the corpus builder's tests: photo-like and drawing-like images, a Debian
package built here (dpkg-deb), a Qt resource bundle and a Jigzo puzzle."""
import csv
import io
import struct
import subprocess
import zlib

import numpy as np
from PIL import Image

from tfcolor import corpus

def photo(seed, h=96, w=128):
    """Photograph-like: a smooth random colour field plus sensor noise."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.uniform(0, 255, (4, 5, 3)).astype(np.uint8))
    field = np.asarray(low.resize((w, h), Image.BICUBIC), np.float64)
    return np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)


def drawing(h=96, w=128):
    """Clip-art-like: three flat fills."""
    arr = np.full((h, w, 3), (250, 250, 240), np.uint8)
    arr[10:60, 20:70] = (200, 30, 30)
    arr[50:90, 60:120] = (30, 60, 200)
    return arr


def jpeg(arr, quality=92, orientation=None):
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: fake/other*.jpg
Copyright: 2021 Someone Else
License: CC0-1.0
 Public domain dedication.
"""


def make_deb(tmp_path, files, name="fake-photos", version="1.2-3"):
    """Builds ``name_version_all.deb`` holding ``files`` {path under usr/share: bytes}."""
    tree = tmp_path / "pkgtree"
    for rel, data in files.items():
        p = tree / "usr/share" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    doc = tree / "usr/share/doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(COPYRIGHT)
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        f"Description: test photos\n")
    debs = tmp_path / "out" / "cache" / "debs"
    debs.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree),
                    str(debs / f"{name}_{version}_all.deb")], check=True, capture_output=True)
    return tree


def fake_files():
    first = photo(0)
    brighter = np.clip(first.astype(int) + 4, 0, 255).astype(np.uint8)
    files = {
        "backgrounds/fake/photo.jpg": jpeg(first),
        "backgrounds/fake/photo_copy.jpg": jpeg(first),                    # exact duplicate
        "backgrounds/fake/photo_reencoded.jpg": jpeg(brighter, quality=70),  # near-duplicate
        "backgrounds/fake/drawing.png": png(drawing()),
        "backgrounds/fake/rotated.jpg": jpeg(photo(1, 80, 120), orientation=6),
        "backgrounds/fake/scene_a1.jpg": jpeg(photo(2)),  # one scene, two unlike shots
        "backgrounds/fake/scene_a2.jpg": jpeg(photo(3)),
    }
    for i in range(12):
        files[f"backgrounds/fake/other{i:02d}.jpg"] = jpeg(photo(100 + i))
    files["wallpapers/keep_me.jpg"] = jpeg(photo(50))
    files["wallpapers/artwork.jpg"] = jpeg(photo(51))   # photo-like, but not in keep_only
    for k, cls in enumerate(("cats", "cars")):
        for i in range(10):
            files[f"stamps/{cls}/{i}.jpg"] = jpeg(photo(1000 + 100 * k + i, 90, 90))
        files[f"stamps/{cls}/cartoon/toon.png"] = png(drawing())  # sub-folder: not matched
    return files


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rcc_v1(files):
    """A Qt resource bundle (format version 1) with ``files`` {name: bytes} in one folder."""
    names, name_off = b"", {}
    for n in ["res"] + sorted(files):
        name_off[n] = len(names)
        enc = n.encode("utf-16-be")
        names += struct.pack(">HI", len(n), 0) + enc
    data, data_off = b"", {}
    for n in sorted(files):
        data_off[n] = len(data)
        blob = struct.pack(">I", len(files[n])) + zlib.compress(files[n])
        data += struct.pack(">I", len(blob)) + blob
    # node 0: root dir (1 child: node 1); node 1: dir "res" with the files; nodes 2..: files
    tree = struct.pack(">IHII", 0, 2, 1, 1)
    tree += struct.pack(">IHII", name_off["res"], 2, len(files), 2)
    for n in sorted(files):
        tree += struct.pack(">IHHHI", name_off[n], 1, 0, 0, data_off[n])
    header = 20
    return (b"qres" + struct.pack(">IIII", 1, header, header + len(tree),
                                  header + len(tree) + len(data)) + tree + data + names)


def pzl(name="bike-3x4", region=(0, 0, 90, 120), atlas_size=(256, 256), image_line=True):
    """A Jigzo puzzle file: header, texture map, thumbnail, piece mask and atlas, in which the
    photo (``region``, x y w h) is red with a dark one-pixel frame and the pieces are blue."""
    x, y, w, h = region
    atlas = np.zeros(atlas_size[::-1] + (3,), np.uint8)
    atlas[...] = (20, 40, 220)
    atlas[y:y + h, x:x + w] = (30, 30, 30)
    atlas[y + 1:y + h - 1, x + 1:x + w - 1] = (220, 40, 30)
    thumb = jpeg(np.full((40, 30, 3), 128, np.uint8))
    mask = png(np.zeros((64, 64, 3), np.uint8))
    text = "#texture map data\ncrop000 100 0 50 60 20 20 0 0 0 0\n"
    if image_line:
        text += f"image {x} {y} {w} {h} 1 1    \n"
    head = f"PzlF\n0.1\n{name}\nhttp://example.org/\n{name}.map\n{len(text)}\n{text}"
    blob = head.encode()
    for member, data in ((f"{name}-t.jpg", thumb), (f"{name}.png", mask),
                         (f"{name}.jpg", jpeg(atlas, quality=95))):
        blob += f"{member}\n{len(data)}\n".encode() + data
    return blob


def sources():
    """The corpus and labelled sources of :func:`fake_files`' package."""
    corpus_sources = [corpus.Source("fake-photos", ("usr/share/backgrounds/fake/*",),
                                    group_by=r"/(scene_[a-z])\d\.jpg$"),
                      corpus.Source("fake-photos", ("usr/share/wallpapers/*",),
                                    keep_only=("*/keep_*",))]
    labelled = [corpus.Source("fake-photos", (f"usr/share/stamps/{c}/*",), label=c)
                for c in ("cats", "cars")]
    return corpus_sources, labelled
