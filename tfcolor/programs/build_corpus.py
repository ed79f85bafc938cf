"""Builds the real-photo corpus and a labelled colour classification set from Debian packages.

Re-runnable and cached: ``apt-get download`` fetches each package once into ``CACHE/debs``, only
the image paths (and the package's copyright file) are unpacked into ``CACHE/root/PACKAGE`` and
Qt resource bundles (``.rcc``) are unpacked into ``CACHE/rcc``; a second run is offline::

    apt-get update                                   # once, on a fresh machine
    binaries/build_corpus [--out ~/.cache/tfcolor-corpus] [--manifest-dir DIR]

Installed, the command is ``tfcolor-build-corpus``. It needs ``apt-get`` and ``dpkg-deb`` (a
Debian or Ubuntu machine); about a minute once the packages are cached.

Stages:

1. **collect**: every file of a package that matches a :class:`Source` pattern (the curated list
   in :data:`SOURCES`: wallpaper collections, landscape panoramas, photo puzzles, educational data);
2. **filter**: keep *photographs* only. Each image is measured on a nearest-neighbour thumbnail
   of at most 256 x 256 pixels (see :func:`measure`) and rejected, with the reason recorded in
   ``rejected.csv``, when

   * ``small``: its short side is below ``--min-side`` (labelled set: ``--label-min-side``);
   * ``alpha``: more than 2% of it is transparent after cropping to its fully opaque rows
     (cut-outs, icons; the labelled set keeps cut-outs and lays them on grey);
   * ``grey``: colourfulness (Hasler & Suesstrunk 2003) below ``--min-colourfulness``;
   * ``few_colours``: fewer than ``--min-colours`` distinct colours at 5 bits per channel
     (drawings, renders with flat fills);
   * ``flat``: more than ``--max-flat`` of the pixels have an exactly zero gradient to their
     right and lower neighbours (flat fills; camera noise makes this rare in photographs);
   * ``palette``: the 8 most frequent 5-bit colours cover more than ``--max-top8`` of the image;
   * ``curated``: outside the ``keep_only`` list of its source or named in
     :data:`CURATED_DROP`, both decided by looking at the contact sheets (``--contact-sheets``
     writes them) -- artwork and renders that pass the statistics.

   The statistics reject drawings, icons, cut-outs and grey images reliably; they cannot tell a
   smooth render from a smooth photograph (a shallow-focus photo has few colours too), hence
   the curation. Labelled candidates come from folders of photographs and are judged on size,
   emptiness, grey and colour count only (studio shots on white are flat by design);
3. **dedup**: exact duplicates (same sha256) and near-identical copies (16 x 16 difference
   hash within ``--dup-bits`` of 256) keep one copy: the labelled one, else the largest;
4. **group**: near-duplicates (within ``--group-bits``; same-scene pairs measured <= 17 bits
   here, unrelated pairs >= 33) and explicit same-scene rules (the
   ``group_by`` of a source: slices of one panorama, one monument in two activities, one wallpaper
   in several sizes) are merged into scene groups;
5. **split** by group with a fixed ``--seed``: each group's place comes from a hash of the seed and
   the group name, so adding photos never moves the old ones; groups that hold a photo of the
   labelled set are ``labeled_only`` (never used for pretraining or selection);
6. **write** ``OUT/photos/ID.png`` (EXIF-rotated, short side <= ``--max-side``), ``manifest.csv``
   (id, package, package version, path inside the package, licence as stated by the package's
   copyright file, sha256 of the source file, width, height, group, split), ``rejected.csv``,
   ``OUT/labeled/debphotoK.npz`` (K classes; ``x``, ``y``, ``classes``, ``group``, ``split``
   and ``x_train`` / ``y_train`` / ``x_val`` / ... / ``y_test``, split by group inside each
   class) with its ``labelled_manifest.csv``, the existing sets of ``/work/shared/data``
   (``gcompris5.npz``, ``fashion_mnist.npz``, ``digits_opencv.npz``, same keys),
   ``near_duplicates.txt``, ``report.json`` (counts per package / split / class, licences,
   wall time), and with ``--sizes`` the crop arrays ``pretrain_S.npy`` (``--crops-per-photo``
   random crops per train photo) / ``val_S.npy`` / ``holdout_S.npy`` (``--eval-crops`` per
   photo, the first centred) with ``*_ids.txt``.

The photos are not committed: ``--out`` may not lie inside a git work tree. ``--manifest-dir``
writes a second copy of the two manifests (for instance into the repository).
"""
import csv
import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
import time
import types
import zlib
from collections import Counter, defaultdict
from multiprocessing import Pool

import numpy as np
from absl import flags
from PIL import Image, ImageOps

from tfcolor.programs import common

FLAGS = flags.FLAGS
Image.MAX_IMAGE_PIXELS = None
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
MANIFEST_FIELDS = ["id", "package", "version", "path", "licence", "sha256", "width", "height",
                   "group", "split"]
LABEL_FIELDS = MANIFEST_FIELDS[:-1] + ["class", "split"]
GREY_BACKGROUND = (128, 128, 128)
PZL_MEMBER = "image.png"   # the photo of a Jigzo puzzle, as a bundle member


@dataclasses.dataclass(frozen=True)
class Source:
    """Files of one Debian package to consider.

    ``patterns`` are ``fnmatch`` patterns on paths inside the package (``usr/share/...``); a
    pattern ``BUNDLE.rcc!MEMBER`` selects members of a Qt resource bundle and
    ``PUZZLE.pzl!image.png`` the photo of a Jigzo puzzle (:func:`pzl_photo`). ``group_by`` is a
    regular expression whose first group, found in the path, names a same-scene group.
    ``label`` puts the matches in the labelled set under that class instead of the corpus.
    ``exclude`` skips paths; ``keep_only`` (curated on the contact sheets) rejects, as
    ``curated``, every match outside it: the artwork of a mixed wallpaper collection.
    """
    package: str
    patterns: tuple
    group_by: str = ""
    label: str = ""
    exclude: tuple = ()
    keep_only: tuple = ()


_GC = "usr/share/gcompris-qt/rcc/{0}.rcc!gcompris/src/activities/{0}/resource/"
_TP = "usr/share/tuxpaint/stamps/"
_WALL = r"^(.*?)(?:[-_](?:\d+x\d+|\d+k|wide|dark|light|day|night|morning|evening|l|d))?\.\w+$"

