"""Fine-tunes a (pretrained) trunk on a labelled task with the paper's protocol.

Examples::

    # Fashion-MNIST, 100 labelled images per class, from a colorization run, 3 seeds (the .npz
    # is written by binaries/build_corpus):
    binaries/finetune --data=~/.cache/tfcolor-corpus/labeled/fashion_mnist.npz:train \\
        --test_data=~/.cache/tfcolor-corpus/labeled/fashion_mnist.npz:test --per_class=100 \\
        --init=runs/pretrain --arch=vgg_tiny --seeds=0,1,2 --output_dir=runs/ft_fmnist

    # VOC 2012 segmentation from a VOC folder, colour input, fine-tune from conv3_1 up:
    binaries/finetune --task=segmentation --data=voc:/data/VOC2012:train \\
        --test_data=voc:/data/VOC2012:val --init=runs/pretrain/export --color_input \\
        --from_layer=conv3_1 --crop_size=320 --output_dir=runs/ft_voc

    binaries/finetune --flagfile=configs/finetune_voc07_classification.flags --init=...

Data (``--data``/``--val_data``/``--test_data``): ``FILE.npz[:split]``, a class-per-folder directory,
``voc:ROOT[:split]`` (segmentation) or ``tfds:NAME[:split]`` (needs tensorflow-datasets).
Initialisation (``--init``): ``random``, ``imagenet`` (with ``--imagenet_weights``; re-balanced
on training images as in the paper unless ``--norebalance_imagenet``), a colorization
``model_dir`` or export, or a baseline ``model_dir`` (``tfcolor.baselines``). ``--fov``
(segmentation) adds the paper's +FoV blocks on top of any of them: +FoV is a downstream
addition; pretraining with ``--fov`` is possible but is not the paper's +FoV.

Writes ``OUTPUT_DIR/results.json`` (every run: validation history, LR drops, stop step, test
metrics; mean and sample std over seeds) and prints a one-line summary.
"""
import json
import os

from absl import flags
from absl import logging

from tfcolor.programs import common
from tfcolor.train.strategy import make_strategy

common.quiet_tensorflow()

FLAGS = flags.FLAGS

