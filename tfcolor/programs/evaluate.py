r"""Colorization metrics of a trained colorizer against the grey baseline, on colour images.

    binaries/evaluate --model_dir=runs/vgg16 --data=/data/imagenet/cval1k --output_dir=eval
    binaries/evaluate --saved_model=runs/vgg16/export --data='photos/*.jpg' --fading=released

Reports, for the model and for the no-colour (grey) baseline side by side: the alpha-beta
error averaged over pixels, as its mean distance (``ab mean``: what the papers call "RMSE",
their 0.343 / 0.299) and its root mean square (``ab RMS``), PSNR in RGB averaged over images,
and the area under the cumulative per-pixel error curve (Larsson et al. 2016, after Deshpande
et al. 2015; definitions in ``tfcolor.metrics``). Writes OUTPUT_DIR/metrics.json and
OUTPUT_DIR/cumulative_error.png (atomically; an earlier report there is not replaced without
--overwrite). Inputs that cannot be read (``tfcolor.image_files.read_image``'s reasons, e.g.
corrupt or above 1e8 pixels) are reported as ``skipped PATH: reason`` and left out; the exit
status is then 1.

Beside grey, a marginal-prior baseline (``prior``): the training set's mean target histogram
(``tfcolor.prior.marginal_prior``, from --prior_source: by default the training data named in the
run's config), predicted everywhere and read out with the same flags as the model. Per image, the
model is compared with grey and with the prior (``tfcolor.evaluation``): mean difference,
fraction of images improved and a seeded percentile bootstrap 95% CI of the mean difference of
each metric, printed and written under ``paired`` in metrics.json.
"""
import os
import shutil
import sys
import tempfile

from tfcolor.programs import colorize as colorize_bin
from tfcolor.programs import common

common.quiet_tensorflow()

