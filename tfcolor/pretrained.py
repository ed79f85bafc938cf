"""Colorizers shipped with tfcolor: ``tfcolor.pretrained.load()`` works right after install.

A shipped model is a folder under ``tfcolor/assets/models/NAME/`` (package data, apart from code):

- ``config.json``: the :class:`tfcolor.config.PretrainConfig` it was trained with (the model is
  rebuilt from it by :func:`tfcolor.models.build_colorizer`);
- ``weights.npz``: every variable of the colorizer (trunk, head, batch-norm statistics) by its
  Keras path, stored as float16 (half the size; the colorizations differ from float32 by far less
  than one 8-bit level, see ``tests/test_pretrained.py``);
- ``MANIFEST.json``: the sha256 of the two files above, the training command, the checkpoint
  step, the data it was trained on (with the corpus manifest's sha256) and the licence;
- ``MODEL_CARD.md``: what the model is, how it was trained and selected, how it scores on
  held-out photos against the grey input and the marginal prior, and its limits.

:func:`load` checks the hashes, rebuilds the model and sets the weights; :func:`write` makes
such a folder from a training ``model_dir`` (``tools/package_pretrained.py`` is the program).
"""
import datetime
import hashlib
import json
import os

import numpy as np

from tfcolor import run_dir

CONFIG_FILE = run_dir.CONFIG_FILE

__all__ = ["MODELS_DIR", "DEFAULT", "available", "model_path", "read_manifest", "load", "write"]

#: Folder of the shipped models.
MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "models")
#: The model :func:`load` returns without a name.
DEFAULT = "debphoto_vgg_tiny"

WEIGHTS_FILE = "weights.npz"
MANIFEST_FILE = "MANIFEST.json"
CARD_FILE = "MODEL_CARD.md"


def available():
    """Names of the shipped models (sorted)."""
    if not os.path.isdir(MODELS_DIR):
        return []
    return sorted(n for n in os.listdir(MODELS_DIR)
                  if os.path.isfile(os.path.join(MODELS_DIR, n, MANIFEST_FILE)))


def model_path(name=None):
    """The folder of a shipped model (``name``: a name of :func:`available`, or a folder path)."""
    name = DEFAULT if name is None else name
    if os.path.isdir(name):
        return name
    path = os.path.join(MODELS_DIR, name)
    if not os.path.isfile(os.path.join(path, MANIFEST_FILE)):
        raise ValueError(f"no shipped model {name!r}; available: {available() or 'none'} "
                         f"(in {MODELS_DIR})")
    return path


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(name=None):
    """The ``MANIFEST.json`` of a shipped model, as a dict."""
    with open(os.path.join(model_path(name), MANIFEST_FILE), encoding="utf-8") as f:
        return json.load(f)


def load(name=None, *, verify=True):
    """Rebuilds a shipped colorizer with its weights.

    Args:
        name: a name of :func:`available` (default :data:`DEFAULT`) or a folder written by
            :func:`write`.
        verify: check the files' sha256 against ``MANIFEST.json`` first.

    Returns:
        ``(model, kind)``: a :class:`tfcolor.models.Colorizer` (float32) and its loss kind, as
        :func:`tfcolor.run_dir.load_model` returns them; pass it to the colorize functions or
        fine-tune it.

    Raises:
        ValueError: unknown name, a file that fails its hash, or weights that do not fit.
    """
    # lazy: TensorFlow only to load a model (tools/package_pretrained.py --help)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: config imports Keras (see above)
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    # lazy: the models import TensorFlow (see above)
    from tfcolor.models import build_colorizer  # pylint: disable=import-outside-toplevel
    path = model_path(name)
    manifest = read_manifest(path)
    if verify:
        for file, expected in manifest["sha256"].items():
            actual = _sha256(os.path.join(path, file))
            if actual != expected:
                raise ValueError(f"{os.path.join(path, file)} fails its sha256 check (expected "
                                 f"{expected[:12]}..., got {actual[:12]}...): the installation "
                                 "is damaged; reinstall tfcolor")
    with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
        config = config_lib.PretrainConfig.from_dict(json.load(f))
    model = build_colorizer(config)
    model(tf.zeros([1, 32, 32, 1]))  # build every variable
    with np.load(os.path.join(path, WEIGHTS_FILE)) as weights:
        stored = set(weights.files)
        names = [w.path for w in model.weights]
        if stored != set(names):
            missing, extra = sorted(set(names) - stored), sorted(stored - set(names))
            raise ValueError(f"{path}: weights do not fit the model of its config.json "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for w in model.weights:
            value = weights[w.path]
            if tuple(value.shape) != tuple(w.shape):
                raise ValueError(f"{path}: {w.path} has shape {value.shape}, the model "
                                 f"expects {tuple(w.shape)}")
            w.assign(value.astype(np.float32))
    return model, model.kind


def write(model_dir, out_dir, *, checkpoint=None, command="", data="", licence="",
          card="", extra=None):
    """Writes a shipped-model folder from a training ``model_dir``.

    Args:
        model_dir: a pretraining ``model_dir`` (``config.json`` and checkpoints).
        out_dir: the folder to write (created; must not exist).
        checkpoint: the checkpoint to ship (default: the run's model,
            ``tfcolor.run_dir.model_checkpoint``: the kept best of a ``keep_best`` run, else the
            latest complete one).
        command: the training command, for the manifest.
        data: where the training photos came from (text; e.g. the corpus builder and the sha256
            of its manifest).
        licence: the licence of the weights.
        card: the text of ``MODEL_CARD.md``.
        extra: more manifest entries (e.g. held-out metrics).

    Returns:
        ``out_dir``.
    """
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} exists; choose a new folder")
    model, _ = run_dir.load_model(model_dir, checkpoint)
    checkpoint = checkpoint or run_dir.model_checkpoint(model_dir, validate=False)[0]
    tmp = out_dir.rstrip("/") + ".tmp"
    os.makedirs(tmp)
    np.savez_compressed(os.path.join(tmp, WEIGHTS_FILE),
                        **{w.path: np.asarray(w.numpy(), np.float16) for w in model.weights})
    config = run_dir.read_config(model_dir, as_dict=True)
    with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
        f.write(card)
    manifest = {
        "sha256": {n: _sha256(os.path.join(tmp, n)) for n in (CONFIG_FILE, WEIGHTS_FILE)},
        "checkpoint": os.path.basename(checkpoint) if checkpoint else None,
        "command": command, "data": data, "licence": licence,
        "parameters": int(sum(int(np.prod(w.shape)) for w in model.weights)),
        "written": datetime.date.today().isoformat(),
    }
    manifest.update(extra or {})
    with open(os.path.join(tmp, MANIFEST_FILE), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.rename(tmp, out_dir)
    return out_dir
