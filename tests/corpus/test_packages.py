"""tfcolor.corpus.packages: copyright files and path patterns."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import corpus_fixtures as fx  # noqa: E402

from tfcolor import corpus  # noqa: E402



def test_copyright_parsing():
    entries = corpus.parse_copyright(fx.COPYRIGHT)
    assert corpus.licence_for(entries, "usr/share/backgrounds/fake/other01.jpg") == "CC0-1.0"
    assert corpus.licence_for(entries, "usr/share/backgrounds/photo.jpg") == "GPL-2+"
    plain = corpus.parse_copyright("This package is licensed under the GPL-2.\n")
    assert corpus.licence_for(plain, "x.jpg") == "not DEP-5; states: GPL-2"


def test_path_match_does_not_cross_folders():
    assert corpus.path_match("stamps/cats/1.png", "stamps/cats/*")
    assert not corpus.path_match("stamps/cats/cartoon/1.png", "stamps/cats/*")


def test_name_patterns_match_whole_paths_at_any_depth_and_any_case():
    """Exclusion and curation patterns name files wherever they sit: ``*`` crosses folders
    (the patterns that used path_match never matched these paths), case is ignored."""
    cases = [("usr/share/backgrounds/analogpattern_by_x.jpg", "*/analogpattern_*"),
             ("usr/share/doc/opencv-doc/examples/data/starry_night.jpg", "*/starry_night.jpg"),
             ("usr/share/tuxpaint/stamps/military/vehicles/bradley_mirror.png", "*_mirror.*"),
             ("usr/share/tuxpaint/stamps/vehicles/flight/balloon360.png",
              "usr/share/tuxpaint/stamps/vehicles/*balloon*"),
             ("usr/share/backgrounds/Umang_by_x.JPG", "*/umang_*.jpg")]
    for path, pattern in cases:
        assert corpus.name_match(path, pattern), (path, pattern)
        assert not corpus.path_match(path, pattern) or "/" not in pattern.replace("*/", "")
    assert not corpus.name_match("usr/share/backgrounds/umang.jpg", "*/umang_*")
    assert not corpus.name_match("a/b_mirror", "*_mirror.*")
