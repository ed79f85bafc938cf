"""The run directory (``model_dir``): the name of every file a run writes, defined once.

================================ ==================================================================
``config.json``                  :data:`CONFIG_FILE`: the run's ``PretrainConfig.to_dict()``
                                 (:func:`write_config` / :func:`read_config`); what
                                 :func:`load_model` rebuilds the colorizer from
``checkpoint``, ``ckpt-N.*``     TensorFlow's checkpoint state file and checkpoints; their names
                                 are :mod:`tfcolor.train.checkpointing`'s
                                 (``CHECKPOINT_STATE_FILE``, ``CHECKPOINT_PREFIX``);
                                 :func:`latest_checkpoint`
``.tmp_workers/``                ``checkpointing.WORKER_TEMP_DIR``: non-chief multi-worker saves,
                                 removed after each save
``.lock``                        :data:`LOCK_FILE`: one run per directory
                                 (:mod:`tfcolor.train.lock`)
``colorizations.png``            :data:`PREVIEW_FILE`: grey | colorized | original at the end of
                                 a completed run
``heldout.jsonl``                :data:`HELDOUT_CURVE_FILE`: the held-out loss curve
                                 (:mod:`tfcolor.train.heldout`)
``best/``                        :data:`BEST_DIR`: with ``keep_best``, the model of the lowest
                                 held-out loss (``ckpt-N``) and its record :data:`BEST_RECORD_FILE`
                                 (:mod:`tfcolor.train.heldout`; :func:`read_best`)
``export/``                      :data:`EXPORT_DIR`: the SavedModel written at the end of a run
``tfcolor_export.json``          :data:`EXPORT_METADATA_FILE`: an export's metadata (inside an
                                 export directory; :mod:`tfcolor.export`)
``colorizer.keras``              :data:`EXPORT_KERAS_FILE`: the Keras colorizer beside an export
``tfcolor_baseline.json``        :data:`BASELINE_FILE`: a baseline run's kind and model arguments
                                 (:mod:`tfcolor.baselines`)
================================ ==================================================================

:func:`load_model` rebuilds the colorizer of a colorization run (:func:`read_config`, then
:func:`tfcolor.models.build_colorizer`) and restores the run's model (:func:`model_checkpoint`):
the kept best model of a ``keep_best`` run, else its latest *complete* checkpoint
(:func:`latest_checkpoint`: the one named by the state file, which TensorFlow rewrites atomically
only once a checkpoint is whole, validated tensor by tensor; never a half-written one).

This module imports TensorFlow, the models and the training package only inside the functions
that load a model or a checkpoint, so that it (and :mod:`tfcolor.pretrained`) imports without
TensorFlow: reading a run's files and ``tools/package_pretrained.py --help`` stay quick.
"""
import json
import os

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
PREVIEW_FILE = "colorizations.png"
HELDOUT_CURVE_FILE = "heldout.jsonl"
BEST_DIR = "best"
BEST_RECORD_FILE = "best.json"
EXPORT_DIR = "export"
EXPORT_METADATA_FILE = "tfcolor_export.json"
EXPORT_KERAS_FILE = "colorizer.keras"
BASELINE_FILE = "tfcolor_baseline.json"

__all__ = [
        "CONFIG_FILE", "LOCK_FILE", "PREVIEW_FILE", "HELDOUT_CURVE_FILE", "EXPORT_DIR",
        "EXPORT_METADATA_FILE", "EXPORT_KERAS_FILE", "BASELINE_FILE", "config_path",
        "export_path", "preview_path", "heldout_curve_path", "lock_path", "write_config",
        "read_config", "describe", "latest_checkpoint", "load_model", "BEST_DIR",
        "BEST_RECORD_FILE", "best_path", "read_best", "read_best_dir", "model_checkpoint"]


def config_path(model_dir):
    """``model_dir/config.json``."""
    return os.path.join(str(model_dir), CONFIG_FILE)


def export_path(model_dir):
    """``model_dir/export``: the end-of-run SavedModel."""
    return os.path.join(str(model_dir), EXPORT_DIR)


