"""Where images come from: folders and globs, TFRecord files, TensorFlow Datasets, NumPy arrays.

A *source* yields *records*: dicts with a ``"name"`` (file path, ``file#index`` or array index,
for skip reports) and ``"path"`` (a file to read), ``"encoded"`` (image bytes, or a serialized
``tf.train.Example`` for TFRecord sources, whose ``payload`` is ``"example"``) or ``"image"`` (a
decoded array). The pipelines (:mod:`tfcolor.data.pretrain`,
:mod:`tfcolor.data.evaluate`) decode records robustly (:mod:`tfcolor.data.decode`) and augment
them. :func:`as_source` turns what a user passes into a source:

=========================================== ==============================================
argument                                    source
=========================================== ==============================================
``None``, ``"embedded"``                    the photos shipped with tfcolor (train split)
``"embedded:validation"``                   the shipped validation photos (``"embedded:all"``:
                                            all of them; :func:`embedded_split`)
a folder                                    every JPEG/PNG/BMP/GIF/WebP file below it
                                            (recursive; extensions case-insensitive); a
                                            folder holding only ``*.tfrecord*`` files is
                                            read as TFRecords
a glob (``"photos/*.jpg"``, ``"**"`` ok)    the matching files
an image file / a list of image files       those files (folders and globs in a list are
                                            expanded; listed paths that cannot be read are
                                            skipped as ``not_a_file``)
``*.tfrecord*`` / ``*.tfrec`` files, globs  :class:`TFRecordSource` (``tf.train.Example``)
``"tfds:NAME[/CONFIG][:SPLIT]"``            :class:`TFDSSource` (optional dependency)
NumPy array (N, H, W[, C]) or list of them  :class:`ArraySource` (uint8, uint16 or float)
=========================================== ==============================================

An empty or missing source fails at construction with an error naming the path.

A directory is never an image: folder listings recurse into every sub-folder (also one named
``x.jpg``) and glob matches drop directories, so a directory is neither read nor reported. A
listed name that is not a readable file when it is read (a dangling symbolic link, a file
deleted since the listing, no permission) is skipped with the reason ``not_a_file``.

Sharding for multi-worker training
----------------------------------
``records(..., shard=(num_shards, index, policy))`` shards explicitly, as
``strategy.distribute_datasets_from_function`` wants (the pipelines take the numbers from a
``tf.distribute.InputContext``). :func:`resolve_shard_policy` picks the policy: ``"file"`` when
the source has at least as many files as there are input pipelines (each worker reads its own
files: no wasted I/O), else ``"data"`` (every worker reads everything and keeps every n-th
record). For folders and arrays one record is one file, so both policies shard the list of
records. Without an input context the pipelines instead set
``tf.data.Options().experimental_distribute.auto_shard_policy`` for
``strategy.experimental_distribute_dataset``: ``AUTO`` (TF's own FILE-then-DATA) for TFRecord and
TFDS sources, ``DATA`` for folders and arrays (TF's FILE policy only recognises reader datasets
such as ``TFRecordDataset``, not ``tf.io.read_file``), see :meth:`ImageSource.auto_shard_policy`.
"""
import glob as glob_lib
import importlib
import os

import numpy as np
import tensorflow as tf

import tfcolor.data.decode as decode
import tfcolor.data.embedded as embedded

__all__ = [
    "IMAGE_EXTENSIONS", "TFRECORD_SUFFIXES", "ImageSource", "FileSource", "TFRecordSource",
    "TFDSSource", "ArraySource", "as_source", "embedded_split", "embedded_files",
    "list_image_files", "resolve_shard_policy", "SHARD_POLICIES", "SourceError",
]

#: File name extensions listed from folders (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")
SHARD_POLICIES = ("auto", "file", "data", "off")


class SourceError(ValueError):
    """A data source is missing, empty or malformed; the message names it."""


def embedded_split(data):
    """The split of the shipped photos that ``data`` names, or None if it names none.

    ``"embedded"`` is the train split, ``"embedded:SPLIT"`` the split SPLIT (``train``,
    ``validation``, ``all``); anything else (a path, even one starting with ``embedded``) is
    not the shipped photos. Every program and function that takes image data reads these
    names through this function.

    Raises:
        SourceError: ``"embedded:SPLIT"`` with an unknown SPLIT.
    """
    if not isinstance(data, str) or not (data == "embedded" or data.startswith("embedded:")):
        return None
    split = data.partition(":")[2] if ":" in data else "train"
    if split not in embedded.SPLITS:
        raise SourceError(f"{data!r}: the shipped photos have the splits "
                          f"{', '.join(embedded.SPLITS)} ('embedded' is the train split)")
    return split


