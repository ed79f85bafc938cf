"""Mutation fuzz of the three decode paths (slow): seeded damage to a few shipped photos, in
several formats, through ``tfcolor.image_files.read_image`` (the colorize program),
``tfcolor.data.decode.decode_image`` as the ``colorize_bytes`` signature runs it, and
``tfcolor.data.decode.safe_decode_dataset`` (the pretraining pipelines).

Every file must either decode to an image of at most ``max_pixels`` pixels or be skipped with
one of the documented reasons: never a crash, a signal, a traceback from another error type or a
hang. The fuzz runs in a child process (a signal there fails the test instead of killing it).
Its bounds come from properties of the run, not from numbers of one machine: ``max_pixels`` is
set to 4x the largest original, so any image that decodes is small, and the child's peak memory
beyond its state after decoding the originals must stay below 64 bytes per allowed pixel; each
file's decode time must stay below 100x the slowest original's plus one second (a crafted
file with many scans or frames is refused from its bytes, so nothing takes long).
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import io, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
from PIL import Image
sys.path.insert(0, sys.argv[1])
import hostile_inputs
from tfcolor import image_files
from tfcolor.data import decode, sources

seed, count, folder = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(seed)
photos = sources.embedded_files("embedded")[:3]
originals = []
for i, path in enumerate(photos):
    image = Image.open(path).convert("RGB")
    image.thumbnail((160, 160))
    for fmt, kw in [("JPEG", {"quality": 85}), ("JPEG", {"progressive": True}), ("PNG", {}),
                    ("GIF", {}), ("BMP", {}), ("WEBP", {"quality": 80})]:
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        originals.append(buf.getvalue())
max_pixels = 4 * max(Image.open(io.BytesIO(d)).size[0] * Image.open(io.BytesIO(d)).size[1]
                      for d in originals)

def mutate(data):
    data = bytearray(data)
    kind = rng.integers(0, 6)
    if kind == 0:  # flip bytes
        for j in rng.integers(0, len(data), int(rng.integers(1, 10))):
            data[j] = int(rng.integers(0, 256))
    elif kind == 1:  # truncate
        data = data[:int(rng.integers(0, len(data)))]
    elif kind == 2:  # overwrite header bytes (sizes, counts) with large values
        for j in rng.integers(0, min(64, len(data)), 4):
            data[j] = 0xFF
    elif kind == 3:  # insert random bytes
        j = int(rng.integers(0, len(data)))
        data[j:j] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 4:  # repeat a segment (scans, chunks, frames)
        j = int(rng.integers(0, len(data)))
        k = int(rng.integers(j, min(len(data), j + 2000) + 1))
        data[k:k] = bytes(data[j:k]) * int(rng.integers(2, 200))
    else:  # splice two files
        other = originals[int(rng.integers(0, len(originals)))]
        data = data[:int(rng.integers(0, len(data)))] + other[int(rng.integers(0, len(other))):]
    return bytes(data)

bytes_fn = tf.function(lambda c: decode.decode_image(c, max_pixels=max_pixels),
                       input_signature=[tf.TensorSpec([], tf.string)])

def pipeline(datas):
    ds = tf.data.Dataset.from_tensor_slices(list(datas)).interleave(
            lambda c: decode.safe_decode_dataset({"encoded": c}, read_file=False,
                                                 max_pixels=max_pixels),
            cycle_length=1)
    return [(tuple(e["image"].shape), int(e["reason"])) for e in ds]

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

def run(data, path):
    with open(path, "wb") as f:
        f.write(data)
    out, times = {}, []
    t = time.perf_counter()
    try:
        out["read_image"] = ["ok", list(image_files.read_image(path, max_pixels).shape)]
    except image_files.ImageReadError as e:
        out["read_image"] = [e.reason, None]
    times.append(time.perf_counter() - t)
    t = time.perf_counter()
    try:
        image, reason = bytes_fn(tf.constant(data))
        out["colorize_bytes"] = [decode.REASONS[int(reason)], list(image.shape)]
    except tf.errors.InvalidArgumentError:  # corrupt data fails in the decoder op, as documented
        out["colorize_bytes"] = ["decoder_error", None]
    times.append(time.perf_counter() - t)
    out["seconds"] = max(times)
    return out

path = os.path.join(folder, "case")
for d in originals:  # warm: every path traced and run once
    run(d, path)
slowest = max(run(d, path)["seconds"] for d in originals)
pipeline(originals[:1])
base = hwm()
mutated = [mutate(originals[i % len(originals)]) for i in range(count)]
results = [run(d, path) for d in mutated]
t = time.perf_counter()
for r, (shape, reason) in zip(results, pipeline(mutated)):  # one pipeline, as in training
    r["pipeline"] = [decode.REASONS[reason], list(shape)]
pipeline_seconds = time.perf_counter() - t
t = time.perf_counter()
pipeline(originals)
pipeline_originals = time.perf_counter() - t
print(json.dumps({"max_pixels": max_pixels, "slowest_original": slowest, "base": base,
                  "peak": hwm(), "results": results, "pipeline_seconds": pipeline_seconds,
                  "pipeline_originals": pipeline_originals, "originals": len(originals)}))
"""

OK_REASONS = {"ok", "empty", "unknown_format", "unsupported", "too_large", "corrupt",
              "too_many_scans"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_photos_decode_or_skip_cleanly_within_bounds(seed, tmp_path):
    count = 120
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", CHILD, os.path.join(ROOT, "tests"), str(seed),
                          str(count), str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]  # a signal gives a negative code
    report = json.loads(res.stdout.strip().splitlines()[-1])
    limit = report["max_pixels"]
    results = report["results"]
    assert len(results) == count
    counts = {}
    for r in results:
        for path in ("read_image", "colorize_bytes", "pipeline"):
            reason, shape = r[path]
            counts[(path, reason)] = counts.get((path, reason), 0) + 1
            assert reason in OK_REASONS | ({"decoder_error"} if path == "colorize_bytes"
                                           else set()), (path, r)
            if reason == "ok":
                assert shape[0] * shape[1] <= limit and shape[2] == 3, (path, r)
        assert r["seconds"] < 100 * report["slowest_original"] + 1.0, r
    per_original = report["pipeline_originals"] / report["originals"]
    assert report["pipeline_seconds"] < count * (100 * per_original + 1.0)
    assert report["peak"] - report["base"] < 64 * limit + (64 << 20), report["peak"]
    # Both outcomes happen: the fuzz reaches the decoders, not only the header checks.
    assert counts.get(("pipeline", "ok"), 0) > 0 and counts.get(("pipeline", "corrupt"), 0) > 0
    print(sorted(counts.items()))