def preview_path(model_dir):
    """``model_dir/colorizations.png``."""
    return os.path.join(str(model_dir), PREVIEW_FILE)


def heldout_curve_path(model_dir):
    """``model_dir/heldout.jsonl``."""
    return os.path.join(str(model_dir), HELDOUT_CURVE_FILE)


def best_path(model_dir):
    """``model_dir/best``: the kept best model of a ``keep_best`` run."""
    return os.path.join(str(model_dir), BEST_DIR)


def lock_path(model_dir):
    """``model_dir/.lock``."""
    return os.path.join(str(model_dir), LOCK_FILE)


def _gfile():
    # lazy: run_dir imports without TensorFlow (tfcolor.pretrained, tools/)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.io.gfile


def write_config(model_dir, config):
    """Writes ``config`` (a ``PretrainConfig`` or its dict) to ``model_dir/config.json`` (the
    directory is created); returns the path.

    Written to a temporary file and renamed on a local disk, so that a run killed while writing
    never leaves a truncated ``config.json`` behind.
    """
    payload = config if isinstance(config, dict) else config.to_dict()
    text = json.dumps(payload, indent=2)
    gfile = _gfile()
    gfile.makedirs(str(model_dir))
    path = config_path(model_dir)
    if "://" in path:
        with gfile.GFile(path, "w") as f:
            f.write(text)
        return path
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def read_config(model_dir, *, as_dict=False):
    """The run's config from ``model_dir/config.json``.

    Args:
        model_dir: a run directory.
        as_dict: return the parsed JSON dict instead of a ``PretrainConfig``.

    Returns:
        A :class:`tfcolor.config.PretrainConfig` (not validated: the data it names may be gone;
        :func:`tfcolor.models.build_colorizer` validates the model and loss sections), or a dict.

    Raises:
        FileNotFoundError: there is no ``config.json`` (the message names the path).
        tfcolor.config.ConfigError: it is not valid JSON, not a JSON object, or holds unknown
            sections or keys (the message names the file and the problem).
    """
    # lazy: config imports Keras; run_dir stays TensorFlow-free
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    path = config_path(model_dir)
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(
                f"{path} is missing: cannot tell which model {model_dir} holds (pretraining "
                "writes it; for another model build it yourself and call export_saved_model)")
    with gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise config_lib.ConfigError(f"{path} is not UTF-8 text ({e})") from e
    except json.JSONDecodeError as e:
        raise config_lib.ConfigError(
                f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                "it should hold the run's PretrainConfig as written by pretraining") from e
    if not isinstance(payload, dict):
        raise config_lib.ConfigError(
                f"{path} must hold a JSON object (the run's PretrainConfig), got "
                f"{type(payload).__name__}")
    if as_dict:
        return payload
    bad = sorted(k for k, v in payload.items() if not isinstance(v, dict))
    if bad:
        raise config_lib.ConfigError(f"{path}: config sections must be JSON objects; {bad} "
                                     "are not")
    try:
        return config_lib.PretrainConfig.from_dict(payload)
    except config_lib.ConfigError as e:
        raise config_lib.ConfigError(f"{path}: {e}") from e


def read_export_metadata(export_dir):
    """The ``tfcolor_export.json`` of an export written by ``tfcolor.export`` (kind, grid factor,
    read-out options, config, ...), as a dict.

    Raises:
        FileNotFoundError: ``export_dir`` has no such file (not a tfcolor export).
    """
    gfile = _gfile()
    path = os.path.join(export_dir, EXPORT_METADATA_FILE)
    if not gfile.exists(path):
        raise FileNotFoundError(f"{export_dir} is not a tfcolor export: "
                                f"{EXPORT_METADATA_FILE} is missing")
    with gfile.GFile(path) as f:
        return json.load(f)