# Unlabelled corpus: wallpapers, landscape panoramas, photo puzzles, educational photos, sample
# images. Mixed collections list their photographs in ``keep_only`` (decided on the contact
# sheets); inspected and left out whole: ukui-wallpapers, gnome-backgrounds, xfdesktop4-data,
# lomiri-wallpapers, desktop-base, sway-backgrounds (artwork and renders), extremetuxracer-data
# (rendered sky boxes, composited textures), pysiogame, brainparty-data, ulcc, GCompris lang
# words (drawings), GCompris paintings / details (photographs of paintings), stellarium-data
# nebulae (astronomical false colour), hugin-data (screenshots), stellarium ocean (render),
# GCompris photo_hunter / instruments / chronos (SVG drawings), kdegames-mahjongg-data-kf5
# (SVG), mypaint-data-extras (paper textures), digikam-data, kphotoalbum (screenshots),
# rawtherapee-data (no photos).
_PLASMA_PHOTOS = ("BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite",
                  "OneStandsOut", "Path", "summer_1am", "ColdRipple", "Grey")
_LXQT_PHOTOS = ("Butterfly-Kenneth-Wimer", "Valendas", "after-the-rain", "appleflower",
                "butterfly", "cloud", "drop", "flowers", "fog", "this-is-not-windows")
_SKIMAGE = "usr/lib/python3/dist-packages/skimage/data/"
SOURCES = [
    Source("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*",)),
    Source("plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images*/*",),
           group_by=r"wallpapers/([^/]+)/",
           keep_only=tuple(f"*/wallpapers/{n}/*" for n in _PLASMA_PHOTOS)),
    Source("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*",),
           exclude=("*/analogpattern_*", "*/umang_*", "*/warty-final-*")),
    Source("lomiri-wallpapers-20.04", ("usr/share/backgrounds/Kleiber_*",)),
    Source("lxqt-themes", ("usr/share/lxqt/wallpapers/*",),
           keep_only=tuple(f"*/wallpapers/{n}.*" for n in _LXQT_PHOTOS)),
    Source("palapeli-data", ("usr/share/palapeli/collection/*",)),
    # horizon panoramas, several slices per site: one group per landscape
    Source("stellarium-data", tuple(f"usr/share/stellarium/landscapes/{n}/*" for n in (
        "garching", "grossmugl", "guereins", "hurricane", "trees")),
           group_by=r"landscapes/([^/]+)/"),
    Source("tuxpaint-data", ("usr/share/tuxpaint/templates/*",)),
    Source("opencv-doc", ("usr/share/doc/opencv-doc/examples/data/*",
                          "usr/share/doc/opencv-doc/examples/hfs/data/*",
                          "usr/share/doc/opencv-doc/examples/text/*",
                          "usr/share/doc/opencv-doc/examples/alphamat/input_images/*",
                          "usr/share/doc/opencv-doc/examples/dnn_superres/*",
                          "usr/share/doc/opencv-doc/examples/reg/*"),
           # stereo pairs and sequences of one scene
           group_by=r"/((?:aloe|left|right|graf|box|basketball|Blender_Suzanne|aero|"
                    r"stuff|rubberwhale|lena|leuven|home|pic|sudoku)[A-Za-z]*?)"
                    r"\d*[LR]?(?:_\w+)?\.\w+$",
           exclude=("*/starry_night.jpg", "*/notes.png", "*/HappyFish.jpg")),
    Source("python3-skimage", tuple(_SKIMAGE + n for n in (
        "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
        "rocket.jpg")), group_by=r"/(motorcycle)_"),
    Source("python3-sklearn", ("usr/lib/python3/dist-packages/sklearn/datasets/images/*",)),
    Source("imagemagick-6-doc", ("usr/share/doc/imagemagick-6-common/html/images/bluebells_*",
                                 "usr/share/doc/imagemagick-6-common/html/images/rose.jpg"),
           group_by=r"/(bluebells)_"),
    Source("scribus-template", ("usr/share/scribus/templates/*/*.jpg",),
           keep_only=tuple(f"*/{n}.jpg" for n in ("nature", "sunset", "teriyaki", "pizza"))),
    # photo puzzles: the photo is cut out of each puzzle's texture atlas; penguin-3x2 is
    # CC-BY-NC-SA-1.0 (non-commercial), left out so the corpus stays free to ship a model from
    Source("jigzo-data", ("usr/share/games/jigzo/puzzles/*/*.pzl!" + PZL_MEMBER,),
           exclude=("usr/share/games/jigzo/puzzles/*/penguin-3x2.pzl!*",)),
    Source("gcompris-qt-data", tuple(_GC.format(a) + "*" for a in (
        "erase", "clickgame", "lang", "louis-braille", "leftright", "babyshapes", "solar_system"))
           + (_GC.format("lang") + "*/*",)),
]

# Labelled set: class -> folders of real photos (tuxpaint stamps are cut-outs, laid on grey).
# Sub-folders are not included (tuxpaint keeps its drawings in .../cartoon/).
_CLASS_FOLDERS = {
    "mammals": [("tuxpaint-stamps-default", _TP + "animals/mammals/*"),
                ("tuxpaint-stamps-default", _TP + "animals/mammals/*/*"),
                ("tuxpaint-stamps-default", _TP + "animals/marsupials/*"),
                ("gcompris-qt-data", _GC.format("explore_world_animals") + "animals/*"),
                ("gcompris-qt-data", _GC.format("explore_farm_animals") + "animals/*")],
    "birds": [("tuxpaint-stamps-default", _TP + "animals/birds/*")],
    "fish_and_sea_life": [("tuxpaint-stamps-default", _TP + "animals/fish/*"),
                          ("tuxpaint-stamps-default", _TP + "animals/shellfish/*"),
                          ("gcompris-qt-data", "usr/share/gcompris-qt/rcc/categorization.rcc!"
                           "gcompris/src/activities/categorization/resource/images/fishes/*")],
    "insects": [("tuxpaint-stamps-default", _TP + "animals/insects/*")],
    "fruit_and_vegetables": [("tuxpaint-stamps-default", _TP + "food/fruit/*"),
                             ("tuxpaint-stamps-default", _TP + "food/vegetables/*"),
                             ("tuxpaint-stamps-default", _TP + "food/nuts/*")],
    "plants": [("tuxpaint-stamps-default", _TP + "plants/*"),
               ("tuxpaint-stamps-default", _TP + "plants/flowers/*"),
               ("tuxpaint-stamps-default", _TP + "plants/mushrooms/*"),
               ("tuxpaint-stamps-default", _TP + "plants/trees/*")],
    "monuments": [("gcompris-qt-data", "usr/share/gcompris-qt/rcc/categorization.rcc!"
                   "gcompris/src/activities/categorization/resource/images/monuments/*"),
                  ("gcompris-qt-data", _GC.format("explore_monuments") + "*/*")],
    "tools": [("gcompris-qt-data", "usr/share/gcompris-qt/rcc/categorization.rcc!"
               "gcompris/src/activities/categorization/resource/images/tools/*"),
              ("tuxpaint-stamps-default", _TP + "household/tools/*")],
    "renewable_energy": [("gcompris-qt-data", "usr/share/gcompris-qt/rcc/categorization.rcc!"
                          "gcompris/src/activities/categorization/resource/images/renewable/*")],
    "musical_instruments": [("tuxpaint-stamps-default", _TP + "hobbies/music/*/*"),
                            ("gcompris-qt-data", _GC.format("explore_world_music") + "*/*")],
    "vehicles": [("tuxpaint-stamps-default", _TP + "vehicles/*"),
                 ("tuxpaint-stamps-default", _TP + "vehicles/*/*"),
                 ("tuxpaint-stamps-default", _TP + "vehicles/flight/planes/*"),
                 ("tuxpaint-stamps-default", _TP + "military/vehicles/*")],
    "coins": [("tuxpaint-stamps-default", _TP + "symbols/money/*/coins/*"),
              ("tuxpaint-stamps-default", _TP + "symbols/money/japanese/*")],
    "household_objects": [("tuxpaint-stamps-default", _TP + "household/*"),
                          ("tuxpaint-stamps-default", _TP + "household/dishes/*"),
                          ("tuxpaint-stamps-default", _TP + "household/dishes/utensils/*")],
    "sports_equipment": [("tuxpaint-stamps-default", _TP + "sports/*")],
    "lab_equipment": [("kalzium-data", "usr/share/kalzium/data/toolpics/*")],
}
# Drawings and renders inside the photo folders (seen on the contact sheets).
_LABEL_DROP = tuple(_TP + n for n in (
    "animals/fish/bluegroper.*", "animals/fish/butterflyfish.*", "animals/fish/clownfish.*",
    "animals/fish/coraltrout.*", "animals/fish/dolphinfish.*", "animals/fish/stripedfish.*",
    "animals/mammals/aquatic/whale.*", "animals/mammals/hedgehog.*", "vehicles/*balloon*",
    "vehicles/*/*junk*", "vehicles/*/*walnut*", "vehicles/*/*sedan_police*")) + (
    "*_mirror.*",)   # tuxpaint's mirrored copies of a stamp
