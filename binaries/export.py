r"""Exports a trained colorizer as a SavedModel for TF Serving and for reuse.

    binaries/export --model_dir=runs/vgg16 --export_dir=exports/vgg16/1

Reads ``model_dir/config.json`` (written by pretraining) and the latest checkpoint (or
--checkpoint). Signatures: serving_default / colorize (uint8 images), colorize_float,
colorize_bytes (encoded JPEG/PNG), histograms, features, hypercolumn; see ``tfcolor.export``.
Decoding options are fixed at export time by the flags below.
"""

from binaries import colorize as colorize_bin
from binaries import common

common.quiet_tensorflow()

from absl import flags  # noqa: E402

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
    colorize_bin.define_decode_flags(fv, runtime=False)
    return fv


def decode_options(f):
    """Decoding options fixed in the SavedModel (the colorize program's flags)."""
    hue_method, chroma_method = colorize_bin.MODES[f.mode]
    if "sample" in (hue_method, chroma_method):
        common.die("--mode=sample cannot be exported (serving is deterministic)")
    return dict(hue_method=hue_method, chroma_method=chroma_method,
                lab_method=f.lab_method or None, fading=None if f.fading == "none" else f.fading,
                eta=f.eta, hcl_variant=f.hcl_variant,
                lightness=None if f.lightness == "none" else f.lightness)


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    if not FLAGS.model_dir:
        common.die("--model_dir is required (the training directory to export)")
    import os  # pylint: disable=import-outside-toplevel
    from tfcolor import export  # pylint: disable=import-outside-toplevel
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.model_dir, "export")
    try:
        export.export_from_checkpoint(
                FLAGS.model_dir, export_dir, checkpoint=FLAGS.checkpoint,
                grid_factor=FLAGS.grid_factor, decode_options=decode_options(FLAGS),
                save_keras=FLAGS.keras)
    except (FileNotFoundError, ValueError) as e:
        common.die(str(e))
    print(f"SavedModel written to {export_dir}", flush=True)
    return 0


def run():
    """Console-script entry point (``tfcolor-export``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