def describe(path):
    """What the directory ``path`` holds: ``"baseline"`` (``tfcolor_baseline.json``),
    ``"export"`` (``tfcolor_export.json``, or a run directory without ``config.json`` whose
    ``export/`` has one), ``"colorization"`` (a run directory with ``config.json``) or None."""
    gfile = _gfile()
    path = str(path)
    if not gfile.isdir(path):
        return None
    if gfile.exists(os.path.join(path, BASELINE_FILE)):
        return "baseline"
    if gfile.exists(os.path.join(path, EXPORT_METADATA_FILE)):
        return "export"
    if gfile.exists(config_path(path)):
        return "colorization"
    if gfile.exists(os.path.join(export_path(path), EXPORT_METADATA_FILE)):
        return "export"
    return None


def latest_checkpoint(model_dir, *, validate=True):
    """The latest complete checkpoint of ``model_dir`` (a prefix ``.../ckpt-N``), or None if it
    has none.

    The one the ``checkpoint`` state file names (TensorFlow rewrites it atomically only after a
    checkpoint is whole, so leftovers of an interrupted save, ``ckpt-N_temp/`` and newer
    ``ckpt-M`` files, are never chosen); without a state file, a single checkpoint (a run stopped
    while saving its first one). Unlike ``tf.train.latest_checkpoint`` this never returns None
    for a checkpoint that is named but damaged or missing: that raises. Nothing is written.

    Args:
        model_dir: a run directory.
        validate: read every tensor once and check its CRC32C
            (:func:`tfcolor.train.checkpointing.validate_checkpoint`).

    Raises:
        tfcolor.train.checkpointing.CorruptCheckpointError: the state file is unreadable or
            names no checkpoint, the named checkpoint is missing or damaged, or several
            checkpoints exist without a state file.
    """
    # lazy: the training package imports TensorFlow; run_dir does not
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    return checkpointing.latest_complete_checkpoint(str(model_dir), validate=validate)


def read_best(model_dir):
    """The record of the kept best model of ``model_dir`` (``best/best.json``, written by
    :class:`tfcolor.train.heldout.HeldOutLoss`), or None when there is none
    (:func:`read_best_dir` of :func:`best_path`)."""
    return read_best_dir(best_path(model_dir))


def read_best_dir(best_dir):
    """The best-model record in the folder ``best_dir``, or None when it has none.

    Returns:
        A dict: ``step``, ``loss`` (held-out), ``terms``, ``heldout`` (what the held-out set
        was) and ``checkpoint``, the prefix of its checkpoint inside ``best_dir`` (resolved
        against ``best_dir`` as given, so a moved run directory still finds it).

    Raises:
        tfcolor.config.ConfigError: the record is not valid JSON or lacks a field.
    """
    # lazy: config imports Keras; run_dir stays TensorFlow-free
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    path = os.path.join(str(best_dir), BEST_RECORD_FILE)
    gfile = _gfile()
    if not gfile.exists(path):
        return None
    try:
        with gfile.GFile(path) as f:
            record = json.load(f)
        return dict(record, step=int(record["step"]), loss=float(record["loss"]),
                    checkpoint=os.path.join(str(best_dir),
                                            os.path.basename(str(record["checkpoint"]))))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise config_lib.ConfigError(
                f"{path} is not a best-model record ({type(e).__name__}: {e}); delete "
                f"{best_dir} to forget the kept best model") from e


def model_checkpoint(model_dir, *, validate=True):
    """The checkpoint that is the run's model: ``(path, best)``.

    With ``train.keep_best`` in the run's ``config.json`` and a kept best model
    (:func:`read_best`), ``path`` is that model's checkpoint and ``best`` its record; otherwise
    ``path`` is :func:`latest_checkpoint` (None when there is none) and ``best`` is None.

    Raises:
        tfcolor.train.checkpointing.CorruptCheckpointError: the chosen checkpoint is damaged.
    """
    # lazy: the training package imports TensorFlow; run_dir does not
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    try:
        keep_best = bool(read_config(model_dir, as_dict=True).get("train", {}).get("keep_best"))
    except FileNotFoundError:
        keep_best = False
    best = read_best(model_dir) if keep_best else None
    if best is None:
        return latest_checkpoint(model_dir, validate=validate), None
    if validate:
        checkpointing.validate_checkpoint(best["checkpoint"])
    return best["checkpoint"], best


