"""Sources: folders, globs, TFRecord, TFDS (fake builder), NumPy arrays, and sharding."""
import os
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor.data import sources
from tfcolor.data import stages

sys.path.insert(0, os.path.dirname(__file__))
from data_testlib import encode, smooth_rgb  # noqa: E402


def _names(ds):
    return [e["name"].numpy().decode() for e in ds]


@pytest.fixture()
def photo_tree(tmp_path):
    """a/1.jpg, a/b/2.PNG, c.Jpeg, notes.txt, empty/."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    image = Image.fromarray(smooth_rgb(16, 16))
    image.save(tmp_path / "a" / "1.jpg")
    image.save(tmp_path / "a" / "b" / "2.PNG")
    image.save(tmp_path / "c.Jpeg", "JPEG")
    (tmp_path / "notes.txt").write_text("not listed")
    return tmp_path


def test_folder_is_listed_recursively_and_sorted(photo_tree):
    files = sources.list_image_files(photo_tree)
    rel = [os.path.relpath(f, photo_tree) for f in files]
    assert rel == ["a/1.jpg", "a/b/2.PNG", "c.Jpeg"]
    src = sources.as_source(str(photo_tree))
    assert isinstance(src, sources.FileSource) and len(src) == 3
    records = list(src.records())
    assert [r["path"].numpy().decode() for r in records] == files


def test_symbolic_link_loops_are_listed_once(photo_tree):
    os.symlink(photo_tree / "a", photo_tree / "a" / "b" / "back_to_a")
    files = sources.list_image_files(str(photo_tree / "a"))
    assert [os.path.relpath(f, photo_tree) for f in files] == ["a/1.jpg", "a/b/2.PNG"]


def test_glob_and_file_lists(photo_tree):
    src = sources.as_source(str(photo_tree / "**" / "*.jpg"))
    assert [os.path.basename(f) for f in src.files] == ["1.jpg"]
    src = sources.as_source([str(photo_tree / "c.Jpeg"), str(photo_tree / "a")])
    assert sorted(os.path.basename(f) for f in src.files) == ["1.jpg", "2.PNG", "c.Jpeg"]


def test_missing_or_empty_sources_fail_fast_naming_the_path(photo_tree):
    with pytest.raises(sources.SourceError, match="empty"):
        sources.as_source(str(photo_tree / "empty"))
    missing = str(photo_tree / "nowhere")
    with pytest.raises(sources.SourceError, match="nowhere.*does not exist"):
        sources.as_source(missing)
    with pytest.raises(sources.SourceError, match=r"no file matches"):
        sources.as_source(str(photo_tree / "*.gif"))
    # a list keeps a missing entry (skipped as not_a_file when read) but not a list of nothing
    listed = sources.as_source([str(photo_tree / "c.Jpeg"), str(photo_tree / "gone.jpg")])
    assert listed.files == [str(photo_tree / "c.Jpeg"), str(photo_tree / "gone.jpg")]
    with pytest.raises(sources.SourceError, match="none of the 2 listed.*gone.jpg"):
        sources.as_source([str(photo_tree / "gone.jpg"), str(photo_tree / "empty")])
    with pytest.raises(sources.SourceError, match="empty"):
        sources.as_source([])
    with pytest.raises(sources.SourceError, match="cannot use"):
        sources.as_source(3.5)


def test_shuffle_is_a_seeded_permutation_reshuffled_each_epoch(tmp_path):
    files = [str(tmp_path / f"{i:02d}.jpg") for i in range(12)]
    src = sources.FileSource(files)
    epochs = _names(src.records(shuffle=True, seed=3, repeat=True).take(24))
    first, second = epochs[:12], epochs[12:]
    assert sorted(first) == files and sorted(second) == files
    assert first != second
    assert epochs == _names(src.records(shuffle=True, seed=3, repeat=True).take(24))
    assert first != _names(src.records(shuffle=True, seed=4).take(12))


def _write_tfrecords(folder, count_per_file, num_files, key="image/encoded"):
    paths = []
    k = 0
    for f in range(num_files):
        path = str(folder / f"part-{f}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count_per_file):
                data = encode(Image.fromarray(np.full((8, 8, 3), k, np.uint8)), "PNG")
                example = tf.train.Example(features=tf.train.Features(feature={
                    key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}))
                writer.write(example.SerializeToString())
                k += 1
        paths.append(path)
    return paths


def test_tfrecord_source_reads_examples(tmp_path):
    paths = _write_tfrecords(tmp_path, 3, 2, key="jpeg")
    src = sources.as_source(str(tmp_path / "*.tfrecord"), image_key="jpeg")
    assert isinstance(src, sources.TFRecordSource) and src.num_files == 2
    records = list(src.records(deterministic=True))
    names = [r["name"].numpy().decode() for r in records]
    assert sorted(names) == sorted(f"{p}#{i}" for p in paths for i in range(3))
    assert src.payload == "example"
    values = sorted(int(tf.io.decode_png(src.image_bytes(r["encoded"]))[0, 0, 0])
                    for r in records)
    assert values == list(range(6))
    # a folder of TFRecords is recognised too
    assert isinstance(sources.as_source(str(tmp_path), image_key="jpeg"), sources.TFRecordSource)
    with pytest.raises(sources.SourceError, match="does not exist"):
        sources.TFRecordSource(str(tmp_path / "missing.tfrecord"))


def test_tfrecord_missing_image_key_gives_empty_records_that_get_skipped(tmp_path):
    from tfcolor.data.decode import SkipCounter
    _write_tfrecords(tmp_path, 2, 1, key="other")
    src = sources.TFRecordSource(str(tmp_path / "part-0.tfrecord"))
    counter = SkipCounter()
    ds = stages.decoded_images(src.records(), src, skip_counter=counter)
    assert list(ds) == []
    assert counter.counts == {"empty": 2}


def test_hostile_tfrecords_are_reported_by_file_and_the_rest_is_read(tmp_path):
    """Garbage payloads, a truncated file and a bad CRC: each reported with its file name (and
    where reading stopped); every good record of every file still comes through, in one run."""
    from tfcolor.data.decode import SkipCounter
    (good, damaged) = _write_tfrecords(tmp_path, 5, 2)
    data = open(damaged, "rb").read()
    record = len(data) // 5                    # the 5 records have the same size
    with open(tmp_path / "truncated.tfrecord", "wb") as f:
        f.write(data[:2 * record + record // 2])   # cut in the middle of record 2
    flipped = bytearray(data)
    flipped[3 * record + 20] ^= 0xFF           # payload byte of record 3: its CRC fails
    with open(tmp_path / "bad_crc.tfrecord", "wb") as f:
        f.write(bytes(flipped))
    os.remove(damaged)
    image = encode(Image.fromarray(np.full((8, 8, 3), 7, np.uint8)), "PNG")
    with tf.io.TFRecordWriter(str(tmp_path / "garbage.tfrecord")) as writer:
        writer.write(b"not a serialized tf.train.Example")
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
            .SerializeToString())
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[b"<html>404</html>"]))})).SerializeToString())
    src = sources.as_source(str(tmp_path / "*.tfrecord"))
    counter = SkipCounter()
    ds = stages.decoded_images(src.records(), src, skip_counter=counter)
    names = sorted(os.path.basename(n) for n in _names(ds))
    assert names == sorted([f"part-0.tfrecord#{i}" for i in range(5)]
                           + ["truncated.tfrecord#0", "truncated.tfrecord#1",
                              "bad_crc.tfrecord#0", "bad_crc.tfrecord#1", "bad_crc.tfrecord#2",
                              "garbage.tfrecord#1"])
    skipped = {os.path.basename(n): r for n, r in counter.skipped}
    size = len(data)
    assert skipped == {
        "garbage.tfrecord#0": "bad_record",
        "garbage.tfrecord#2": "unknown_format",
        f"truncated.tfrecord (unreadable after record 1, byte {2 * record} of "
        f"{2 * record + record // 2})": "corrupt_file",
        f"bad_crc.tfrecord (unreadable after record 2, byte {3 * record} of {size})":
            "corrupt_file"}


@pytest.mark.parametrize("policy,expected", [
    ("auto", "file"), ("file", "file"), ("data", "data"), ("off", "off")])
def test_tfrecord_sharding_is_disjoint_and_complete(tmp_path, policy, expected):
    _write_tfrecords(tmp_path, 2, 4)
    src = sources.TFRecordSource(str(tmp_path / "*.tfrecord"))
    resolved = sources.resolve_shard_policy(policy, src.num_files, 2)
    assert resolved == expected
    shards = [_names(src.records(shard=(2, i, resolved), deterministic=True)) for i in (0, 1)]
    if expected == "off":
        assert shards[0] == shards[1] and len(shards[0]) == 8
        return
    assert not set(shards[0]) & set(shards[1])
    assert len(shards[0]) + len(shards[1]) == 8
    if expected == "file":   # whole files per worker
        files = [{n.split("#")[0] for n in s} for s in shards]
        assert len(files[0]) == len(files[1]) == 2 and not files[0] & files[1]


def test_resolve_shard_policy():
    assert sources.resolve_shard_policy("auto", 10, 4) == "file"
    assert sources.resolve_shard_policy("auto", 3, 4) == "data"
    assert sources.resolve_shard_policy("auto", None, 4) == "data"
    assert sources.resolve_shard_policy("auto", 10, 1) == "off"
    with pytest.raises(ValueError, match="at least one file per input pipeline"):
        sources.resolve_shard_policy("file", 3, 4)
    with pytest.raises(ValueError, match="shard_policy"):
        sources.resolve_shard_policy("bogus", 3, 4)


def test_file_sharding_of_folders(tmp_path):
    files = [str(tmp_path / f"{i}.jpg") for i in range(5)]
    src = sources.FileSource(files)
    parts = [_names(src.records(shard=(2, i, "file"))) for i in (0, 1)]
    assert sorted(parts[0] + parts[1]) == files and not set(parts[0]) & set(parts[1])


def _convert_all(src):
    return [src.to_float_rgb(r).numpy() for r in src.records()]


def test_array_sources_scale_to_unit_range():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    out = _convert_all(sources.as_source(u8))
    np.testing.assert_allclose(np.stack(out), u8 / 255.0, atol=1e-7)
    u16 = rng.integers(0, 65536, (2, 4, 4), dtype=np.uint16)   # grey, no channel axis
    out = _convert_all(sources.as_source(u16))
    np.testing.assert_allclose(np.stack(out), np.repeat(u16[..., None] / 65535.0, 3, -1),
                               atol=1e-7)
    f32 = rng.random((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(np.stack(_convert_all(sources.as_source(f32))), f32, atol=1e-7)


def test_array_list_of_different_sizes():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(4, 5), (7, 3)]]
    src = sources.ArraySource(images, names=["first", "second"])
    out = _convert_all(src)
    for got, want in zip(out, images):
        np.testing.assert_allclose(got, want / 255.0, atol=1e-7)
    assert _names(src.records()) == ["first", "second"]


def test_array_source_errors():
    with pytest.raises(sources.SourceError, match=r"in \[0, 1\]"):
        sources.ArraySource(np.full((1, 2, 2, 3), 1.5, np.float32))
    with pytest.raises(sources.SourceError, match="finite"):
        sources.ArraySource(np.full((1, 2, 2, 3), np.nan, np.float32))
    with pytest.raises(sources.SourceError, match="shape"):
        sources.ArraySource(np.zeros((2, 2), np.uint8))
    with pytest.raises(sources.SourceError, match="uint8, uint16 or float"):
        sources.ArraySource(np.zeros((1, 2, 2, 3), np.int32))
    with pytest.raises(sources.SourceError, match="channels"):
        sources.ArraySource(np.zeros((1, 2, 2, 5), np.uint8))
    with pytest.raises(sources.SourceError, match="names"):
        sources.ArraySource(np.zeros((2, 2, 2, 3), np.uint8), names=["a"])
    with pytest.raises(sources.SourceError, match="empty"):
        sources.ArraySource(np.zeros((0, 2, 2, 3), np.uint8))


def test_tfds_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)   # import fails
    with pytest.raises(ImportError, match=r"pip install 'tfcolor\[tfds\]'"):
        sources.as_source("tfds:imagenet2012")
    with pytest.raises(sources.SourceError, match="needs a dataset name"):
        sources.as_source("tfds:")


class _FakeReadConfig:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _FakeBuilder:
    """Quacks like a tfds DatasetBuilder over a few encoded PNGs."""

    def __init__(self, prepared=True, extra=()):
        self.prepared = prepared
        self.extra = list(extra)  # more encoded "images" (e.g. hostile bytes) after the PNGs
        self.calls = []
        self.info = types.SimpleNamespace(features={"image": None, "label": None})
        self.data_dir = "/fake/tfds/dir"

    def is_prepared(self):
        return self.prepared

    def as_dataset(self, split, shuffle_files, read_config, decoders):
        self.calls.append(dict(split=split, shuffle_files=shuffle_files,
                               read_config=read_config.kwargs, decoders=decoders))
        assert isinstance(decoders["image"], _FakeSkipDecoding)
        images = [encode(Image.fromarray(np.full((6, 6, 3), 40 * k, np.uint8)), "PNG")
                  for k in range(3)] + self.extra
        return tf.data.Dataset.from_tensor_slices({
            "image": images, "label": list(range(len(images))),
            "tfds_id": [f"t{i}" for i in range(len(images))]})


class _FakeSkipDecoding:
    pass


def _fake_tfds(builder):
    module = types.SimpleNamespace(
        builder=lambda name, data_dir=None: builder, ReadConfig=_FakeReadConfig,
        decode=types.SimpleNamespace(SkipDecoding=_FakeSkipDecoding))
    return module


def test_tfds_adapter_with_a_fake_builder():
    builder = _FakeBuilder()
    src = sources.TFDSSource("fake_ds", split="train[:3]", tfds_module=_fake_tfds(builder))
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    records = list(src.records(shuffle=True, seed=5, input_context=context))
    call = builder.calls[-1]
    assert call["split"] == "train[:3]" and call["shuffle_files"] is True
    assert call["read_config"]["input_context"] is context
    assert call["read_config"]["shuffle_seed"] == 5
    assert sorted(r["name"].numpy().decode() for r in records) == [
        f"tfds:fake_ds:train[:3]#t{i}" for i in range(3)]
    values = sorted(int(tf.io.decode_png(r["encoded"])[0, 0, 0]) for r in records)
    assert values == [0, 40, 80]


def test_tfds_records_with_hostile_bytes_are_skipped_by_name():
    from tfcolor.data.decode import SkipCounter
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import hostile_inputs  # pylint: disable=import-outside-toplevel
    extra = [b"", b"<html>404</html>", hostile_inputs.png_bomb(),
             encode(Image.fromarray(smooth_rgb(20, 20)), "JPEG")[:200]]
    src = sources.TFDSSource("fake_ds", tfds_module=_fake_tfds(_FakeBuilder(extra=extra)))
    counter = SkipCounter()
    names = _names(stages.decoded_images(src.records(), src, skip_counter=counter))
    assert sorted(names) == [f"tfds:fake_ds:train#t{i}" for i in range(3)]
    assert dict(counter.skipped) == {
        "tfds:fake_ds:train#t3": "empty", "tfds:fake_ds:train#t4": "unknown_format",
        "tfds:fake_ds:train#t5": "too_large", "tfds:fake_ds:train#t6": "corrupt"}


def test_tfds_unprepared_or_wrong_key_fails_clearly():
    with pytest.raises(sources.SourceError, match="not prepared.*tfds build voc"):
        sources.TFDSSource("voc", tfds_module=_fake_tfds(_FakeBuilder(prepared=False)))
    with pytest.raises(sources.SourceError, match="no feature 'photo'"):
        sources.TFDSSource("voc", image_key="photo", tfds_module=_fake_tfds(_FakeBuilder()))


def test_embedded_is_the_default():
    src = sources.as_source(None)
    assert isinstance(src, sources.FileSource) and len(src) == 41
    assert len(sources.as_source("embedded:validation")) == 8


def test_embedded_names_and_paths_that_only_start_like_them(tmp_path, monkeypatch):
    assert [sources.embedded_split(d) for d in ("embedded", "embedded:validation",
                                                "embedded:all")] == ["train", "validation", "all"]
    assert len(sources.as_source("embedded:all")) == 49
    for other in ("embedded_photos", "./embedded", "/data/embedded", None, 3):
        assert sources.embedded_split(other) is None
    with pytest.raises(sources.SourceError, match="'embedded:test'.*train, validation, all"):
        sources.as_source("embedded:test")
    # A folder whose name starts with "embedded" is that folder, not the shipped photos.
    folder = tmp_path / "embedded_photos"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    monkeypatch.chdir(tmp_path)
    assert sources.as_source("embedded_photos").files == [os.path.join("embedded_photos", "a.png")]
