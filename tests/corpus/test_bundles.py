"""tfcolor.corpus.bundles: Qt resource bundles and Jigzo puzzles."""
import numpy as np
import pytest

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import corpus_fixtures as fx  # noqa: E402

from tfcolor import corpus  # noqa: E402



def test_rcc_reader_round_trip():
    files = {"a.webp": b"first image bytes", "b.png": os.urandom(300)}
    assert dict(corpus.rcc_members(fx.rcc_v1(files))) == {"res/" + k: v for k, v in files.items()}
    with pytest.raises(ValueError):
        list(corpus.rcc_members(b"nope" + bytes(40)))


def test_pzl_photo_is_the_image_region_of_the_atlas_without_its_frame():
    im = corpus.pzl_photo(fx.pzl(region=(10, 20, 90, 120)))
    assert im.size == (90 - 6, 120 - 6) and im.mode == "RGB"
    arr = np.asarray(im, np.float64)
    # all red: no blue piece and no dark frame pixel came along (JPEG error is a few levels)
    assert np.abs(arr - (220, 40, 30)).max() < 40
    assert np.abs(arr.mean((0, 1)) - (220, 40, 30)).max() < 4


def test_pzl_reader_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="PzlF"):
        corpus.pzl_photo(b"qres" + bytes(100))
    with pytest.raises(ValueError, match="image"):
        corpus.pzl_photo(fx.pzl(image_line=False))
    with pytest.raises(ValueError, match="outside"):
        corpus.pzl_photo(fx.pzl(region=(200, 0, 90, 120)))
