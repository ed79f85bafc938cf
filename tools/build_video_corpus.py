#!/usr/bin/env python3
"""Builds the video proxy's corpus: real camera clips from Debian packages, frames and Farnebäck
flow in TFRecords, split by clip.

::

    apt-get update                                   # once, on a fresh machine
    python tools/build_video_corpus.py [--out ~/.cache/tfcolor-video]

Needs ``apt-get`` and ``dpkg-deb`` (a Debian or Ubuntu machine; no root: ``apt-get download``
fetches a package without installing it) and OpenCV (``pip install 'tfcolor[video]'``). About
a minute once the packages (about 170 MB) are downloaded.

The clips (:data:`CLIPS`) are every piece of real camera footage found in Debian's packages
that ship videos or frame sequences:

* ``opencv-doc``: ``vtest.avi`` (colour, a fixed camera over a campus path with pedestrians,
  768 x 576, 10 fps) and ``tree.avi`` (colour, a handheld camera on a tree in the wind,
  320 x 240);
* ``visp-images-data`` (ViSP's test sequences, grey, 25 fps): ``mire-2`` (a camera moving over
  a target on a poster collage), ``mbt/cube`` (a moving camera around a cube on a desk),
  ``cube`` (a closer cube sequence).

Left out, after looking at their frames: ``Megamind.avi`` and ``Megamind_bugy.avi`` of
opencv-doc (a computer-animated film trailer, not camera footage), ViSP's ``video/cube.mpeg``
(the ``cube`` sequence again, re-encoded), ViSP's ``ellipse-1`` and ``line`` (a white shape on
black: no texture to follow). ``kdenlive-data``, ``shotcut-data``, ``pitivi``,
``blender-data`` and ``openshot-qt`` (one 4 KB clip: ten frames of a still grey gradient) hold
no camera footage.

Steps (the Debian parts by :mod:`tfcolor.corpus.packages`): download each package once
(``OUT/packages/debs``) and unpack only the clip files and
the package's copyright file (``OUT/packages/root/PACKAGE``); split the clips built
(:func:`split_clips`: the largest clip in ``train``, the others ranked by a hash of the seed and
the clip name, at least one clip each in ``holdout`` and ``val``; never frames of one clip in
two splits); for each clip, scale the frames to ``--short_side``, attach to every
``--frame_step``-th frame ``t`` the Farnebäck flow from ``t`` to ``t + --stride`` and write
``OUT/SPLIT/CLIP.tfrecord`` (:func:`tfcolor.data.video.encode_example`); fit the bin edges of
the relative-flow amplitude on the training split under the video task's default sampling
(``OUT/flow_bins.json``, :func:`tfcolor.data.video.fit_bin_edges`); write ``OUT/manifest.json``
(per clip: package, version, file, sha256, licence from the package's copyright file, split,
resolution, frames used, flow statistics; the parameters; the wall time).

Idempotent and resumable: a clip whose record file exists and whose manifest entry has the same
source sha256 and parameters is not recomputed; record files are written atomically. Changing a
parameter recomputes every clip. ``--out`` may not lie inside a git work tree.
"""
import argparse
import dataclasses
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from tfcolor.corpus import packages  # noqa: E402
from tfcolor.corpus.build import inside_git_tree  # noqa: E402
from tfcolor.corpus.splits import unit_hash  # noqa: E402

#: (name, package, path in the package: a file or a frame pattern for cv2.VideoCapture, what it
#: shows).
CLIPS = (
    ("vtest", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi",
     "fixed camera, pedestrians on a campus path (colour)"),
    ("tree", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi",
     "handheld camera, a tree in the wind (colour)"),
    ("visp-mire-2", "visp-images-data", "usr/share/visp-images-data/ViSP-images/mire-2/"
     "image.%04d.pgm", "moving camera over a target on a poster collage (grey)"),
    ("visp-mbt-cube", "visp-images-data", "usr/share/visp-images-data/ViSP-images/mbt/cube/"
     "image%04d.pgm", "moving camera around a cube on a desk (grey)"),
    ("visp-cube", "visp-images-data", "usr/share/visp-images-data/ViSP-images/cube/"
     "image.%04d.pgm", "moving camera, close view of a cube (grey)"),
)

DEFAULT_OUT = "~/.cache/tfcolor-video"
SPLITS = ("train", "val", "holdout")
#: Flow below this amplitude (pixels) counts as "near zero" in the manifest's statistics.
NEAR_ZERO = 0.1


def _fail(message):
    print(f"build_video_corpus: {message}", file=sys.stderr)
    sys.exit(2)


def licence_for(copyright_text, path):
    """The licence a package's copyright file states for ``path``
    (:func:`tfcolor.corpus.packages.licence_for`: the last matching stanza of a DEP-5 file)."""
    return packages.licence_for(packages.parse_copyright(copyright_text), path)