def embedded_files(data):
    """The sorted files of the shipped photos ``data`` names (:func:`embedded_split`), or None
    if it names none."""
    split = embedded_split(data)
    if split is None:
        return None
    return embedded.embedded_photos(split)


def _is_remote(path):
    return "://" in str(path)


def _looks_like_tfrecord(path):
    base = os.path.basename(str(path)).lower()
    return any(s in base for s in TFRECORD_SUFFIXES)


def _is_glob(path):
    return any(c in str(path) for c in "*?[")


def list_image_files(path, extensions=IMAGE_EXTENSIONS):
    """Sorted image files below a folder (recursive) or matching a glob.

    Raises:
        SourceError: if the folder or pattern does not exist or contains no image file.
    """
    path = os.fspath(path)
    exts = tuple(e.lower() for e in extensions)
    if _is_glob(path):
        files = _glob(path)
        files = [f for f in files if not _isdir(f)]
        if not files:
            raise SourceError(f"no file matches the pattern {path!r}")
        return sorted(files)
    if not _exists(path):
        raise SourceError(f"image source {path!r} does not exist")
    if not _isdir(path):
        return [path]
    files = []
    if _is_remote(path):
        for root, _, names in tf.io.gfile.walk(path):
            files += [os.path.join(root, n) for n in names if n.lower().endswith(exts)]
    else:
        visited = set()
        for root, dirs, names in os.walk(path, followlinks=True):
            real = os.path.realpath(root)
            if real in visited:  # a symbolic link back to a folder already listed (a loop)
                dirs[:] = []
                continue
            visited.add(real)
            dirs.sort()
            files += [os.path.join(root, n) for n in names if n.lower().endswith(exts)]
    if not files:
        raise SourceError(f"no image file ({', '.join(extensions)}) found under {path!r}")
    return sorted(files)


def _glob(pattern):
    if _is_remote(pattern):
        return tf.io.gfile.glob(pattern)
    return glob_lib.glob(os.path.expanduser(pattern), recursive=True)


def _exists(path):
    return tf.io.gfile.exists(path) if _is_remote(path) else os.path.exists(path)


def _isdir(path):
    return tf.io.gfile.isdir(path) if _is_remote(path) else os.path.isdir(path)


def resolve_shard_policy(policy, num_files, num_shards):
    """The sharding actually used: ``"file"``, ``"data"`` or ``"off"``.

    Args:
        policy: ``"auto"``, ``"file"``, ``"data"`` or ``"off"``.
        num_files: files the source can shard by (``None`` when it cannot shard by file).
        num_shards: number of input pipelines (workers).
    """
    if policy not in SHARD_POLICIES:
        raise ValueError(f"shard_policy must be one of {SHARD_POLICIES}, got {policy!r}")
    if num_shards is None or num_shards <= 1 or policy == "off":
        return "off"
    if policy == "file":
        if not num_files or num_files < num_shards:
            raise ValueError(f"shard_policy='file' needs at least one file per input pipeline: "
                             f"{num_files or 0} file(s) for {num_shards} pipelines; use 'data' "
                             f"or 'auto'")
        return "file"
    if policy == "data":
        return "data"
    return "file" if num_files and num_files >= num_shards else "data"


class ImageSource:
    """Base class of the sources. Subclasses implement :meth:`records`."""

    #: What the records carry: "path", "encoded" (image bytes), "example" (a serialized
    #: tf.train.Example in "encoded", see TFRecordSource.image_bytes) or "image".
    payload = "path"

    def __len__(self):
        raise TypeError(f"{type(self).__name__} has no known length")

    @property
    def num_files(self):
        """Number of files the source can shard by, or None."""
        return None

    def auto_shard_policy(self):
        """The ``tf.data.experimental.AutoShardPolicy`` to use without an input context."""
        return tf.data.experimental.AutoShardPolicy.DATA

    def records(self, *, shuffle=False, seed=None, repeat=False, shard=None, shuffle_buffer=1024,
                deterministic=None):
        """A dataset of records.

        Args:
            shuffle: shuffle (fully for file lists and arrays, by a buffer of
                ``shuffle_buffer`` records for TFRecord/TFDS); reshuffled every epoch.
            seed: the shuffle seed (int) or None.
            repeat: repeat forever.
            shard: ``(num_shards, index, policy)`` with policy ``"file"``, ``"data"`` or
                ``"off"`` (see :func:`resolve_shard_policy`), or None.
            deterministic: element order of parallel reads (None: tf.data's default).
        """
        raise NotImplementedError