def define_flags(fv=flags.FLAGS):
    """Defines the program's flags on ``fv`` (at run time, so that programs and tests
    can each use their own FlagValues)."""
    common.flag_section(fv, "Data")
    flags.DEFINE_string("data", None, "Labelled training data (see the module docstring).",
                        flag_values=fv)
    flags.DEFINE_string("test_data", None, "Labelled test data (optional).", flag_values=fv)
    flags.DEFINE_string("val_data", None, "Labelled validation data for early stopping and the "
                        "LR drops (e.g. FILE.npz:val); default: a --val_fraction split of --data.",
                        flag_values=fv)
    flags.DEFINE_enum("task", None, ["classification", "multilabel", "segmentation"],
                      "Task; default: inferred from the data.", flag_values=fv)
    flags.DEFINE_integer("num_classes", 0, "Number of classes (0: from the data).", flag_values=fv)
    flags.DEFINE_integer("per_class", 0, "Use only N training images per class (drawn per seed).",
                         flag_values=fv)
    flags.DEFINE_integer("test_count", 0, "Evaluate on the first N test images only (0: all).",
                         flag_values=fv)
    common.flag_section(fv, "Initialization and trunk")
    flags.DEFINE_string("init", "random", "random | imagenet | colorization model_dir / export | "
                        "baseline model_dir.", flag_values=fv)
    flags.DEFINE_string("imagenet_weights", None, "keras.applications VGG16 weights file for "
                        "--init=imagenet.", flag_values=fv)
    flags.DEFINE_string("arch", "vgg16", "Trunk architecture for random / imagenet init.",
                        flag_values=fv)
    flags.DEFINE_list("taps", None, "Trunk taps for random / imagenet init (default: all).",
                      flag_values=fv)
    flags.DEFINE_list("head_taps", None, "Segmentation hypercolumn taps / classification tap.",
                      flag_values=fv)
    flags.DEFINE_bool("color_input", False, "Colour input (grey conv1 replicated / 3).",
                      flag_values=fv)
    flags.DEFINE_enum("absorb_bn", "auto", ["auto", "true", "false"],
                      "Absorb BN (auto: not ResNet).", flag_values=fv)
    flags.DEFINE_string("from_layer", None, "Freeze every trunk layer below this one; 'head' "
                        "freezes the whole trunk.", flag_values=fv)
    flags.DEFINE_bool("rebalance_random", True, "Re-balance a random init on training images.",
                      flag_values=fv)
    flags.DEFINE_bool("rebalance_imagenet", True, "Re-balance --init=imagenet on training images "
                      "(unit second moment per layer, as the paper does for ImageNet VGG-16).",
                      flag_values=fv)
    flags.DEFINE_bool("fov", False, "Segmentation: add the paper's two fresh +FoV blocks (2x2 "
                      "max-pool, 3x3 conv 1024, ReLU) on top of the trunk, for any --init.",
                      flag_values=fv)
    common.flag_section(fv, "Input pipeline")
    flags.DEFINE_integer("batch_size", 32, "Batch size.", flag_values=fv)
    flags.DEFINE_integer("crop_size", None, "Training crop (default: whole images).",
                         flag_values=fv)
    flags.DEFINE_list("scale_range", None, "lo,hi: random short-side scaling before cropping.",
                      flag_values=fv)
    flags.DEFINE_integer("eval_resize", None, "Evaluation: short side resized to this.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_crop", None, "Evaluation centre crop (default: --crop_size).",
                         flag_values=fv)
    flags.DEFINE_integer("num_points", 256, "Segmentation: sampled pixels per image.",
                         flag_values=fv)
    common.flag_section(fv, "Optimization")
    flags.DEFINE_float("learning_rate", 0.01, "Initial learning rate.", flag_values=fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", flag_values=fv)
    flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay on kernels.", flag_values=fv)
    flags.DEFINE_float("drop_factor", 0.1, "Learning-rate drop factor.", flag_values=fv)
    flags.DEFINE_integer("patience", 1, "Evaluations without improvement before a drop.",
                         flag_values=fv)
    flags.DEFINE_integer("max_drops", 2, "Drops before stopping at the next plateau.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_every", 100, "Steps between validation evaluations.", flag_values=fv)
    flags.DEFINE_integer("max_steps", 20000, "Maximum steps.", flag_values=fv)
    flags.DEFINE_float("val_fraction", 0.1, "Held-out fraction for validation.", flag_values=fv)
    flags.DEFINE_bool("retrain_full", False, "Retrain on 100% for the same steps and drops.",
                      flag_values=fv)
    common.flag_section(fv, "Evaluation, head and output")
    flags.DEFINE_bool("ten_crop", False, "10-crop testing (classification).", flag_values=fv)
    flags.DEFINE_enum("ap_method", "11point", ["11point", "area"], "VOC AP variant.",
                      flag_values=fv)
    flags.DEFINE_integer("hidden", 1024, "Segmentation head hidden units.", flag_values=fv)
    flags.DEFINE_float("dropout", 0.5, "Head dropout.", flag_values=fv)
    flags.DEFINE_list("seeds", ["0"], "Seeds (one run each).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where runs and results.json go.", flag_values=fv)
    flags.DEFINE_integer("analysis_images", 0, "After the first seed, analyse the features on "
                         "this many test images: feature shift table + plot, top activations.",
                         flag_values=fv)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "Distribution strategy.",
                      flag_values=fv)

    flags.mark_flag_as_required("data", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)


#: Part of the fine-tuning pipeline's error when no labelled image file of a pass decodes.
_NO_IMAGE = "labelled image files could be decoded"