def _files_of(pattern):
    """The files of a clip path (itself, or the frames of a printf-style sequence)."""
    if "%" not in pattern:
        return [pattern]
    head, tail = pattern.split("%", 1)
    suffix = tail.split("d", 1)[1]
    return sorted(glob.glob(glob.escape(head) + "*" + glob.escape(suffix)))


def _frame_count(path):
    """Frames of a clip as its container or its sequence says (no decoding)."""
    from tfcolor.data import video  # pylint: disable=import-outside-toplevel
    cv2 = video.import_cv2()
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def _sha256(paths):
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def split_clips(sizes, seed, val_frac=0.2, holdout_frac=0.2):
    """{name: split} of clips ``{name: frames}``: the largest clip is train (a corpus of a few
    clips would otherwise lose most of its frames to evaluation); the others are ranked by a
    hash of ``(seed, name)``: the first ``max(1, round(n * holdout_frac))`` are holdout, the
    next ``max(1, round(n * val_frac))`` val (with at least 3 clips), the rest train."""
    largest = max(sorted(sizes), key=lambda n: sizes[n])
    ranked = sorted((n for n in sizes if n != largest), key=lambda n: unit_hash(seed, n))
    n = len(sizes)
    holdout = max(1, round(n * holdout_frac)) if n >= 3 else 0
    val = max(1, round(n * val_frac)) if n >= 3 else 0
    splits = {name: ("holdout" if i < holdout else "val" if i < holdout + val else "train")
              for i, name in enumerate(ranked)}
    splits[largest] = "train"
    return splits


def parse_args(argv=None):
    from tfcolor.data import video  # pylint: disable=import-outside-toplevel
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default %(default)s)")
    p.add_argument("--short_side", type=int, default=video.DEFAULT_SHORT_SIDE,
                   help="short side of the stored frames, pixels (default %(default)s)")
    p.add_argument("--stride", type=int, default=video.DEFAULT_STRIDE,
                   help="flow from frame t to t + stride (default %(default)s)")
    p.add_argument("--frame_step", type=int, default=video.DEFAULT_FRAME_STEP,
                   help="every frame_step-th frame gets an example (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip split")
    p.add_argument("--image_format", choices=("png", "jpeg"), default="png")
    p.add_argument("--bin_pairs", type=int, default=200_000,
                   help="training pairs the bin edges are fitted on (default %(default)s)")
    p.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    return p.parse_args(argv)