LABEL_SOURCES = [Source(pkg, (pattern,), label=cls, exclude=_LABEL_DROP,
                        group_by=r"monuments/.*?([a-z_]+?)\d*\.\w+$" if cls == "monuments" else "")
                 for cls, folders in _CLASS_FOLDERS.items() for pkg, pattern in folders]

# Dropped by name after looking at the contact sheets (fnmatch on "package:path"): artwork,
# renders and synthetic images that pass the statistics. KEEP: photographs that the flat /
# palette tests reject (none needed so far).
CURATED_DROP = ("opencv-doc:*/examples/data/*noise*", "opencv-doc:*/examples/data/pic*",
                "tuxpaint-data:*/templates/frog*", "tuxpaint-data:*/templates/street*",
                "tuxpaint-data:*/templates/tux_*", "tuxpaint-data:*/templates/worldmap*")
CURATED_KEEP = ()
# The labelled sets that /work/shared/data/build_corpus.py also writes, same keys.
_FMNIST = "usr/share/datasets/fashion-mnist/"
_DIGITS = "usr/share/doc/opencv-doc/examples/data/digits.png"
_GC5 = ("usr/share/gcompris-qt/rcc/categorization.rcc",
        "gcompris/src/activities/categorization/resource/images/")
GCOMPRIS5 = ("fishes", "monuments", "others", "renewable", "tools")
EXISTING_SET_MEMBERS = {"dataset-fashion-mnist": {_FMNIST + "*"}, "opencv-doc": {_DIGITS},
                        "gcompris-qt-data": {_GC5[0]}}

# Packages whose /usr/share/doc folder is a symlink to another package's: copyright from there.
COPYRIGHT_FROM = {"imagemagick-6-doc": "imagemagick-6-common"}


# ----------------------------------------------------------------------------------------------
# Packages: download, unpack, copyright.


@functools.lru_cache(maxsize=None)
def _glob_regex(pattern):
    return re.compile("".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                              for c in pattern))


def path_match(path, pattern):
    """Shell-style match in which ``*`` and ``?`` never cross a ``/`` (unlike fnmatch)."""
    return _glob_regex(pattern).fullmatch(path) is not None


def deb_file(debs_dir, package):
    """The newest cached ``PACKAGE_*.deb`` in ``debs_dir`` or None."""
    hits = sorted(f for f in os.listdir(debs_dir) if f.startswith(package + "_")
                  and f.endswith(".deb")) if os.path.isdir(debs_dir) else []
    return os.path.join(debs_dir, hits[-1]) if hits else None


def download(packages, debs_dir, log=print):
    """``apt-get download`` every package not cached yet (no dependencies, nothing installed)."""
    os.makedirs(debs_dir, exist_ok=True)
    missing = [p for p in packages if deb_file(debs_dir, p) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        run = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir,
                             capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"apt-get download failed ({run.returncode}): "
                               f"{run.stderr.strip()[-2000:]}\n(run `apt-get update` once first)")


def _member_patterns(sources):
    """package -> fnmatch patterns of the files to unpack (bundles for ``!`` patterns)."""
    out = defaultdict(set)
    for s in sources:
        out[s.package].add(f"usr/share/doc/{s.package}/copyright")
        for p in s.patterns:
            out[s.package].add(p.split("!", 1)[0])
    return out


