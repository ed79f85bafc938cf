"""What the corpus is built from: the curated Debian sources and their candidate files.

:data:`SOURCES` lists the packages and paths of the unlabelled corpus (wallpapers, landscape
panoramas, photo puzzles, educational photos, sample images), :data:`LABEL_SOURCES` the class
folders of the labelled set; :data:`CURATED_DROP` names what looking at the contact sheets
rejected; :data:`EXISTING_SET_MEMBERS` the files of the existing labelled sets
(``tfcolor.corpus.labelled.write_existing_sets``). :func:`collect` lists the candidate files of
unpacked packages (members of bundles included).
"""
import dataclasses
import os
import re

from tfcolor.corpus.bundles import IMAGE_EXTS, PZL_MEMBER, unpack_bundle
from tfcolor.corpus.packages import name_match, package_version, path_match


@dataclasses.dataclass(frozen=True)
class Source:
    """Files of one Debian package to consider.

    ``patterns`` are :func:`~tfcolor.corpus.packages.path_match` patterns (``*`` within one
    folder) on paths inside the package (``usr/share/...``); a
    pattern ``BUNDLE.rcc!MEMBER`` selects members of a Qt resource bundle and
    ``PUZZLE.pzl!image.png`` the photo of a Jigzo puzzle (:func:`pzl_photo`). ``group_by`` is a
    regular expression whose first group, found in the path, names a same-scene group.
    ``label`` puts the matches in the labelled set under that class instead of the corpus.
    ``exclude`` skips paths; ``keep_only`` (curated on the contact sheets) rejects, as
    ``curated``, every match outside it: the artwork of a mixed wallpaper collection. Both are
    matched by :func:`~tfcolor.corpus.packages.name_match` (the whole path, case-insensitive,
    ``*`` crossing ``/``), and each of their patterns must match a file of the package
    (:func:`collect` reports those that do not: a pattern that matches nothing is a typo).
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
           exclude=("*/analogpattern_*", "*/umang_*")),
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
           keep_only=tuple(f"*/{n}.jpg" for n in ("nature", "sunset", "pizza"))),
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


LABEL_SOURCES = [Source(pkg, (pattern,), label=cls,
                        exclude=_LABEL_DROP if pkg == "tuxpaint-stamps-default" else (),
                        group_by=r"monuments/.*?([a-z_]+?)\d*\.\w+$" if cls == "monuments" else "")
                 for cls, folders in _CLASS_FOLDERS.items() for pkg, pattern in folders]


# Dropped by name after looking at the contact sheets (name_match on "package:path"): artwork,
# renders and synthetic images that pass the statistics. KEEP: photographs that the flat /
# palette tests reject (none needed so far).
CURATED_DROP = ("opencv-doc:*/examples/data/pic*",)


CURATED_KEEP = ()


# The labelled sets that /work/shared/data/build_corpus.py also writes, same keys.
FMNIST_DIR = "usr/share/datasets/fashion-mnist/"


DIGITS_FILE = "usr/share/doc/opencv-doc/examples/data/digits.png"


GCOMPRIS5_BUNDLE = ("usr/share/gcompris-qt/rcc/categorization.rcc",
        "gcompris/src/activities/categorization/resource/images/")


GCOMPRIS5 = ("fishes", "monuments", "others", "renewable", "tools")


EXISTING_SET_MEMBERS = {"dataset-fashion-mnist": {FMNIST_DIR + "*"}, "opencv-doc": {DIGITS_FILE},
                        "gcompris-qt-data": {GCOMPRIS5_BUNDLE[0]}}


# Packages whose /usr/share/doc folder is a symlink to another package's: copyright from there.
COPYRIGHT_FROM = {"imagemagick-6-doc": "imagemagick-6-common"}


def collect(sources, root, rcc_cache, unmatched=None):
    """Candidate files: dicts with package, version, path, file, label, group_key.

    ``unmatched``: a list to which ``(package, "exclude" | "keep_only", pattern)`` is appended
    for every pattern of the sources of an unpacked package that matched none of the files their
    selection patterns found (a pattern shared by several sources of the package counts once)."""
    out, seen = [], set()
    declared, used = set(), set()
    for s in sources:
        pkg_root = os.path.join(root, s.package)
        if not os.path.isdir(pkg_root):
            continue
        declared.update((s.package, kind, p) for kind, patterns in
                        (("exclude", s.exclude), ("keep_only", s.keep_only)) for p in patterns)
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
                excluded = [e for e in s.exclude if name_match(path, e)]
                kept = [k for k in s.keep_only if name_match(path, k)]
                used.update((s.package, "exclude", e) for e in excluded)
                used.update((s.package, "keep_only", k) for k in kept)
                if not path.lower().endswith(IMAGE_EXTS) or key in seen or excluded:
                    continue
                seen.add(key)
                m = re.search(s.group_by, path) if s.group_by else None
                curated = bool(s.keep_only) and not kept
                out.append(dict(package=s.package, version=version, path=path, file=local,
                                label=s.label, curated_out=curated,
                                group_key=f"{s.package}:{m.group(1).lower()}" if m else ""))
    if unmatched is not None:
        unmatched.extend(sorted(declared - used))
    return out
