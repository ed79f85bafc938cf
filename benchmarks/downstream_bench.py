"""Throughput of fine-tuning (tfcolor.downstream) and of the baselines' pretraining steps.

Fine-tuning runs the real machinery of ``binaries/finetune``: a :class:`DownstreamModel` built by
``tfcolor.downstream.initialization.model_fn`` (random init, BN-free trunk), batches of
``tfcolor.downstream.pipelines.train_dataset`` in the protocol's task
(``tfcolor.tasks.downstream``) run by ``tfcolor.train.experiment.run``; throughput excludes the
first loop (tracing). Scoring is ``tfcolor.downstream.protocol.score`` on a
held-out set (images per second, including the pipeline). Pretraining runs
``tfcolor.baselines.pretrain`` / ``tfcolor.train.pretraining`` for a few loops in the setting of
``binaries/reproduce`` (vgg_tiny, 64 x 64 crops, batch 16, 64 points).

    python benchmarks/downstream_bench.py [--steps 60] [--vgg16]

``--vgg16`` adds paper-scale rows (VGG-16 at 224 x 224, batch 8; slow on a CPU).
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from benchmarks import common  # noqa: E402


def _labelled(task, n, size, channels, classes, seed=0):
    from tfcolor.downstream import datasets
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, size, size, channels), dtype=np.uint8)
    if task == "segmentation":
        y = rng.integers(0, classes, (n, size, size)).astype(np.uint8)
        return datasets.LabeledData(x, y, "segmentation", classes)
    return datasets.from_arrays(x, rng.integers(0, classes, n), num_classes=classes)


def finetune_row(name, arch, task, size, channels, batch, steps, classes=10, taps=None,
                 points=256):
    from tfcolor.downstream import initialization, protocol
    train = _labelled(task, max(4 * batch, 64), size, channels, classes)
    fn = initialization.model_fn("random", task, classes, arch=arch, taps=taps,
                                 color_input=channels == 3, seed=0, hidden=256)
    config = protocol.FinetuneConfig(batch_size=batch, eval_every=max(1, steps // 3),
                                     max_steps=steps, num_points=points, eval_batch_size=batch)
    with tempfile.TemporaryDirectory() as tmp:
        run = protocol.train_task(protocol.make_task(fn, train, config, color=channels == 3),
                                  tmp, steps, config)
        result = run.train
        evaluation = common.measure(
                lambda: protocol.score(run.model, train, config, color=channels == 3),
                warmup=1, min_time=1.0, min_repeats=2)
    return [name, arch, f"{size} x {size} x {channels}", batch, result.images_per_second,
            1000.0 * batch / result.images_per_second, len(train) / evaluation]


def pretrain_row(method, steps):
    from tfcolor import baselines, config as config_lib
    from tfcolor.train import pretraining
    rng = np.random.default_rng(0)
    photos = [(rng.uniform(0, 1, (96, 128, 3)) * 255).astype(np.uint8) for _ in range(16)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "photos")
        os.makedirs(folder)
        from PIL import Image
        for i, p in enumerate(photos):
            Image.fromarray(p).save(os.path.join(folder, f"{i}.png"))
        loop = max(1, steps // 3)
        optimizer = config_lib.OptimizerConfig(learning_rate=0.01, lr_drops=(0.9,))
        if method in ("colorization", "lab_regression"):
            config = config_lib.PretrainConfig(
                    model=config_lib.ModelConfig(arch="vgg_tiny", hidden=256,
                                                 sync_batch_norm=False),
                    data=config_lib.DataConfig(data=folder, batch_size=16, crop_size=64,
                                               min_side=64, max_side=96, points=64,
                                               edge_buffer=8, targets_on_device=False,
                                               validation_images=0),
                    loss=config_lib.LossConfig(
                            kind="hue_chroma" if method == "colorization" else method),
                    optimizer=optimizer,
                    train=config_lib.TrainConfig(model_dir=os.path.join(tmp, "run"),
                                                 train_steps=steps, steps_per_loop=loop,
                                                 checkpoint_every=steps, summary_every=loop,
                                                 image_every=0, export=False))
            rate = pretraining.pretrain(config).train.images_per_second
        else:
            data_config = config_lib.DataConfig(batch_size=16, crop_size=64, min_side=64,
                                                max_side=96, points=64, edge_buffer=8)
            kwargs = dict(arch="vgg_tiny", hidden=256)
            rate = baselines.pretrain(method, folder, os.path.join(tmp, "run"),
                                      model_kwargs=kwargs, data_config=data_config,
                                      train_steps=steps, optimizer_config=optimizer,
                                      steps_per_loop=loop).images_per_second
    return [method, rate, 1000.0 * 16 / rate]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--vgg16", action="store_true")
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    rows = [
        finetune_row("classification (Fashion-MNIST)", "vgg_tiny", "classification", 28, 1, 32,
                     args.steps),
        finetune_row("classification (gcompris5, colour)", "vgg_tiny", "classification", 56, 3,
                     32, args.steps),
        finetune_row("segmentation, 256 points", "vgg_tiny", "segmentation", 64, 1, 8,
                     args.steps),
    ]
    if args.vgg16:
        rows.append(finetune_row("classification", "vgg16", "classification", 224, 1, 8,
                                 max(6, args.steps // 10)))
        rows.append(finetune_row("segmentation, 256 points", "vgg16", "segmentation", 224, 1, 8,
                                 max(6, args.steps // 10), classes=21))
    print(common.machine_description())
    common.print_table(["fine-tuning", "trunk", "input", "batch", "train img/s", "ms/step",
                        "eval img/s"], rows, title="Fine-tuning (random init, BN absorbed)")
    pre = [pretrain_row(m, args.steps) for m in ("colorization", "lab_regression", "denoising",
                                                   "split_brain")]
    common.print_table(["pretraining (vgg_tiny, 64 px, batch 16, 64 points)", "img/s",
                        "ms/step"], pre, title="Pretraining steps of the reproduction")


if __name__ == "__main__":
    main()
