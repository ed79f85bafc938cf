r"""Colorizes images with a colorizer: the one shipped with tfcolor, a training model_dir or an
exported SavedModel.

    binaries/colorize photo.jpg                       # the shipped model, no training needed
    binaries/colorize --model_dir=runs/vgg16 photos/ old/*.jpg --output_dir=colorized
    binaries/colorize --saved_model=runs/vgg16/export scan.png --fading=released --uncertainty
    binaries/colorize --model_dir=runs/vgg16 beach.jpg --reference=sunset.jpg --transfer=bias

Inputs are files, folders (their images; --recursive to descend) and globs; colour images are
desaturated first. Each input gives ``NAME.png`` in --output_dir (plus ``NAME_uncertainty.png``
with --uncertainty and ``NAME_sample1.png``... with --samples). An input that cannot be used
(not a file, empty, unknown format, corrupt, above 1e8 pixels, or its colorization failed) is
logged as one line ``skipped PATH: reason: detail`` and the others go on; the exit status is 1 if
any was skipped, 0 otherwise. PNGs are written atomically (temporary name, then rename), and an
existing output is never replaced without --overwrite (that input is left alone: re-running a
killed run finishes it).

Readout (--mode): ``paper`` (default: chroma median interpolated inside the bin where the
cumulative histogram crosses 0.5, hue circular expectation), ``median`` (same: the hue has no
median), ``released`` (the released code's median: centre of the bin where the cumulative
histogram reaches 0.5), ``expectation``, ``mode`` or ``sample`` (each pixel drawn independently).
Lab histograms (--lab_method) default to the expectation, the paper's best for Lab.
--fading: ``released`` (default: min(|z|/eta, 1), the authors' code and what the paper's
"+fading" numbers and images use; without it hue/chroma only ties the grey baseline),
``paper`` (the printed max(|z|/eta, 1), a misprint that never fades), ``none``.
--lightness=exact keeps the input lightness exactly (mean of R, G, B = the grey input at every
pixel).
"""

from tfcolor.programs import common

common.quiet_tensorflow()

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

FLAGS = flags.FLAGS

MODES = {
        "paper": ("expectation", "median"),
        "median": ("expectation", "median"),
        "released": ("expectation", "median_bin_centre"),
        "expectation": ("expectation", "expectation"),
        "mode": ("mode", "mode"),
        "sample": ("sample", "sample"),
}


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
    flags.DEFINE_enum("mode", "paper", list(MODES), "How a colour is read off the histograms.",
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


def load_predictor(f):
    """The predictor (``tfcolor.predictors``) named by --model_dir / --saved_model /
    --pretrained (at most one; none: the model shipped with tfcolor)."""
    from tfcolor import predictors  # pylint: disable=import-outside-toplevel
    from tfcolor import pretrained  # pylint: disable=import-outside-toplevel
    given = [n for n in ("model_dir", "saved_model", "pretrained") if f[n].value]
    if len(given) > 1:
        common.die("give exactly one of --model_dir (training directory), --saved_model or "
                   "--pretrained, or none for the model shipped with tfcolor")
    if not given:
        logging.info("no --model_dir/--saved_model: using the colorizer shipped with tfcolor, "
                     "%r (tfcolor/assets/models/%s/MODEL_CARD.md says what it can do)",
                     pretrained.DEFAULT, pretrained.DEFAULT)
    if f.pretrained or not given:
        try:
            return predictors.KerasPredictor.from_pretrained(f.pretrained,
                                                             grid_factor=f.grid_factor)
        except ValueError as e:
            common.die(f"--pretrained: {e}")
    try:
        if f.saved_model:
            predictor = predictors.SavedModelPredictor(f.saved_model)
            if f["grid_factor"].present and f.grid_factor != predictor.grid_factor:
                logging.warning("--grid_factor=%d ignored: the SavedModel was exported with %d",
                                f.grid_factor, predictor.grid_factor)
            return predictor
        return predictors.KerasPredictor.from_model_dir(f.model_dir, checkpoint=f.checkpoint,
                                                        grid_factor=f.grid_factor)
    except Exception as e:  # a broken model must end in one line  pylint: disable=broad-except
        common.die(common.model_error(f.saved_model or f.model_dir, e))


def options_from_flags(f, **extra):
    from tfcolor import predictors  # pylint: disable=import-outside-toplevel
    hue_method, chroma_method = MODES[f.mode]
    options = predictors.ColorizeOptions(
            hue_method=hue_method, chroma_method=chroma_method, lab_method=f.lab_method or None,
            fading=None if f.fading == "none" else f.fading, eta=f.eta,
            hcl_variant=f.hcl_variant, lightness=None if f.lightness == "none" else f.lightness,
            max_side=f.max_side or None, seed=f.seed, **extra)
    try:
        return options.validate()
    except ValueError as e:
        common.die(str(e))


def main(argv):
    inputs = argv[1:]
    if not inputs:
        common.die("no input: give image files, folders or globs after the flags")
    if FLAGS.transfer != "none" and not FLAGS.reference:
        common.die(f"--transfer={FLAGS.transfer} needs --reference=IMAGE")
    from tfcolor import image_files  # pylint: disable=import-outside-toplevel
    options = options_from_flags(
            FLAGS, samples=FLAGS.samples, uncertainty=FLAGS.uncertainty,
            transfer=None if FLAGS.transfer == "none" else FLAGS.transfer,
            transfer_lambda=FLAGS.transfer_lambda, transfer_steps=FLAGS.transfer_steps)
    reference = None
    if FLAGS.reference:
        try:
            reference = image_files.read_image(FLAGS.reference)
        except image_files.ImageReadError as e:
            common.die(f"--reference={FLAGS.reference}: {e}")
    try:
        image_files.expand_inputs(inputs, recursive=FLAGS.recursive)
    except FileNotFoundError as e:
        common.die(str(e))
    predictor = load_predictor(FLAGS)

    def progress(i, n, path, seconds):
        print(f"[{i}/{n}] {path} ({seconds:.2f}s)", flush=True)

    result = image_files.colorize_files(predictor, inputs, FLAGS.output_dir, options,
                                        reference=reference, recursive=FLAGS.recursive,
                                        progress=progress, overwrite=FLAGS.overwrite)
    done = len(result["written"])
    kept = f"; kept {len(result['kept'])} existing (--overwrite replaces them)" if \
        result["kept"] else ""
    print(f"wrote {done} PNG(s) to {FLAGS.output_dir}{kept}; "
          f"{common.skip_summary(result['skipped'])}", flush=True)
    return 1 if result["skipped"] else 0


def run():
    """Console-script entry point (``tfcolor-colorize``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
