r"""Colorization metrics of a trained colorizer against the grey baseline, on colour images.

    binaries/evaluate --model_dir=runs/vgg16 --data=/data/imagenet/cval1k --output_dir=eval
    binaries/evaluate --saved_model=runs/vgg16/export --data='photos/*.jpg' --fading=released

Reports, for the model and for the no-colour (grey) baseline side by side: the alpha-beta
error averaged over pixels, as its mean distance (``ab mean``: what the papers call "RMSE",
their 0.343 / 0.299) and its root mean square (``ab RMS``), PSNR in RGB averaged over images,
and the area under the cumulative per-pixel error curve (Larsson et al. 2016, after Deshpande
et al. 2015; definitions in ``tfcolor.metrics``). Writes OUTPUT_DIR/metrics.json and
OUTPUT_DIR/cumulative_error.png.
"""

from binaries import colorize as colorize_bin
from binaries import common

common.quiet_tensorflow()

from absl import flags  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    if "t_max" in fv:
        return fv
    colorize_bin.define_model_flags(fv)
    colorize_bin.define_decode_flags(fv)
    flags.DEFINE_string("data", None, "Colour images: a folder or a glob (comma-separated list "
                        "allowed).", flag_values=fv)
    flags.DEFINE_string("output_dir", "evaluation", "Where metrics.json and the plot go.",
                        flag_values=fv)
    flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images (0: all).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_float("t_max", 1.0, "Largest threshold of the cumulative error curve "
                       "(alpha-beta units).", flag_values=fv)
    flags.DEFINE_boolean("recursive", False, "Descend into folders.", flag_values=fv)
    return fv


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: give the images with --data")
    if not FLAGS.data:
        common.die("--data is required (a folder or glob of colour images)")
    if not FLAGS.t_max > 0:
        common.die(f"--t_max must be positive, got {FLAGS.t_max}")
    from tfcolor import colorize, metrics  # pylint: disable=import-outside-toplevel
    inputs = [d for d in FLAGS.data.split(",") if d]
    try:
        colorize.expand_inputs(inputs, recursive=FLAGS.recursive)
    except FileNotFoundError as e:
        common.die(str(e))
    options = colorize_bin.options_from_flags(FLAGS)
    source = colorize_bin.load_source(FLAGS)

    def progress(i, n, path):
        if i % 10 == 0 or i == n:
            print(f"[{i}/{n}] {path}", flush=True)

    try:
        acc, skipped = metrics.evaluate(source, inputs, options, t_max=FLAGS.t_max,
                                        max_images=FLAGS.max_images or None,
                                        recursive=FLAGS.recursive, progress=progress)
    except ValueError as e:
        common.die(str(e))
    settings = {"data": inputs, "mode": FLAGS.mode, "fading": FLAGS.fading,
                "lightness": FLAGS.lightness, "max_side": FLAGS.max_side,
                "grid_factor": source.grid_factor, "kind": source.kind,
                "model": FLAGS.saved_model or FLAGS.model_dir,
                "skipped": [p for p, _ in skipped]}
    json_path, png_path = metrics.write_report(acc, FLAGS.output_dir, {"settings": settings})
    result = acc.result()
    print(f"{'':8} {'images':>7} {'ab mean':>9} {'ab RMS':>9} {'PSNR(dB)':>9} {'AuC':>6}")
    for name, r in result.items():
        print(f"{name:8} {r['images']:7d} {r['alphabeta_mean']:9.4f} "
              f"{r['alphabeta_rms']:9.4f} {r['psnr']:9.2f} {r['auc']:6.3f}")
    print(f"wrote {json_path} and {png_path}; skipped {len(skipped)} unreadable file(s)",
          flush=True)
    return 0


def run():
    """Console-script entry point (``tfcolor-evaluate``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
