r"""Exports a trained colorizer as a SavedModel for TF Serving and for reuse.

    binaries/export --model_dir=runs/vgg16 --export_dir=exports/vgg16/1

Reads ``model_dir/config.json`` (written by pretraining) and the run's model (or
--checkpoint): the model of the lowest held-out loss of a --keep_best run, else the latest
checkpoint; the last line says which. Signatures: serving_default / colorize (uint8 images),
colorize_float, colorize_bytes (encoded JPEG/PNG), histograms, features, hypercolumn; see
``tfcolor.export``.
Readout options (how colours are read off the histograms) are fixed at export time by the
flags below.

An existing, non-empty --export_dir is never replaced unless --overwrite; the SavedModel is
written to a temporary sibling folder and renamed into place when complete, so a failed or
killed export leaves no partial SavedModel and an earlier export stays whole until the new one
replaces it; what killed exports left there (``EXPORT_DIR.tmp-PID``) is removed first. A
--model_dir without a model (no config.json, no checkpoint, a damaged checkpoint) and a disk that
refuses the export (full, read-only) are one-line errors (exit status 2).
"""
import os

from tfcolor import run_dir
from tfcolor.programs import colorize as colorize_program
from tfcolor.programs import common

common.quiet_tensorflow()


def readout_options(f):
    """Readout options fixed in the SavedModel (the colorize program's readout options)."""
    hue_method, chroma_method = colorize_program.MODES[f.mode]
    if "sample" in (hue_method, chroma_method):
        common.die("--mode=sample cannot be exported (serving is deterministic)")
    return dict(hue_method=hue_method, chroma_method=chroma_method,
                lab_method=f.lab_method or None, fading=None if f.fading == "none" else f.fading,
                eta=f.eta, hcl_variant=f.hcl_variant,
                lightness=None if f.lightness == "none" else f.lightness)


def main(options):
    """Exports the colorizer of ``options.model_dir`` (an object with one attribute per flag);
    returns the exit status."""
    f = options
    if not f.model_dir:
        common.die("--model_dir is required (the training directory to export)")
    # lazy: keeps TensorFlow out of binaries/export --help
    from tfcolor import export  # pylint: disable=import-outside-toplevel
    export_dir = f.export_dir or run_dir.export_path(f.model_dir)
    if os.path.isdir(export_dir) and os.listdir(export_dir) and not f.overwrite:
        common.die(f"{export_dir} already exists: not replacing an earlier export (--overwrite "
                   "replaces it once the new one is complete, or choose another --export_dir)")
    options = readout_options(f)
    network = {"max_side": f.max_side or None} if hasattr(f, "max_side") else {}
    if network.get("max_side") is not None and network["max_side"] < 8:
        common.die(f"--max_side must be 0 (the network at full size) or >= 8, got {f.max_side}")
    try:
        with common.quiet_failure():
            model, kind = run_dir.load_model(f.model_dir, f.checkpoint)
    except Exception as e:  # a broken model must end in one line  pylint: disable=broad-except
        common.die(common.model_error(f.model_dir, e))
    try:
        export.export_from_checkpoint(
                f.model_dir, export_dir, checkpoint=f.checkpoint,
                grid_factor=f.grid_factor, readout_options=options,
                save_keras=f.keras, overwrite=f.overwrite, model=(model, kind),
                max_pixels=getattr(f, "max_pixels", None) or None, **network)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        common.die(str(e))
    except Exception as e:  # pylint: disable=broad-except
        if not common.storage_error(e):
            raise
        common.die(common.storage_message(
                f"write the SavedModel to {export_dir}", e, "nothing was left there (an earlier "
                "export stays whole): free space or choose a writable --export_dir"))
    source = run_dir.read_export_metadata(export_dir).get("checkpoint") or {}
    which = {"best_heldout": f", the lowest held-out loss ({source.get('heldout_loss', 0):.4f})",
             "latest": ", the latest"}.get(source.get("selected"), "")
    print(f"SavedModel written to {export_dir} (checkpoint {source.get('path')}{which})",
          flush=True)
    return 0