class _ListSource(ImageSource):
    """Shared logic of sources that are a list of records known up front."""

    def _slices(self):
        raise NotImplementedError

    def records(self, *, shuffle=False, seed=None, repeat=False, shard=None, shuffle_buffer=1024,
                deterministic=None):
        del shuffle_buffer, deterministic
        ds = tf.data.Dataset.from_tensor_slices(self._slices())
        if shard is not None and shard[2] != "off":
            ds = ds.shard(shard[0], shard[1])  # one record per file: file and data sharding agree
        if shuffle:
            ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        return ds


class FileSource(_ListSource):
    """A list of image files (JPEG, PNG, BMP, GIF, WebP; local or any ``tf.io.gfile`` path)."""

    payload = "path"

    def __init__(self, files):
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        self.files = [os.fspath(f) for f in files]
        if not self.files:
            raise SourceError("the list of image files is empty")

    @classmethod
    def from_path(cls, path, extensions=IMAGE_EXTENSIONS):
        """All image files below a folder (recursive), matching a glob, or one file."""
        return cls(list_image_files(path, extensions))

    def __len__(self):
        return len(self.files)

    @property
    def num_files(self):
        return len(self.files)

    def _slices(self):
        return {"path": self.files, "name": self.files}

    def __repr__(self):
        return f"FileSource({len(self.files)} files, first {self.files[0]!r})"


class ArraySource(_ListSource):
    """In-memory images: an array (N, H, W[, C]) or a list of (H, W[, C]) arrays.

    uint8 is divided by 255, uint16 by 65535, float must already be in [0, 1] (checked here).
    C is 1 (grey, replicated), 3, or 2 / 4 (with alpha, composited like decoded files). A list
    may hold images of different sizes (stored as one ragged tensor). The arrays are embedded in
    the dataset graph, so keep them under ~2 GB; use files or TFRecords beyond that.
    """

    payload = "image"

    def __init__(self, images, names=None):
        if isinstance(images, np.ndarray):
            if images.ndim not in (3, 4):
                raise SourceError(f"an image array must be (N, H, W) or (N, H, W, C), got shape "
                                  f"{images.shape}")
            arrays = None
            batch = images if images.ndim == 4 else images[..., None]
            count = batch.shape[0]
            dtype = batch.dtype
            channels = batch.shape[-1]
        else:
            arrays = [np.asarray(a) for a in images]
            if not arrays:
                raise SourceError("the list of image arrays is empty")
            arrays = [a if a.ndim == 3 else a[..., None] if a.ndim == 2 else None for a in arrays]
            if any(a is None for a in arrays):
                raise SourceError("every image of a list must be (H, W) or (H, W, C)")
            dtype = arrays[0].dtype
            channels = arrays[0].shape[-1]
            if any(a.dtype != dtype or a.shape[-1] != channels for a in arrays):
                raise SourceError("all images of a list must share dtype and channel count")
            count = len(arrays)
            batch = None
        if count == 0:
            raise SourceError("the image array is empty (N = 0)")
        if channels not in (1, 2, 3, 4):
            raise SourceError(f"images must have 1, 2, 3 or 4 channels, got {channels}")
        if dtype == np.uint8:
            self._scale = 1.0 / 255.0
        elif dtype == np.uint16:
            self._scale = 1.0 / 65535.0
        elif np.issubdtype(dtype, np.floating):
            self._scale = 1.0
            parts = [batch] if batch is not None else arrays
            lo = min(float(np.min(p)) for p in parts)
            hi = max(float(np.max(p)) for p in parts)
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
                raise SourceError(f"float images must be finite and in [0, 1], got values in "
                                  f"[{lo}, {hi}]")
        else:
            raise SourceError(f"image arrays must be uint8, uint16 or float, got {dtype}")
        self._count = int(count)
        self._batch = batch
        self._arrays = arrays
        self.channels = int(channels)
        if names is None:
            names = [f"array[{i}]" for i in range(count)]
        names = [str(n) for n in names]
        if len(names) != count:
            raise SourceError(f"got {len(names)} names for {count} images")
        self.names = names

    def __len__(self):
        return self._count

    def _slices(self):
        if self._batch is not None:
            return {"image": self._batch, "name": self.names}
        flat = np.concatenate([a.reshape(-1, self.channels) for a in self._arrays])
        lengths = [a.shape[0] * a.shape[1] for a in self._arrays]
        ragged = tf.RaggedTensor.from_row_lengths(flat, lengths)
        shapes = np.array([a.shape[:2] for a in self._arrays], np.int32)
        return {"pixels": ragged, "hw": shapes, "name": self.names}

    def to_float_rgb(self, record, alpha_background=0.5):
        """The record's image as float32 (H, W, 3) in [0, 1]."""
        if "pixels" in record:
            hw = record["hw"]
            image = tf.reshape(record["pixels"], [hw[0], hw[1], self.channels])
        else:
            image = record["image"]
        image = tf.cast(image, tf.float32) * self._scale
        return decode.to_rgb(image, alpha_background)

    def __repr__(self):
        return f"ArraySource({self._count} images, {self.channels} channel(s))"


