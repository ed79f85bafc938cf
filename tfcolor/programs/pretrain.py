r"""Pretrains a colorization network (Larsson, Maire & Shakhnarovich 2016/2017).

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

Every flag is named as the ``tfcolor.config.PretrainConfig`` field it sets (``--points`` is
``data.points``), except ``--loss`` for ``loss.kind``; a flag's "unset" value (``""``, ``0``,
``-1``) gives a field's ``None`` default. Bad values are reported by the library, naming the flag.
"""
import os

from tfcolor.programs import common

common.quiet_tensorflow()

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (the global FLAGS by default).

    Done at run time rather than import time, so that importing this module next to other
    programs (e.g. in one test process) never clashes on shared flag names.
    """
    if "train_steps" in fv:
        return fv
    d = _Definer(fv)
    common.flag_section(fv, "Run")
    d.string("model_dir", "runs/pretrain",
             "Directory of checkpoints, TensorBoard summaries, the colorization grid and "
             "the SavedModel export.")
    d.string("data", "embedded",
             "Training images: a folder, a glob, a TFRecord pattern, 'tfds:NAME[:SPLIT]' or "
             "'embedded' (the photos shipped with tfcolor).")
    d.integer("train_steps", 2_000_000, "Total optimizer steps (released Caffe: 2M).")
    d.string("strategy", "default",
             "default/one_device, mirrored, multi_worker (TF_CONFIG) or tpu.")
    d.string("tpu", "", "TPU name or address for --strategy=tpu.")
    d.boolean("mixed_precision", False, "Train in mixed_float16 with loss scaling.")
    d.boolean("deterministic", False,
              "Enable TF op determinism and a deterministic data order (same losses on "
              "every run).")
    d.integer("seed", 0, "Random seed (initialization, data order, augmentation).")
    d.boolean("export", True, "Export a SavedModel into model_dir/export at the end.")
    d.integer("steps_per_loop", 50, "Steps per tf.function call.")
    d.integer("checkpoint_every", 10_000, "Steps between checkpoints.")
    d.integer("keep_checkpoints", 5, "Recent checkpoints kept.")
    d.integer("summary_every", 100, "Steps between scalar summaries / progress lines.")
    d.integer("image_every", 5_000,
              "Steps between colorized validation grids in TensorBoard (0: off).")
    d.boolean("force_unlock", False,
              "Take over model_dir/.lock even if it names a run on another host (only when "
              "that run is known to be gone; a dead run on this host is detected by itself).")

    common.flag_section(fv, "Model")
    d.string("arch", "vgg16", "Trunk: vgg16, alexnet, resnet152, vgg_tiny, ...")
    d.string("taps", "all",
             "Hypercolumn taps: 'all', a tap, a range 'conv4_1-fc7' or a comma list.")
    d.boolean("fov", False, "Pretrain with two extra blocks on top (fov1, fov2). Not the paper's "
              "+FoV, which is added at fine-tuning time: binaries/finetune --fov.")
    d.string("batch_norm", "",
             "parameter_free (paper), standard or none; empty: the architecture default.")
    d.boolean("sync_batch_norm", True,
              "Batch statistics over the global batch (all replicas).")
    d.integer("hidden", 1024, "Width of the head's hidden layer h_fc1.")
    d.float("dropout", 0.5, "Dropout after h_fc1 (released Caffe: 0.5).")
    d.string("convention", "released",
             "Sparse hypercolumn sampling convention: released or half_pixel.")
    d.boolean("prior_bias", False,
              "Start the head's output bias at the log marginal colour histogram of the "
              "training data, so the untrained model predicts the prior (paper: off).")

    common.flag_section(fv, "Data")
    d.integer("batch_size", 8, "Global batch size (paper: 8).")
    d.integer("crop_size", 352, "Square training crop (paper: 352).")
    d.integer("min_side", 0, "Short side scaled into [min_side, max_side] before "
              "cropping; 0: crop_size (paper: 352).")
    d.integer("max_side", 0, "0: crop_size * 600 / 352 (paper: 600).")
    d.integer("points", 128, "Sampled pixels per image (paper: 128).")
    d.integer("edge_buffer", -1,
              "Centres stay this far from the border; -1: released Caffe's 96/352 of "
              "the crop.")
    d.enum("targets_on_device", "auto", ["auto", "true", "false"],
           "Build targets in the training step (auto: when a GPU/TPU is visible).")
    d.string("heldout_data", "",
             "Photos never trained on, for the held-out loss curve (same forms as --data, e.g. "
             "embedded:validation or a holdout folder); empty: none.")
    d.integer("heldout_images", 64, "Held-out images (fixed crops and centres) per evaluation.")
    d.integer("eval_every", 1000, "Steps between held-out loss evaluations (--heldout_data).")
    d.boolean("keep_best", False,
              "Keep the model of the lowest held-out loss in model_dir/best and make it the "
              "run's model (preview, export, colorize, evaluate); needs --heldout_data.")
    d.integer("validation_images", 4, "Images in the colorization grids.")

    common.flag_section(fv, "Loss")
    d.string("loss", "hue_chroma", "hue_chroma, lab_hist, lab_joint or lab_regression.")
    d.integer("window", 7, "Target histogram window R (paper: 7).")
    d.float("hue_weight", 5.0, "lambda_H of the hue/chroma loss (paper: 5).")
    d.boolean("lightness_weight", False,
              "Weight the chroma term by min(3L, 1, 3(1-L)) (released Caffe).")

    common.flag_section(fv, "Optimizer")
    d.float("learning_rate", 0.001, "Initial SGD learning rate (released Caffe: 0.001).")
    d.string("lr_drops", "0.5,0.75,0.875",
             "Steps where the rate drops, comma-separated; values < 1 are fractions of "
             "--train_steps (released Caffe: 1M,1.5M,1.75M of 2M).")
    d.float("lr_drop_factor", 0.1, "Rate multiplier at each drop.")
    d.float("momentum", 0.9, "SGD momentum.")
    d.float("weight_decay", 5e-4, "L2 on kernels (released Caffe: 5e-4).")
    d.float("head_weight_decay", -1.0,
            "L2 on the head's kernels; -1: same as --weight_decay (released TF: 1e-6 "
            "on the head and --weight_decay=0).")
    d.float("bias_lr_multiplier", 2.0, "Bias learning-rate multiplier (Caffe lr_mult 2).")
    d.float("clip_norm", 0.0, "Clip the global gradient norm; 0: off.")
    return fv


class _Definer:
    """``d.string(name, default, help)`` -> ``flags.DEFINE_string(..., flag_values=fv)``."""

    def __init__(self, fv):
        self._fv = fv

    def __getattr__(self, kind):
        define = getattr(flags, "DEFINE_" + kind)
        return lambda *args, **kwargs: define(*args, flag_values=self._fv, **kwargs)


#: The one config field whose flag is named otherwise (``--loss``, kept for flag files).
FLAG_NAMES = {"loss.kind": "loss"}
#: Flags whose text form differs from the field's value.
PARSERS = {
    "model.taps": common.parse_taps,
    "optimizer.lr_drops": lambda value: common.parse_float_list(value, "lr_drops"),
    "data.targets_on_device": {"auto": "auto", "true": True, "false": False}.get,
}


def config_from_flags(f=FLAGS):
    """A ``tfcolor.config.PretrainConfig`` from the parsed flags (no validation here)."""
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    return common.config_from_flags(config.PretrainConfig, f, flag_names=FLAG_NAMES,
                                    parsers=PARSERS)


def flag_message(error, fv=FLAGS):
    """A library error's message with the field at fault called by its flag."""
    return common.flag_error(error, fv, FLAG_NAMES)


