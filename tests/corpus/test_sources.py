"""tfcolor.corpus.sources: candidates collected from unpacked packages."""
from PIL import Image

import os
import sys

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
