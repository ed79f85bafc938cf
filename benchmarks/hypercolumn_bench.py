"""Benchmark: one training step of the VGG-16 colorizer, sparse against dense hypercolumns.

One step = forward + backward + SGD (momentum 0.9) update with the hue/chroma KL loss
(``tfcolor.losses.HueChromaLoss``, lambda_H = 5) on random target histograms, batch 2, on CPU,
in a ``tf.function``. Configurations, each at 224 x 224 and 352 x 352:

* ``trunk only`` (baseline): the trunk's step with a trivial loss on every tap, no hypercolumn
  and no head; the last column subtracts its step memory from the others;
* ``sparse``: ``Colorizer.sparse`` at 128 random centres per image (the paper's training);
* ``dense concat``: ``Colorizer.dense(method="concat")`` on the input/4 grid, every grid cell a
  target: the full dense hypercolumn (12,417 channels per cell) is built, then the head;
* ``dense factored``: the same function through the factored dense path (``h_fc1`` applied tap by
  tap before upsampling; the dense hypercolumn is never materialised).

Each configuration runs in its own subprocess (``common.run_isolated``) so that the peak resident
memory (``ru_maxrss``) is per configuration. "step memory" is the peak RSS minus the RSS once the
model, optimizer slots and inputs exist (before the first step): the memory the step itself needs
(activations, gradients), which is what sparse training saves. Step time is the median over
repeated steps after warm-up.

    python benchmarks/hypercolumn_bench.py [--sizes 224 352 --batch 2 --points 128 --min_time 5]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

MODES = ("trunk_only", "sparse", "dense_concat", "dense_factored")


def _current_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def worker(args):
    """Measures one configuration; prints a JSON line."""
    import numpy as np
    import tensorflow as tf
    import keras

    from tfcolor import losses
    from tfcolor.models import Colorizer

    keras.utils.set_random_seed(0)
    size, batch, points, grid = args.size, args.batch, args.points, args.grid_factor
    model = Colorizer(args.arch, grid_factor=grid)
    optimizer = keras.optimizers.SGD(1e-3, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = losses.HueChromaLoss()
    rng = np.random.default_rng(0)
    gray = tf.constant(rng.uniform(size=(batch, size, size, 1)).astype("f4"))

    def targets(shape):
        hist = rng.dirichlet(np.ones(32), size=shape + (2,)).reshape(shape + (64,))
        extra = rng.uniform(size=shape + (2,))
        return tf.constant(np.concatenate([hist, extra], -1).astype("f4"))

    if args.mode == "trunk_only":
        # Baseline: the same trunk step with a trivial loss touching every tap (no hypercolumn,
        # no head), so "step memory - trunk-only step memory" is what the hypercolumn costs.
        y_true = targets((batch, 1))

        def predict():
            maps = model.features(gray, training=True)
            return tf.add_n([tf.reduce_mean(tf.cast(m, tf.float32)) for m in maps])

        def loss_of(y, pred):
            del y
            return pred
    elif args.mode == "sparse":
        centers = tf.constant(rng.integers(16, size - 16, size=(batch, points, 2)).astype("f4"))
        y_true = targets((batch, points))

        def predict():
            return model.sparse(gray, centers, training=True)
    else:
        h = -(-size // grid)
        y_true = targets((batch, h, h))
        method = args.mode.split("_", 1)[1]

        def predict():
            return model.dense(gray, training=True, method=method)

    if args.mode != "trunk_only":
        loss_of = loss_fn
    count = float(np.prod(y_true.shape[:-1]))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(loss_of(y_true, predict())) / count
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    before = _current_rss_mib()
    seconds = common.measure(lambda: step().numpy(), warmup=1, min_time=args.min_time,
                             min_repeats=args.repeats)
    peak = common.peak_rss_mib()
    print(json.dumps(dict(mode=args.mode, size=size, seconds=seconds, peak=peak,
                          step_mem=peak - before, targets=int(count),
                          machine=common.machine_description())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 352])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--arch", default="vgg16")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--grid_factor", type=int, default=4)
    parser.add_argument("--min_time", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    results, machine = {}, None
    for size in args.sizes:
        for mode in args.modes:
            argv = [sys.executable, os.path.abspath(__file__), "--worker", "--mode", mode,
                    "--size", str(size), "--arch", args.arch, "--batch", str(args.batch),
                    "--points", str(args.points), "--grid_factor", str(args.grid_factor),
                    "--min_time", str(args.min_time), "--repeats", str(args.repeats)]
            out = common.run_isolated(argv)
            record = json.loads(out.strip().splitlines()[-1])
            machine = record.pop("machine")
            results[(size, mode)] = record
            print(f"# {size} {mode}: {record}", file=sys.stderr, flush=True)

    print(machine)
    rows = []
    for size in args.sizes:
        base = results.get((size, "sparse"))
        trunk = results.get((size, "trunk_only"))
        for mode in args.modes:
            r = results[(size, mode)]
            targets = "-" if mode == "trunk_only" else r["targets"]
            row = [f"{size} x {size}", mode.replace("_", " "), targets, r["seconds"],
                   r["peak"], r["step_mem"]]
            if base is not None and mode != "trunk_only":
                row += [r["seconds"] / base["seconds"], r["step_mem"] / base["step_mem"]]
            else:
                row += ["-", "-"]
            if trunk is not None and mode != "trunk_only":
                row.append(r["step_mem"] - trunk["step_mem"])
            else:
                row.append("-")
            rows.append(row)
    common.print_table(
            ["input", "hypercolumn", "targets/step", "step s", "peak RSS MiB",
             "step memory MiB", "time / sparse", "step memory / sparse",
             "step memory - trunk only MiB"],
            rows,
            title=(f"One SGD step of the {args.arch} colorizer (hue/chroma KL), batch "
                   f"{args.batch}, sparse = {args.points} points/image, dense = input/"
                   f"{args.grid_factor} grid"))


if __name__ == "__main__":
    main()
