"""The colorize program's absl entry point (the program: ``tfcolor.programs.colorize``).

    binaries/colorize photo.jpg --output_dir=colorized
    python binaries/colorize.py --help

Also defines the model and readout flags that evaluate and export share.
"""
if __package__ in (None, ""):  # python binaries/colorize.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import colorize as program  # noqa: E402

from . import common  # noqa: E402

FLAGS = flags.FLAGS
MODES = program.MODES


def define_model_flags(fv):
    if "saved_model" in fv:
        return
    common.flag_section(fv, "Model (at most one; none: the colorizer shipped with tfcolor)")
    flags.DEFINE_string("model_dir", None, "Training directory (config.json + checkpoints).",
                        flag_values=fv)
    flags.DEFINE_string("saved_model", None, "SavedModel written by tfcolor-export.",
                        flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "Specific checkpoint in --model_dir (default latest).",
                        flag_values=fv)
    flags.DEFINE_string("pretrained", None,
                        "A colorizer shipped with tfcolor (tfcolor.pretrained.available(); the "
                        "default when neither --model_dir nor --saved_model is given).",
                        flag_values=fv)
    common.flag_section(fv, None)


def define_readout_flags(fv, runtime=True):
    """Readout flags (how colours are read off the predicted histograms, ``tfcolor.readout``)
    shared by colorize, evaluate and export (``runtime=False``: without the
    per-run --max_side and --seed)."""
    if "fading" in fv:
        return
    common.flag_section(fv, "Readout (how colours are read off the predicted histograms)")
    flags.DEFINE_enum("mode", "paper", list(program.MODES),
                      "How a colour is read off the histograms.",
                      flag_values=fv)
    flags.DEFINE_enum("fading", "released", ["released", "paper", "none"],
                      "Chromatic fading: released = min(|z|/eta, 1) (fades uncertain hues); "
                      "paper = the printed max(|z|/eta, 1), which never fades.", flag_values=fv)
    flags.DEFINE_float("eta", 0.03, "Chromatic fading threshold.", flag_values=fv)
    flags.DEFINE_enum("hcl_variant", "paper", ["paper", "released"],
                      "Hue/chroma -> RGB reconstruction.", flag_values=fv)
    flags.DEFINE_enum("lab_method", "", ["", "expectation", "median", "median_bin_centre", "mode",
                                         "sample"],
                      "Point estimate of Lab histograms (default: expectation, the paper's "
                      "best).",
                      flag_values=fv)
    flags.DEFINE_enum("lightness", "exact", ["exact", "released", "none"],
                      "Lightness matching (exact: output lightness = input grey).",
                      flag_values=fv)
    flags.DEFINE_integer("grid_factor", 4, "Dense grid factor (input / g); fixed by the export "
                         "for --saved_model.", lower_bound=1, flag_values=fv)
    if runtime:
        flags.DEFINE_integer("max_side", 512, "Shrink the network input to this longer side "
                             "(the output keeps the full resolution); 0 = never.",
                             lower_bound=0, flag_values=fv)
        flags.DEFINE_integer("seed", 0, "Seed of sampled colorizations.", flag_values=fv)
    common.flag_section(fv, None)


def define_flags(fv=FLAGS):
    if "output_dir" in fv and "uncertainty" in fv:
        return fv
    define_model_flags(fv)
    define_readout_flags(fv)
    flags.DEFINE_string("output_dir", "colorized", "Where the PNGs go.", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace existing outputs (default: an input whose "
                         "output exists is left alone, so a re-run finishes a killed run).",
                         flag_values=fv)
    flags.DEFINE_boolean("recursive", False, "Descend into folders (and ** in globs).",
                         flag_values=fv)
    flags.DEFINE_boolean("uncertainty", False, "Also write NAME_uncertainty.png (normalised hue "
                         "entropy x chroma).", flag_values=fv)
    flags.DEFINE_integer("samples", 0, "Also write this many sampled colorizations (one quantile "
                         "per image: coherent alternatives).", lower_bound=0, flag_values=fv)
    flags.DEFINE_string("reference", None, "Reference image for histogram transfer.",
                        flag_values=fv)
    flags.DEFINE_enum("transfer", "none", ["none", "quantile", "bias"],
                      "Histogram transfer to --reference.", flag_values=fv)
    flags.DEFINE_float("transfer_lambda", 10.0, "lambda of the bias transfer energy.",
                       flag_values=fv)
    flags.DEFINE_integer("transfer_steps", 300, "Gradient steps of the bias transfer.",
                         lower_bound=1, flag_values=fv)
    return fv


def options_from_flags(fv=FLAGS):
    """The program's options (one attribute per flag) of the parsed flags ``fv``."""
    return common.options_from_flags(fv, define_flags)


def colorize_options(fv=FLAGS, **extra):
    """The ``predictors.ColorizeOptions`` of the readout flags of ``fv``."""
    return program.colorize_options(options_from_flags(fv), **extra)


def main(argv):
    return program.main(options_from_flags(FLAGS), argv[1:],
                        explicit=common.given_flags(FLAGS, ["grid_factor"]))


def run():
    """Console-script entry point (``tfcolor-colorize``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