def _data(spec, task, num_classes, flag="data"):
    """The labelled set of a data spec; any problem is a ValueError naming ``--flag``."""
    from tfcolor.downstream import datasets  # pylint: disable=import-outside-toplevel
    try:
        return datasets.load(spec, task=task, num_classes=num_classes)
    except (ValueError, FileNotFoundError, ImportError) as e:  # ImportError: tfds: specs
        raise ValueError(f"--{flag}={spec}: {e}") from None


def _analyse(initial, tuned, test, config, color):
    """Feature shift (table + plot) and top-activation grids of the fine-tuned trunk."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import analysis  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import datasets  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import pipelines  # pylint: disable=import-outside-toplevel
    count = min(FLAGS.analysis_images, len(test))
    crop = config.eval_crop or config.crop_size
    subset = test.subset(np.arange(count))
    if test.task == "segmentation" and not isinstance(test.images, np.ndarray):
        crop = crop or 256  # images of different sizes: analyse centre crops
        subset = datasets.LabeledData(subset.images, np.zeros(count, np.int64),
                                      "classification", 1)
    ds = pipelines.eval_dataset(subset, batch_size=count, resize=config.eval_resize,
                                crop_size=crop, color=color)
    images = next(iter(ds))["image"].numpy()
    rows = analysis.feature_shift(initial.trunk, tuned.trunk, images)
    table = analysis.format_table(rows)
    out_dir = FLAGS.output_dir
    with open(os.path.join(out_dir, "feature_shift.md"), "w") as f:
        f.write(table + "\n")
    analysis.plot_feature_shift(rows, os.path.join(out_dir, "feature_shift.png"))
    tap = rows[-1]["layer"] if rows else None
    if tap is not None:
        units = list(range(min(8, rows[-1]["units"])))
        analysis.top_activations(tuned.trunk, images, tap, units, k=8,
                                 path=os.path.join(out_dir, f"top_activations_{tap}.png"))
    print(table)
    return {"feature_shift": [{k: v for k, v in r.items() if k != "correlations"}
                              for r in rows]}


def config_from_flags(fv=None):
    """The :class:`tfcolor.downstream.protocol.FinetuneConfig` of the flags (validated)."""
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    FLAGS = fv or globals()["FLAGS"]  # pylint: disable=invalid-name,redefined-outer-name
    return protocol.FinetuneConfig(
            batch_size=FLAGS.batch_size, crop_size=FLAGS.crop_size,
            scale_range=tuple(int(v) for v in FLAGS.scale_range) if FLAGS.scale_range else None,
            eval_resize=FLAGS.eval_resize, eval_crop=FLAGS.eval_crop,
            num_points=FLAGS.num_points, learning_rate=FLAGS.learning_rate,
            momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
            drop_factor=FLAGS.drop_factor, patience=FLAGS.patience, max_drops=FLAGS.max_drops,
            eval_every=FLAGS.eval_every, max_steps=FLAGS.max_steps,
            val_fraction=FLAGS.val_fraction, retrain_full=FLAGS.retrain_full,
            ten_crop=FLAGS.ten_crop, ap_method=FLAGS.ap_method).validate()


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor.data import decode  # pylint: disable=import-outside-toplevel
    from tfcolor.config import ConfigError  # pylint: disable=import-outside-toplevel
    from tfcolor.train import CheckpointError  # pylint: disable=import-outside-toplevel
    try:
        _main()
    except ConfigError as e:  # a fielded error: its field is called by its flag
        common.die(common.flag_error(e, FLAGS))
    except CheckpointError as e:  # --init's checkpoint is missing, damaged or does not fit
        common.die(f"--init: {common.model_error(FLAGS.init, e)}")
    except (ValueError, FileNotFoundError, ImportError) as e:
        common.die(common.name_flags(str(e), set(FLAGS)))
    except tf.errors.InvalidArgumentError as e:
        line = next((l for l in str(e).splitlines() if _NO_IMAGE in l), None)
        if line is None:
            raise
        decode.default_skip_counter().log_summary()  # os._exit below skips the finally
        common.die(f"--data/--test_data: {line[line.index('none of the'):].rstrip(']')}",
                   hard=True)  # a failed pipeline's iterator can hang the interpreter's exit
    finally:
        decode.default_skip_counter().log_summary()


def _main():
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import initialization  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    train = _data(FLAGS.data, FLAGS.task, FLAGS.num_classes)
    test = (_data(FLAGS.test_data, train.task, train.num_classes, flag="test_data")
            if FLAGS.test_data else None)
    val = (_data(FLAGS.val_data, train.task, train.num_classes, flag="val_data")
           if FLAGS.val_data else None)
    if test is not None and FLAGS.test_count:
        test = test.subset(np.arange(min(FLAGS.test_count, len(test))))
    config = config_from_flags()
    color = FLAGS.color_input
    kind = initialization.describe_init(FLAGS.init)
    rebalance = ((kind == "random" and FLAGS.rebalance_random)
                 or (kind == "imagenet" and FLAGS.rebalance_imagenet))
    sample = (initialization.rebalance_sample(train, color=color, crop_size=FLAGS.crop_size)
              if rebalance else None)
    absorb = {"auto": "auto", "true": True, "false": False}[FLAGS.absorb_bn]
    head_taps = FLAGS.head_taps
    if head_taps is not None and train.task != "segmentation":
        head_taps = head_taps[0]

    def make_model_fn(seed):
        return initialization.model_fn(
                FLAGS.init, train.task, train.num_classes, arch=FLAGS.arch, taps=FLAGS.taps,
                head_taps=head_taps, color_input=color, absorb_bn=absorb,
                from_layer=FLAGS.from_layer, fov=FLAGS.fov,
                imagenet_weights=FLAGS.imagenet_weights, rebalance_images=sample,
                rebalance_imagenet=FLAGS.rebalance_imagenet, seed=seed, hidden=FLAGS.hidden,
                dropout=FLAGS.dropout)

    subset_fn = ((lambda d, s: d.per_class(FLAGS.per_class, seed=s)) if FLAGS.per_class
                 else None)
    strategy = (make_strategy("mirrored") if FLAGS.strategy == "mirrored"
                else tf.distribute.get_strategy())
    seeds = [int(s) for s in FLAGS.seeds]
    analysis_out = {}

    def on_result(seed, result):
        if FLAGS.analysis_images and seed == seeds[0] and test is not None:
            analysis_out.update(_analyse(make_model_fn(seed)(), result.model, test, config,
                                         color))

    out = protocol.finetune_seeds(make_model_fn, train, test, config, seeds,
                                  model_dir=FLAGS.output_dir, strategy=strategy, color=color,
                                  subset_fn=subset_fn, on_result=on_result, val_data=val)
    if analysis_out:
        out["analysis"] = analysis_out
    out["flags"] = {f.name: f.value for f in FLAGS.get_flags_for_module(__name__)}
    tf.io.gfile.makedirs(FLAGS.output_dir)
    path = os.path.join(FLAGS.output_dir, "results.json")
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(out, f, indent=2)
    summary = out["test"]
    logging.info("results: %s", path)
    if summary["n"]:
        print(f"{FLAGS.init}: test {out['metric']} {summary['mean']:.4f} +- "
              f"{summary['std']:.4f} over {summary['n']} seed(s); {path}")
    else:  # no test data: the validation score is all there is
        best = ", ".join("none" if r["best_val"] is None else f"{r['best_val']:.4f}"
                         for r in out["runs"])
        print(f"{FLAGS.init}: no --test_data; best validation {out['metric']} {best} over "
              f"{len(out['runs'])} seed(s); {path}")


def run():
    """Console-script entry point (``tfcolor-finetune``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
