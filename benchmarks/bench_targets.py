"""Benchmark: ground-truth targets (R x R window histograms at sparse centres).

Compares, on the same batch, ``TargetBuilder`` with the two window-histogram methods of
``tfcolor.bins`` (``gather``: convert and one-hot only the P * R^2 window pixels;
``summed_area``: convert the whole crop, one-hot it and use integral images, as the released
Caffe layer does), each in a ``tf.function`` and with XLA, against the peer: the CPU NumPy path of
a straightforward re-implementation (scikit-image colour conversion of the whole crop, NumPy
integral images, per-image).

    python benchmarks/bench_targets.py [--batch 8 --size 352 --points 128 --window 7]
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from skimage import color as skcolor  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from tfcolor.targets import TargetBuilder  # noqa: E402


def _numpy_hue_chroma(rgb, centers, window, k=32):
    """Peer: per-image scikit-image HSV + NumPy integral images (CPU)."""
    out = []
    half = window // 2
    for im, cs in zip(rgb, centers):
        hsv = skcolor.rgb2hsv(im)
        chroma = im.max(-1) - im.min(-1)
        rows = []
        for values in (hsv[..., 0], chroma):
            idx = np.minimum((values * k).astype(int), k - 1)
            one_hot = np.eye(k, dtype=np.int32)[idx]
            table = np.pad(one_hot.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
            h, w = idx.shape
            y0 = np.clip(cs[:, 0] - half, 0, h)
            y1 = np.clip(cs[:, 0] - half + window, 0, h)
            x0 = np.clip(cs[:, 1] - half, 0, w)
            x1 = np.clip(cs[:, 1] - half + window, 0, w)
            counts = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
            rows.append(counts / counts.sum(-1, keepdims=True))
        centre = np.stack([chroma[cs[:, 0], cs[:, 1]], im.mean(-1)[cs[:, 0], cs[:, 1]]], -1)
        out.append(np.concatenate(rows + [centre], -1))
    return np.stack(out).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--min_time", type=float, default=2.0)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
    edge = args.window
    centers = rng.integers(edge, args.size - edge, (args.batch, args.points, 2)).astype(np.int32)
    rgb_t, centers_t = tf.constant(rgb), tf.constant(centers)

    print(common.machine_description())
    print(f"batch {args.batch}, crop {args.size}x{args.size}, {args.points} centres, "
          f"window {args.window}")
    rows = []
    reference = None
    timings = {}
    for kind in ("hue_chroma", "lab_joint"):
        for method in ("gather", "summed_area"):
            for jit in (False, True):
                builder = TargetBuilder(kind, window=args.window, histogram_method=method)
                fn = tf.function(builder, jit_compile=jit)
                out = fn(rgb_t, centers_t).numpy()
                if kind == "hue_chroma" and method == "gather" and not jit:
                    reference = out
                seconds = common.measure(lambda: fn(rgb_t, centers_t).numpy(),
                                         min_time=args.min_time)
                timings[(kind, method, jit)] = seconds
    peer = common.measure(lambda: _numpy_hue_chroma(rgb, centers, args.window),
                          min_time=args.min_time, warmup=1)
    peer_out = _numpy_hue_chroma(rgb, centers, args.window)
    agree = np.abs(peer_out - reference).max()
    for (kind, method, jit), seconds in timings.items():
        ratio = f"{peer / seconds:.1f}x" if kind == "hue_chroma" else "-"
        rows.append([kind, method, "yes" if jit else "no", seconds * 1e3,
                     args.batch / seconds, ratio])
    rows.append(["hue_chroma", "NumPy + skimage (peer)", "-", peer * 1e3, args.batch / peer, "1x"])
    common.print_table(["kind", "method", "XLA", "ms / batch", "images / s", "speed-up vs peer"],
                       rows, title="Targets for one batch (TargetBuilder vs CPU NumPy peer)")
    print(f"\nmax |tfcolor - peer| on hue_chroma targets: {agree:.2e}; "
          f"peak RSS {common.peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
