r"""Pretrains a colorization network (Larsson, Maire & Shakhnarovich 2016/2017), or several proxy
tasks on one shared trunk (colorization, jigsaw, video, denoising; Larsson's dissertation, ch. 4).

    binaries/pretrain --flagfile=configs/quickstart.flags
    binaries/pretrain --flagfile=configs/vgg16_hue_chroma.flags --data=/data/imagenet/train \
        --model_dir=runs/vgg16 --strategy=mirrored

Resumes automatically from the latest checkpoint in --model_dir. SIGTERM (preemption) writes a
checkpoint and exits with status 0; rerun the same command to continue. At the end: a final
checkpoint, model_dir/colorizations.png and a SavedModel in model_dir/export. With --keep_best
(and --heldout_data) the model of the lowest held-out loss is kept in model_dir/best and is the
one the colorizations and the export show (and that export, colorize and evaluate load).

One run per --model_dir: a second run on a directory in use exits with status 5 and a one-line
message naming the owner (model_dir/.lock: pid, host, start time). The lock of a killed run on
this host is taken over automatically; --force_unlock takes over another host's lock.

Several tasks: --tasks=colorization,jigsaw (C+J) with --gradient_rule=sum|normsgd|separate,
--schedule=joint|round_robin, --quantum=Q, --task_weights=colorization:1,jigsaw:1, each task's
input section --task_data=jigsaw.batch_size=4,... and options --task_options=jigsaw.piece_size=56
(docs/multitask.md; configs/cj_normsgd_cpu.flags).

Every flag is named as the ``tfcolor.config.PretrainConfig`` field it sets (``--points`` is
``data.points``), except ``--loss`` for ``loss.kind``; a flag's "unset" value (``""``, ``0``,
``-1``) gives a field's ``None`` default. Bad values are reported by the library, naming the flag.
"""
import dataclasses
import os

from tfcolor.programs import common

common.quiet_tensorflow()

from absl import logging  # noqa: E402

#: The one config field whose option is named otherwise (``--loss``, kept for flag files).
FLAG_NAMES = {"loss.kind": "loss"}
#: Options whose text form differs from the field's value.
PARSERS = {
    "model.taps": common.parse_taps,
    "optimizer.lr_drops": lambda value: common.parse_float_list(value, "lr_drops"),
    "data.targets_on_device": {"auto": "auto", "true": True, "false": False}.get,
    "multitask.tasks": lambda value: tuple(t.strip() for t in str(value).split(",")
                                           if t.strip()),
    "multitask.task_weights": lambda value: _config().parse_task_weights(value),
    "multitask.loss_scales": lambda value: _config().parse_task_weights(value, "loss_scales"),
    "multitask.task_data": lambda value: _config().parse_task_fields(value),
    "multitask.task_options": lambda value: _config().parse_task_fields(value, "task_options"),
    "distill.teachers": lambda value: tuple(t.strip() for t in str(value).split(",")
                                            if t.strip()),
}


def _config():
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    return config


def config_from_values(values, defaults=None):
    """A ``tfcolor.config.PretrainConfig`` from ``{option: value}`` (no validation here).

    ``defaults``: each option's "unset" value, which gives a field's ``None`` default.
    """
    return common.config_from_values(_config().PretrainConfig, values, defaults,
                                     flag_names=FLAG_NAMES, parsers=PARSERS)


def option_message(error, names):
    """A library error's message with the field at fault called by its option (of ``names``)."""
    return common.option_error(error, names, FLAG_NAMES)


class FlagError(ValueError):
    """An option value is invalid; the message names the option (``--batch_size ...``)."""


def build_config(values, defaults=None):
    """The validated ``PretrainConfig`` of ``{option: value}``; raises FlagError."""
    try:
        return config_from_values(values, defaults).validate()
    except (_config().ConfigError, ValueError) as e:  # ValueError: a malformed --lr_drops list
        raise FlagError(option_message(e, set(values))) from e


