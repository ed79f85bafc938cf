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

from absl import logging  # noqa: E402

MODES = {
        "paper": ("expectation", "median"),
        "median": ("expectation", "median"),
        "released": ("expectation", "median_bin_centre"),
        "expectation": ("expectation", "expectation"),
        "mode": ("mode", "mode"),
        "sample": ("sample", "sample"),
}


def load_predictor(f, *, explicit=()):
    """The predictor (``tfcolor.predictors``) named by the options ``f.model_dir`` /
    ``f.saved_model`` / ``f.pretrained`` (at most one; none: the model shipped with tfcolor),
    with ``f.checkpoint`` and ``f.grid_factor``. ``explicit``: the options the user gave (a
    SavedModel's own grid factor wins over a ``grid_factor`` not given, with a warning over
    one given)."""
    # lazy: keeps TensorFlow out of binaries/colorize --help
    from tfcolor import predictors  # pylint: disable=import-outside-toplevel
    # lazy: keeps NumPy (0.25 s) out of binaries/colorize --help
    from tfcolor import pretrained  # pylint: disable=import-outside-toplevel
    given = [n for n in ("model_dir", "saved_model", "pretrained") if getattr(f, n)]
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
        with common.quiet_failure():
            return _load_model(f, explicit, predictors)
    except Exception as e:  # a broken model must end in one line  pylint: disable=broad-except
        common.die(common.model_error(f.saved_model or f.model_dir, e))


def _load_model(f, explicit, predictors):
    """The predictor of ``f.saved_model`` or ``f.model_dir`` (:func:`load_predictor`)."""
    if f.saved_model:
        predictor = predictors.SavedModelPredictor(f.saved_model)
        if "grid_factor" in explicit and f.grid_factor != predictor.grid_factor:
            logging.warning("--grid_factor=%d ignored: the SavedModel was exported with %d",
                            f.grid_factor, predictor.grid_factor)
        return predictor
    return predictors.KerasPredictor.from_model_dir(f.model_dir, checkpoint=f.checkpoint,
                                                    grid_factor=f.grid_factor)


def colorize_options(f, **extra):
    """The ``predictors.ColorizeOptions`` of the readout options of ``f`` (``mode``,
    ``fading``, ``eta``, ``hcl_variant``, ``lab_method``, ``lightness``, ``max_side``,
    ``seed``) and ``extra``; a bad combination is a ``ProgramError``."""
    # lazy: keeps TensorFlow out of binaries/colorize --help
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


def main(options, inputs, *, explicit=()):
    """Colorizes ``inputs`` (files, folders, globs) with the program's ``options`` (an object
    with one attribute per flag); returns the exit status (1 if any input was skipped)."""
    f = options
    if not inputs:
        common.die("no input: give image files, folders or globs after the flags")
    if f.transfer != "none" and not f.reference:
        common.die(f"--transfer={f.transfer} needs --reference=IMAGE")
    # lazy: keeps TensorFlow out of binaries/colorize --help
    from tfcolor import image_files  # pylint: disable=import-outside-toplevel
    colorize = colorize_options(
            f, samples=f.samples, uncertainty=f.uncertainty,
            transfer=None if f.transfer == "none" else f.transfer,
            transfer_lambda=f.transfer_lambda, transfer_steps=f.transfer_steps)
    reference = None
    if f.reference:
        try:
            reference = image_files.read_image(f.reference)
        except image_files.ImageReadError as e:
            common.die(f"--reference={f.reference}: {e}")
    try:
        image_files.expand_inputs(inputs, recursive=f.recursive)
    except FileNotFoundError as e:
        common.die(str(e))
    common.writable_folder(f.output_dir, "output_dir")
    predictor = load_predictor(f, explicit=explicit)

    def progress(i, n, path, seconds):
        print(f"[{i}/{n}] {path} ({seconds:.2f}s)", flush=True)

    result = image_files.colorize_files(predictor, inputs, f.output_dir, colorize,
                                        reference=reference, recursive=f.recursive,
                                        progress=progress, overwrite=f.overwrite)
    done = len(result["written"])
    kept = f"; kept {len(result['kept'])} existing (--overwrite replaces them)" if \
        result["kept"] else ""
    print(f"wrote {done} PNG(s) to {f.output_dir}{kept}; "
          f"{common.skip_summary(result['skipped'])}", flush=True)
    return 1 if result["skipped"] else 0
