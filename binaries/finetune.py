"""The finetune program's absl entry point (the program: ``tfcolor.programs.finetune``).

    binaries/finetune --flagfile=configs/finetune_fmnist100.flags --init=runs/quickstart
    python binaries/finetune.py --help
"""
if __package__ in (None, ""):  # python binaries/finetune.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import finetune as program  # noqa: E402

from . import common  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=flags.FLAGS):
    """Defines the program's flags on ``fv`` (at run time, so that programs and tests
    can each use their own FlagValues)."""
    common.flag_section(fv, "Data")
    flags.DEFINE_string("data", None, "Labelled training data (see the module docstring).",
                        flag_values=fv)
    flags.DEFINE_string("test_data", None, "Labelled test data (optional).", flag_values=fv)
    flags.DEFINE_string("val_data", None, "Labelled validation data for early stopping and the "
                        "LR drops (e.g. FILE.npz:val); default: a --val_fraction split of --data.",
                        flag_values=fv)
    flags.DEFINE_enum("task", None, ["classification", "multilabel", "segmentation"],
                      "Task; default: inferred from the data.", flag_values=fv)
    flags.DEFINE_integer("num_classes", 0, "Number of classes (0: from the data).", flag_values=fv)
    flags.DEFINE_integer("per_class", 0, "Use only N training images per class (drawn per seed).",
                         flag_values=fv)
    flags.DEFINE_integer("test_count", 0, "Evaluate on the first N test images only (0: all).",
                         flag_values=fv)
    common.flag_section(fv, "Initialization and trunk")
    flags.DEFINE_string("init", "random", "random | imagenet | colorization model_dir / export | "
                        "baseline model_dir.", flag_values=fv)
    flags.DEFINE_string("imagenet_weights", None, "keras.applications VGG16 weights file for "
                        "--init=imagenet.", flag_values=fv)
    flags.DEFINE_string("arch", "vgg16", "Trunk architecture for random / imagenet init.",
                        flag_values=fv)
    flags.DEFINE_list("taps", None, "Trunk taps for random / imagenet init (default: all).",
                      flag_values=fv)
    flags.DEFINE_list("head_taps", None, "Segmentation hypercolumn taps / classification tap.",
                      flag_values=fv)
    flags.DEFINE_bool("color_input", False, "Colour input (grey conv1 replicated / 3).",
                      flag_values=fv)
    flags.DEFINE_enum("absorb_bn", "auto", ["auto", "true", "false"],
                      "Absorb BN (auto: not ResNet).", flag_values=fv)
    flags.DEFINE_string("from_layer", None, "Freeze every trunk layer below this one; 'head' "
                        "freezes the whole trunk.", flag_values=fv)
    flags.DEFINE_bool("rebalance_random", True, "Re-balance a random init on training images.",
                      flag_values=fv)
    flags.DEFINE_bool("rebalance_imagenet", True, "Re-balance --init=imagenet on training images "
                      "(unit second moment per layer, as the paper does for ImageNet VGG-16).",
                      flag_values=fv)
    flags.DEFINE_bool("fov", False, "Segmentation: add the paper's two fresh +FoV blocks (2x2 "
                      "max-pool, 3x3 conv 1024, ReLU) on top of the trunk, for any --init.",
                      flag_values=fv)
    common.flag_section(fv, "Input pipeline")
    flags.DEFINE_integer("batch_size", 32, "Batch size.", flag_values=fv)
    flags.DEFINE_integer("crop_size", None, "Training crop (default: whole images).",
                         flag_values=fv)
    flags.DEFINE_list("scale_range", None, "lo,hi: random short-side scaling before cropping.",
                      flag_values=fv)
    flags.DEFINE_integer("eval_resize", None, "Evaluation: short side resized to this.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_crop", None, "Evaluation centre crop (default: --crop_size).",
                         flag_values=fv)
    flags.DEFINE_integer("num_points", 256, "Segmentation: sampled pixels per image.",
                         flag_values=fv)
    common.flag_section(fv, "Optimization")
    flags.DEFINE_float("learning_rate", 0.01, "Initial learning rate.", flag_values=fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", flag_values=fv)
    flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay on kernels.", flag_values=fv)
    flags.DEFINE_float("drop_factor", 0.1, "Learning-rate drop factor.", flag_values=fv)
    flags.DEFINE_integer("patience", 1, "Evaluations without improvement before a drop.",
                         flag_values=fv)
    flags.DEFINE_integer("max_drops", 2, "Drops before stopping at the next plateau.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_every", 100, "Steps between validation evaluations.", flag_values=fv)
    flags.DEFINE_integer("max_steps", 20000, "Maximum steps.", flag_values=fv)
    flags.DEFINE_float("val_fraction", 0.1, "Held-out fraction for validation.", flag_values=fv)
    flags.DEFINE_bool("retrain_full", False, "Retrain on 100% for the same steps and drops.",
                      flag_values=fv)
    common.flag_section(fv, "Evaluation, head and output")
    flags.DEFINE_bool("ten_crop", False, "10-crop testing (classification).", flag_values=fv)
    flags.DEFINE_enum("ap_method", "11point", ["11point", "area"], "VOC AP variant.",
                      flag_values=fv)
    flags.DEFINE_integer("hidden", 1024, "Segmentation head hidden units.", flag_values=fv)
    flags.DEFINE_float("dropout", 0.5, "Head dropout.", flag_values=fv)
    flags.DEFINE_list("seeds", ["0"], "Seeds (one run each).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where runs and results.json go.", flag_values=fv)
    flags.DEFINE_integer("analysis_images", 0, "After the first seed, analyse the features on "
                         "this many test images: feature shift table + plot, top activations.",
                         flag_values=fv)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "Distribution strategy.",
                      flag_values=fv)

    flags.mark_flag_as_required("data", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)
    return fv


def options_from_flags(fv=FLAGS):
    """The program's options (one attribute per flag) of the parsed flags ``fv``."""
    return common.options_from_flags(fv, define_flags)


def config_from_flags(fv=FLAGS):
    """The :class:`tfcolor.downstream.protocol.FinetuneConfig` of the flags (validated)."""
    return program.finetune_config(options_from_flags(fv))


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    return program.main(options_from_flags(FLAGS))


def run():
    """Console-script entry point (``tfcolor-finetune``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
