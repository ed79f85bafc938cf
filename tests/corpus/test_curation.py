"""tfcolor.corpus.curation: photographs kept, drawings and grey images rejected, bad files reported."""
import numpy as np

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import corpus_fixtures as fx  # noqa: E402

from tfcolor import corpus  # noqa: E402



def test_measure_separates_photo_from_drawing():
    cfg = corpus.FilterConfig(min_side=32)
    photo = dict(corpus.measure(fx.photo(7)), width=128, height=96, transparent=0.0, label="",
                 package="p", path="x")
    drawing = dict(corpus.measure(fx.drawing()), width=128, height=96, transparent=0.0, label="",
                   package="p", path="y")
    assert corpus.reject_reasons(photo, cfg) == []
    assert {"few_colours", "flat", "palette"} <= set(corpus.reject_reasons(drawing, cfg))
    grey = np.repeat(fx.photo(8)[..., :1], 3, -1)
    assert "grey" in corpus.reject_reasons(dict(corpus.measure(grey), width=128, height=96,
                                              transparent=0.0, label="", package="p",
                                              path="z"), cfg)


def test_corrupt_image_is_reported_not_fatal(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    staging = tmp_path / "staging"
    staging.mkdir()
    rec = corpus.analyse((dict(package="p", path="bad.jpg", file=str(bad), label="", group_key=""),
                        str(staging), 64))
    assert rec["error"].startswith(("UnidentifiedImageError", "OSError", "SyntaxError"))
