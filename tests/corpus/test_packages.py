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
