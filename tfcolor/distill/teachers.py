"""Frozen teachers for distillation: loading, the activations they are matched at, how several are
combined into one target, and the target's statistics (METHOD_CH4.md §8.1).

* :class:`Teacher`: a frozen network and the layer whose activations are the target. Any
  ``keras.Model`` works (a trunk returning ``{tap: map}``, a classifier with a named ``"top"``
  and ``"task"`` layer, ...); its variables are not trainable and it always runs in inference
  mode. A teacher is never part of a student model, so a training checkpoint never holds it.
* :func:`load_teacher`: a teacher from a run: a colorization or multi-task ``model_dir``, a
  colorization export, a baseline ``model_dir`` (the trunk that ``binaries/finetune --init``
  loads, :func:`tfcolor.downstream.initialization.load_trunk`, batch normalization kept), or any
  other SavedModel (its ``features`` signature, else ``serving_default``; the activations as
  exported, which for tfcolor trunks are post-ReLU).
* :func:`resolve_layer`: the activations a name stands for. ``"top"`` is the top non-task layer:
  a layer named ``"top"`` if the model has one, else the deepest tap of a trunk. A layer
  followed by a ReLU layer named ``<layer>_relu`` (the tfcolor trunks' taps) is read before
  that ReLU with ``pre_relu`` (default: the method matches pre-ReLU top activations,
  [interpretation] of §8.1.2, because a ReLU follows them downstream), else after it.
* :func:`subset_indices`: the random feature subset of §8.1.5, drawn once from a fixed seed:
  ``"uniform"`` (any ``F`` of the ``M F`` concatenated features, without replacement) or
  ``"per_teacher"`` (``F / M`` from each teacher; the first ``F mod M`` teachers give one
  more). The indices are sorted, so the target keeps the teachers' order.
* :func:`combine`: several teachers' activations as one target: ``"concat"``, ``"subset"``
  (concatenate, then take the subset), ``"average"`` (the ensemble mean: §8.1.1 averages
  logits) and ``"auxiliary"`` (concatenate; the student predicts all ``M F`` through an
  auxiliary layer, :func:`auxiliary_layer`).
* :func:`target_statistics`: the scale ``s`` of eq. 4.4, ``sqrt(E[y^2])`` per feature (or one
  scalar) over batches of the training data, computed once before training
  ([interpretation]); :func:`save_statistics` / :func:`load_statistics` keep it in the
  ``model_dir`` with what it was computed from, so a resumed run reads it back and refuses
  statistics of another teacher set.
* :func:`warm_start`: copies a teacher's weights into a student of the same architecture, by
  layer name (§8.1.6).
"""
import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import run_dir
from tfcolor import surgery
from tfcolor.downstream import initialization
from tfcolor.train import checkpointing

__all__ = ["Teacher", "TeacherError", "load_teacher", "describe_teacher", "locate",
           "resolve_layer", "subset_indices", "combine", "indices_digest", "COMBINATIONS",
           "SPREADS", "auxiliary_layer", "AUXILIARY_NAME",
           "target_statistics", "save_statistics", "load_statistics", "StatisticsMismatch",
           "STATISTICS_FILE", "warm_start", "fit_channels"]

#: How several teachers become one target.
COMBINATIONS = ("subset", "concat", "average", "auxiliary")
#: How a random feature subset is spread over the teachers.
SPREADS = ("uniform", "per_teacher")
#: The teacher statistics in a ``model_dir``.
STATISTICS_FILE = "distill_statistics.json"
#: Name of the auxiliary layer (the Dense layer of :func:`auxiliary_layer`).
AUXILIARY_NAME = "distill_auxiliary"


class TeacherError(config_lib.ConfigError):
    """A teacher cannot be loaded or does not fit (one line, naming the teacher)."""


class StatisticsMismatch(config_lib.ConfigError):
    """The ``model_dir`` holds teacher statistics computed from something else."""


def locate(model, layer="top", pre_relu=True):
    """Where the activations ``layer`` names are in ``model``: ``("input", name)`` (the input of
    layer ``name``), ``("output", name)`` or ``("key", key)`` (a key of the model's dict
    output); see :func:`resolve_layer`.

    Raises:
        TeacherError: no such layer or output.
    """
    names = {l.name for l in model.layers}
    outputs = model.output if isinstance(model.output, dict) else None
    if layer == "top":
        if "top" in names:
            layer = "top"
        elif outputs:
            layer = list(outputs)[-1]
        else:
            return ("model_output", None)
    if f"{layer}_relu" in names:
        return ("input", f"{layer}_relu") if pre_relu else ("output", f"{layer}_relu")
    if layer in names:
        return ("output", layer)
    if outputs and layer in outputs:
        return ("key", layer)
    raise TeacherError(f"the network {model.name!r} has no layer or output {layer!r}",
                       "teacher_layer")