def load_model(model_dir, checkpoint=None):
    """Rebuilds the colorizer of a run directory and restores a checkpoint into it.

    Args:
        model_dir: the run directory (``config.json`` and checkpoints).
        checkpoint: a checkpoint prefix, or the name of one in ``model_dir`` (``ckpt-N``;
            :func:`tfcolor.train.checkpointing.checkpoint_in`); default: the run's model,
            :func:`model_checkpoint`: the kept best model of a ``keep_best`` run, else
            :func:`latest_checkpoint`.

    Returns:
        ``(model, kind)``: the :class:`tfcolor.models.Colorizer` and its loss kind.

    Raises:
        FileNotFoundError: no ``config.json``, or no checkpoint (messages name ``model_dir``).
        tfcolor.config.ConfigError: a garbled ``config.json`` or a bad value in it (named).
        tfcolor.train.checkpointing.CorruptCheckpointError: the checkpoint is damaged.
        tfcolor.train.checkpointing.CheckpointError: it does not fit the configured model.
    """
    # lazy: the models import TensorFlow; run_dir does not
    from tfcolor.models import factory  # pylint: disable=import-outside-toplevel
    config = read_config(model_dir)
    target, model = factory.build_run_colorizer(config)
    _restore(target, model_dir, checkpoint, model_checkpoint,
             "the model that {config} describes (another architecture, taps, head or loss "
             "kind?)")
    return model, model.kind


def load_shared_trunk(model_dir, checkpoint=None):
    """The shared trunk of a multi-task run directory, restored from a checkpoint.

    Args:
        model_dir: the run directory of a multi-task run (``config.json`` with a ``multitask``
            section naming other or more tasks than colorization alone).
        checkpoint: as :func:`load_model` (default: the latest checkpoint).

    Returns:
        ``(trunk, config)``: the :class:`tfcolor.models.multitask.SharedTrunk` and the run's
        :class:`tfcolor.config.PretrainConfig`.

    Raises:
        FileNotFoundError, tfcolor.config.ConfigError, CorruptCheckpointError,
        CheckpointError: as :func:`load_model`; ``ConfigError`` also for a single-task run.
    """
    # lazy: run_dir imports without TensorFlow (tfcolor.pretrained, tools/)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: config imports Keras; run_dir stays TensorFlow-free
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    # lazy: the models import TensorFlow; run_dir does not
    from tfcolor.models import factory  # pylint: disable=import-outside-toplevel
    config = read_config(model_dir)
    if config.multitask.single_colorization:
        raise config_lib.ConfigError(f"{model_dir} holds a colorization run, not a multi-task "
                                     "one: load its colorizer with load_model")
    trunk = factory.build_shared_trunk(config)
    holder = tf.Module()
    holder.trunk = trunk.model  # the MultiTaskModel's trunk, without the task models
    _restore(holder, model_dir, checkpoint, lambda d: (latest_checkpoint(d), None),
             "the trunk that {config} describes")
    return trunk, config


def _restore(target, model_dir, checkpoint, default, what):
    """Restores the checkpoint ``checkpoint`` of ``model_dir`` (a name or prefix; None: the
    first element of ``default(model_dir)``) into ``target`` as ``model``, the objects it holds
    only. Raises FileNotFoundError without a checkpoint and CheckpointError when it does not fit
    ``what`` (``{config}``: the config file's path)."""
    # lazy: run_dir imports without TensorFlow (tfcolor.pretrained, tools/)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: the training package imports TensorFlow; run_dir does not
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    path = (checkpointing.checkpoint_in(str(model_dir), checkpoint) if checkpoint
            else default(model_dir)[0])
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir} (no "
                                f"'{checkpointing.CHECKPOINT_STATE_FILE}' state file and no "
                                f"{checkpointing.CHECKPOINT_PREFIX}-N files)")
    try:
        status = tf.train.Checkpoint(model=target).restore(str(path)).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise checkpointing.CheckpointError(
                f"checkpoint {path} does not fit {what.format(config=config_path(model_dir))}: "
                f"{str(e).splitlines()[0][:300] if str(e) else type(e).__name__}") from e
    return path