def build(args, log=print):
    """Builds the corpus; returns the manifest (a dict)."""
    from tfcolor.data import video  # pylint: disable=import-outside-toplevel
    from tfcolor.tasks import video as video_task  # pylint: disable=import-outside-toplevel

    started = time.time()
    out = os.path.abspath(os.path.expanduser(args.out))
    if inside_git_tree(out):
        _fail(f"--out={args.out} lies inside a git work tree; the corpus is not committed")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            _fail(f"needs {tool} (a Debian or Ubuntu machine)")
    try:
        video.import_cv2()
    except ImportError as err:
        _fail(str(err))
    wanted = [c for c in CLIPS if not args.clips or c[0] in args.clips.split(",")]
    if not wanted:
        _fail(f"--clips={args.clips} names no clip; the clips are "
              f"{', '.join(c[0] for c in CLIPS)}")
    params = {"short_side": args.short_side, "stride": args.stride,
              "frame_step": args.frame_step, "image_format": args.image_format,
              "farneback": dataclasses.asdict(video.FarnebackParams())}

    names = sorted({c[1] for c in wanted})
    debs_dir = os.path.join(out, "packages", "debs")
    try:
        packages.download(names, debs_dir, log=log)
    except packages.DownloadError as err:
        _fail(f"apt-get download {' '.join(err.packages)} failed: {err.last_line} (no network, "
              "or no package lists: run `apt-get update` once first)")
    roots, versions, copyrights = {}, {}, {}
    for package in names:
        deb = packages.deb_file(debs_dir, package)
        if deb is None:
            _fail(f"no {package}_*.deb in {debs_dir}")
        root = os.path.join(out, "packages", "root", package)
        patterns = {f"usr/share/doc/{package}/copyright"}
        for _, pkg, path, _ in wanted:
            if pkg == package:
                patterns.add(path.split("%", 1)[0] + "*" if "%" in path else path)
        try:
            versions[package] = packages.unpack(deb, patterns, root)
        except RuntimeError as err:   # dpkg-deb --fsys-tarfile failed
            _fail(str(err))
        except (subprocess.CalledProcessError, tarfile.TarError) as err:
            _fail(f"cannot read {deb}: {err}")
        roots[package] = root
        with open(os.path.join(root, f"usr/share/doc/{package}/copyright"),
                  errors="replace") as f:
            copyrights[package] = f.read()

    manifest_path = os.path.join(out, "manifest.json")
    old = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f)
        if previous.get("params") == params:
            old = {c["clip"]: c for c in previous.get("clips", [])}
    sources = {}
    for name, package, path, _ in wanted:
        files = _files_of(os.path.join(roots[package], path))
        if not files or not all(os.path.isfile(f) for f in files):
            _fail(f"{package} has no {path}")
        sources[name] = files
    splits = split_clips({name: _frame_count(os.path.join(roots[package], path))
                          for name, package, path, _ in wanted}, args.seed)
    entries = []
    for name, package, path, what in wanted:
        split = splits[name]
        sha = _sha256(sources[name])
        record = os.path.join(out, split, f"{name}.tfrecord")
        entry = old.get(name)
        if (entry and entry.get("sha256") == sha and entry.get("split") == split
                and os.path.exists(record)):
            log(f"{name}: up to date ({entry['examples']} examples)")
            entries.append(entry)
            continue
        for other in SPLITS:  # a clip moved to another split leaves no copy behind
            stale = os.path.join(out, other, f"{name}.tfrecord")
            if other != split and os.path.exists(stale):
                os.remove(stale)
        t0 = time.time()
        frames = video.read_frames(os.path.join(roots[package], path), args.short_side)
        amplitudes = []

        def examples():
            for t, frame, flow in video.clip_examples(frames, stride=args.stride,
                                                      frame_step=args.frame_step):
                amplitudes.append(np.linalg.norm(flow, axis=-1).ravel()[::7])
                yield video.encode_example(frame, flow, clip=name, frame_index=t,
                                           stride=args.stride, image_format=args.image_format)

        count = video.write_records(record, examples())
        a = np.concatenate(amplitudes) if amplitudes else np.zeros(1)
        entry = {
            "clip": name, "package": package, "version": versions[package],
            "file": path, "what": what, "sha256": sha,
            "licence": licence_for(copyrights[package], path.split("%", 1)[0]),
            "split": split, "source_frames": int(len(frames)),
            "resolution": [int(frames.shape[1]), int(frames.shape[2])],
            "frames_used": list(range(0, len(frames) - args.stride, args.frame_step)),
            "examples": count, "record": os.path.relpath(record, out),
            "flow_median_amplitude": round(float(np.median(a)), 4),
            "flow_p90_amplitude": round(float(np.percentile(a, 90)), 4),
            "flow_near_zero_fraction": round(float(np.mean(a < NEAR_ZERO)), 4),
            "seconds": round(time.time() - t0, 1),
        }
        log(f"{name} ({split}): {count} examples from {len(frames)} frames "
            f"{frames.shape[2]}x{frames.shape[1]}, median flow "
            f"{entry['flow_median_amplitude']} px, {entry['seconds']} s")
        entries.append(entry)

    bins_path = os.path.join(out, video.BINS_FILE)
    train_records = sorted(os.path.join(out, e["record"]) for e in entries
                           if e["split"] == "train")
    bins_key = {"params": params, "train": sorted(e["sha256"] for e in entries
                                                  if e["split"] == "train"),
                "pairs": args.bin_pairs, "floor": video.DEFAULT_FLOOR}
    fitted = None
    if os.path.exists(bins_path):
        with open(bins_path) as f:
            fitted = json.load(f)
    if train_records and (fitted is None or fitted.get("fitted_on") != bins_key):
        config = video_task.default_data_config(data=os.path.join(out, "train"))
        edges, amps = video.fit_bin_edges(config, source=train_records, pairs=args.bin_pairs)
        video.write_bin_edges(bins_path, edges, fitted_on=bins_key,
                              how="quantiles of the relative-flow amplitude of training pairs "
                                  "drawn by tfcolor.data.video.video_dataset under "
                                  "tfcolor.tasks.video.default_data_config()",
                              amplitude_median=round(float(np.median(amps)), 4),
                              near_zero_fraction=round(float(np.mean(amps < NEAR_ZERO)), 4))
        log(f"bin edges fitted on {len(amps)} training pairs: {edges[0]:.4f} .. "
            f"{edges[-1]:.3f} px")
    manifest = {
        "description": "frames + Farnebäck flow of real camera clips from Debian packages "
                       "(tools/build_video_corpus.py)",
        "params": params, "split_seed": args.seed, "bins": video.BINS_FILE,
        "clips": entries,
        "totals": {s: {"clips": sum(e["split"] == s for e in entries),
                       "examples": sum(e["examples"] for e in entries if e["split"] == s)}
                   for s in SPLITS},
        "wall_seconds": round(time.time() - started, 1),
    }
    tmp = manifest_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, manifest_path)
    log(f"wrote {manifest_path}: " + ", ".join(
            f"{s} {t['clips']} clips / {t['examples']} examples"
            for s, t in manifest["totals"].items()) + f" in {manifest['wall_seconds']} s")
    return manifest


def main(argv=None):
    build(parse_args(argv))


if __name__ == "__main__":
    main()