def resolve_layer(model, layer="top", pre_relu=True):
    """The symbolic activations of ``model`` that ``layer`` names (see the module docstring).

    Args:
        model: a functional ``keras.Model``.
        layer: ``"top"``, a layer name, or a key of the model's dict output (a trunk tap).
        pre_relu: read a layer followed by ``<layer>_relu`` before that ReLU (else after).

    Raises:
        TeacherError: no such layer or output.
    """
    kind, name = locate(model, layer, pre_relu)
    if kind == "model_output":
        return model.output
    if kind == "input":
        return model.get_layer(name).input
    if kind == "output":
        return model.get_layer(name).output
    return model.output[name]


def fit_channels(images, channels):
    """``images`` (B, H, W, 1 or 3) for a network taking ``channels``: grey repeated to three
    channels (RGB-encoded grey) or colour desaturated to one (``(R + G + B) / 3``)."""
    have = images.shape[-1]
    if channels is None or have == channels:
        return images
    if have == 1 and channels == 3:
        return tf.repeat(images, 3, axis=-1)
    if have == 3 and channels == 1:
        return tf.reduce_mean(images, axis=-1, keepdims=True)
    raise ValueError(f"images have {have} channels; the network takes {channels}")


class Teacher:
    """A frozen network and the activations it is matched at.

    Args:
        model: a functional ``keras.Model``, or a callable ``images -> tensor or {name: tensor}``
            (e.g. a SavedModel signature), used as is.
        layer: the activations (:func:`resolve_layer`; for a callable with dict output, its
            key; ``"top"``: its only or last output).
        pre_relu: see :func:`resolve_layer`.
        name: shown in messages and in the statistics' identity.
        input_channels: channels the network takes (default: from a Keras model's input).

    Attributes:
        model: the full network (frozen).
        feature_model: the Keras model ``images -> activations`` (None for a callable).
    """

    def __init__(self, model, layer="top", *, pre_relu=True, name=None, input_channels=None):
        self.layer = layer
        self.pre_relu = bool(pre_relu)
        self.name = name or getattr(model, "name", "teacher")
        self.model = model
        self.feature_model = None
        if isinstance(model, keras.Model):
            model.trainable = False
            tensor = resolve_layer(model, layer, pre_relu)
            self.feature_model = keras.Model(model.inputs, tensor, name=f"{model.name}_features")
            self.feature_model.trainable = False
            if input_channels is None:
                shape = model.inputs[0].shape
                input_channels = shape[-1] if len(shape) == 4 else None
        self.input_channels = input_channels

    def __call__(self, images):
        """The activations on ``images`` (float32, inference mode, no gradient)."""
        images = fit_channels(tf.convert_to_tensor(images, tf.float32), self.input_channels)
        if self.feature_model is not None:
            out = self.feature_model(images, training=False)
        else:
            out = self.model(images)
            if isinstance(out, dict):
                if self.layer in out:
                    out = out[self.layer]
                elif self.layer == "top":
                    out = out[sorted(out)[-1]] if len(out) > 1 else next(iter(out.values()))
                else:
                    raise TeacherError(f"teacher {self.name}: no output {self.layer!r}; it has "
                                       f"{sorted(out)}", "teacher_layer")
        return tf.stop_gradient(tf.cast(out, tf.float32))

    @property
    def variables(self):
        """The teacher's variables (none of them trainable)."""
        return list(getattr(self.model, "variables", []))


def _saved_model_function(path):
    loaded = tf.saved_model.load(path)
    signatures = getattr(loaded, "signatures", {})
    for key in ("features", "serving_default"):
        if key in signatures:
            fn = signatures[key]
            arg = list(fn.structured_input_signature[1])
            if len(arg) != 1:
                raise TeacherError(f"teacher {path}: signature {key!r} takes {arg}, not one "
                                   "image batch", "teachers")
            channels = fn.structured_input_signature[1][arg[0]].shape
            channels = channels[-1] if channels.rank == 4 else None

            def call(images, fn=fn, arg=arg[0], loaded=loaded):  # keeps `loaded` alive
                del loaded
                return fn(**{arg: images})
            return call, channels
    raise TeacherError(f"teacher {path}: a SavedModel without a 'features' or "
                       "'serving_default' signature", "teachers")


