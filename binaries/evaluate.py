"""The evaluate program's absl entry point (the program: ``tfcolor.programs.evaluate``).

    binaries/evaluate --model_dir=runs/quickstart --data=embedded:validation --output_dir=eval
    python binaries/evaluate.py --help
"""
if __package__ in (None, ""):  # python binaries/evaluate.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import evaluate as program  # noqa: E402

from . import colorize as colorize_bin  # noqa: E402
from . import common  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    if "t_max" in fv:
        return fv
    colorize_bin.define_model_flags(fv)
    colorize_bin.define_readout_flags(fv)
    flags.DEFINE_string("data", None, "Colour images: a folder, a glob, an image file or "
                        "'embedded[:SPLIT]' (the shipped photos: train, validation, all), as "
                        "pretrain's --data; comma-separated list allowed.", flag_values=fv)
    flags.DEFINE_string("output_dir", "evaluation", "Where metrics.json and the plot go.",
                        flag_values=fv)
    flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images (0: all).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_float("t_max", 1.0, "Largest threshold of the cumulative error curve "
                       "(alpha-beta units).", flag_values=fv)
    flags.DEFINE_boolean("recursive", False, "Descend into folders.", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace the metrics.json and plot of an earlier "
                         "evaluation in --output_dir (default: refuse before evaluating).",
                         flag_values=fv)
    flags.DEFINE_string("prior_source", "config", "Training images of the marginal-prior "
                        "baseline (the training set's mean target histogram, read out like the "
                        "model): 'config' = the data source of the run's config.json "
                        "(--model_dir) or of the training config stored in the SavedModel "
                        "(skipped with a warning when there is none or it cannot be read); a "
                        "folder, glob or 'embedded[:SPLIT]' (any source of pretrain's --data); "
                        "'none' = no prior.", flag_values=fv)
    flags.DEFINE_integer("prior_max_images", 1000, "The prior averages the training targets of "
                         "at most this many images (the first ones of the source).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_boolean("tint_baselines", True, "Also compare with the training pixels' best "
                         "constant tint and best colour per grey level (fitted on the prior's "
                         "crops; tfcolor.tints).", flag_values=fv)
    flags.DEFINE_integer("bootstrap_resamples", 10000, "Resamples of the bootstrap CI of the "
                         "per-image paired differences.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("bootstrap_seed", 0, "Seed of the bootstrap.", flag_values=fv)
    return fv


def options_from_flags(fv=FLAGS):
    """The program's options (one attribute per flag) of the parsed flags ``fv``."""
    return common.options_from_flags(fv, define_flags)


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: give the images with --data")
    return program.main(options_from_flags(FLAGS),
                        explicit=common.given_flags(FLAGS, ["grid_factor"]))


def run():
    """Console-script entry point (``tfcolor-evaluate``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