def _decode():
    return decode


_END = -1  # status of the end-of-file check of a TFRecord file that was read completely


class TFRecordSource(ImageSource):
    """TFRecord files of ``tf.train.Example`` holding encoded images.

    Args:
        files: a file, a glob, or a list of files/globs.
        image_key: feature holding the encoded image (``"image/encoded"``, the TF Object
            Detection / Inception convention).
        compression_type: ``None``/``""``, ``"GZIP"`` or ``"ZLIB"``.
        cycle_length: files read in parallel.

    Records hold the serialized Example in ``"encoded"`` (payload ``"example"``: the
    pipelines take the image out with :meth:`image_bytes` inside their error-safe decode, so a
    record whose payload is not a ``tf.train.Example`` is skipped as ``bad_record``). Record
    names are ``"<file>#<index in file>"``. Records carry a ``"status"`` (a
    :data:`tfcolor.data.decode.REASONS` code) that the pipelines report: a truncated file or
    one with a bad CRC ends that file's stream (TensorFlow cannot resynchronise) and is
    reported once as ``corrupt_file`` with the file name and the byte where reading stopped,
    detected by comparing the bytes read with the file size (local uncompressed files; remote
    or compressed files end silently there). The other files are read on.
    """

    payload = "example"

    def __init__(self, files, image_key="image/encoded", compression_type=None, cycle_length=4):
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        resolved = []
        for f in files:
            f = os.fspath(f)
            if _is_glob(f):
                matches = sorted(_glob(f))
                if not matches:
                    raise SourceError(f"no TFRecord file matches {f!r}")
                resolved += matches
            elif not _exists(f):
                raise SourceError(f"TFRecord file {f!r} does not exist")
            elif _isdir(f):
                resolved += sorted(os.path.join(f, n) for n in tf.io.gfile.listdir(f)
                                   if _looks_like_tfrecord(n))
            else:
                resolved.append(f)
        if not resolved:
            raise SourceError(f"no TFRecord file found in {list(map(os.fspath, files))!r}")
        self.files = resolved
        self.image_key = image_key
        self.compression_type = compression_type or ""
        self.cycle_length = int(cycle_length)

    @property
    def num_files(self):
        return len(self.files)

    def auto_shard_policy(self):
        return tf.data.experimental.AutoShardPolicy.AUTO

    def _file_sizes(self):
        """Byte size of every uncompressed local file (-1: not checked)."""
        if self.compression_type:
            return [-1] * len(self.files)
        def size(path):
            try:
                return -1 if _is_remote(path) else os.path.getsize(path)
            except OSError:  # gone since the listing: TFRecordDataset reports nothing either
                return -1
        return [size(f) for f in self.files]

    def _read(self, path, size):
        """(name, serialized, status) of one file's records, then one (name, "", CORRUPT_FILE)
        element if the records read do not add up to the file's size (truncated or bad CRC:
        TFRecordDataset raises DataLossError there, or just stops at a cut record)."""
        records = tf.data.TFRecordDataset(path, compression_type=self.compression_type)
        records = records.ignore_errors().map(lambda r: (r, tf.constant(False)))
        end = tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(True)))

        def account(state, item):
            consumed, count = state
            serialized, is_end = item
            name = tf.strings.join([path, "#", tf.strings.as_string(count)])
            complete = tf.logical_or(tf.less(size, 0), tf.equal(consumed, size))
            status = tf.where(is_end, tf.where(complete, _END, _decode().CORRUPT_FILE),
                              _decode().OK)
            end_name = tf.strings.join([
                path, " (unreadable after record ", tf.strings.as_string(count - 1), ", byte ",
                tf.strings.as_string(consumed), " of ", tf.strings.as_string(size), ")"])
            # a record costs 8 (length) + 4 (length CRC) + data + 4 (data CRC) bytes
            step = tf.cast(tf.strings.length(serialized), tf.int64) + 16
            new_state = (consumed + tf.where(is_end, tf.constant(0, tf.int64), step),
                         count + tf.where(is_end, tf.constant(0, tf.int64), 1))
            return new_state, (tf.where(is_end, end_name, name), serialized, status)

        ds = records.concatenate(end).scan(
            (tf.constant(0, tf.int64), tf.constant(0, tf.int64)), account)
        return ds.filter(lambda name, serialized, status: tf.not_equal(status, _END))

    def image_bytes(self, serialized):
        """The encoded image of one serialized ``tf.train.Example`` (``""`` when the feature is
        missing); raises an op error when the record is not an Example."""
        features = tf.io.parse_single_example(
            serialized, {self.image_key: tf.io.FixedLenFeature([], tf.string, default_value="")})
        return features[self.image_key]

    def records(self, *, shuffle=False, seed=None, repeat=False, shard=None, shuffle_buffer=1024,
                deterministic=None):
        files = tf.data.Dataset.from_tensor_slices(
            (self.files, tf.constant(self._file_sizes(), tf.int64)))
        policy = shard[2] if shard is not None else "off"
        if policy == "file":
            files = files.shard(shard[0], shard[1])
        if shuffle:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            files = files.repeat()
        ds = files.interleave(self._read, cycle_length=min(self.cycle_length, len(self.files)),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        if policy == "data":
            ds = ds.shard(shard[0], shard[1])
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return ds.map(lambda name, serialized, status: {
            "encoded": serialized, "name": name, "status": status})

    def __repr__(self):
        return f"TFRecordSource({len(self.files)} files, image_key={self.image_key!r})"


def _import_tfds():
    # importlib: TFDS is an optional extra ("tfcolor[tfds]"), not a build dependency.
    try:
        tfds = importlib.import_module("tensorflow_datasets")
    except ImportError as err:
        raise ImportError("TensorFlow Datasets sources ('tfds:NAME') need the optional "
                          "dependency tensorflow-datasets: pip install 'tfcolor[tfds]' "
                          "(or pip install tensorflow-datasets)") from err
    return tfds


class TFDSSource(ImageSource):
    """A TensorFlow Datasets builder (imagenet2012, places365_small, voc, ...) by name.

    Images are read still encoded (``tfds.decode.SkipDecoding``) and decoded by tfcolor's robust
    decoder. TFDS is an optional dependency (``pip install 'tfcolor[tfds]'``); the data must be
    prepared beforehand (``tfds build NAME``; ImageNet needs ``--manual_dir``).

    Args:
        name: builder name, optionally with a config: ``"voc/2012"``.
        split: TFDS split string (``"train"``, ``"train[:90%]"``, ...).
        data_dir: TFDS data directory (None: TFDS's default, ``~/tensorflow_datasets``).
        image_key: the image feature (``"image"``).
        builder: an already constructed builder (bypasses ``tfds.builder``).
        tfds_module: the ``tensorflow_datasets`` module (injectable for tests).
    """

    payload = "encoded"

    def __init__(self, name, split="train", data_dir=None, image_key="image", builder=None,
                 tfds_module=None):
        self.name = name
        self.split = split
        self.image_key = image_key
        self.tfds = tfds_module if tfds_module is not None else _import_tfds()
        if builder is None:
            try:
                builder = self.tfds.builder(name, data_dir=data_dir)
            except Exception as err:  # DatasetNotFoundError, config errors, ...
                raise SourceError(f"TFDS dataset {name!r} cannot be loaded: {err}") from err
        self.builder = builder
        if not self._is_prepared():
            where = getattr(builder, "data_dir", data_dir or "~/tensorflow_datasets")
            raise SourceError(
                f"TFDS dataset {name!r} is not prepared in {where}: run `tfds build {name}` "
                f"first (datasets such as imagenet2012 need a manual download, see "
                f"`tfds build {name} --manual_dir=...`)")
        features = getattr(getattr(builder, "info", None), "features", None)
        if features is not None and hasattr(features, "keys") and image_key not in features.keys():
            raise SourceError(f"TFDS dataset {name!r} has no feature {image_key!r}; its features "
                              f"are {sorted(features.keys())}")

    def _is_prepared(self):
        check = getattr(self.builder, "is_prepared", None)
        if callable(check):
            return bool(check())
        data_dir = getattr(self.builder, "data_dir", None)
        return bool(data_dir) and tf.io.gfile.exists(data_dir)

    @property
    def num_files(self):
        return None  # TFDS shards by file itself, given the input context

    def auto_shard_policy(self):
        return tf.data.experimental.AutoShardPolicy.AUTO

    def records(self, *, shuffle=False, seed=None, repeat=False, shard=None, shuffle_buffer=1024,
                deterministic=None, input_context=None):
        read_config = self.tfds.ReadConfig(
            shuffle_seed=seed, input_context=input_context, add_tfds_id=True,
            interleave_cycle_length=tf.data.AUTOTUNE)
        ds = self.builder.as_dataset(
            split=self.split, shuffle_files=bool(shuffle), read_config=read_config,
            decoders={self.image_key: self.tfds.decode.SkipDecoding()})
        if shard is not None and shard[2] == "data" and input_context is None:
            ds = ds.shard(shard[0], shard[1])
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        key = self.image_key
        prefix = f"tfds:{self.name}:{self.split}#"

        def to_record(example):
            if "tfds_id" in example:
                name = tf.strings.join([prefix, example["tfds_id"]])
            else:
                name = tf.constant(prefix)
            return {"encoded": example[key], "name": name}

        return ds.map(to_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

    def __repr__(self):
        return f"TFDSSource({self.name!r}, split={self.split!r})"


def _parse_tfds(spec):
    body = spec[len("tfds:"):]
    if not body:
        raise SourceError("'tfds:' needs a dataset name, e.g. 'tfds:imagenet2012:train'")
    name, _, split = body.partition(":")
    return name, split or "train"


def as_source(data=None, *, image_key=None, **kwargs):
    """Turns ``data`` into an :class:`ImageSource` (see the module docstring for what's accepted).

    Args:
        data: see the table in the module docstring.
        image_key: the image feature key for TFRecord (default ``"image/encoded"``) and TFDS
            (default ``"image"``) sources.
        **kwargs: passed to the TFRecord/TFDS source constructor (``compression_type``,
            ``data_dir``, ...).
    """
    if isinstance(data, ImageSource):
        return data
    if data is None:
        data = "embedded"
    shipped = embedded_files(data)
    if shipped is not None:
        return FileSource(shipped)
    if isinstance(data, np.ndarray):
        return ArraySource(data)
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, np.ndarray) for d in data):
        return ArraySource(list(data))
    if isinstance(data, str) and data.startswith("tfds:"):
        name, split = _parse_tfds(data)
        extra = dict(kwargs)
        if image_key:
            extra["image_key"] = image_key
        return TFDSSource(name, split, **extra)
    tf_kwargs = dict(kwargs)
    if image_key:
        tf_kwargs["image_key"] = image_key
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if _looks_like_tfrecord(path) and (_is_glob(path) or not _isdir(path)):
            return TFRecordSource(path, **tf_kwargs)
        if not _is_glob(path) and _isdir(path):
            try:
                return FileSource.from_path(path)
            except SourceError:
                tfrecords = [n for n in tf.io.gfile.listdir(path) if _looks_like_tfrecord(n)]
                if tfrecords:
                    return TFRecordSource(path, **tf_kwargs)
                raise
        return FileSource.from_path(path)
    if isinstance(data, (list, tuple)):
        if not data:
            raise SourceError("the list of files is empty")
        paths = [os.fspath(p) for p in data]
        if all(_looks_like_tfrecord(p) for p in paths):
            return TFRecordSource(paths, **tf_kwargs)
        files, empty = [], []
        for p in paths:
            if _is_glob(p) or _isdir(p):
                try:
                    files += list_image_files(p)
                except SourceError:
                    empty.append(p)  # a folder without images or an unmatched glob adds nothing
            else:
                files.append(p)
        # Listed files that cannot be read are kept: they are skipped (``not_a_file``) and
        # reported like any bad file, unless nothing in the list can be read at all.
        if not [p for p in files if _is_remote(p) or os.path.isfile(p)]:
            raise SourceError(f"none of the {len(paths)} listed image paths is a readable image "
                              f"file, e.g. {(files or empty)[0]!r}")
        return FileSource(files)
    raise SourceError(f"cannot use {type(data).__name__} as an image source; pass a folder, a "
                      f"glob, files, TFRecords, 'tfds:NAME', a NumPy array or None (embedded)")