def describe_teacher(path):
    """``"colorization"``, ``"export"``, ``"baseline"`` (:func:`tfcolor.run_dir.describe`) or
    ``"saved_model"``; raises :class:`TeacherError` for anything else (one line)."""
    kind = run_dir.describe(str(path))
    if kind is not None:
        return kind
    if tf.io.gfile.exists(os.path.join(str(path), "saved_model.pb")):
        return "saved_model"
    raise TeacherError(f"teachers: {path!r} is not a teacher: neither a colorization or "
                       f"multi-task model_dir ({run_dir.CONFIG_FILE} and checkpoints), an export "
                       f"({run_dir.EXPORT_METADATA_FILE}), a baseline model_dir "
                       f"({run_dir.BASELINE_FILE}) nor a SavedModel", "teachers")


def load_teacher(path, layer="top", *, pre_relu=True, color_input=False, arch="vgg16"):
    """A frozen :class:`Teacher` from a run or a SavedModel (see the module docstring).

    Args:
        path: the run directory, export or SavedModel.
        layer, pre_relu: the activations (:func:`resolve_layer`).
        color_input: the teacher reads colour images (a grey trunk gets an RGB first layer,
            :func:`tfcolor.surgery.prepare_trunk`); False: grey images.
        arch: the architecture of an export that does not record it.

    Raises:
        TeacherError: not a teacher, or its checkpoint cannot be read (one line).
    """
    kind = describe_teacher(path)
    name = os.path.basename(os.path.normpath(str(path))) or str(path)
    if kind == "saved_model":
        try:
            fn, channels = _saved_model_function(str(path))
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise TeacherError(f"teachers: {path}: {_first_line(e)}", "teachers") from e
        return Teacher(fn, layer, pre_relu=pre_relu, name=name, input_channels=channels)
    try:
        trunk, _ = initialization.load_trunk(str(path), arch=arch, absorb_bn=False,
                                             color_input=bool(color_input))
    except (FileNotFoundError, ValueError, AssertionError, checkpointing.CheckpointError,
            tf.errors.OpError) as e:
        raise TeacherError(f"teachers: {path}: {_first_line(e)}", "teachers") from e
    return Teacher(trunk, layer, pre_relu=pre_relu, name=name)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def subset_indices(widths, size, seed=0, spread="uniform"):
    """``size`` sorted indices into the concatenation of features of ``widths`` (one width per
    teacher), drawn once from ``seed`` (see the module docstring for ``spread``).

    Raises:
        ValueError: ``size`` larger than what the teachers (or one teacher) have.
    """
    widths = [int(w) for w in widths]
    total = sum(widths)
    if spread not in SPREADS:
        raise ValueError(f"subset_spread must be one of {SPREADS}, got {spread!r}")
    if not 0 < size <= total:
        raise ValueError(f"a subset of {size} features from teachers with {total} in all "
                         f"({widths})")
    rng = np.random.default_rng(seed)
    if spread == "uniform":
        return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)
    m = len(widths)
    counts = [size // m + (1 if i < size % m else 0) for i in range(m)]
    picked, offset = [], 0
    for width, count in zip(widths, counts):
        if count > width:
            raise ValueError(f"a per-teacher subset of {count} features from a teacher with "
                             f"{width}")
        picked.append(offset + np.sort(rng.choice(width, size=count, replace=False)))
        offset += width
    return np.concatenate(picked).astype(np.int64)


def combine(features, mode, indices=None):
    """One target from the teachers' activations ``features`` (a list of (..., F_m) tensors)."""
    if mode not in COMBINATIONS:
        raise ValueError(f"combine must be one of {COMBINATIONS}, got {mode!r}")
    if mode == "average":
        return tf.add_n(list(features)) / float(len(features))
    joined = features[0] if len(features) == 1 else tf.concat(list(features), axis=-1)
    if mode == "subset":
        return tf.gather(joined, tf.constant(indices, tf.int64), axis=-1)
    return joined


def auxiliary_layer(width, name=AUXILIARY_NAME):
    """The auxiliary layer of §8.1.5: ReLU, then a fully connected layer of ``width`` outputs on
    the last axis (discarded after distillation)."""
    return keras.Sequential([keras.layers.ReLU(name=f"{name}_relu"),
                             keras.layers.Dense(width, name=name)], name=f"{name}_block")


def target_statistics(batches, target_fn, per_feature=True):
    """``s = sqrt(E[y^2])`` of the target ``target_fn(batch)`` (..., C) over ``batches``
    (every position of every example counts once), per feature (C,) or one scalar; float64
    accumulation. A dead feature (always 0) gets s = 1, as in
    :func:`tfcolor.distill.losses.teacher_scale`. Returns ``(s, count)`` with ``count`` the
    positions seen."""
    sums, count = None, 0
    for batch in batches:
        y = np.asarray(target_fn(batch), dtype=np.float64)
        y = y.reshape(-1, y.shape[-1])
        square = np.sum(y * y, axis=0)
        sums = square if sums is None else sums + square
        count += y.shape[0]
    if not count:
        raise ValueError("no batch to compute the teacher statistics on")
    if per_feature:
        scale = np.sqrt(sums / count)
        return np.where(scale > 0, scale, 1.0), count
    scale = np.sqrt(np.sum(sums) / (count * sums.shape[0]))
    return (scale if scale > 0 else 1.0), count


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist")
                                 else str(v)))


