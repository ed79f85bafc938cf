"""The export program's absl entry point (the program: ``tfcolor.programs.export``).

    binaries/export --model_dir=runs/vgg16 --export_dir=exports/vgg16/1
    python binaries/export.py --help
"""
if __package__ in (None, ""):  # python binaries/export.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import export as program  # noqa: E402

from . import colorize as colorize_bin  # noqa: E402
from . import common  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    if "export_dir" in fv:
        return fv
    flags.DEFINE_string("model_dir", None, "Training directory (config.json + checkpoints).",
                        flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "Specific checkpoint (default: the latest).",
                        flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Output directory (default: MODEL_DIR/export).",
                        flag_values=fv)
    flags.DEFINE_boolean("keras", True, "Also write colorizer.keras beside the SavedModel.",
                         flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing export in --export_dir (the "
                         "new one is written beside it and swapped in when complete).",
                         flag_values=fv)
    flags.DEFINE_integer("max_pixels", 100_000_000, "Serving cap: the signatures refuse a "
                         "batch of more pixels (batch x height x width; colorize_bytes: each "
                         "file's header) with a one-line error.", flag_values=fv)
    flags.DEFINE_integer("max_side", 512, "The colour signatures run the network on the image "
                         "shrunk to this longer side when larger, as colorize --max_side (the "
                         "output keeps the full resolution); 0 = at full size.", lower_bound=0,
                         flag_values=fv)
    colorize_bin.define_readout_flags(fv, runtime=False)
    return fv


def options_from_flags(fv=FLAGS):
    """The program's options (one attribute per flag) of the parsed flags ``fv``."""
    return common.options_from_flags(fv, define_flags)


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    return program.main(options_from_flags(FLAGS))


def run():
    """Console-script entry point (``tfcolor-export``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
