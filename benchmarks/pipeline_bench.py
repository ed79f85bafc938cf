"""Images per second of the pretraining input pipeline against a per-image PIL/NumPy/skimage one.

Both pipelines do the paper's full per-image work on real JPEG photos: decode, random mirror,
shortest side scaled uniformly into [352, 600], random 352 x 352 crop, desaturation, 128 random
centres (edge buffer 96) and the hue/chroma targets with R = 7 windows (32-bin hue and chroma
histograms, chroma and lightness at the centre), batched by 8:

* ``tfcolor``: :func:`tfcolor.data.pretrain_dataset` (TF ops, tf.data AUTOTUNE parallelism),
  with targets in the pipeline, with ``targets_on_device=True`` (the pipeline part of a GPU run:
  everything but the targets), and restricted to one thread (a per-core comparison with the
  single-threaded baseline);
* ``baseline``: the straightforward re-implementation a student writes: Pillow decode and resize,
  NumPy crop and desaturation, ``skimage.color.rgb2hsv`` on the crop, and a NumPy histogram per
  centre, one image after the other in Python.

Both are measured in the same run on the same files, in alternating rounds (the median is
reported, so that load changes on a shared machine hit all rows alike); the baseline's targets are
checked against tfcolor's ``TargetBuilder`` on the same crop first (max |diff| printed), so the
two compute the same thing.

    python benchmarks/pipeline_bench.py                     # shared corpus if built, else embedded
    python benchmarks/pipeline_bench.py --photos DIR --images 200 --baseline-images 40 --rounds 5
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

CROP, MIN_SIDE, MAX_SIDE, POINTS, BUFFER, WINDOW, BINS, BATCH = 352, 352, 600, 128, 96, 7, 32, 8


def jpeg_folder(photos, out_dir, limit):
    """JPEG (quality 90) copies of up to ``limit`` photos of a folder (PNG corpus -> JPEG)."""
    from PIL import Image
    names = sorted(n for n in os.listdir(photos)
                   if n.lower().endswith((".png", ".jpg", ".jpeg")))[:limit]
    for name in names:
        with Image.open(os.path.join(photos, name)) as image:
            image.convert("RGB").save(
                os.path.join(out_dir, os.path.splitext(name)[0] + ".jpg"), quality=90)
    return out_dir


# ------------------------------------------------------------------------------------------------
# Baseline: per-image Python
# ------------------------------------------------------------------------------------------------

def baseline_targets(rgb, centers):
    """Hue/chroma targets of one crop (H, W, 3) float in [0, 1] at (P, 2) centres: (P, 2K + 2)."""
    from skimage.color import rgb2hsv
    hue = rgb2hsv(rgb)[..., 0]
    chroma = rgb.max(-1) - rgb.min(-1)
    hue = np.where(chroma > 0, hue, 0.0)
    light = rgb.mean(-1)
    h_bins = np.minimum((hue * BINS).astype(np.int64), BINS - 1)
    c_bins = np.minimum((chroma * BINS).astype(np.int64), BINS - 1)
    r = WINDOW // 2
    out = np.zeros((len(centers), 2 * BINS + 2), np.float32)
    for p, (y, x) in enumerate(centers):
        win = (slice(max(y - r, 0), y + r + 1), slice(max(x - r, 0), x + r + 1))
        h = np.bincount(h_bins[win].ravel(), minlength=BINS)
        c = np.bincount(c_bins[win].ravel(), minlength=BINS)
        out[p, :BINS] = h / h.sum()
        out[p, BINS:2 * BINS] = c / c.sum()
        out[p, 2 * BINS] = chroma[y, x]
        out[p, 2 * BINS + 1] = light[y, x]
    return out


def baseline_example(path, rng):
    from PIL import Image
    with Image.open(path) as image:
        image = image.convert("RGB")
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        w, h = image.size
        short = rng.integers(MIN_SIDE, MAX_SIDE + 1)
        scale = short / min(w, h)
        image = image.resize((max(CROP, round(w * scale)), max(CROP, round(h * scale))),
                             Image.BILINEAR)
    arr = np.asarray(image, np.float32) / 255.0
    y0 = rng.integers(0, arr.shape[0] - CROP + 1)
    x0 = rng.integers(0, arr.shape[1] - CROP + 1)
    rgb = arr[y0:y0 + CROP, x0:x0 + CROP]
    gray = rgb.mean(-1, keepdims=True)
    centers = rng.integers(BUFFER, CROP - BUFFER, (POINTS, 2))
    return gray, centers, baseline_targets(rgb, centers)


def baseline_iterator(files, seed=0):
    """Endless batches of the baseline (a generator, so rounds can alternate with tfcolor)."""
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        batch = [baseline_example(files[(i + k) % len(files)], rng) for k in range(BATCH)]
        i += BATCH
        yield np.stack([b[0] for b in batch]), np.stack([b[2] for b in batch])


# ------------------------------------------------------------------------------------------------
# tfcolor
# ------------------------------------------------------------------------------------------------

def tfcolor_iterator(folder, on_device, single_thread=False):
    import tensorflow as tf
    import tfcolor.data as data
    from tfcolor.config import DataConfig, LossConfig
    parallel = dict(num_parallel_calls=1, prefetch=1) if single_thread else {}
    config = DataConfig(batch_size=BATCH, crop_size=CROP, min_side=MIN_SIDE, max_side=MAX_SIDE,
                        points=POINTS, edge_buffer=BUFFER, targets_on_device=on_device)
    ds = data.pretrain_dataset(config, LossConfig(window=WINDOW), source=folder, seed=0,
                               skip_counter=False, **parallel)
    if single_thread:   # one tf.data thread, one thread per op: a per-core comparison
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        ds = ds.with_options(options)
    iterator = iter(ds)
    for _ in range(3):   # warm-up: tracing, thread pools, autotuning
        next(iterator)
    return iterator


def rate(iterator, images, drain=4):
    """Images per second drawing ``images`` (rounded up to batches) from ``iterator``, after
    ``drain`` untimed batches that empty the prefetch buffers (steady state)."""
    for _ in range(drain):
        next(iterator)
    batches = max(1, -(-images // BATCH))
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    np.asarray(batch["gray"] if isinstance(batch, dict) else batch[0])
    return batches * BATCH / (time.perf_counter() - start)


def check_same_targets():
    """The baseline's target code agrees with tfcolor.targets on one random crop."""
    from tfcolor.targets import TargetBuilder
    rng = np.random.default_rng(0)
    rgb = rng.random((64, 64, 3)).astype(np.float32)
    rgb[:20] = rgb[:20].mean(-1, keepdims=True)   # some grey pixels (hue 0 where chroma 0)
    centers = rng.integers(4, 60, (32, 2))
    ours = TargetBuilder("hue_chroma", window=WINDOW)(rgb[None], centers[None]).numpy()[0]
    theirs = baseline_targets(rgb, centers)
    return float(np.abs(ours - theirs).max())


