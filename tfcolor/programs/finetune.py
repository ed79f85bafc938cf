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

from absl import logging

from tfcolor.programs import common

common.quiet_tensorflow()


#: Part of the fine-tuning pipeline's error when no labelled image file of a pass decodes.
_NO_IMAGE = "labelled image files could be decoded"


def _data(spec, task, num_classes, flag="data"):
    """The labelled set of a data spec; any problem is a ValueError naming ``--flag``."""
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import datasets  # pylint: disable=import-outside-toplevel
    try:
        return datasets.load(spec, task=task, num_classes=num_classes)
    except (ValueError, FileNotFoundError, ImportError) as e:  # ImportError: tfds: specs
        raise ValueError(f"--{flag}={spec}: {e}") from None


def _analyse(f, initial, tuned, test, config, color):
    """Feature shift (table + plot) and top-activation grids of the fine-tuned trunk."""
    # lazy: keeps TensorFlow out of binaries/finetune --help
    import numpy as np  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import analysis  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import datasets  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import pipelines  # pylint: disable=import-outside-toplevel
    count = min(f.analysis_images, len(test))
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
    out_dir = f.output_dir
    with open(os.path.join(out_dir, "feature_shift.md"), "w") as table_file:
        table_file.write(table + "\n")
    analysis.plot_feature_shift(rows, os.path.join(out_dir, "feature_shift.png"))
    tap = rows[-1]["layer"] if rows else None
    if tap is not None:
        units = list(range(min(8, rows[-1]["units"])))
        analysis.top_activations(tuned.trunk, images, tap, units, k=8,
                                 path=os.path.join(out_dir, f"top_activations_{tap}.png"))
    print(table)
    return {"feature_shift": [{k: v for k, v in r.items() if k != "correlations"}
                              for r in rows]}


def finetune_config(f):
    """The :class:`tfcolor.downstream.protocol.FinetuneConfig` of the options ``f`` (validated)."""
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    return protocol.FinetuneConfig(
            batch_size=f.batch_size, crop_size=f.crop_size,
            scale_range=tuple(int(v) for v in f.scale_range) if f.scale_range else None,
            eval_resize=f.eval_resize, eval_crop=f.eval_crop,
            num_points=f.num_points, learning_rate=f.learning_rate,
            momentum=f.momentum, weight_decay=f.weight_decay,
            drop_factor=f.drop_factor, patience=f.patience, max_drops=f.max_drops,
            eval_every=f.eval_every, max_steps=f.max_steps,
            val_fraction=f.val_fraction, retrain_full=f.retrain_full,
            ten_crop=f.ten_crop, ap_method=f.ap_method).validate()


def main(options):
    """Fine-tunes with the program's ``options`` (an object with one attribute per flag, all of
    which are recorded under ``flags`` in results.json); returns the exit status."""
    f = options
    # lazy: keeps TensorFlow out of binaries/finetune --help
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.data import decode  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.config import ConfigError  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.train import CheckpointError  # pylint: disable=import-outside-toplevel
    try:
        _main(f)
    except ConfigError as e:  # a fielded error: its field is called by its flag
        common.die(common.option_error(e, set(vars(f))))
    except CheckpointError as e:  # --init's checkpoint is missing, damaged or does not fit
        common.die(f"--init: {common.model_error(f.init, e)}")
    except (ValueError, FileNotFoundError, ImportError) as e:
        common.die(common.name_flags(str(e), set(vars(f))))
    except tf.errors.InvalidArgumentError as e:
        line = next((l for l in str(e).splitlines() if _NO_IMAGE in l), None)
        if line is None:
            raise
        common.die(f"--data/--test_data: {line[line.index('none of the'):].rstrip(']')}",
                   hard=True)  # a failed pipeline's iterator can hang the interpreter's exit
    finally:
        decode.default_skip_counter().log_summary()


def _main(f):
    # lazy: keeps TensorFlow out of binaries/finetune --help
    import numpy as np  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import initialization  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    # lazy: keeps TensorFlow out of binaries/finetune --help
    from tfcolor.train.strategy import make_strategy  # pylint: disable=import-outside-toplevel
    train = _data(f.data, f.task, f.num_classes)
    test = (_data(f.test_data, train.task, train.num_classes, flag="test_data")
            if f.test_data else None)
    val = (_data(f.val_data, train.task, train.num_classes, flag="val_data")
           if f.val_data else None)
    if test is not None and f.test_count:
        test = test.subset(np.arange(min(f.test_count, len(test))))
    config = finetune_config(f)
    color = f.color_input
    kind = initialization.describe_init(f.init)
    rebalance = ((kind == "random" and f.rebalance_random)
                 or (kind == "imagenet" and f.rebalance_imagenet))
    sample = (initialization.rebalance_sample(train, color=color, crop_size=f.crop_size)
              if rebalance else None)
    absorb = {"auto": "auto", "true": True, "false": False}[f.absorb_bn]
    head_taps = f.head_taps
    if head_taps is not None and train.task != "segmentation":
        head_taps = head_taps[0]

    def make_model_fn(seed):
        return initialization.model_fn(
                f.init, train.task, train.num_classes, arch=f.arch, taps=f.taps,
                head_taps=head_taps, color_input=color, absorb_bn=absorb,
                from_layer=f.from_layer, fov=f.fov,
                imagenet_weights=f.imagenet_weights, rebalance_images=sample,
                rebalance_imagenet=f.rebalance_imagenet, seed=seed, hidden=f.hidden,
                dropout=f.dropout)

    subset_fn = ((lambda d, s: d.per_class(f.per_class, seed=s)) if f.per_class
                 else None)
    strategy = (make_strategy("mirrored") if f.strategy == "mirrored"
                else tf.distribute.get_strategy())
    seeds = [int(s) for s in f.seeds]
    analysis_out = {}

    def on_result(seed, result):
        if f.analysis_images and seed == seeds[0] and test is not None:
            analysis_out.update(_analyse(f, make_model_fn(seed)(), result.model, test, config,
                                         color))

    out = protocol.finetune_seeds(make_model_fn, train, test, config, seeds,
                                  model_dir=f.output_dir, strategy=strategy, color=color,
                                  subset_fn=subset_fn, on_result=on_result, val_data=val)
    if analysis_out:
        out["analysis"] = analysis_out
    out["flags"] = dict(vars(f))
    tf.io.gfile.makedirs(f.output_dir)
    path = os.path.join(f.output_dir, "results.json")
    with tf.io.gfile.GFile(path, "w") as out_file:
        json.dump(out, out_file, indent=2)
    summary = out["test"]
    logging.info("results: %s", path)
    if summary["n"]:
        print(f"{f.init}: test {out['metric']} {summary['mean']:.4f} +- "
              f"{summary['std']:.4f} over {summary['n']} seed(s); {path}")
    else:  # no test data: the validation score is all there is
        best = ", ".join("none" if r["best_val"] is None else f"{r['best_val']:.4f}"
                         for r in out["runs"])
        print(f"{f.init}: no --test_data; best validation {out['metric']} {best} over "
              f"{len(out['runs'])} seed(s); {path}")