def indices_digest(indices):
    """A short digest of subset indices (part of the statistics' identity)."""
    if indices is None:
        return None
    return hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]


def save_statistics(path, scale, identity, count):
    """Writes ``{"identity", "scale", "count"}`` as JSON to ``path`` (atomically)."""
    record = {"identity": _jsonable(identity), "count": int(count),
              "scale": np.asarray(scale, np.float64).tolist()}
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    temp = path + ".tmp"
    with tf.io.gfile.GFile(temp, "w") as f:
        json.dump(record, f, indent=1)
    tf.io.gfile.rename(temp, path, overwrite=True)
    return path


def load_statistics(path, identity):
    """The scale saved in ``path`` (float or float32 array), or None when there is no file.

    Raises:
        StatisticsMismatch: the file was computed for another ``identity`` (named).
    """
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        try:
            record = json.load(f)
        except ValueError as e:
            raise StatisticsMismatch(f"{path} is not valid JSON ({e}); remove it to recompute",
                                     "teachers") from None
    want = _jsonable(identity)
    have = record.get("identity")
    if have != want:
        diff = sorted(k for k in set(want) | set(have or {})
                      if (have or {}).get(k) != want.get(k))
        raise StatisticsMismatch(
            f"{path} holds teacher statistics of another distillation set-up (differs in "
            f"{diff}); use another model_dir", "teachers")
    scale = record["scale"]
    return float(scale) if np.ndim(scale) == 0 else np.asarray(scale, np.float32)


def warm_start(student, teacher_model):
    """Copies ``teacher_model``'s weights into every layer of ``student`` with weights, by layer
    name. A first convolution whose input channels differ is converted (grey -> RGB: repeated
    and divided by 3; RGB -> grey: summed). Returns the names of the layers copied.

    Raises:
        TeacherError: a student layer missing from the teacher, or of other shapes.
    """
    teacher_layers = {l.name: l for l in surgery.leaf_layers(teacher_model)}
    copied, problems = [], []
    for layer in surgery.leaf_layers(student):
        if not layer.weights or layer.name.startswith(AUXILIARY_NAME):
            continue
        other = teacher_layers.get(layer.name)
        if other is None or len(other.weights) != len(layer.weights):
            problems.append(f"{layer.name} (missing)")
            continue
        values = []
        for mine, theirs in zip(layer.get_weights(), other.get_weights()):
            if mine.shape != theirs.shape:
                theirs = _convert_channels(theirs, mine.shape)
            if theirs is None:
                problems.append(f"{layer.name} (shapes {[w.shape for w in other.get_weights()]}"
                                f" vs {[w.shape for w in layer.get_weights()]})")
                break
            values.append(theirs)
        else:
            layer.set_weights(values)
            copied.append(layer.name)
    if problems:
        raise TeacherError("warm_start: the teacher is not of the student's architecture: "
                           + ", ".join(problems[:5]), "warm_start")
    return copied


def _convert_channels(kernel, shape):
    if kernel.ndim != 4 or len(shape) != 4 or kernel.shape[:2] != tuple(shape[:2]) or \
            kernel.shape[3] != shape[3]:
        return None
    if kernel.shape[2] == 1 and shape[2] == 3:
        return np.repeat(kernel, 3, axis=2) / 3.0
    if kernel.shape[2] == 3 and shape[2] == 1:
        return np.sum(kernel, axis=2, keepdims=True)
    return None