def main(cfg, *, force_unlock=False, names=None):
    """Pretrains ``cfg`` (a validated ``PretrainConfig``); returns the exit status.

    ``force_unlock``: take over another host's ``model_dir/.lock``. ``names``: the options a
    field may be called by in errors (default: every field's). Raises
    ``common.ProgramError`` (status 2: bad data or config; 3: non-finite loss; 4: checkpoint;
    5: ``model_dir`` in use by another run).
    """
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor import train  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor.data.sources import SourceError  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor.data.stages import NO_DECODABLE_IMAGE  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor.train.checkpointing import (  # pylint: disable=import-outside-toplevel
            CheckpointWriteError)
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if names is None:
        names = _field_options()
    data = cfg.data.data
    try:
        result = train.pretrain(cfg, force_unlock=force_unlock)
    except SourceError as e:  # e.g. a folder without any image file
        common.die(f"--data={data!r}: {e}", hard=True)
    except train.ModelDirLockedError as e:
        common.die(str(e), status=5, hard=True)
    except train.NonFiniteLossError as e:
        logging.error("%s", e)
        common.die(str(e), status=3, hard=True)
    except train.CheckpointError as e:
        if not isinstance(e, CheckpointWriteError):  # the disk may be full: one line only
            logging.error("%s", e)
        common.die(str(e), status=4, hard=True)
    except config.ConfigError as e:
        common.die(option_message(e, names), hard=True)
    except tf.errors.InvalidArgumentError as e:
        # The input pipeline found no decodable image in a whole pass (see the logged skips).
        line = next((l for l in str(e).splitlines() if NO_DECODABLE_IMAGE in l), None)
        if line is None:
            raise
        common.die(f"--data={data!r}: {line[line.index(NO_DECODABLE_IMAGE):].rstrip(']')}",
                   hard=True)
    except (OSError, tf.errors.OpError) as e:
        if not common.storage_error(e):
            raise
        common.die(_storage_message(cfg.train.model_dir, e), status=4, hard=True)
    if result.stopped == "preempted":
        logging.warning("preempted at step %d: checkpoint %s; rerun to resume",
                        result.train.step, result.train.checkpoint)
        return 0
    written = _written(result)
    if not result.train.history:  # a finished run, started again
        logging.info("done: the run had already reached step %d (--train_steps=%d): nothing "
                     "trained; %s (raise --train_steps to train further)", result.train.step,
                     cfg.train.train_steps, written)
    else:
        logging.info("done: step %d, loss %.4f, %s", result.train.step,
                     result.train.losses.get("loss", float("nan")), written)
    if result.best is not None:
        logging.info("the run's model (colorizations, export) is the one of step %d, the lowest "
                     "held-out loss (%.4f), kept in %s", result.best["step"],
                     result.best["loss"], os.path.dirname(result.best["checkpoint"]))
    return 0


def _storage_message(model_dir, error):
    """One line for a disk error (full, read-only, ...) while writing the run: what failed and
    the checkpoint the run can resume from."""
    # lazy: keeps TensorFlow out of binaries/pretrain --help
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    try:
        last = checkpointing.state_checkpoint(model_dir)
    except Exception:  # pylint: disable=broad-except  (the disk is failing: say what we can)
        last = None
    then = (f"the last good checkpoint is {last}: free space or make {model_dir} writable, "
            "then rerun the same command to resume from it" if last else
            f"no checkpoint was written: free space or make {model_dir} writable (or choose "
            "another --model_dir), then rerun the same command")
    return common.storage_message(f"write the run in --model_dir={model_dir}", error, then)


def _written(result):
    """What the run wrote, for the last line: only what exists (a run without colorization
    has no colorizations or export)."""
    parts = [("checkpoint", result.train.checkpoint), ("colorizations", result.preview_png),
             ("export", result.export_dir)]
    return ", ".join(f"{name} {value}" for name, value in parts if value) or "nothing written"


def _field_options():
    """The option name of every ``PretrainConfig`` field (``loss`` for ``loss.kind``)."""
    return {FLAG_NAMES.get(f"{section.name}.{f.name}", f.name)
            for section in dataclasses.fields(_config().PretrainConfig)
            for f in dataclasses.fields(section.default_factory)}