def unpack(deb, patterns, dest):
    """Unpack the regular files of ``deb`` matching ``patterns`` into ``dest`` (cached).

    Returns the package version. Uses ``dpkg-deb --fsys-tarfile`` and Python's tarfile, so only
    the wanted members are written; a marker file records what was unpacked from which .deb.
    """
    marker = os.path.join(dest, ".tfcolor-unpacked.json")
    want = {"deb": os.path.basename(deb), "patterns": sorted(patterns)}
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
        if {k: done.get(k) for k in want} == want:
            return done["version"]
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if member.isfile() and any(path_match(name, p) for p in patterns):
                target = os.path.join(dest, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    if proc.wait():
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed ({proc.returncode}).")
    with open(marker, "w") as f:
        json.dump(dict(want, version=version), f)
    return version


def package_version(dest):
    try:
        with open(os.path.join(dest, ".tfcolor-unpacked.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def parse_copyright(text):
    """[(file patterns, licence)] of a machine-readable (DEP-5) copyright file, in file order.

    A file that is not DEP-5 gives one catch-all entry whose licence names what the text states.
    """
    stanzas = [s for s in re.split(r"\n\s*\n", text) if s.strip()]
    out = []
    for stanza in stanzas:
        fields, key = {}, None
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m and not line[0].isspace():
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
            elif key:
                fields[key] += " " + line.strip()
        if "files" in fields and fields.get("license"):
            out.append((fields["files"].split(), fields["license"].split()[0] if fields["license"]
                        else ""))
    if out:
        return out
    found = sorted(set(re.findall(r"\b(CC[- ]BY(?:[- ]SA)?[- ]?\d(?:\.\d)?|GPL-?\d\+?|"
                                  r"LGPL-?\d(?:\.\d)?\+?|public domain|CC0)", text, re.I)))
    return [(["*"], "not DEP-5; states: " + (", ".join(found) or "see copyright"))]


def licence_for(entries, path):
    """Licence of the last stanza whose pattern matches a suffix or the name of ``path``.

    A bundle member (``BUNDLE!MEMBER``) also takes the stanzas that name its bundle file.
    """
    names = [path] + ([path.split("!", 1)[0]] if "!" in path else [])
    found = ""
    for patterns, licence in entries:
        for pat in patterns:
            for name in names:
                parts = name.replace("!", "/").split("/")
                suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
                if pat == "*" or any(fnmatch.fnmatchcase(s, pat) for s in suffixes) or (
                        "*" not in pat.rsplit("/", 1)[-1]
                        and pat.rsplit("/", 1)[-1] == parts[-1]):
                    found = licence
    return found or "see copyright"


# ----------------------------------------------------------------------------------------------
# Qt resource bundles (GCompris ships its images inside .rcc files).


def rcc_members(blob):
    """Yield ``(path, bytes)`` for every file in a Qt binary resource bundle."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset):
        (length,) = struct.unpack_from(">H", blob, names + offset)
        return blob[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, base)
        path = f"{prefix}/{name_at(name_offset)}".lstrip("/") if index else ""
        if flags & 2:  # directory: child count, first child
            count, first = struct.unpack_from(">II", blob, base + 6)
            stack.extend((first + k, path) for k in range(count))
            continue
        (offset,) = struct.unpack_from(">I", blob, base + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4:data + offset + 4 + size]
        if flags & 4:  # zstd-compressed: not used by the bundles read here
            continue
        if flags & 1:  # zlib with a 4-byte length prefix
            payload = zlib.decompress(payload[4:])
        yield path, payload


def unpack_rcc(bundle, dest):
    """Unpack the images of a bundle into ``dest`` once; returns {member path: file}."""
    index = os.path.join(dest, ".members.json")
    if os.path.exists(index) and os.path.getmtime(index) >= os.path.getmtime(bundle):
        with open(index) as f:
            return json.load(f)
    out = {}
    with open(bundle, "rb") as f:
        blob = f.read()
    for member, payload in rcc_members(blob):
        if member.lower().endswith(IMAGE_EXTS):
            target = os.path.join(dest, member)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(payload)
            out[member] = target
    os.makedirs(dest, exist_ok=True)
    with open(index, "w") as f:
        json.dump(out, f)
    return out


# ----------------------------------------------------------------------------------------------
# Jigzo puzzles (``.pzl``): the photo sits in a texture atlas next to the cut pieces.



def pzl_photo(blob):
    """The photograph of a Jigzo puzzle file as a PIL image.

    Layout (jigzo 0.6): the lines ``PzlF``, version, name, URL, map name and map size, the map
    text (``cropNNN ...`` piece lines and ``image X Y W H ...``: where the whole photo lies in
    the atlas), then files, each as a name line, a size line and the bytes: a thumbnail
    ``NAME-t.jpg``, the piece mask ``NAME.png`` and the atlas ``NAME.jpg``.
    """
    import io  # pylint: disable=import-outside-toplevel
    if not blob.startswith(b"PzlF\n"):
        raise ValueError("not a Jigzo puzzle (no 'PzlF' magic)")
    pos, lines = 0, []
    for _ in range(6):
        end = blob.index(b"\n", pos)
        lines.append(blob[pos:end].decode("latin-1").strip())
        pos = end + 1
    name, map_size = lines[2], int(lines[5])
    text = blob[pos:pos + map_size].decode("latin-1")
    pos += map_size
    m = re.search(r"^image\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text, re.M)
    if not m:
        raise ValueError("Jigzo puzzle without an 'image' line in its map")
    x, y, w, h = (int(v) for v in m.groups())
    if w > 64 and h > 64:   # the atlas draws a dark frame around the photo: cut it off
        x, y, w, h = x + 3, y + 3, w - 6, h - 6
    files = {}
    while pos < len(blob):
        end = blob.index(b"\n", pos)
        member = blob[pos:end].decode("latin-1").strip()
        end2 = blob.index(b"\n", end + 1)
        size = int(blob[end + 1:end2])
        files[member] = blob[end2 + 1:end2 + 1 + size]
        pos = end2 + 1 + size
    if name + ".jpg" not in files:
        raise ValueError(f"Jigzo puzzle without its atlas {name}.jpg")
    atlas = Image.open(io.BytesIO(files[name + ".jpg"])).convert("RGB")
    if x + w > atlas.width or y + h > atlas.height or w < 1 or h < 1:
        raise ValueError(f"image region {x},{y} {w}x{h} outside the {atlas.size} atlas")
    return atlas.crop((x, y, x + w, y + h))


def unpack_pzl(puzzle, dest):
    """Write the photo of a Jigzo puzzle to ``dest/image.png`` once; returns {member: file}."""
    target = os.path.join(dest, PZL_MEMBER)
    if not (os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(puzzle)):
        with open(puzzle, "rb") as f:
            im = pzl_photo(f.read())
        os.makedirs(dest, exist_ok=True)
        tmp = target + ".tmp"
        im.save(tmp, format="PNG")
        os.replace(tmp, target)
    return {PZL_MEMBER: target}


def unpack_bundle(bundle, dest):
    """Members of a bundle file: a Qt resource bundle or a Jigzo puzzle (by extension)."""
    return unpack_pzl(bundle, dest) if bundle.endswith(".pzl") else unpack_rcc(bundle, dest)


# ----------------------------------------------------------------------------------------------
# Candidates.


def collect(sources, root, rcc_cache):
    """Candidate files: dicts with package, version, path, file, label, group_key."""
    out, seen = [], set()
    for s in sources:
        pkg_root = os.path.join(root, s.package)
        if not os.path.isdir(pkg_root):
            continue
        version = package_version(pkg_root)
        files = []
        for dirpath, _, names in os.walk(pkg_root):
            for n in names:
                full = os.path.join(dirpath, n)
                if not os.path.islink(full):
                    files.append(os.path.relpath(full, pkg_root).replace(os.sep, "/"))
        files.sort()
        for pattern in s.patterns:
            if "!" in pattern:
                bundle_pat, member_pat = pattern.split("!", 1)
                hits = []
                for bundle in (f for f in files if path_match(f, bundle_pat)):
                    members = unpack_bundle(os.path.join(pkg_root, bundle),
                                            os.path.join(rcc_cache, s.package, bundle))
                    hits += [(f"{bundle}!{m}", members[m]) for m in sorted(members)
                             if path_match(m, member_pat)]
            else:
                hits = [(f, os.path.join(pkg_root, f)) for f in files
                        if path_match(f, pattern)]
            for path, local in hits:
                key = (s.package, path)
                if (not path.lower().endswith(IMAGE_EXTS) or key in seen
                        or any(path_match(path, e) for e in s.exclude)):
                    continue
                seen.add(key)
                m = re.search(s.group_by, path) if s.group_by else None
                curated = bool(s.keep_only) and not any(fnmatch.fnmatchcase(path, k)
                                                         for k in s.keep_only)
                out.append(dict(package=s.package, version=version, path=path, file=local,
                                label=s.label, curated_out=curated,
                                group_key=f"{s.package}:{m.group(1).lower()}" if m else ""))
    return out


def _opaque_rows(alpha):
    """(top, bottom) of the longest run of rows that are >= 99% opaque, or None."""
    good = (alpha >= 250).mean(1) >= 0.99
    best, start = None, None
    for i, g in enumerate(np.append(good, False)):
        if g and start is None:
            start = i
        elif not g and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def load_image(path, max_side=None, for_label=False):
    """RGB PIL image, EXIF-rotated; transparency cropped away (corpus) or laid on grey (labels).

    Returns (image, original (w, h), transparent fraction after the crop).
    """
    with Image.open(path) as im:
        if max_side and im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))  # DCT-domain downscale of huge JPEGs
        size = im.size
        orientation = im.getexif().get(0x0112, 1)
        im = ImageOps.exif_transpose(im)
        if orientation in (5, 6, 7, 8):
            size = size[::-1]
        if im.mode in ("P", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
        transparent = 0.0
        if im.mode == "RGBA":
            alpha = np.asarray(im.getchannel("A"))
            if not for_label and (alpha < 250).mean() > 0.02:
                rows = _opaque_rows(alpha)
                if rows and rows[1] - rows[0] >= 0.25 * alpha.shape[0]:
                    im = im.crop((0, rows[0], im.size[0], rows[1]))
                    alpha = alpha[rows[0]:rows[1]]
            transparent = float((alpha < 250).mean())
            background = Image.new("RGBA", im.size, GREY_BACKGROUND + (255,))
            im = Image.alpha_composite(background, im)
        return im.convert("RGB"), size, transparent


def thumbnail(im, area=256 * 256):
    """Nearest-neighbour downscale to at most ``area`` pixels (keeps flat fills exactly flat)."""
    w, h = im.size
    s = min(1.0, (area / (w * h)) ** 0.5)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST)
    return np.asarray(im)


def measure(arr):
    """Statistics that separate photographs from drawings (uint8 RGB thumbnail)."""
    a = arr.astype(np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    q = (arr >> 3).astype(np.int32)
    codes = (q[..., 0] << 10 | q[..., 1] << 5 | q[..., 2]).ravel()
    counts = np.bincount(codes, minlength=1 << 15)
    top8 = float(np.sort(counts)[-8:].sum() / codes.size)
    d = arr.astype(np.int16)
    flat = float(((np.abs(d[:-1, :-1] - d[:-1, 1:]).max(-1) == 0)
                  & (np.abs(d[:-1, :-1] - d[1:, :-1]).max(-1) == 0)).mean())
    return dict(colourfulness=round(colourfulness, 2), colours=int((counts > 0).sum()),
                top8=round(top8, 4), flat=round(flat, 4))


def dhash(arr, n=16):
    """256-bit difference hash of the grey image (packed uint8)."""
    g = np.asarray(Image.fromarray(arr).convert("L").resize((n + 1, n), Image.BILINEAR), np.int16)
    return np.packbits((g[:, 1:] > g[:, :-1]).ravel())


@dataclasses.dataclass
class FilterConfig:
    min_side: int = 256
    label_min_side: int = 40
    max_transparent: float = 0.02
    min_colourfulness: float = 8.0
    min_colours: int = 64
    max_flat: float = 0.25
    max_top8: float = 0.75


def _curated(rec, patterns):
    return any(fnmatch.fnmatchcase(f"{rec['package']}:{rec['path']}", p) for p in patterns)


def reject_reasons(rec, cfg):
    """Why a measured candidate is not a usable photograph (empty list: keep it).

    Labelled candidates come from folders of photographs (cartoon sub-folders are not listed)
    and are often cut-outs on a white or transparent background, so only the size, emptiness,
    grey and posterisation tests apply to them.
    """
    out = []
    label = bool(rec["label"])
    if min(rec["width"], rec["height"]) < (cfg.label_min_side if label else cfg.min_side):
        out.append("small")
    if rec["transparent"] > (0.9 if label else cfg.max_transparent):
        out.append("alpha")
    if rec["colourfulness"] < cfg.min_colourfulness:
        out.append("grey")
    if rec["colours"] < cfg.min_colours:
        out.append("few_colours")
    if not label and not _curated(rec, CURATED_KEEP):
        if rec["flat"] > cfg.max_flat:
            out.append("flat")
        if rec["top8"] > cfg.max_top8:
            out.append("palette")
    if _curated(rec, CURATED_DROP) or rec.get("curated_out"):
        out.append("curated")
    return out


def analyse(job):
    """Worker: hash, measure and normalise one candidate (cached by sha256 in ``staging``)."""
    rec, staging, max_side = job
    rec = dict(rec)
    try:
        with open(rec["file"], "rb") as f:
            rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        rec.update(error=f"{type(e).__name__}: {e}", width=0, height=0)
        return rec
    key = os.path.join(staging, rec["sha256"][:16] + ("-label" if rec["label"] else ""))
    rec["staged"] = key + ".png"
    if os.path.exists(key + ".json") and os.path.exists(rec["staged"]):
        with open(key + ".json") as f:
            rec.update(json.load(f))
        return rec
    try:
        im, (w, h), transparent = load_image(rec["file"], 2 * max_side, bool(rec["label"]))
    except Exception as e:  # pylint: disable=broad-except  # any decoder error: skip, reported
        rec.update(error=f"{type(e).__name__}: {e}", width=0, height=0)
        return rec
    arr = thumbnail(im)
    stats = dict(width=w, height=h, transparent=round(transparent, 4), **measure(arr),
                 dhash=dhash(arr).tolist())
    s = max_side / min(im.size)
    if s < 1:
        im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                       Image.LANCZOS)
    tmp = f"{key}.{os.getpid()}.tmp"
    im.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, rec["staged"])
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, key + ".json")
    rec.update(stats)
    return rec


# ----------------------------------------------------------------------------------------------
# Dedup, groups, splits.


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def hamming_matrix(hashes):
    bits = np.unpackbits(np.asarray(hashes, np.uint8), axis=1).astype(np.int16)
    return bits.shape[1] - (bits @ bits.T + (1 - bits) @ (1 - bits).T)


def dedup_and_group(recs, dup_bits, group_bits):
    """Drops duplicates (sets ``duplicate_of``) and sets ``group`` on the kept records."""
    # labelled photos first, then largest first: the copy kept is labelled, else the largest
    order = sorted(range(len(recs)), key=lambda i: (not recs[i]["label"],
                                                    -recs[i]["width"] * recs[i]["height"],
                                                    recs[i]["package"], recs[i]["path"]))
    recs[:] = [recs[i] for i in order]
    by_sha, kept = {}, []
    for r in recs:
        if r["sha256"] in by_sha:
            r["duplicate_of"] = by_sha[r["sha256"]]
        else:
            by_sha[r["sha256"]] = f"{r['package']}:{r['path']}"
            kept.append(r)
    dist = hamming_matrix([r["dhash"] for r in kept]) if kept else np.zeros((0, 0))
    alive = np.ones(len(kept), bool)
    for i in range(len(kept)):
        if not alive[i]:
            continue
        for j in np.nonzero(alive & (dist[i] <= dup_bits))[0]:
            if j > i:
                alive[j] = False
                kept[j]["duplicate_of"] = f"{kept[i]['package']}:{kept[i]['path']}"
                kept[j]["dup_bits"] = int(dist[i, j])
    index = np.nonzero(alive)[0]
    kept = [kept[i] for i in index]
    dist = dist[np.ix_(index, index)]
    uf = _UnionFind(len(kept))
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(dist <= group_bits, 1))):
        uf.union(i, j)
        pairs.append((int(dist[i, j]), kept[i]["path"], kept[j]["path"]))
    first = {}
    for i, r in enumerate(kept):
        if r["group_key"]:
            uf.union(i, first.setdefault(r["group_key"], i))
    for i, r in enumerate(kept):
        root = kept[uf.find(i)]
        name = f"{root['package']}:{root['path']}".encode()
        r["group"] = "g" + hashlib.sha1(name).hexdigest()[:10]
    return kept, pairs


def unit_hash(seed, name):
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16) / 16 ** 15


def split_corpus(recs, seed, val_frac, holdout_frac):
    """train / val / holdout per group; groups holding a labelled photo are ``labeled_only``."""
    labelled_groups = {r["group"] for r in recs if r["label"]}
    for r in recs:
        u = unit_hash(seed, r["group"])
        r["split"] = ("labeled_only" if r["group"] in labelled_groups else
                      "holdout" if u < holdout_frac else
                      "val" if u < holdout_frac + val_frac else "train")


def split_labelled(recs, seed, test_frac, val_frac):
    """Per class, whole groups in a seeded order: test first, then val, the rest train."""
    by_class = defaultdict(lambda: defaultdict(list))
    for r in recs:
        by_class[r["label"]][r["group"]].append(r)
    for cls, groups in by_class.items():
        names = sorted(groups, key=lambda g: unit_hash(f"{seed}:{cls}", g))
        n = sum(len(v) for v in groups.values())
        done = 0
        for g in names:
            split = ("test" if done < test_frac * n else
                     "val" if done < (test_frac + val_frac) * n else "train")
            for r in groups[g]:
                r["split"] = split
            done += len(groups[g])


# ----------------------------------------------------------------------------------------------
# Outputs.


def square_image(path, size):
    """Labelled-set image: cut-outs (a grey border) padded to a square, photos centre-cropped."""
    im = Image.open(path).convert("RGB")
    arr = np.asarray(im)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    if (np.abs(border.astype(int) - GREY_BACKGROUND).max(-1) <= 2).mean() > 0.9:
        return np.asarray(ImageOps.pad(im, (size, size), Image.LANCZOS, color=GREY_BACKGROUND))
    return np.asarray(ImageOps.fit(im, (size, size), Image.LANCZOS))


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


def contact_sheet(items, path, cell=128, cols=12):
    """PNG grid of thumbnails, each captioned with its index in ``items`` [(file, caption)]."""
    from PIL import ImageDraw  # pylint: disable=import-outside-toplevel
    rows = max(1, -(-len(items) // cols))
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 12)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (file, caption) in enumerate(items):
        with Image.open(file) as im:
            im = im.convert("RGB")
            im.thumbnail((cell, cell))
            x, y = (i % cols) * cell, (i // cols) * (cell + 12)
            sheet.paste(im, (x + (cell - im.size[0]) // 2, y))
            draw.text((x + 2, y + cell), f"{i} {caption}"[:22], fill=(0, 0, 0))
    sheet.save(path)


def write_existing_sets(root, cache, lab, recs):
    """fashion_mnist.npz, digits_opencv.npz and gcompris5.npz as the shared builder writes them.

    gcompris5: the 140 photos of GCompris' categorisation activity (5 folder labels), centre
    cropped to 128 x 128; ``group`` / ``photo_split`` come from this build's manifests, so a
    split can respect the pretraining holdout (the "others" folder is in no manifest).
    """
    import gzip  # pylint: disable=import-outside-toplevel
    os.makedirs(lab, exist_ok=True)
    written = []
    fm = os.path.join(root, "dataset-fashion-mnist", _FMNIST)
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
    digits = os.path.join(root, "opencv-doc", _DIGITS)
    if os.path.exists(digits):   # 50 x 100 grid of 20 x 20 digits, 500 of each in order
        im = np.asarray(Image.open(digits).convert("L"))
        x = im.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(-1, 20, 20)
        np.savez_compressed(os.path.join(lab, "digits_opencv.npz"), x=x,
                            y=np.repeat(np.arange(10), 500))
        written.append("digits_opencv")
    bundle = os.path.join(root, "gcompris-qt-data", _GC5[0])
    if os.path.exists(bundle):
        files = unpack_rcc(bundle, os.path.join(cache, "rcc", "gcompris-qt-data", _GC5[0]))
        known = {r["path"]: r for r in recs if r["package"] == "gcompris-qt-data"}
        xs, ys, gs, ss = [], [], [], []
        for c, name in enumerate(GCOMPRIS5):
            for m in sorted(f for f in files if path_match(f, _GC5[1] + name + "/*")):
                r = known.get(f"{_GC5[0]}!{m}", {})
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


def _inside_git_tree(path):
    p = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(p, ".git")):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent


def _write_csv(path, rows, fields):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


FILTER_HELP = {
    "min_side": "Photos: reject (small) when the short side is below this.",
    "label_min_side": "Labelled set: reject (small) when the short side is below this.",
    "max_transparent": "Reject (alpha) when more than this fraction is transparent after "
                       "cropping to the fully opaque rows.",
    "min_colourfulness": "Reject (grey) below this colourfulness (Hasler & Suesstrunk 2003).",
    "min_colours": "Reject (few_colours) below this many distinct 5-bit colours.",
    "max_flat": "Reject (flat) when more than this fraction of the pixels has a zero gradient.",
    "max_top8": "Reject (palette) when the 8 most frequent 5-bit colours cover more than this.",
}
#: Flags whose value must lie in [0, 1).
FRACTIONS = ("val-frac", "holdout-frac", "label-test-frac", "label-val-frac")


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (at run time, like every program). Flag names
    use dashes (``--manifest-dir``); the values are read by :func:`args_from_flags`."""
    if "manifest-dir" in fv:
        return fv
    common.flag_section(fv, "Output")
    flags.DEFINE_string("out", os.path.expanduser("~/.cache/tfcolor-corpus"),
                        "Output directory (never inside a git work tree).", flag_values=fv)
    flags.DEFINE_string("manifest-dir", None,
                        "Also write manifest.csv and labelled_manifest.csv here.", flag_values=fv)
    flags.DEFINE_integer("max-side", 512, "Short side of the stored photos (at least 32).",
                         flag_values=fv)
    flags.DEFINE_boolean("contact-sheets", False,
                         "Write OUT/sheets/*.png: kept and rejected images per package.",
                         flag_values=fv)
    common.flag_section(fv, "Packages")
    flags.DEFINE_string("cache", None, "Downloaded .debs and unpacked trees (default: OUT/cache).",
                        flag_values=fv)
    flags.DEFINE_boolean("no-download", False,
                         "Use only the .debs already in CACHE/debs (offline).", flag_values=fv)
    flags.DEFINE_boolean("no-existing-sets", False, "Skip labeled/fashion_mnist.npz, "
                         "digits_opencv.npz and gcompris5.npz.", flag_values=fv)
    flags.DEFINE_integer("workers", 2, "Processes measuring the candidate images.",
                         lower_bound=1, flag_values=fv)
    common.flag_section(fv, "Splits and near-duplicates")
    flags.DEFINE_integer("seed", 0, "Seed of the splits (a group's split is a hash of the seed "
                         "and the group name) and of the crops.", flag_values=fv)
    flags.DEFINE_float("val-frac", 0.1, "Fraction of the photo groups in val.", flag_values=fv)
    flags.DEFINE_float("holdout-frac", 0.15, "Fraction of the photo groups in holdout.",
                       flag_values=fv)
    flags.DEFINE_integer("dup-bits", 10, "dHash distance (of 256) at or below which two images "
                         "are one photo.", flag_values=fv)
    flags.DEFINE_integer("group-bits", 24, "dHash distance at or below which two photos share "
                         "a scene group.", flag_values=fv)
    common.flag_section(fv, "Labelled set")
    flags.DEFINE_string("label-name", "", "Name of the labelled .npz (default: debphotoK, K = "
                        "the number of classes).", flag_values=fv)
    flags.DEFINE_integer("label-size", 128, "Side of the square labelled images (at least 8).",
                         flag_values=fv)
    flags.DEFINE_float("label-test-frac", 0.66, "Fraction of each class's groups in test.",
                       flag_values=fv)
    flags.DEFINE_float("label-val-frac", 0.12, "Fraction of each class's groups in val.",
                       flag_values=fv)
    common.flag_section(fv, "Crop arrays")
    flags.DEFINE_string("sizes", "", "Also write crop arrays for these sizes, e.g. 64,128.",
                        flag_values=fv)
    flags.DEFINE_integer("crops-per-photo", 32, "Random crops per train photo.", flag_values=fv)
    flags.DEFINE_integer("eval-crops", 4, "Crops per val / holdout photo (the first is the "
                         "centre crop).", flag_values=fv)
    common.flag_section(fv, "Photo filter")
    define = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
    for f in dataclasses.fields(FilterConfig):
        define[type(f.default)](f.name.replace("_", "-"), f.default, FILTER_HELP[f.name],
                                flag_values=fv)
    common.flag_section(fv, None)
    return fv


def args_from_flags(fv):
    """The settings of :func:`build` (attributes named as the flags, with underscores;
    ``existing_sets`` is the negation of ``--no-existing-sets``) from parsed flags.

    Raises ValueError with a one-line message naming the flag at fault.
    """
    values = {name.replace("-", "_"): fv[name].value for name in define_flags(flags.FlagValues())}
    values["existing_sets"] = not values.pop("no_existing_sets")
    a = types.SimpleNamespace(**values)
    for name in FRACTIONS:
        value = getattr(a, name.replace("-", "_"))
        if not 0 <= value < 1:
            raise ValueError(f"--{name} must be in [0, 1); got {value}")
    if a.val_frac + a.holdout_frac >= 1 or a.label_test_frac + a.label_val_frac >= 1:
        raise ValueError("the split fractions leave no training data (--val-frac + "
                         "--holdout-frac and --label-test-frac + --label-val-frac must be < 1)")
    if a.max_side < 32 or a.label_size < 8:
        raise ValueError("--max-side must be >= 32 and --label-size >= 8")
    if _inside_git_tree(a.out):
        raise ValueError(f"--out {a.out} is inside the git work tree {_inside_git_tree(a.out)}: "
                         "the photos are not committed; pass a directory outside it "
                         "(--manifest-dir may be inside)")
    a.cache = a.cache or os.path.join(a.out, "cache")
    return a


def parse_args(argv=()):
    """:func:`args_from_flags` of the command-line arguments ``argv`` (without the program
    name), parsed on a private FlagValues; a bad value exits like the program (status 2)."""
    fv = define_flags(flags.FlagValues())
    try:
        fv(["build_corpus"] + list(argv))
        return args_from_flags(fv)
    except (ValueError, flags.Error) as e:
        common.die(str(e))


def build(a, sources=None, label_sources=None, log=print):
    """Runs every stage; returns the report dict (also written to OUT/report.json)."""
    t0 = time.time()
    sources = SOURCES if sources is None else sources
    label_sources = LABEL_SOURCES if label_sources is None else label_sources
    every = list(label_sources) + list(sources)  # a file in both is a labelled photo
    debs, root = os.path.join(a.cache, "debs"), os.path.join(a.cache, "root")
    packages = sorted({s.package for s in every})
    doc_of = {p: COPYRIGHT_FROM.get(p, p) for p in packages}
    if not a.no_download:
        extra = set(EXISTING_SET_MEMBERS) if a.existing_sets else set()
        download(sorted(set(packages) | set(doc_of.values()) | extra), debs, log)
    members = _member_patterns(every)
    if a.existing_sets:
        for p, patterns in EXISTING_SET_MEMBERS.items():
            members[p] = members.get(p, set()) | patterns | {f"usr/share/doc/{p}/copyright"}
    for p in set(doc_of.values()) - set(packages):
        members[p] = {f"usr/share/doc/{p}/copyright"}
    for pkg, patterns in sorted(members.items()):
        deb = deb_file(debs, pkg)
        if deb is None:
            log(f"skip {pkg}: no .deb in {debs}")
            continue
        unpack(deb, patterns, os.path.join(root, pkg))
    log(f"[{time.time() - t0:6.1f}s] packages unpacked")

    cands = collect(every, root, os.path.join(a.cache, "rcc"))
    staging = os.path.join(a.cache, f"normalised-{a.max_side}")
    os.makedirs(staging, exist_ok=True)
    jobs = [(c, staging, a.max_side) for c in cands]
    if a.workers > 1:
        with Pool(a.workers) as pool:
            recs = pool.map(analyse, jobs, chunksize=4)
    else:
        recs = [analyse(j) for j in jobs]
    log(f"[{time.time() - t0:6.1f}s] {len(recs)} candidates measured "
        f"from {len({r['package'] for r in recs})} packages")

    cfg = FilterConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(FilterConfig)})
    rejected, photos = [], []
    for r in recs:
        r["reason"] = ("unreadable: " + r["error"] if "error" in r
                       else " ".join(reject_reasons(r, cfg)))
        (rejected if r["reason"] else photos).append(r)
    photos, pairs = dedup_and_group(photos, a.dup_bits, a.group_bits)
    dups = [r for r in recs if r.get("duplicate_of")]
    for r in dups:
        r["reason"] = "duplicate of " + r["duplicate_of"]
    rejected += dups
    corpus = [r for r in photos if not r["label"]]
    labelled = [r for r in photos if r["label"]]
    # a scene in the labelled set keeps its corpus copies out of pretraining
    split_corpus(photos, a.seed, a.val_frac, a.holdout_frac)
    corpus = [r for r in photos if not r["label"]]
    split_labelled(labelled, a.seed, a.label_test_frac, a.label_val_frac)

    licences = {}
    for pkg in packages:
        try:
            with open(os.path.join(root, doc_of[pkg], "usr/share/doc", doc_of[pkg], "copyright"),
                      errors="replace") as f:
                licences[pkg] = parse_copyright(f.read())
        except OSError:
            licences[pkg] = [(["*"], "copyright file missing")]
    for r in photos:
        r["licence"] = licence_for(licences[r["package"]], r["path"])
        r["id"] = r["sha256"][:12]
        r["class"] = r["label"]

    # photos/ holds exactly the manifest's photos
    out_photos = os.path.join(a.out, "photos")
    os.makedirs(out_photos, exist_ok=True)
    wanted = {r["id"] + ".png" for r in corpus}
    for f in os.listdir(out_photos):
        if f.endswith(".png") and f not in wanted:
            os.remove(os.path.join(out_photos, f))
    for r in corpus:
        dst = os.path.join(out_photos, r["id"] + ".png")
        if not os.path.exists(dst):
            shutil.copyfile(r["staged"], dst)
    corpus.sort(key=lambda r: (r["package"], r["path"]))
    labelled.sort(key=lambda r: (r["label"], r["package"], r["path"]))
    _write_csv(os.path.join(a.out, "manifest.csv"), corpus, MANIFEST_FIELDS)
    _write_csv(os.path.join(a.out, "labelled_manifest.csv"), labelled, LABEL_FIELDS)
    rejected.sort(key=lambda r: (r["package"], r["path"]))
    _write_csv(os.path.join(a.out, "rejected.csv"), rejected,
               ["package", "path", "reason", "width", "height", "transparent", "colourfulness",
                "colours", "top8", "flat", "label"])
    with open(os.path.join(a.out, "near_duplicates.txt"), "w") as f:
        f.writelines(f"{d}\t{p}\t{q}\n" for d, p, q in sorted(pairs))
    if a.manifest_dir:
        os.makedirs(a.manifest_dir, exist_ok=True)
        for n in ("manifest.csv", "labelled_manifest.csv"):
            shutil.copyfile(os.path.join(a.out, n), os.path.join(a.manifest_dir, n))

    classes = sorted({r["label"] for r in labelled})
    label_name = a.label_name or f"debphoto{len(classes)}"
    if labelled:
        lab = os.path.join(a.out, "labeled")
        os.makedirs(lab, exist_ok=True)
        x = np.stack([square_image(r["staged"], a.label_size) for r in labelled])
        y = np.array([classes.index(r["label"]) for r in labelled], np.int64)
        split = np.array([r["split"] for r in labelled])
        arrays = dict(x=x, y=y, classes=np.array(classes),
                      group=np.array([r["group"] for r in labelled]), split=split,
                      id=np.array([r["id"] for r in labelled]))
        for s in ("train", "val", "test"):
            arrays[f"x_{s}"], arrays[f"y_{s}"] = x[split == s], y[split == s]
        np.savez_compressed(os.path.join(lab, label_name + ".npz"), **arrays)

    if a.existing_sets:
        log("existing sets: " + ", ".join(write_existing_sets(root, a.cache, os.path.join(
            a.out, "labeled"), photos + rejected)))

    for size in [int(s) for s in a.sizes.split(",") if s.strip()]:
        for split, k, centre in (("train", a.crops_per_photo, False),
                                 ("val", a.eval_crops, True), ("holdout", a.eval_crops, True)):
            rows = [r for r in corpus if r["split"] == split]
            if not rows:
                continue
            crops = np.concatenate([random_crops(r["staged"], k, size,
                                                 int(unit_hash(a.seed, r["id"] + split) * 2 ** 32),
                                                 centre) for r in rows])
            if split == "train":
                crops = crops[np.random.default_rng(a.seed).permutation(len(crops))]
            np.save(os.path.join(a.out, f"{'pretrain' if split == 'train' else split}_{size}.npy"),
                    crops)
            with open(os.path.join(a.out, f"{split}_{size}_ids.txt"), "w") as f:
                f.writelines(f"{r['id']}\n" for r in rows for _ in range(k))

    if a.contact_sheets:
        sheets = os.path.join(a.out, "sheets")
        os.makedirs(sheets, exist_ok=True)
        for pkg in packages:
            for kind, rows in (("kept", [r for r in corpus + labelled if r["package"] == pkg]),
                               ("rejected", [r for r in rejected if r["package"] == pkg
                                             and r.get("staged")])):
                if rows:
                    contact_sheet([(r["staged"], (r.get("split") or r["reason"])[:10])
                                   for r in rows[:240]], os.path.join(sheets, f"{pkg}-{kind}.png"))

    report = dict(
        wall_seconds=round(time.time() - t0, 1),
        candidates=len(recs),
        corpus_photos=len(corpus),
        corpus_groups=len({r["group"] for r in corpus}),
        corpus_by_split=dict(Counter(r["split"] for r in corpus)),
        corpus_by_package={p: dict(Counter(r["split"] for r in corpus if r["package"] == p))
                           for p in sorted({r["package"] for r in corpus})},
        licences=dict(Counter(r["licence"] for r in corpus + labelled)),
        rejected_by_reason=dict(Counter(r["reason"].split(":")[0].split(" of ")[0]
                                        for r in rejected)),
        labelled_name=label_name, labelled_images=len(labelled),
        labelled_by_split=dict(Counter(r["split"] for r in labelled)),
        labelled_by_class={c: dict(Counter(r["split"] for r in labelled if r["label"] == c))
                           for c in classes},
        labelled_by_package=dict(Counter(r["package"] for r in labelled)))
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"[{time.time() - t0:6.1f}s] done: {json.dumps(report)}")
    return report


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    try:
        a = args_from_flags(FLAGS)
    except ValueError as e:
        common.die(str(e))
    build(a)
    return 0


def run():
    """Console-script entry point (``tfcolor-build-corpus``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
