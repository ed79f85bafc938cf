"""The corpus builder's absl entry point (the program: ``tfcolor.programs.build_corpus``).

    binaries/build_corpus --out=~/.cache/tfcolor-corpus
    python binaries/build_corpus.py --help
"""
if __package__ in (None, ""):  # python binaries/build_corpus.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

import dataclasses  # noqa: E402

from absl import flags  # noqa: E402

from tfcolor.corpus.curation import FilterConfig  # noqa: E402
from tfcolor.programs import build_corpus as program  # noqa: E402

from . import common  # noqa: E402

FLAGS = flags.FLAGS

FILTER_HELP = {
    "min_side": "Photos: reject (small) when the short side is below this.",
    "label_min_side": "Labelled set: reject (small) when the short side is below this.",
    "max_transparent": "Reject (alpha) when more than this fraction is transparent after "
                       "cropping to the fully opaque rows.",
    "min_colourfulness": "Reject (grey) below this colourfulness (Hasler & Suesstrunk 2003).",
    "min_colours": "Reject (few_colours) below this many distinct 5-bit colours.",
    "max_flat": "Reject (flat) when more than this fraction of the pixels has a zero gradient.",
    "max_top8": "Reject (palette) when the 8 most frequent 5-bit colours cover more than this.",
}


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (at run time, like every program), with the defaults
    of ``tfcolor.corpus.build.DEFAULTS``. The dashed spellings of earlier releases
    (``--manifest-dir``) remain as deprecated aliases (:data:`DASHED`)."""
    if "manifest_dir" in fv:
        return fv
    d = program.DEFAULTS
    common.flag_section(fv, "Output")
    flags.DEFINE_string("out", d["out"],
                        "Output directory (never inside a git work tree).", flag_values=fv)
    flags.DEFINE_string("manifest_dir", d["manifest_dir"],
                        "Also write manifest.csv and labelled_manifest.csv here.", flag_values=fv)
    flags.DEFINE_integer("max_side", d["max_side"],
                         "Short side of the stored photos (at least 32).", flag_values=fv)
    flags.DEFINE_boolean("contact_sheets", d["contact_sheets"],
                         "Write OUT/sheets/*.png: kept and rejected images per package.",
                         flag_values=fv)
    common.flag_section(fv, "Packages")
    flags.DEFINE_string("cache", d["cache"],
                        "Downloaded .debs and unpacked trees (default: OUT/cache).",
                        flag_values=fv)
    flags.DEFINE_boolean("no_download", d["no_download"],
                         "Use only the .debs already in CACHE/debs (offline).", flag_values=fv)
    flags.DEFINE_boolean("no_existing_sets", d["no_existing_sets"], "Skip "
                         "labeled/fashion_mnist.npz, digits_opencv.npz, gcompris5.npz and "
                         "fmnist_digits20.npz.",
                         flag_values=fv)
    flags.DEFINE_integer("workers", d["workers"], "Processes measuring the candidate images.",
                         lower_bound=1, flag_values=fv)
    common.flag_section(fv, "Splits and near-duplicates")
    flags.DEFINE_integer("seed", d["seed"], "Seed of the splits (a group's split is a hash of "
                         "the seed and the group name) and of the crops.", flag_values=fv)
    flags.DEFINE_float("val_frac", d["val_frac"], "Fraction of the photo groups in val.",
                       flag_values=fv)
    flags.DEFINE_float("holdout_frac", d["holdout_frac"],
                       "Fraction of the photo groups in holdout.", flag_values=fv)
    flags.DEFINE_integer("dup_bits", d["dup_bits"], "dHash distance (of 256) at or below which "
                         "two images are one photo.", flag_values=fv)
    flags.DEFINE_integer("group_bits", d["group_bits"], "dHash distance at or below which two "
                         "photos share a scene group.", flag_values=fv)
    common.flag_section(fv, "Labelled set")
    flags.DEFINE_string("label_name", d["label_name"], "Name of the labelled .npz (default: "
                        "debphotoK, K = the number of classes).", flag_values=fv)
    flags.DEFINE_integer("label_size", d["label_size"],
                         "Side of the square labelled images (at least 8).", flag_values=fv)
    flags.DEFINE_float("label_test_frac", d["label_test_frac"],
                       "Fraction of each class's groups in test.", flag_values=fv)
    flags.DEFINE_float("label_val_frac", d["label_val_frac"],
                       "Fraction of each class's groups in val.", flag_values=fv)
    common.flag_section(fv, "Crop arrays")
    flags.DEFINE_string("sizes", d["sizes"],
                        "Also write crop arrays for these sizes, e.g. 64,128.", flag_values=fv)
    flags.DEFINE_integer("crops_per_photo", d["crops_per_photo"],
                         "Random crops per train photo.", flag_values=fv)
    flags.DEFINE_integer("eval_crops", d["eval_crops"], "Crops per val / holdout photo (the "
                         "first is the centre crop).", flag_values=fv)
    common.flag_section(fv, "Photo filter")
    define = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
    for f in dataclasses.fields(FilterConfig):
        define[type(f.default)](f.name, d[f.name], FILTER_HELP[f.name], flag_values=fv)
    common.flag_section(fv, None)
    for name in DASHED:
        common.define_deprecated_alias(fv, name.replace("_", "-"), name)
    return fv


#: The flags also accepted with dashes (``--manifest-dir``), as deprecated aliases.
DASHED = ("manifest_dir", "max_side", "contact_sheets", "no_download", "no_existing_sets",
          "val_frac", "holdout_frac", "dup_bits", "group_bits", "label_name", "label_size",
          "label_test_frac", "label_val_frac", "crops_per_photo", "eval_crops", "min_side",
          "label_min_side", "max_transparent", "min_colourfulness", "min_colours", "max_flat",
          "max_top8")


def args_from_flags(fv):
    """The settings of ``tfcolor.corpus.build`` (attributes named as the flags;
    ``existing_sets`` is the negation of ``--no_existing_sets``) from parsed flags.

    Raises ValueError with a one-line message naming the flag at fault.
    """
    names = common.own_flag_names(define_flags)
    return program.settings_from_values(common.flag_values(fv, names))


def parse_args(argv=()):
    """:func:`args_from_flags` of the command-line arguments ``argv`` (without the program
    name), parsed on a private FlagValues; a bad value exits like the program (status 2)."""
    fv = define_flags(flags.FlagValues())
    try:
        fv(["build_corpus"] + list(argv))
        return args_from_flags(fv)
    except (ValueError, flags.Error) as e:
        common.die(str(e))


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    try:
        a = args_from_flags(FLAGS)
    except ValueError as e:
        common.die(str(e))
    return program.main(a)


def run():
    """Console-script entry point (``tfcolor-build-corpus``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