def load_average():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=os.path.expanduser("~/.cache/tfcolor-corpus/photos"),
                        help="folder of photos (PNG/JPEG), converted to JPEG q90; falls back to "
                             "the embedded photos when missing")
    parser.add_argument("--max-photos", type=int, default=148)
    parser.add_argument("--images", type=int, default=80,
                        help="images timed per round for each tfcolor variant")
    parser.add_argument("--baseline-images", type=int, default=24,
                        help="images timed per round for the baseline")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds alternating all pipelines (the median is reported), so a "
                             "change of load on a shared machine hits all of them alike")
    args = parser.parse_args(argv)

    import tensorflow as tf  # noqa: F401  (imported for the machine line)
    import skimage  # noqa: F401
    import tfcolor.data as data

    diff = check_same_targets()
    with tempfile.TemporaryDirectory() as tmp:
        if os.path.isdir(args.photos):
            folder = jpeg_folder(args.photos, tmp, args.max_photos)
            label = f"{len(os.listdir(folder))} JPEG photos from {args.photos}"
        else:
            folder = os.path.dirname(data.embedded_photos()[0])
            label = f"{len(data.embedded_photos())} embedded photos"
        files = data.list_image_files(folder)
        load_before = load_average()
        variants = {"ours": dict(on_device=False), "device": dict(on_device=True),
                    "single": dict(on_device=False, single_thread=True)}
        results = {name: [] for name in ["base", *variants]}
        baseline = baseline_iterator(files)
        next(baseline)   # warm-up (imports, caches)
        for _ in range(args.rounds):
            results["base"].append(rate(baseline, args.baseline_images, drain=0))
            for name, kwargs in variants.items():
                iterator = tfcolor_iterator(folder, **kwargs)
                results[name].append(rate(iterator, args.images))
                del iterator   # no background prefetching while the others are timed
        load_after = load_average()
    base, ours, ours_device, ours_single = (float(np.median(results[k]))
                                            for k in ("base", "ours", "device", "single"))
    print(common.machine_description())
    print(f"data: {label}; crop {CROP}, short side [{MIN_SIDE}, {MAX_SIDE}], {POINTS} centres, "
          f"hue/chroma R={WINDOW}, batch {BATCH}; median of {args.rounds} alternating rounds; "
          f"load average {load_before} -> {load_after}; "
          f"baseline vs TargetBuilder max |diff| = {diff:.2e}")
    common.print_table(
        ["pipeline", "images/s", "vs baseline"],
        [["baseline: PIL + NumPy + skimage, per image", base, 1.0],
         ["tfcolor.data, targets in the pipeline", ours, ours / base],
         ["tfcolor.data, targets_on_device=True (no targets)", ours_device, ours_device / base],
         ["tfcolor.data, targets in the pipeline, 1 thread", ours_single, ours_single / base]],
        title="Pretraining input pipeline throughput")


if __name__ == "__main__":
    main()
