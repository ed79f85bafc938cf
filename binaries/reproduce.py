"""Small-scale reproduction of the transfer-learning comparison (CPU, about an hour on 2 cores).

Pretrains one trunk per method on the *train* photos of the real-photo corpus
(``/work/shared/data``: ``build_corpus.py --out /tmp/corpus``), fine-tunes every method on the
labelled sets with the same protocol and several seeds, and writes ``results.md`` and
``results.json`` into ``--output_dir``:

* methods (``--methods``): ``random`` (re-balanced Xavier), ``colorization`` (hue/chroma
  histograms, the paper's method), ``lab_regression`` (L2 on Lab a, b), ``denoising``
  (salt-and-pepper 5% autoencoder) and ``split_brain`` (Lab split-brain autoencoder);
* labelled sets (``--sets``): ``gcompris5`` (140 colour photos, 5 classes, colour input via the
  grey -> RGB conv1; split 70/30 by scene group), ``fmnist10`` and ``fmnist100`` (Fashion-MNIST
  with 10 / 100 labelled training images per class, grey input; the labelled subset is drawn
  with each seed; tested on the first ``--fmnist_test`` test images);
* protocol: 90/10 split of each training set, learning rate dropped by 10 when the validation
  accuracy stops improving for ``--patience`` evaluations, stop after two drops (or
  ``--ft_max_steps``), best validation weights restored;
* colorization metrics (alpha-beta mean distance and RMS, PSNR, AuC) of the colorization and
  regression models on the *holdout* photos, next to the grey baseline (decoded with the
  library defaults: released chromatic fading, interpolated chroma median, Lab expectation).

Pretraining is done once per method (seed 0); fine-tuning seeds vary the labelled subset
(Fashion-MNIST), the split, the head initialisation and the data order. Results are mean and
sample standard deviation over seeds.

The full run (defaults, ``--flagfile=configs/reproduce.flags``)::

    bash /work/shared/data/fetch_photos.sh /tmp/photo-cache
    python /work/shared/data/build_corpus.py --root /tmp/photo-cache/root \\
        --cache /tmp/photo-cache --out /tmp/corpus
    binaries/reproduce --flagfile=configs/reproduce.flags --output_dir=runs/reproduce

Expected duration: ~30-45 min on 2 CPU cores (measured: 31.3 min on a 2-core machine shared
with other jobs, load 3-4: 15.2 min pretraining, 16.0 min for the 45 fine-tuning runs).

``--fake_data`` generates a tiny synthetic corpus instead (tests, smoke runs).

Interrupting: SIGTERM checkpoints the pretraining run in progress and exits (status 3); rerunning
the same command resumes it, reuses finished pretraining runs (their checkpoints) and finished
fine-tuning results (``finetune/<set>/<method>/results.json``) and redoes unfinished ones.
"""
import csv
import json
import os
import platform
import shutil
import sys
import time

from absl import flags
from absl import logging

from binaries import common

common.quiet_tensorflow()

FLAGS = flags.FLAGS

METHODS = ("random", "colorization", "lab_regression", "denoising", "split_brain")
SETS = ("gcompris5", "fmnist10", "fmnist100")

