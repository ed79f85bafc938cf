"""The corpus builder (tfcolor.programs.build_corpus) on a tiny Debian package built here: no
network, a few seconds."""
import csv
import hashlib
import io
import os
import pathlib
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from tfcolor.programs import build_corpus as tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
_CACHE = pathlib.Path(os.path.expanduser("~/.cache/tfcolor-corpus/cache/debs"))

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def _photo(seed, h=96, w=128):
    """Photograph-like: a smooth random colour field plus sensor noise."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.uniform(0, 255, (4, 5, 3)).astype(np.uint8))
    field = np.asarray(low.resize((w, h), Image.BICUBIC), np.float64)
    return np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)


def _drawing(h=96, w=128):
    """Clip-art-like: three flat fills."""
    arr = np.full((h, w, 3), (250, 250, 240), np.uint8)
    arr[10:60, 20:70] = (200, 30, 30)
    arr[50:90, 60:120] = (30, 60, 200)
    return arr


def _jpeg(arr, quality=92, orientation=None):
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(arr):
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


def _make_deb(tmp_path, files, name="fake-photos", version="1.2-3"):
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


def _fake_files():
    photo = _photo(0)
    brighter = np.clip(photo.astype(int) + 4, 0, 255).astype(np.uint8)
    files = {
        "backgrounds/fake/photo.jpg": _jpeg(photo),
        "backgrounds/fake/photo_copy.jpg": _jpeg(photo),                    # exact duplicate
        "backgrounds/fake/photo_reencoded.jpg": _jpeg(brighter, quality=70),  # near-duplicate
        "backgrounds/fake/drawing.png": _png(_drawing()),
        "backgrounds/fake/rotated.jpg": _jpeg(_photo(1, 80, 120), orientation=6),
        "backgrounds/fake/scene_a1.jpg": _jpeg(_photo(2)),  # one scene, two unlike shots
        "backgrounds/fake/scene_a2.jpg": _jpeg(_photo(3)),
    }
    for i in range(12):
        files[f"backgrounds/fake/other{i:02d}.jpg"] = _jpeg(_photo(100 + i))
    files["wallpapers/keep_me.jpg"] = _jpeg(_photo(50))
    files["wallpapers/artwork.jpg"] = _jpeg(_photo(51))   # photo-like, but not in keep_only
    for k, cls in enumerate(("cats", "cars")):
        for i in range(10):
            files[f"stamps/{cls}/{i}.jpg"] = _jpeg(_photo(1000 + 100 * k + i, 90, 90))
        files[f"stamps/{cls}/cartoon/toon.png"] = _png(_drawing())  # sub-folder: not matched
    return files


def _sources():
    corpus = [tool.Source("fake-photos", ("usr/share/backgrounds/fake/*",),
                          group_by=r"/(scene_[a-z])\d\.jpg$"),
              tool.Source("fake-photos", ("usr/share/wallpapers/*",), keep_only=("*/keep_*",))]
    labelled = [tool.Source("fake-photos", (f"usr/share/stamps/{c}/*",), label=c)
                for c in ("cats", "cars")]
    return corpus, labelled


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    tmp = tmp_path_factory.mktemp("corpus")
    files = _fake_files()
    tree = _make_deb(tmp, files)
    args = tool.parse_args(["--out", str(tmp / "out"), "--no-download", "--workers", "1",
                            "--max-side", "64", "--min-side", "64", "--label-min-side", "32",
                            "--manifest-dir", str(tmp / "manifests"), "--label-name", "fake2",
                            "--label-size", "32", "--label-test-frac", "0.5",
                            "--label-val-frac", "0.2", "--holdout-frac", "0.3", "--val-frac", "0.2",
                            "--sizes", "16", "--crops-per-photo", "3", "--eval-crops", "2"])
    corpus, labelled = _sources()
    report = tool.build(args, corpus, labelled, log=lambda *_: None)
    return dict(tmp=tmp, out=tmp / "out", tree=tree, files=files, report=report,
                manifest=_read(tmp / "out" / "manifest.csv"),
                labelled=_read(tmp / "out" / "labelled_manifest.csv"),
                rejected={r["path"]: r for r in _read(tmp / "out" / "rejected.csv")})


def _by_name(rows):
    return {r["path"].rsplit("/", 1)[-1]: r for r in rows}


def test_drawing_is_rejected_and_photos_kept(built):
    reasons = built["rejected"]["usr/share/backgrounds/fake/drawing.png"]["reason"].split()
    assert {"few_colours", "flat", "palette"} <= set(reasons)
    kept = _by_name(built["manifest"])
    assert {"photo.jpg", "rotated.jpg", "scene_a1.jpg", "scene_a2.jpg"} <= set(kept)
    assert sum(n.startswith("other") for n in kept) == 12
    assert not any("cartoon" in r["path"] for r in built["labelled"])


def test_keep_only_curates_a_mixed_collection(built):
    assert "keep_me.jpg" in _by_name(built["manifest"])
    assert built["rejected"]["usr/share/wallpapers/artwork.jpg"]["reason"] == "curated"


def test_exact_and_near_duplicates_keep_one_copy(built):
    kept = _by_name(built["manifest"])
    copies = {"photo.jpg", "photo_copy.jpg", "photo_reencoded.jpg"}
    assert len(copies & set(kept)) == 1
    for name in copies - set(kept):
        assert built["rejected"]["usr/share/backgrounds/fake/" + name]["reason"].startswith(
            "duplicate of fake-photos:usr/share/backgrounds/fake/photo")


def test_manifest_sha256_version_licence_and_size(built):
    for r in built["manifest"] + built["labelled"]:
        source = built["files"][r["path"][len("usr/share/"):]]
        assert r["sha256"] == hashlib.sha256(source).hexdigest()
        assert r["version"] == "1.2-3" and r["package"] == "fake-photos"
        name = r["path"].rsplit("/", 1)[-1]
        assert r["licence"] == ("CC0-1.0" if name.startswith("other") else "GPL-2+")
        with Image.open(io.BytesIO(source)) as im:
            assert {int(r["width"]), int(r["height"])} == set(im.size)
    rotated = _by_name(built["manifest"])["rotated.jpg"]
    # EXIF orientation 6: the 120 x 80 JPEG is a portrait photo, 80 wide, stored as such
    assert (int(rotated["width"]), int(rotated["height"])) == (80, 120)
    with Image.open(built["out"] / "photos" / (rotated["id"] + ".png")) as im:
        assert im.size == (64, 96)


def test_photos_written_are_exactly_the_manifest(built):
    written = sorted(p.stem for p in (built["out"] / "photos").glob("*.png"))
    assert written == sorted(r["id"] for r in built["manifest"])
    for r in built["manifest"]:
        with Image.open(built["out"] / "photos" / (r["id"] + ".png")) as im:
            assert min(im.size) <= 64 and im.mode == "RGB"
    for name in ("manifest.csv", "labelled_manifest.csv"):
        assert (built["tmp"] / "manifests" / name).read_text() == (built["out"] / name).read_text()


def test_groups_never_straddle_splits(built):
    rows = built["manifest"]
    splits = {}
    for r in rows:
        splits.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    kept = _by_name(rows)
    assert kept["scene_a1.jpg"]["group"] == kept["scene_a2.jpg"]["group"]   # explicit rule
    assert len({kept[f"other{i:02d}.jpg"]["group"] for i in range(12)}) == 12
    assert {r["split"] for r in rows} == {"train", "val", "holdout"}
    label_splits = {}
    for r in built["labelled"]:
        label_splits.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in label_splits.values())


def test_split_is_a_function_of_seed_and_group_only():
    recs = [dict(group=f"g{i // 3}", label="") for i in range(300)]
    tool.split_corpus(recs, seed=5, val_frac=0.1, holdout_frac=0.2)
    again = [dict(r) for r in recs[::-1]]
    tool.split_corpus(again, seed=5, val_frac=0.1, holdout_frac=0.2)
    assert [r["split"] for r in again[::-1]] == [r["split"] for r in recs]
    by_group = {}
    for r in recs:
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())
    fractions = np.mean([[s == {"holdout"}, s == {"val"}] for s in by_group.values()], 0)
    assert 0.08 < fractions[0] < 0.35 and 0.02 < fractions[1] < 0.2
    recs[0]["label"] = "cats"   # a labelled photo takes its whole scene out of pretraining
    tool.split_corpus(recs, seed=5, val_frac=0.1, holdout_frac=0.2)
    assert [r["split"] for r in recs[:3]] == ["labeled_only"] * 3


def test_labelled_npz_loads_with_the_transfer_loader(built):
    from tfcolor.downstream import datasets as data
    path = built["out"] / "labeled" / "fake2.npz"
    test = data.load_npz(str(path), "test")
    full = data.load_npz(str(path))
    assert full.class_names == ["cars", "cats"] and len(full) == 20
    assert full.images.shape == (20, 32, 32, 3) and full.images.dtype == np.uint8
    counts = {s: sum(r["split"] == s for r in built["labelled"]) for s in ("train", "val", "test")}
    assert len(test) == counts["test"] == 10 and counts["val"] == 4
    assert built["report"]["labelled_by_class"]["cats"] == {"test": 5, "val": 2, "train": 3}


def test_crop_arrays(built):
    x = np.load(built["out"] / "pretrain_16.npy")
    n_train = sum(r["split"] == "train" for r in built["manifest"])
    assert x.shape == (3 * n_train, 16, 16, 3) and x.dtype == np.uint8
    h = np.load(built["out"] / "holdout_16.npy")
    assert h.shape[0] == 2 * sum(r["split"] == "holdout" for r in built["manifest"])


def test_rerun_uses_the_cache_and_gives_the_same_manifest(built, tmp_path):
    before = (built["out"] / "manifest.csv").read_text()
    args = tool.parse_args(["--out", str(built["out"]), "--no-download", "--workers", "1",
                            "--max-side", "64", "--min-side", "64", "--label-min-side", "32",
                            "--label-name", "fake2", "--label-size", "32",
                            "--label-test-frac", "0.5", "--label-val-frac", "0.2",
                            "--holdout-frac", "0.3", "--val-frac", "0.2"])
    corpus, labelled = _sources()
    tool.build(args, corpus, labelled, log=lambda *_: None)
    assert (built["out"] / "manifest.csv").read_text() == before


def test_out_inside_a_git_tree_is_refused():
    with pytest.raises(SystemExit):
        tool.parse_args(["--out", str(ROOT / "corpus")])


def test_bad_fractions_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        tool.parse_args(["--out", str(tmp_path), "--val-frac", "0.6", "--holdout-frac", "0.5"])


def test_flags_keep_their_names_and_defaults(tmp_path):
    args = tool.parse_args(["--out", str(tmp_path), "--manifest-dir=m", "--no-existing-sets",
                            "--min-side", "100", "--max-flat=0.5"])
    assert (args.out, args.manifest_dir, args.existing_sets) == (str(tmp_path), "m", False)
    assert (args.min_side, args.max_flat, args.max_side) == (100, 0.5, 512)
    assert args.cache == os.path.join(str(tmp_path), "cache") and not args.no_download
    defaults = tool.parse_args(["--out", str(tmp_path)])
    assert defaults.existing_sets and (defaults.val_frac, defaults.holdout_frac) == (0.1, 0.15)


def _program(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([str(ROOT / "binaries" / "build_corpus")] + list(argv), cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_program_runs_offline_and_writes_an_empty_corpus_without_packages(tmp_path):
    # No .deb in the cache and --no-download: every package is skipped, nothing is fetched.
    out = tmp_path / "out"
    proc = _program("--out", str(out), "--no-download", "--workers=1", "--no-existing-sets",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skip mate-backgrounds: no .deb in" in proc.stdout
    assert _read(out / "manifest.csv") == []
    assert not (out / "labeled").exists()   # --no-existing-sets and no labelled photo


def test_program_bad_value_is_a_one_line_error(tmp_path):
    proc = _program("--out", str(tmp_path / "out"), "--val-frac=0.6", "--holdout-frac=0.5",
                    cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "error: the split fractions leave no training data (--val-frac + --holdout-frac" in line


def test_corrupt_image_is_reported_not_fatal(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    staging = tmp_path / "staging"
    staging.mkdir()
    rec = tool.analyse((dict(package="p", path="bad.jpg", file=str(bad), label="", group_key=""),
                        str(staging), 64))
    assert rec["error"].startswith(("UnidentifiedImageError", "OSError", "SyntaxError"))


def _rcc_v1(files):
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


def test_rcc_reader_round_trip():
    files = {"a.webp": b"first image bytes", "b.png": os.urandom(300)}
    assert dict(tool.rcc_members(_rcc_v1(files))) == {"res/" + k: v for k, v in files.items()}
    with pytest.raises(ValueError):
        list(tool.rcc_members(b"nope" + bytes(40)))


def test_measure_separates_photo_from_drawing():
    cfg = tool.FilterConfig(min_side=32)
    photo = dict(tool.measure(_photo(7)), width=128, height=96, transparent=0.0, label="",
                 package="p", path="x")
    drawing = dict(tool.measure(_drawing()), width=128, height=96, transparent=0.0, label="",
                   package="p", path="y")
    assert tool.reject_reasons(photo, cfg) == []
    assert {"few_colours", "flat", "palette"} <= set(tool.reject_reasons(drawing, cfg))
    grey = np.repeat(_photo(8)[..., :1], 3, -1)
    assert "grey" in tool.reject_reasons(dict(tool.measure(grey), width=128, height=96,
                                              transparent=0.0, label="", package="p",
                                              path="z"), cfg)


def test_copyright_parsing():
    entries = tool.parse_copyright(COPYRIGHT)
    assert tool.licence_for(entries, "usr/share/backgrounds/fake/other01.jpg") == "CC0-1.0"
    assert tool.licence_for(entries, "usr/share/backgrounds/photo.jpg") == "GPL-2+"
    plain = tool.parse_copyright("This package is licensed under the GPL-2.\n")
    assert tool.licence_for(plain, "x.jpg") == "not DEP-5; states: GPL-2"


def test_path_match_does_not_cross_folders():
    assert tool.path_match("stamps/cats/1.png", "stamps/cats/*")
    assert not tool.path_match("stamps/cats/cartoon/1.png", "stamps/cats/*")


@pytest.mark.slow
@needs_dpkg
def test_real_build_from_cached_packages(tmp_path):
    """The real corpus from the default cache (``.deb`` files, unpacked trees, measurements):
    offline; about a minute when the default build has run once, several without it."""
    if not _CACHE.is_dir() or not any(_CACHE.glob("tuxpaint-stamps-default_*.deb")):
        pytest.skip(f"the Debian packages are not cached in {_CACHE}")
    args = tool.parse_args(["--out", str(tmp_path / "out"), "--cache", str(_CACHE.parent),
                            "--no-download"])
    report = tool.build(args, log=lambda *_: None)
    assert report["corpus_photos"] >= 150
    assert report["labelled_by_split"]["test"] >= 300
    assert report["labelled_by_split"]["val"] >= 50
    assert len(report["labelled_by_class"]) >= 5
    rows = _read(tmp_path / "out" / "manifest.csv")
    for r in rows[::20]:   # the manifest's sha256 is the one of the file inside the package
        with open(_CACHE.parent / "root" / r["package"] / r["path"].split("!")[0], "rb") as f:
            if "!" not in r["path"]:
                assert hashlib.sha256(f.read()).hexdigest() == r["sha256"]
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in groups.values())


def _pzl(name="bike-3x4", region=(0, 0, 90, 120), atlas_size=(256, 256), image_line=True):
    """A Jigzo puzzle file: header, texture map, thumbnail, piece mask and atlas, in which the
    photo (``region``, x y w h) is red with a dark one-pixel frame and the pieces are blue."""
    x, y, w, h = region
    atlas = np.zeros(atlas_size[::-1] + (3,), np.uint8)
    atlas[...] = (20, 40, 220)
    atlas[y:y + h, x:x + w] = (30, 30, 30)
    atlas[y + 1:y + h - 1, x + 1:x + w - 1] = (220, 40, 30)
    thumb = _jpeg(np.full((40, 30, 3), 128, np.uint8))
    mask = _png(np.zeros((64, 64, 3), np.uint8))
    text = "#texture map data\ncrop000 100 0 50 60 20 20 0 0 0 0\n"
    if image_line:
        text += f"image {x} {y} {w} {h} 1 1    \n"
    head = f"PzlF\n0.1\n{name}\nhttp://example.org/\n{name}.map\n{len(text)}\n{text}"
    blob = head.encode()
    for member, data in ((f"{name}-t.jpg", thumb), (f"{name}.png", mask),
                         (f"{name}.jpg", _jpeg(atlas, quality=95))):
        blob += f"{member}\n{len(data)}\n".encode() + data
    return blob


def test_pzl_photo_is_the_image_region_of_the_atlas_without_its_frame():
    im = tool.pzl_photo(_pzl(region=(10, 20, 90, 120)))
    assert im.size == (90 - 6, 120 - 6) and im.mode == "RGB"
    arr = np.asarray(im, np.float64)
    # all red: no blue piece and no dark frame pixel came along (JPEG error is a few levels)
    assert np.abs(arr - (220, 40, 30)).max() < 40
    assert np.abs(arr.mean((0, 1)) - (220, 40, 30)).max() < 4


def test_pzl_reader_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="PzlF"):
        tool.pzl_photo(b"qres" + bytes(100))
    with pytest.raises(ValueError, match="image"):
        tool.pzl_photo(_pzl(image_line=False))
    with pytest.raises(ValueError, match="outside"):
        tool.pzl_photo(_pzl(region=(200, 0, 90, 120)))


def test_pzl_bundle_pattern_collects_the_puzzle_photo(tmp_path):
    pkg = tmp_path / "root" / "fake-puzzles"
    folder = pkg / "usr/share/games/p/puzzles/default"
    folder.mkdir(parents=True)
    (folder / "bike-3x4.pzl").write_bytes(_pzl())
    (folder / "nc-1x1.pzl").write_bytes(_pzl("nc-1x1"))
    source = tool.Source("fake-puzzles", ("usr/share/games/p/puzzles/*/*.pzl!" + tool.PZL_MEMBER,),
                         exclude=("usr/share/games/p/puzzles/*/nc-1x1.pzl!*",))
    cands = tool.collect([source], str(tmp_path / "root"), str(tmp_path / "bundles"))
    assert [c["path"] for c in cands] == [
        "usr/share/games/p/puzzles/default/bike-3x4.pzl!image.png"]
    with Image.open(cands[0]["file"]) as im:
        assert im.size == (84, 114)
    entries = tool.parse_copyright(COPYRIGHT + "\nFiles: puzzles/default/bike-3x4.pzl\n"
                                   "Copyright: 2005 Someone\nLicense: GPL-2\n")
    # a bundle member takes the stanza that names its bundle file
    assert tool.licence_for(entries, cands[0]["path"]) == "GPL-2"
    assert tool.licence_for(entries, "usr/share/games/p/puzzles/default/x.pzl!image.png") == \
        "GPL-2+"
