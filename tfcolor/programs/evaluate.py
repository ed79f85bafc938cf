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
run's config), predicted everywhere and read out with the same flags as the model; and, with
--tint_baselines (default), the training pixels' best constant tint (``constant_tint``) and best
colour per grey level (``lightness_lookup``) in the error's alpha-beta plane (``tfcolor.tints``,
fitted on the same crops). Per image, the model is compared with each baseline
(``tfcolor.evaluation``): mean difference,
fraction of images improved and a seeded percentile bootstrap 95% CI of the mean difference of
each metric, printed and written under ``paired`` in metrics.json.
"""
import os
import shutil
import sys
import tempfile

from absl import logging

from tfcolor import run_dir
from tfcolor.programs import colorize as colorize_program
from tfcolor.programs import common

common.quiet_tensorflow()


def _run_config(f):
    """The training config dict of --model_dir / --saved_model, or None."""
    try:
        if f.saved_model:
            return run_dir.read_export_metadata(f.saved_model).get("config")
        return run_dir.read_config(f.model_dir, as_dict=True)
    except (OSError, ValueError, AttributeError):  # ConfigError is a ValueError
        return None


def training_baselines(f, predictor):
    """``(MarginalPrior or None, {name: tint baseline}, description)`` of the training data per
    --prior_source (see its help): the marginal prior and, with --tint_baselines, the constant
    tint and the lightness lookup (``tfcolor.tints``) of the same crops."""
    # lazy: keeps TensorFlow out of binaries/evaluate --help
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/evaluate --help
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/evaluate --help
    from tfcolor import prior as prior_lib  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/evaluate --help
    from tfcolor import tints as tints_lib  # pylint: disable=import-outside-toplevel
    if f.prior_source == "none":
        return None, {}, "none (--prior_source=none)"
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
        tints = (tints_lib.fit_tints(data, data_config, max_images=f.prior_max_images,
                                     **options)
                 if getattr(f, "tint_baselines", True) else {})
    except (ValueError, OSError, ImportError, config_lib.ConfigError, tf.errors.OpError) as e:
        if not from_config:
            common.die(f"--prior_source={f.prior_source}: {e}")
        logging.warning("no marginal-prior baseline: %s", e)
        return None, {}, f"skipped: {e}"
    return prior, tints, f"{prior.origin} ({prior.images} images, {prior.points} points)"


def main(options, *, explicit=()):
    """Evaluates the colorizer of the program's ``options`` (an object with one attribute per
    flag) on ``options.data``; returns the exit status (1 if any image was skipped)."""
    f = options
    if not f.data:
        common.die("--data is required (a folder, a glob or embedded[:SPLIT] of colour "
                   "images)")
    if not f.t_max > 0:
        common.die(f"--t_max must be positive, got {f.t_max}")
    # lazy: keeps TensorFlow out of binaries/evaluate --help
    from tfcolor import image_files, metrics  # pylint: disable=import-outside-toplevel
    inputs = [d for d in f.data.split(",") if d]
    try:
        image_files.expand_inputs(inputs, recursive=f.recursive)
    except FileNotFoundError as e:
        common.die(str(e))
    options = colorize_program.colorize_options(f)
    existing = _existing_report(f.output_dir)
    if existing and not f.overwrite:
        common.die(f"{existing} exists: not replacing an earlier evaluation (--overwrite, or "
                   "choose another --output_dir)")
    common.writable_folder(f.output_dir, "output_dir")
    predictor = colorize_program.load_predictor(f, explicit=explicit)

    def progress(i, n, path):
        if i % 10 == 0 or i == n:
            print(f"[{i}/{n}] {path}", flush=True)

    # lazy: keeps TensorFlow out of binaries/evaluate --help
    from tfcolor import evaluation  # pylint: disable=import-outside-toplevel
    prior, tints, prior_desc = training_baselines(f, predictor)
    try:
        evaluated = evaluation.evaluate_with_baselines(
                predictor, inputs, options, prior=prior, tints=tints, t_max=f.t_max,
                max_images=f.max_images or None, recursive=f.recursive,
                progress=progress, n_resamples=f.bootstrap_resamples,
                seed=f.bootstrap_seed)
    except ValueError as e:
        common.die(str(e))
    acc, skipped = evaluated.metrics, evaluated.skipped
    settings = {"data": inputs, "mode": f.mode, "fading": f.fading,
                "lightness": f.lightness, "max_side": f.max_side,
                "grid_factor": predictor.grid_factor, "kind": predictor.kind,
                "model": f.saved_model or f.model_dir,
                "skipped": [p for p, _ in skipped], "prior_source": prior_desc}
    result = acc.result()
    print(f"{'':16} {'images':>7} {'ab mean':>9} {'ab RMS':>9} {'PSNR(dB)':>9} {'AuC':>6}")
    for name, r in result.items():
        print(f"{name:16} {r['images']:7d} {r['alphabeta_mean']:9.4f} "
              f"{r['alphabeta_rms']:9.4f} {r['psnr']:9.2f} {r['auc']:6.3f}")
    for pair, by_metric in evaluated.paired.items():
        for metric, st in by_metric.items():
            print(f"{pair:22} {metric:15} mean diff {st['mean_difference']:+9.4f} "
                  f"95% CI [{st['ci_low']:+.4f}, {st['ci_high']:+.4f}] "
                  f"improved {st['fraction_improved']:6.1%} of {st['n']} images")
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    try:
        json_path, png_path = _write_report_atomically(
                metrics, acc, f.output_dir, {"settings": settings, **evaluated.report()})
    except OSError as e:  # the disk filled up or became read-only while evaluating
        common.die(common.storage_message(
                f"write the report to --output_dir={f.output_dir}", e,
                "the results are printed above"))
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
