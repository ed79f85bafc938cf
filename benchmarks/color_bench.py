"""Benchmark: sRGB -> CIE Lab (and back, and -> hue/chroma) throughput of tfcolor.color vs peers.

Measured in one run on the same batch of real photographs (scikit-image's astronaut, coffee,
chelsea and rocket, resized to --size):

* ``tfcolor.color.rgb_to_lab`` in a ``tf.function`` (graph mode, with and without the range
  check) and under XLA (``jit_compile=True``; the default ``implementation="auto"`` is the
  polynomial one there, and ``implementation="pow"`` is shown for comparison);
* OpenCV ``cv2.cvtColor(float32, COLOR_RGB2Lab)`` on the whole batch as one image (OpenCV's own
  threads) and ``skimage.color.rgb2lab``;
* likewise Lab -> sRGB, and sRGB -> (hue, chroma) (peers: ``cvtColor(COLOR_RGB2HSV)`` with
  C = S * V, ``skimage.color.rgb2hsv`` with C = max - min).

Reported: throughput in megapixels per second (wall clock; the median of three alternating
rounds over the candidates of a table, each the median of its calls), the process CPU time per
batch (all threads; more robust when the machine is shared), ratios of throughput against
scikit-image and OpenCV, and the largest absolute difference to scikit-image in float64.

    python benchmarks/color_bench.py [--batch 4 --size 512 --min_time 2]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.color  # noqa: E402
import skimage.data  # noqa: E402
import skimage.transform  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from tfcolor import color  # noqa: E402

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _batch(batch, size):
    images = []
    for i in range(batch):
        photo = getattr(skimage.data, _PHOTOS[i % len(_PHOTOS)])()[..., :3]
        images.append(skimage.transform.resize(photo, (size, size), anti_aliasing=True))
    return np.clip(np.stack(images), 0.0, 1.0).astype(np.float32)


def _cpu_seconds(fn, repeats=5):
    """Median process CPU time (all threads) of ``fn()``: less sensitive to a shared machine."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


def _abs_diff(out, reference):
    return np.abs(out - reference)


def _hue_chroma_diff(out, reference):
    """Circular difference for the hue channel, plain for chroma."""
    diff = np.abs(out - reference)
    diff[..., 0] = np.minimum(diff[..., 0] % 1.0, 1.0 - diff[..., 0] % 1.0)
    return diff


def _rows(candidates, reference, megapixels, min_time, distance=_abs_diff, rounds=3):
    """Times every candidate; returns rows (name, Mpx/s, wall ms, CPU ms, max |diff|).

    The candidates are timed in ``rounds`` alternating rounds of ``min_time / rounds`` seconds
    each, and each reports the median of its round medians, so that a change in the machine's
    load during the run affects every candidate alike.
    """
    errors = []
    for _, fn in candidates:
        out = np.asarray(fn())
        errors.append(float(distance(out.reshape(reference.shape), reference).max()))
    walls = [[] for _ in candidates]
    cpus = [[] for _ in candidates]
    for _ in range(rounds):
        for i, (_, fn) in enumerate(candidates):
            walls[i].append(common.measure(fn, min_time=min_time / rounds))
            cpus[i].append(_cpu_seconds(fn, repeats=3))
    results = []
    for (name, _), wall, cpu, error in zip(candidates, walls, cpus, errors):
        seconds, cpu_seconds = float(np.median(wall)), float(np.median(cpu))
        results.append((name, megapixels / seconds, 1e3 * seconds, 1e3 * cpu_seconds, error))
    return results


