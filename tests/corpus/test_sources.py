"""tfcolor.corpus.sources: candidates collected from unpacked packages."""
import os
import sys

import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import corpus_fixtures as fx  # noqa: E402

from tfcolor import corpus  # noqa: E402



def test_pzl_bundle_pattern_collects_the_puzzle_photo(tmp_path):
    pkg = tmp_path / "root" / "fake-puzzles"
    folder = pkg / "usr/share/games/p/puzzles/default"
    folder.mkdir(parents=True)
    (folder / "bike-3x4.pzl").write_bytes(fx.pzl())
    (folder / "nc-1x1.pzl").write_bytes(fx.pzl("nc-1x1"))
    source = corpus.Source("fake-puzzles", ("usr/share/games/p/puzzles/*/*.pzl!" + corpus.PZL_MEMBER,),
                         exclude=("usr/share/games/p/puzzles/*/nc-1x1.pzl!*",))
    cands = corpus.collect([source], str(tmp_path / "root"), str(tmp_path / "bundles"))
    assert [c["path"] for c in cands] == [
        "usr/share/games/p/puzzles/default/bike-3x4.pzl!image.png"]
    with Image.open(cands[0]["file"]) as im:
        assert im.size == (84, 114)
    entries = corpus.parse_copyright(fx.COPYRIGHT + "\nFiles: puzzles/default/bike-3x4.pzl\n"
                                   "Copyright: 2005 Someone\nLicense: GPL-2\n")
    # a bundle member takes the stanza that names its bundle file
    assert corpus.licence_for(entries, cands[0]["path"]) == "GPL-2"
    assert corpus.licence_for(entries, "usr/share/games/p/puzzles/default/x.pzl!image.png") == \
        "GPL-2+"


def _tree(root, files):
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(path)


def test_exclude_and_keep_only_match_at_any_depth_and_unmatched_patterns_are_reported(tmp_path):
    _tree(tmp_path / "root" / "fake-walls", [
            "usr/share/walls/sea.jpg", "usr/share/walls/Pattern_1.JPG",
            "usr/share/walls/kept/tree.jpg", "usr/share/walls/kept/tree_mirror.png"])
    source = corpus.Source("fake-walls", ("usr/share/walls/*", "usr/share/walls/*/*"),
                           exclude=("*/pattern_*", "*_mirror.*", "*/typo_*"),
                           keep_only=("*/kept/*", "*/nothing/*"))
    unmatched = []
    cands = corpus.collect([source], str(tmp_path / "root"), str(tmp_path / "rcc"), unmatched)
    assert sorted((c["path"], c["curated_out"]) for c in cands) == [
            ("usr/share/walls/kept/tree.jpg", False), ("usr/share/walls/sea.jpg", True)]
    assert sorted(unmatched) == [("fake-walls", "exclude", "*/typo_*"),
                                 ("fake-walls", "keep_only", "*/nothing/*")]
    # a package that is not unpacked reports nothing (its patterns were not tried)
    missing = []
    corpus.collect([corpus.Source("absent", ("x/*",), exclude=("*",))], str(tmp_path / "root"),
                   str(tmp_path / "rcc"), missing)
    assert missing == []


CACHE_ROOT = os.path.expanduser("~/.cache/tfcolor-corpus/cache/root")


def test_every_shipped_pattern_matches_a_file_of_the_unpacked_packages(tmp_path):
    """Every exclude / keep_only pattern of the shipped sources and every curated pattern
    names a file of the packages (needs the packages unpacked by ``binaries/build_corpus``;
    skipped without them)."""
    every = list(corpus.LABEL_SOURCES) + list(corpus.SOURCES)
    if not all(os.path.isdir(os.path.join(CACHE_ROOT, s.package)) for s in every):
        pytest.skip(f"the corpus packages are not unpacked in {CACHE_ROOT}")
    unmatched = []
    cands = corpus.collect(every, CACHE_ROOT, str(tmp_path / "rcc"), unmatched)
    names = [f"{c['package']}:{c['path']}" for c in cands]
    unmatched += [("", "curated", p) for p in corpus.CURATED_DROP + corpus.CURATED_KEEP
                  if not any(corpus.name_match(n, p) for n in names)]
    assert unmatched == []
