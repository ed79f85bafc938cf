"""Benchmark: latency of colorizing one image with the VGG-16 colorizer, against the FLOP floor.

Colorizes one ``--size`` x ``--size`` grey image (default 512) with the paper's VGG-16 colorizer
(full hypercolumn, h_fc1 = 1024, hue/chroma head, dense grid input/4, ``dense_method="factored"``
and, for comparison, ``"concat"``) -- trunk, dense hypercolumn, head and the readout
(``tfcolor.predictors.colorize_batch``: softmax, hue/chroma point estimates with fading,
bilinear upsampling, recombination with the input lightness) in one ``tf.function`` -- and
reports the median latency after warm-up.

The floor: the network's float operations (counted by the TensorFlow profiler on the traced graph
of the same function, i.e. of the trunk's convolutions, the head's projections and everything
else it can count) divided by the matmul peak of this machine, measured in the same run with a
large float32 ``tf.linalg.matmul``. ``latency / floor`` says how far from compute-bound the
implementation is. An analytic count of the multiply-adds of the trunk and of the factored head
is printed next to the profiler's number as a cross-check.

    python benchmarks/colorize_bench.py [--size 512 --grid_factor 4 --runs 3]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from tfcolor import predictors  # noqa: E402
from tfcolor.models.colorizer import Colorizer  # noqa: E402


def matmul_peak(n=2048, min_time=2.0):
    """float32 GFLOP/s of an n x n x n matmul (2 n^3 FLOPs) in TensorFlow on this machine."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    fn = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    seconds = common.measure(lambda: fn().numpy(), warmup=2, min_time=min_time, min_repeats=3)
    return 2.0 * n ** 3 / seconds / 1e9


def profiler_flops(concrete):
    """Float operations of a concrete function's graph (tf.compat.v1 profiler)."""
    from tensorflow.python.profiler import model_analyzer, option_builder
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    stats = model_analyzer.profile(graph=concrete.graph, options=opts)
    return float(stats.total_float_ops)


def analytic_flops(model, size, grid_factor):
    """2 x multiply-adds of the trunk's convolutions and of the factored head, counted by hand."""
    import keras
    convs = [layer for layer in model.trunk.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Model(model.trunk.input, [layer.output for layer in convs])
    outs = probe(tf.zeros([1, size, size, 1]))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    trunk = 0.0
    for layer, out in zip(convs, outs):
        kh, kw, cin_per_group, cout = layer.kernel.shape
        trunk += 2.0 * out.shape[1] * out.shape[2] * kh * kw * cin_per_group * cout
    grid = (-(-size // grid_factor)) ** 2
    head = 0.0
    for name, channels in zip(model.taps, model.tap_channels):
        stride = model.tap_strides[name]
        positions = grid if stride <= grid_factor else (-(-size // stride)) ** 2
        head += 2.0 * positions * channels * model.hidden
    head += 2.0 * grid * model.hidden * sum(model.output_sizes)
    return trunk, head


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--grid_factor", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="timed runs (median) after warm-up")
    parser.add_argument("--arch", default="vgg16")
    parser.add_argument("--skip_concat", action="store_true",
                        help="do not time the explicit (concat) dense hypercolumn")
    args = parser.parse_args()

    load_before = os.getloadavg()
    tf.keras.utils.set_random_seed(0)
    model = Colorizer(args.arch, kind="hue_chroma", dropout=0.0)
    gray = tf.random.uniform([1, args.size, args.size, 1], seed=1)
    spec = tf.TensorSpec([1, args.size, args.size, 1], tf.float32)

    rows = []
    peak = matmul_peak()
    methods = ["factored"] + ([] if args.skip_concat else ["concat"])
    flops = None
    for method in methods:
        model.dense_method = method

        @tf.function(input_signature=[spec])
        def run(g):
            return predictors.colorize_batch(model, g, grid_factor=args.grid_factor,
                                             fading="released")

        concrete = run.get_concrete_function()
        method_flops = profiler_flops(concrete)
        if flops is None:
            flops = method_flops
        t0 = time.perf_counter()
        run(gray).numpy()
        first = time.perf_counter() - t0
        seconds = common.measure(lambda: run(gray).numpy(), warmup=1, min_time=0.0,
                                 min_repeats=args.runs)
        floor = method_flops / (peak * 1e9)
        rows.append([f"VGG-16 colorizer, dense {method}", f"{args.size}x{args.size}",
                     f"{seconds * 1000:.0f}", f"{method_flops / 1e9:.0f}", f"{floor * 1000:.0f}",
                     f"{seconds / floor:.2f}", f"{first:.1f}"])
    # The trunk alone (convolutions only), for the breakdown.
    trunk_fn = tf.function(lambda g: model.features(g, training=False), input_signature=[spec])
    trunk_flops = profiler_flops(trunk_fn.get_concrete_function())
    seconds = common.measure(lambda: [t.numpy() for t in trunk_fn(gray)], warmup=1, min_time=0.0,
                             min_repeats=args.runs)
    floor = trunk_flops / (peak * 1e9)
    rows.append([f"{args.arch} trunk only (conv1_1..fc7)", f"{args.size}x{args.size}",
                 f"{seconds * 1000:.0f}", f"{trunk_flops / 1e9:.0f}", f"{floor * 1000:.0f}",
                 f"{seconds / floor:.2f}", "-"])
    trunk_fl, head_fl = analytic_flops(model, args.size, args.grid_factor)
    load_after = os.getloadavg()
    print(common.machine_description())
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores; peak RSS {common.peak_rss_mib():.0f} MiB")
    print(f"matmul peak (float32 2048^3, TensorFlow): {peak:.1f} GFLOP/s")
    print(f"analytic FLOPs: trunk convolutions {trunk_fl / 1e9:.1f} G, factored head "
          f"{head_fl / 1e9:.1f} G, total {(trunk_fl + head_fl) / 1e9:.1f} G "
          f"(profiler, whole function: {flops / 1e9:.1f} G)")
    common.print_table(
            ["what", "image", "median ms", "GFLOP (profiler)", "floor ms", "latency / floor",
             "first call s"], rows,
            title=f"Colorize one image, grid input/{args.grid_factor}, median of {args.runs} "
                  "runs after warm-up")


if __name__ == "__main__":
    main()