def _table(title, results, peer_names, unit):
    skimage_speed = dict((r[0], r[1]) for r in results)[peer_names[0]]
    opencv_speed = dict((r[0], r[1]) for r in results)[peer_names[1]]
    rows = [(name, speed, ms, cpu, speed / skimage_speed, speed / opencv_speed, f"{err:.1e}")
            for name, speed, ms, cpu, err in results]
    common.print_table(["method", "Mpx/s", "wall ms / batch", "CPU ms / batch", "x scikit-image",
                        "x OpenCV", f"max abs diff to skimage ({unit})"], rows, title=title)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--min_time", type=float, default=2.0)
    args = parser.parse_args()

    rgb = _batch(args.batch, args.size)
    megapixels = rgb.shape[0] * rgb.shape[1] * rgb.shape[2] / 1e6
    rgb_tf = tf.constant(rgb)
    flat = rgb.reshape(-1, rgb.shape[2], 3)            # one tall image for OpenCV
    load_before = os.getloadavg()

    graph = tf.function(color.rgb_to_lab)
    graph_unchecked = tf.function(lambda x: color.rgb_to_lab(x, validate=False))
    xla = tf.function(color.rgb_to_lab, jit_compile=True)      # implementation="auto"
    xla_pow = tf.function(lambda x: color.rgb_to_lab(x, implementation="pow"), jit_compile=True)
    lab_ref = skimage.color.rgb2lab(rgb.astype(np.float64))
    forward = _rows([
            ("tfcolor rgb_to_lab, tf.function", lambda: graph(rgb_tf).numpy()),
            ("tfcolor rgb_to_lab, tf.function, validate=False",
             lambda: graph_unchecked(rgb_tf).numpy()),
            ("tfcolor rgb_to_lab, XLA, implementation=pow", lambda: xla_pow(rgb_tf).numpy()),
            ("tfcolor rgb_to_lab, XLA jit_compile (auto: polynomial)", lambda: xla(rgb_tf).numpy()),
            ("OpenCV cvtColor float32 RGB2Lab", lambda: cv2.cvtColor(flat, cv2.COLOR_RGB2Lab)),
            ("scikit-image rgb2lab", lambda: skimage.color.rgb2lab(rgb)),
    ], lab_ref, megapixels, args.min_time)

    lab = lab_ref.astype(np.float32)
    lab_tf = tf.constant(lab)
    lab_flat = lab.reshape(flat.shape)
    inv_graph = tf.function(lambda x: color.lab_to_rgb(x, validate=False))
    inv_xla = tf.function(color.lab_to_rgb, jit_compile=True)
    inv_xla_pow = tf.function(lambda x: color.lab_to_rgb(x, implementation="pow"),
                              jit_compile=True)
    rgb_ref = skimage.color.lab2rgb(lab_ref)
    inverse = _rows([
            ("tfcolor lab_to_rgb, tf.function, validate=False", lambda: inv_graph(lab_tf).numpy()),
            ("tfcolor lab_to_rgb, XLA, implementation=pow", lambda: inv_xla_pow(lab_tf).numpy()),
            ("tfcolor lab_to_rgb, XLA jit_compile (auto: polynomial)",
             lambda: inv_xla(lab_tf).numpy()),
            ("OpenCV cvtColor float32 Lab2RGB", lambda: cv2.cvtColor(lab_flat, cv2.COLOR_Lab2RGB)),
            ("scikit-image lab2rgb", lambda: skimage.color.lab2rgb(lab)),
    ], rgb_ref, megapixels, args.min_time)
    def skimage_hue_chroma(x):
        return np.stack([skimage.color.rgb2hsv(x)[..., 0], np.ptp(x, axis=-1)], axis=-1)

    def opencv_hue_chroma(x):
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)             # float: H in degrees, S, V
        return np.stack([hsv[..., 0] / 360.0, hsv[..., 1] * hsv[..., 2]], axis=-1)

    hcl_graph = tf.function(lambda x: color.rgb_to_hcl(x, validate=False)[..., :2])
    hcl_xla = tf.function(lambda x: color.rgb_to_hcl(x)[..., :2], jit_compile=True)
    hue_chroma = _rows([
            ("tfcolor rgb_to_hcl, tf.function, validate=False", lambda: hcl_graph(rgb_tf).numpy()),
            ("tfcolor rgb_to_hcl, XLA jit_compile", lambda: hcl_xla(rgb_tf).numpy()),
            ("OpenCV cvtColor float32 RGB2HSV (C = S V)", lambda: opencv_hue_chroma(flat)),
            ("scikit-image rgb2hsv (C = max - min)", lambda: skimage_hue_chroma(rgb)),
    ], skimage_hue_chroma(rgb.astype(np.float64)), megapixels, args.min_time, _hue_chroma_diff)
    load_after = os.getloadavg()

    print(common.machine_description())
    print(f"batch {args.batch} x {args.size} x {args.size} float32 ({megapixels:.2f} Mpx); "
          f"TF intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}, "
          f"OpenCV threads {cv2.getNumThreads()}; 1-min load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (the machine may be shared)")
    _table("sRGB -> Lab", forward, ("scikit-image rgb2lab", "OpenCV cvtColor float32 RGB2Lab"),
           "Lab")
    _table("Lab -> sRGB", inverse, ("scikit-image lab2rgb", "OpenCV cvtColor float32 Lab2RGB"),
           "RGB")
    _table("sRGB -> hue, chroma", hue_chroma, ("scikit-image rgb2hsv (C = max - min)",
                                               "OpenCV cvtColor float32 RGB2HSV (C = S V)"),
           "H circular, C")


if __name__ == "__main__":
    main()