class FlagError(ValueError):
    """A flag value is invalid; the message names the flag."""


def build_config(fv=FLAGS):
    """The validated ``PretrainConfig`` of the parsed flags ``fv``; raises FlagError."""
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    try:
        return config_from_flags(fv).validate()
    except (config.ConfigError, ValueError) as e:  # ValueError: a malformed --lr_drops list
        raise FlagError(flag_message(e, fv)) from e


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    try:
        cfg = build_config(FLAGS)
    except FlagError as e:
        common.die(str(e))
    from tfcolor import train  # pylint: disable=import-outside-toplevel
    from tfcolor.data.sources import SourceError  # pylint: disable=import-outside-toplevel
    from tfcolor.data.stages import NO_DECODABLE_IMAGE  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    try:
        result = train.pretrain(cfg, force_unlock=FLAGS.force_unlock)
    except SourceError as e:  # e.g. a folder without any image file
        common.die(f"--data={FLAGS.data!r}: {e}", hard=True)
    except train.ModelDirLockedError as e:
        common.die(str(e), status=5, hard=True)
    except train.NonFiniteLossError as e:
        logging.error("%s", e)
        common.die(str(e), status=3, hard=True)
    except train.CheckpointError as e:
        logging.error("%s", e)
        common.die(str(e), status=4, hard=True)
    except config.ConfigError as e:
        common.die(flag_message(e), hard=True)
    except tf.errors.InvalidArgumentError as e:
        # The input pipeline found no decodable image in a whole pass (see the logged skips).
        line = next((l for l in str(e).splitlines() if NO_DECODABLE_IMAGE in l), None)
        if line is None:
            raise
        common.die(f"--data={FLAGS.data!r}: {line[line.index(NO_DECODABLE_IMAGE):].rstrip(']')}",
                   hard=True)
    if result.stopped == "preempted":
        logging.warning("preempted at step %d: checkpoint %s; rerun to resume",
                        result.train.step, result.train.checkpoint)
        return 0
    logging.info("done: step %d, loss %.4f, checkpoint %s, colorizations %s, export %s",
                 result.train.step, result.train.losses.get("loss", float("nan")),
                 result.train.checkpoint, result.preview_png, result.export_dir)
    if result.best is not None:
        logging.info("the run's model (colorizations, export) is the one of step %d, the lowest "
                     "held-out loss (%.4f), kept in %s", result.best["step"],
                     result.best["loss"], os.path.dirname(result.best["checkpoint"]))
    return 0


def run():
    """Console-script entry point (``tfcolor-pretrain``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