from absl import flags  # noqa: E402

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
    flags.DEFINE_integer("bootstrap_resamples", 10000, "Resamples of the bootstrap CI of the "
                         "per-image paired differences.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("bootstrap_seed", 0, "Seed of the bootstrap.", flag_values=fv)
    return fv


def _run_config(f):
    """The training config dict of --model_dir / --saved_model, or None."""
    from tfcolor import run_dir  # pylint: disable=import-outside-toplevel
    try:
        if f.saved_model:
            return run_dir.read_export_metadata(f.saved_model).get("config")
        return run_dir.read_config(f.model_dir, as_dict=True)
    except (OSError, ValueError, AttributeError):  # ConfigError is a ValueError
        return None


def marginal_prior_from_flags(f, predictor):
    """``(MarginalPrior or None, description)`` per --prior_source (see its help)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from absl import logging  # pylint: disable=import-outside-toplevel
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    from tfcolor import prior as prior_lib  # pylint: disable=import-outside-toplevel
    if f.prior_source == "none":
        return None, "none (--prior_source=none)"
    run_config = _run_config(f)
    from_config = f.prior_source == "config"
    try:
        if run_config is not None:
            data, data_config, loss_config, options = prior_lib.data_config_from_run_config(
                run_config)
        elif from_config:
            raise ValueError("the model has no training config to take the training data from "
                             "(give --prior_source=DIR)")
        else:
            data, data_config, loss_config, options = (
                None, config_lib.DataConfig(), config_lib.LossConfig(kind=predictor.kind), {})
        data = data if from_config else f.prior_source
        prior = prior_lib.marginal_prior(data, data_config, loss_config,
                                         max_images=f.prior_max_images, **options)
        if prior.kind != predictor.kind:
            raise ValueError(f"the prior's kind {prior.kind!r} differs from the model's "
                             f"{predictor.kind!r}")
    except (ValueError, OSError, ImportError, config_lib.ConfigError, tf.errors.OpError) as e:
        if not from_config:
            common.die(f"--prior_source={f.prior_source}: {e}")
        logging.warning("no marginal-prior baseline: %s", e)
        return None, f"skipped: {e}"
    return prior, f"{prior.origin} ({prior.images} images, {prior.points} points)"


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: give the images with --data")
    if not FLAGS.data:
        common.die("--data is required (a folder, a glob or embedded[:SPLIT] of colour "
                   "images)")
    if not FLAGS.t_max > 0:
        common.die(f"--t_max must be positive, got {FLAGS.t_max}")
    from tfcolor import image_files, metrics  # pylint: disable=import-outside-toplevel
    inputs = [d for d in FLAGS.data.split(",") if d]
    try:
        image_files.expand_inputs(inputs, recursive=FLAGS.recursive)
    except FileNotFoundError as e:
        common.die(str(e))
    options = colorize_bin.options_from_flags(FLAGS)
    existing = _existing_report(FLAGS.output_dir)
    if existing and not FLAGS.overwrite:
        common.die(f"{existing} exists: not replacing an earlier evaluation (--overwrite, or "
                   "choose another --output_dir)")
    predictor = colorize_bin.load_predictor(FLAGS)

    def progress(i, n, path):
        if i % 10 == 0 or i == n:
            print(f"[{i}/{n}] {path}", flush=True)

    from tfcolor import evaluation  # pylint: disable=import-outside-toplevel
    prior, prior_desc = marginal_prior_from_flags(FLAGS, predictor)
    try:
        evaluated = evaluation.evaluate_with_baselines(
                predictor, inputs, options, prior=prior, t_max=FLAGS.t_max,
                max_images=FLAGS.max_images or None, recursive=FLAGS.recursive,
                progress=progress, n_resamples=FLAGS.bootstrap_resamples,
                seed=FLAGS.bootstrap_seed)
    except ValueError as e:
        common.die(str(e))
    acc, skipped = evaluated.metrics, evaluated.skipped
    settings = {"data": inputs, "mode": FLAGS.mode, "fading": FLAGS.fading,
                "lightness": FLAGS.lightness, "max_side": FLAGS.max_side,
                "grid_factor": predictor.grid_factor, "kind": predictor.kind,
                "model": FLAGS.saved_model or FLAGS.model_dir,
                "skipped": [p for p, _ in skipped], "prior_source": prior_desc}
    json_path, png_path = _write_report_atomically(
            metrics, acc, FLAGS.output_dir, {"settings": settings, **evaluated.report()})
    result = acc.result()
    print(f"{'':8} {'images':>7} {'ab mean':>9} {'ab RMS':>9} {'PSNR(dB)':>9} {'AuC':>6}")
    for name, r in result.items():
        print(f"{name:8} {r['images']:7d} {r['alphabeta_mean']:9.4f} "
              f"{r['alphabeta_rms']:9.4f} {r['psnr']:9.2f} {r['auc']:6.3f}")
    for pair, by_metric in evaluated.paired.items():
        for metric, st in by_metric.items():
            print(f"{pair:12} {metric:15} mean diff {st['mean_difference']:+9.4f} "
                  f"95% CI [{st['ci_low']:+.4f}, {st['ci_high']:+.4f}] "
                  f"improved {st['fraction_improved']:6.1%} of {st['n']} images")
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"wrote {json_path} and {png_path}; {common.skip_summary(skipped)}", flush=True)
    return 1 if skipped else 0


REPORT_FILES = ("metrics.json", "cumulative_error.png")


def _existing_report(output_dir):
    for name in REPORT_FILES:
        if os.path.lexists(os.path.join(output_dir, name)):
            return os.path.join(output_dir, name)
    return None


def _write_report_atomically(metrics, acc, output_dir, extra):
    """``metrics.write_report`` into a hidden temporary folder of ``output_dir``, then each
    file renamed into place: a killed run never leaves a truncated metrics.json."""
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".evaluate-", dir=output_dir)
    try:
        paths = metrics.write_report(acc, staging, extra)
        out = []
        for path in paths:
            final = os.path.join(output_dir, os.path.basename(path))
            os.replace(path, final)
            out.append(final)
        return tuple(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run():
    """Console-script entry point (``tfcolor-evaluate``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
