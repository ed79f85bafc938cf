"""tfcolor.corpus.build on a tiny Debian package built here: every stage and every output, no
network, a few seconds."""
import hashlib
import io
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import corpus_fixtures as fx  # noqa: E402

from tfcolor import corpus  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    tmp = tmp_path_factory.mktemp("corpus")
    files = fx.fake_files()
    tree = fx.make_deb(tmp, files)
    settings = corpus.settings_from_values(dict(
            out=str(tmp / "out"), no_download=True, workers=1, max_side=64, min_side=64,
            label_min_side=32, manifest_dir=str(tmp / "manifests"), label_name="fake2",
            label_size=32, label_test_frac=0.5, label_val_frac=0.2, holdout_frac=0.3,
            val_frac=0.2, sizes="16", crops_per_photo=3, eval_crops=2))
    sources, labelled = fx.sources()
    report = corpus.build(settings, sources, labelled, log=lambda *_: None)
    return dict(tmp=tmp, out=tmp / "out", tree=tree, files=files, report=report,
                manifest=fx.read(tmp / "out" / "manifest.csv"),
                labelled=fx.read(tmp / "out" / "labelled_manifest.csv"),
                rejected={r["path"]: r for r in fx.read(tmp / "out" / "rejected.csv")})


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


def test_rerun_uses_the_cache_and_gives_the_same_manifest(built):
    before = (built["out"] / "manifest.csv").read_text()
    settings = corpus.settings_from_values(dict(
            out=str(built["out"]), no_download=True, workers=1, max_side=64, min_side=64,
            label_min_side=32, label_name="fake2", label_size=32, label_test_frac=0.5,
            label_val_frac=0.2, holdout_frac=0.3, val_frac=0.2))
    sources, labelled = fx.sources()
    corpus.build(settings, sources, labelled, log=lambda *_: None)
    assert (built["out"] / "manifest.csv").read_text() == before


def test_settings_are_checked_and_named_as_the_flags(tmp_path):
    with pytest.raises(ValueError, match="^--val_frac must be in"):
        corpus.settings_from_values(out=str(tmp_path), val_frac=1.5)
    with pytest.raises(ValueError, match="unknown corpus settings"):
        corpus.settings_from_values(out=str(tmp_path), val_fraction=0.1)
    settings = corpus.settings_from_values(out=str(tmp_path), no_existing_sets=True)
    assert settings.cache == os.path.join(str(tmp_path), "cache") and not settings.existing_sets
