"""The embedded photos: present, attributed, redistributable, real colour photographs."""
import os

import numpy as np
import pytest
from PIL import Image

from tfcolor.data import embedded

# Licences that allow redistribution of modified copies (checked against each package's
# /usr/share/doc/<package>/copyright when the set was built).
REDISTRIBUTABLE = {"GPL-2+", "GPL-3", "GPL-3+", "CC-BY-1.0", "CC-BY-3.0", "CC-BY-4.0",
                   "CC-BY-SA-2.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "public-domain"}


def test_manifest_lists_every_file_and_only_them():
    rows = embedded.embedded_manifest()
    listed = {r["file"] for r in rows}
    on_disk = {f for f in os.listdir(embedded.PHOTO_DIR) if f.endswith(".jpg")}
    assert listed == on_disk
    assert len(rows) == len(listed)   # no duplicate names


def test_splits():
    train = embedded.embedded_photos()
    validation = embedded.embedded_photos("validation")
    assert len(train) == 41 and len(validation) == 8
    assert not set(train) & set(validation)
    assert sorted(train + validation) == embedded.embedded_photos("all")
    assert train == sorted(train)
    with pytest.raises(ValueError, match="split must be one of"):
        embedded.embedded_photos("test")


def test_every_photo_is_attributed_with_a_redistributable_licence():
    text = embedded.attribution_text()
    for row in embedded.embedded_manifest():
        assert row["license"] in REDISTRIBUTABLE, row
        assert row["author"].strip() and row["package"].strip(), row
        block = text.split(row["file"] + "  [", 1)
        assert len(block) == 2, f"{row['file']} missing from ATTRIBUTION.txt"
        entry = block[1].split("\n\n", 1)[0]
        assert row["package"] in entry and row["license"] in entry, row["file"]
    for licence in {r["license"] for r in embedded.embedded_manifest()}:
        assert f"\n{licence}: " in text   # each licence is spelled out with its URL


def test_photos_are_small_downscaled_colour_jpegs():
    total = 0
    chroma = []
    for row in embedded.embedded_manifest():
        path = os.path.join(embedded.PHOTO_DIR, row["file"])
        total += os.path.getsize(path)
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert min(image.size) == 256
            assert image.size == (int(row["width"]), int(row["height"]))
            rgb = np.asarray(image, np.float32) / 255
        chroma.append(float((rgb.max(-1) - rgb.min(-1)).mean()))
    assert total < 4 * 2 ** 20
    # colourful on average (a grey image has chroma 0), and none is black and white
    assert np.mean(chroma) > 0.15 and min(chroma) > 0.03
