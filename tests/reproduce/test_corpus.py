"""Tests of tfcolor.reproduce.corpus: manifest splits, split folders, labelled set checks."""
import os

import numpy as np
import pytest

from tfcolor.reproduce import corpus as corpus_lib


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return corpus_lib.make_fake_corpus(str(tmp_path_factory.mktemp("corpus")))


def test_manifest_splits(fake):
    splits = corpus_lib.read_manifest(fake)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 2, "holdout": 2}
    every = sum(splits.values(), [])
    assert len(set(every)) == 12 and all(os.path.isfile(p) for p in every)


def test_split_folders_link_every_photo_once_and_resume(fake, tmp_path):
    folders = corpus_lib.split_folders(fake, str(tmp_path / "photos"))
    splits = corpus_lib.read_manifest(fake)
    for split, folder in folders.items():
        names = sorted(os.listdir(folder))
        assert names == sorted(os.path.basename(p) for p in splits[split])
        for name in names:
            assert os.path.samefile(os.path.join(folder, name),
                                    os.path.join(fake, "photos", name))
    assert corpus_lib.split_folders(fake, str(tmp_path / "photos")) == folders  # resumed


def test_labeled_set(fake):
    path = corpus_lib.labeled_set_path(fake, "debphoto15")
    with np.load(path) as d:
        assert d["x_train"].shape[1:] == (48, 48, 3) and len(d["y_test"]) == 12
    with pytest.raises(corpus_lib.CorpusError, match="no labelled set"):
        corpus_lib.labeled_set_path(fake, "debphoto99")


def test_missing_or_incomplete_corpus_says_how_to_build_it(fake, tmp_path):
    with pytest.raises(corpus_lib.CorpusError, match="tfcolor-build-corpus --out DIR"):
        corpus_lib.read_manifest(str(tmp_path / "nothing"))
    (tmp_path / "manifest.csv").write_text("id,split\n0001,train\n")
    with pytest.raises(corpus_lib.CorpusError, match="no 'val' photo"):
        corpus_lib.read_manifest(str(tmp_path))
    (tmp_path / "manifest.csv").write_text("id,split\n0001,train\n0002,val\n0003,holdout\n")
    with pytest.raises(corpus_lib.CorpusError, match="missing"):
        corpus_lib.read_manifest(str(tmp_path))
    (tmp_path / "labeled").mkdir()
    np.savez(tmp_path / "labeled" / "x.npz", x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2))
    with pytest.raises(corpus_lib.CorpusError, match="x_train"):
        corpus_lib.labeled_set_path(str(tmp_path), "x")