def define_flags(fv=flags.FLAGS):
    """Defines the program's flags on ``fv`` (at run time, so that programs and tests
    can each use their own FlagValues)."""
    flags.DEFINE_string("corpus", "/tmp/corpus", "Output folder of build_corpus.py.",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where everything is written.", flag_values=fv)
    flags.DEFINE_bool("fake_data", False, "Generate a tiny synthetic corpus (tests).",
                      flag_values=fv)
    flags.DEFINE_list("methods", list(METHODS), f"Subset of {METHODS}.", flag_values=fv)
    flags.DEFINE_list("sets", list(SETS), f"Subset of {SETS}.", flag_values=fv)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Fine-tuning seeds.", flag_values=fv)
    flags.DEFINE_string("arch", "vgg_tiny", "Trunk architecture.", flag_values=fv)
    flags.DEFINE_integer("hidden", 256, "Hidden units of the pretraining heads.", flag_values=fv)
    flags.DEFINE_integer("photo_side", 96, "Photos are downscaled to this short side first.",
                         flag_values=fv)
    flags.DEFINE_integer("pretrain_crop", 64, "Pretraining crop.", flag_values=fv)
    flags.DEFINE_integer("pretrain_batch", 16, "Pretraining batch size.", flag_values=fv)
    flags.DEFINE_integer("pretrain_points", 64, "Sampled pixels per image in pretraining.",
                         flag_values=fv)
    flags.DEFINE_integer("pretrain_steps", 4000, "Pretraining steps per method.", flag_values=fv)
    flags.DEFINE_float("pretrain_lr", 0.01, "Pretraining learning rate (dropped x0.1 at 60%, 85%).",
                       flag_values=fv)
    flags.DEFINE_float("regression_lr_scale", 0.1, "Learning-rate multiplier for lab_regression "
                       "(its loss is in squared Lab units, ~100x the histogram losses).",
                       flag_values=fv)
    flags.DEFINE_float("clip_norm", 10.0, "Global gradient-norm clipping in pretraining.",
                       flag_values=fv)
    flags.DEFINE_integer("ft_batch", 32, "Fine-tuning batch size.", flag_values=fv)
    flags.DEFINE_float("ft_lr", 0.01, "Fine-tuning learning rate.", flag_values=fv)
    flags.DEFINE_float("ft_weight_decay", 5e-4, "Fine-tuning weight decay.", flag_values=fv)
    flags.DEFINE_integer("ft_eval_every", 100, "Steps between validation evaluations.",
                         flag_values=fv)
    flags.DEFINE_integer("ft_max_steps", 2000, "Maximum fine-tuning steps.", flag_values=fv)
    flags.DEFINE_integer("patience", 2, "Evaluations without improvement before a drop.",
                         flag_values=fv)
    flags.DEFINE_integer("gcompris_size", 64, "gcompris5 images are resized to this.",
                         flag_values=fv)
    flags.DEFINE_integer("gcompris_crop", 56, "gcompris5 random / centre crop.", flag_values=fv)
    flags.DEFINE_integer("fmnist_test", 2000, "Fashion-MNIST test images used.", flag_values=fv)
    flags.DEFINE_integer("holdout_size", 96, "Holdout photos: centre crops of this side.",
                         flag_values=fv)

    flags.mark_flag_as_required("output_dir", flag_values=fv)


# ----------------------------------------------------------------------------------------------
# Corpus.


def _smooth_image(rng, h, w):
    import numpy as np  # pylint: disable=import-outside-toplevel
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(2, 8), rng.uniform(2, 8), rng.uniform(0, 6.3)
        out[..., c] = 0.5 + 0.4 * np.sin(a * yy + b * xx + p)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def make_fake_corpus(root, seed=0):
    """A tiny corpus with the layout of build_corpus.py (photos, manifest, labelled sets)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    os.makedirs(os.path.join(root, "labeled"), exist_ok=True)
    rows = []
    for i in range(10):
        name = f"{i:04d}"
        Image.fromarray(_smooth_image(rng, 72, 90)).save(os.path.join(root, "photos",
                                                                      name + ".png"))
        rows.append({"id": name, "source": "fake", "path": "", "group": f"g{i}",
                     "split": "holdout" if i >= 8 else "train"})
    with open(os.path.join(root, "manifest.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "source", "path", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    y = np.arange(30) % 5
    x = np.stack([_smooth_image(rng, 32, 32) for _ in y])
    for i, label in enumerate(y):
        x[i, :, :, label % 3] = 255 * (label > 2)
    np.savez(os.path.join(root, "labeled", "gcompris5.npz"), x=x, y=y,
             classes=np.array(["a", "b", "c", "d", "e"]),
             group=np.array([f"g{i // 2}" for i in range(30)]), photo_split=np.array(["x"] * 30))
    yf = np.arange(1100) % 10
    xf = (rng.uniform(0, 60, (1100, 28, 28))).astype(np.uint8)
    for i, label in enumerate(yf):
        xf[i, label * 2:label * 2 + 6] += 150
    np.savez(os.path.join(root, "labeled", "fashion_mnist.npz"), x_train=xf[:1000],
             y_train=yf[:1000], x_test=xf[1000:], y_test=yf[1000:])
    return root


def read_photos(corpus, split, side):
    """Photos of a manifest split, short side downscaled to ``side`` (uint8 arrays)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel
    manifest = os.path.join(corpus, "manifest.csv")
    if not os.path.exists(manifest):
        raise FileNotFoundError(
                f"{manifest} not found: build the corpus first (bash /work/shared/data/"
                f"fetch_photos.sh /tmp/photo-cache && python /work/shared/data/build_corpus.py "
                f"--root /tmp/photo-cache/root --cache /tmp/photo-cache --out {corpus}) or pass "
                f"--fake_data.")
    with open(manifest) as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    out = []
    for r in rows:
        with Image.open(os.path.join(corpus, "photos", r["id"] + ".png")) as im:
            im = im.convert("RGB")
            scale = side / min(im.size)
            im = im.resize((max(side, round(im.size[0] * scale)),
                            max(side, round(im.size[1] * scale))), Image.BICUBIC)
            out.append(np.asarray(im))
    if not out:
        raise ValueError(f"the corpus has no {split!r} photos.")
    return out


def write_photo_folder(photos, folder):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    os.makedirs(folder, exist_ok=True)
    for i, p in enumerate(photos):
        Image.fromarray(p).save(os.path.join(folder, f"{i:04d}.png"))
    return folder


# ----------------------------------------------------------------------------------------------
# Pretraining.


def _optimizer(lr):
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    return config_lib.OptimizerConfig(learning_rate=lr, lr_drops=(0.6, 0.85),
                                      clip_norm=FLAGS.clip_norm)


class Preempted(RuntimeError):
    """A pretraining run was stopped (SIGTERM) before its last step."""


def _check_completed(method, stopped):
    if stopped != "completed":
        raise Preempted(f"pretraining {method} stopped early ({stopped}); its checkpoint is "
                        f"kept: rerun the same command to resume.")


def pretrain_method(method, photo_dir, model_dir):
    """Pretrains one method; returns ``(model_dir, model or None, info)``."""
    from tfcolor import config as config_lib  # pylint: disable=import-outside-toplevel
    crop = FLAGS.pretrain_crop
    steps = FLAGS.pretrain_steps
    start = time.perf_counter()
    if method in ("colorization", "lab_regression"):
        from tfcolor.train import pretraining  # pylint: disable=import-outside-toplevel
        kind = "hue_chroma" if method == "colorization" else "lab_regression"
        lr = FLAGS.pretrain_lr * (FLAGS.regression_lr_scale if kind == "lab_regression" else 1)
        config = config_lib.PretrainConfig(
                model=config_lib.ModelConfig(arch=FLAGS.arch, hidden=FLAGS.hidden,
                                             sync_batch_norm=False),
                data=config_lib.DataConfig(
                        data=photo_dir, batch_size=FLAGS.pretrain_batch, crop_size=crop,
                        min_side=crop, max_side=max(crop, FLAGS.photo_side),
                        points=FLAGS.pretrain_points, edge_buffer=crop // 8,
                        targets_on_device=False, validation_images=0),
                loss=config_lib.LossConfig(kind=kind),
                optimizer=_optimizer(lr),
                train=config_lib.TrainConfig(
                        model_dir=model_dir, train_steps=steps, steps_per_loop=min(50, steps),
                        checkpoint_every=steps, summary_every=min(50, steps), image_every=0,
                        export=False, seed=0))
        result = pretraining.pretrain(config)
        _check_completed(method, result.train.stopped)
        model, losses = result.model, result.train.losses
    else:
        from tfcolor import baselines  # pylint: disable=import-outside-toplevel
        kwargs = dict(arch=FLAGS.arch, hidden=FLAGS.hidden)
        if method == "split_brain":
            kwargs["split"] = "lab"
        data_config = config_lib.DataConfig(
                data=photo_dir, batch_size=FLAGS.pretrain_batch, crop_size=crop, min_side=crop,
                max_side=max(crop, FLAGS.photo_side), points=FLAGS.pretrain_points,
                edge_buffer=crop // 8)
        result = baselines.pretrain(
                method, photo_dir, model_dir, model_kwargs=kwargs, data_config=data_config,
                train_steps=steps, optimizer_config=_optimizer(FLAGS.pretrain_lr),
                steps_per_loop=min(50, steps), seed=0)
        _check_completed(method, result.stopped)
        model, losses = None, result.losses
    info = {"seconds": time.perf_counter() - start, "final_losses": losses, "steps": steps}
    info_path = os.path.join(model_dir, "reproduce_info.json")
    if not losses and os.path.exists(info_path):  # finished by an earlier invocation
        with open(info_path) as f:
            info = json.load(f)
    else:
        with open(info_path, "w") as f:
            json.dump(info, f)
    logging.info("pretrained %s in %.0f s: %s", method, info["seconds"], losses)
    return model_dir, model, info


def colorization_metrics(models, holdout):
    """ColorizationMetrics of the colorization models (and grey) on the holdout crops."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tfcolor import predictors  # pylint: disable=import-outside-toplevel
    from tfcolor import metrics  # pylint: disable=import-outside-toplevel
    side = FLAGS.holdout_size
    crops = []
    for p in holdout:
        h, w = p.shape[:2]
        oy, ox = (h - side) // 2, (w - side) // 2
        crops.append(p[oy:oy + side, ox:ox + side])
    rgb = np.stack(crops).astype(np.float32) / 255.0
    names = list(models) + ["gray"]
    m = metrics.ColorizationMetrics(names)
    for start in range(0, len(rgb), 8):
        batch = rgb[start:start + 8]
        for name, (model, kind) in models.items():
            m.update(name, batch, predictors.colorize_batch(model, batch, kind=kind))
        m.update("gray", batch, metrics.gray_baseline(batch))
    return m.result()


# ----------------------------------------------------------------------------------------------
# Fine-tuning.


def labelled_sets(corpus):
    """{set name: (train LabeledData, test LabeledData, colour input)}."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import datasets  # pylint: disable=import-outside-toplevel
    out = {}
    lab = os.path.join(corpus, "labeled")
    if "gcompris5" in FLAGS.sets:
        g = np.load(os.path.join(lab, "gcompris5.npz"))
        size = FLAGS.gcompris_size
        x = tf.image.resize(g["x"], (size, size), method="area", antialias=True).numpy()
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
        full = datasets.from_arrays(x, g["y"], class_names=[str(c) for c in g["classes"]],
                                    groups=g["group"], num_classes=len(g["classes"]))
        train, test = full.split(0.3, seed=0)
        train.groups = None  # the 90/10 protocol split is stratified by class
        out["gcompris5"] = (train, test, True)
    if "fmnist10" in FLAGS.sets or "fmnist100" in FLAGS.sets:
        train = datasets.load_npz(os.path.join(lab, "fashion_mnist.npz"), "train")
        test = datasets.load_npz(os.path.join(lab, "fashion_mnist.npz"), "test")
        test = test.subset(np.arange(min(FLAGS.fmnist_test, len(test))))
        for name, n in (("fmnist10", 10), ("fmnist100", 100)):
            if name in FLAGS.sets:
                out[name] = (train, test, False, n)
    return out


def finetune_config(set_name):
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    crop = FLAGS.gcompris_crop if set_name == "gcompris5" else None
    return protocol.FinetuneConfig(
            batch_size=FLAGS.ft_batch, crop_size=crop, eval_crop=crop,
            learning_rate=FLAGS.ft_lr, weight_decay=FLAGS.ft_weight_decay,
            patience=FLAGS.patience, eval_every=FLAGS.ft_eval_every,
            max_steps=FLAGS.ft_max_steps, eval_batch_size=100).validate()


def run_finetunes(inits, sets, out_dir):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import initialization  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import pipelines  # pylint: disable=import-outside-toplevel
    from tfcolor.downstream import protocol  # pylint: disable=import-outside-toplevel
    seeds = [int(s) for s in FLAGS.seeds]
    results = {}
    for set_name, spec in sets.items():
        train, test, color = spec[:3]
        per_class = spec[3] if len(spec) > 3 else None
        subset_fn = (lambda d, s, n=per_class: d.per_class(n, seed=s)) if per_class else None
        config = finetune_config(set_name)
        for method, init_value in inits.items():
            start = time.perf_counter()
            sample = None
            if init_value == "random":
                first = subset_fn(train, 0) if subset_fn else train
                ds = pipelines.eval_dataset(first.subset(np.arange(min(32, len(first)))),
                                            batch_size=32, crop_size=config.crop_size,
                                            color=color)
                sample = next(iter(ds))["image"].numpy()

            def make(seed, init_value=init_value, sample=sample):
                return initialization.model_fn(
                        init_value, "classification", train.num_classes, arch=FLAGS.arch,
                        color_input=color, rebalance_images=sample, seed=seed)

            run_dir = os.path.join(out_dir, set_name, method)
            done = os.path.join(run_dir, "results.json")
            if os.path.exists(done):  # finished by an earlier (interrupted) invocation
                with open(done) as f:
                    results.setdefault(set_name, {})[method] = json.load(f)
                continue
            if os.path.exists(run_dir):  # an unfinished attempt of this program: start over
                shutil.rmtree(run_dir)
            out = protocol.finetune_seeds(make, train, test, config, seeds, model_dir=run_dir,
                                          color=color, subset_fn=subset_fn)
            out["seconds"] = time.perf_counter() - start
            out["color_input"] = bool(color)
            with open(done, "w") as f:
                json.dump(out, f, indent=2)
            results.setdefault(set_name, {})[method] = out
            logging.info("%s / %s: top-1 %.4f +- %.4f (%.0f s)", set_name, method,
                         out["test"]["mean"], out["test"]["std"], out["seconds"])
    return results


# ----------------------------------------------------------------------------------------------
# Report.


def write_report(out_dir, report):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    lines = ["# tfcolor small-scale reproduction", "",
             f"Command: `{' '.join(report['argv'])}`  ",
             f"Machine: {report['machine']}  ",
             f"Total time: {report['seconds'] / 60:.1f} min (pretraining "
             f"{report['pretrain_seconds'] / 60:.1f} min, fine-tuning "
             f"{report['finetune_seconds'] / 60:.1f} min)", "",
             f"Trunk `{FLAGS.arch}`, pretrained {FLAGS.pretrain_steps} steps on the corpus's "
             f"train photos ({report['train_photos']} photos); fine-tuned with the paper's "
             f"protocol (90/10 split, LR drop on validation plateau, stop after two drops), "
             f"seeds {', '.join(FLAGS.seeds)}.", "",
             "## Downstream top-1 accuracy (test; mean +- sample std over seeds)", ""]
    sets = list(report["finetune"])
    lines.append("| method | " + " | ".join(sets) + " |")
    lines.append("| --- |" + " ---: |" * len(sets))
    methods = [m for m in FLAGS.methods]
    handicapped = False
    for method in methods:
        cells = []
        for s in sets:
            r = report["finetune"][s].get(method)
            mark = ""
            if r and method == "split_brain" and not r.get("color_input", s != "gcompris5"):
                mark, handicapped = " (g)", True
            cells.append(f"{100 * r['test']['mean']:.1f} +- {100 * r['test']['std']:.1f}{mark}"
                         if r else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    chance = {"gcompris5": 20.0, "fmnist10": 10.0, "fmnist100": 10.0}
    lines += ["", "Chance: " + ", ".join(f"{s} {chance.get(s, float('nan')):.0f}%"
                                         for s in sets) + ".", ""]
    if handicapped:
        from tfcolor.baselines import split_brain  # pylint: disable=import-outside-toplevel
        lines += [f"(g) grey data: {split_brain.grey_input_handicap('lab')} (the ab half's "
                  "features do not depend on the image; the number understates split-brain).",
                  ""]
    if report.get("colorization"):
        lines += ["## Colorization on the holdout photos", "",
                  "| model | alpha-beta mean distance | alpha-beta RMS | PSNR (dB) | AuC |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for name, r in report["colorization"].items():
            lines.append(f"| {name} | {r['alphabeta_mean']:.4f} | {r['alphabeta_rms']:.4f} | "
                         f"{r['psnr']:.2f} | {r['auc']:.4f} |")
        lines.append("")
    lines += ["## Pretraining", "", "| method | steps | seconds | final loss |",
              "| --- | ---: | ---: | ---: |"]
    for method, info in report["pretrain"].items():
        loss = info["final_losses"].get("loss", float("nan")) if info["final_losses"] else \
            float("nan")
        lines.append(f"| {method} | {info['steps']} | {info['seconds']:.0f} | {loss:.4f} |")
    text = "\n".join(lines) + "\n"
    with tf.io.gfile.GFile(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    with tf.io.gfile.GFile(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(report, f, indent=2, default=str)
    return text


def _main():
    start = time.perf_counter()
    out_dir = FLAGS.output_dir
    os.makedirs(out_dir, exist_ok=True)
    bad = [m for m in FLAGS.methods if m not in METHODS] + [s for s in FLAGS.sets
                                                             if s not in SETS]
    if bad:
        raise ValueError(f"unknown methods/sets {bad}; methods: {METHODS}, sets: {SETS}")
    corpus = make_fake_corpus(os.path.join(out_dir, "fake_corpus")) if FLAGS.fake_data \
        else FLAGS.corpus
    photos = read_photos(corpus, "train", FLAGS.photo_side)
    holdout = read_photos(corpus, "holdout", FLAGS.holdout_size)
    photo_dir = write_photo_folder(photos, os.path.join(out_dir, "train_photos"))
    inits, pretrain_info, colorizers = {}, {}, {}
    for method in FLAGS.methods:
        if method == "random":
            inits[method] = "random"
            continue
        model_dir, model, info = pretrain_method(method, photo_dir,
                                                 os.path.join(out_dir, "pretrain", method))
        inits[method] = model_dir
        pretrain_info[method] = info
        if model is not None:
            colorizers[method] = (model, "hue_chroma" if method == "colorization"
                                  else "lab_regression")
    pretrain_seconds = time.perf_counter() - start
    color_metrics = colorization_metrics(colorizers, holdout) if colorizers else {}
    ft_start = time.perf_counter()
    finetune = run_finetunes(inits, labelled_sets(corpus), os.path.join(out_dir, "finetune"))
    report = {"argv": sys.argv, "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
              "train_photos": len(photos), "holdout_photos": len(holdout),
              "pretrain": pretrain_info, "colorization": color_metrics, "finetune": finetune,
              "pretrain_seconds": pretrain_seconds,
              "finetune_seconds": time.perf_counter() - ft_start,
              "seconds": time.perf_counter() - start,
              "flags": {f.name: f.value for f in FLAGS.get_flags_for_module(__name__)}}
    text = write_report(out_dir, report)
    print(text)


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    from tfcolor.config import ConfigError  # pylint: disable=import-outside-toplevel
    try:
        _main()
    except ConfigError as e:  # a fielded error: its field is called by its flag
        common.die(common.flag_error(e, FLAGS))
    except (ValueError, FileNotFoundError) as e:
        common.die(common.name_flags(str(e), set(FLAGS)))
    except Preempted as e:
        common.die(str(e), status=3)


def run():
    """Console-script entry point (``tfcolor-reproduce``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
