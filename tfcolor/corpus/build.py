"""The corpus build: every stage in order, from Debian packages to the written outputs.

:func:`build` downloads and unpacks the packages (``tfcolor.corpus.packages``), collects the
candidates (``sources``), measures and filters them (``curation``), drops duplicates and groups
scenes (``dedup``), splits by group (``splits``) and writes the photos, the manifests
(``manifest``), the labelled sets (``labelled``), the crop arrays (``crops``), the contact sheets
and ``report.json``. Its settings come from :func:`settings_from_values` (named as the corpus
builder's flags, ``binaries/build_corpus``).
"""
import dataclasses
import json
import os
import shutil
import time
import types
from collections import Counter
from multiprocessing import Pool

import numpy as np

from tfcolor.corpus.crops import random_crops
from tfcolor.corpus.curation import FilterConfig, analyse, contact_sheet, reject_reasons
from tfcolor.corpus.dedup import dedup_and_group
from tfcolor.corpus.labelled import square_image, within_source, write_existing_sets
from tfcolor.corpus.manifest import LABEL_FIELDS, MANIFEST_FIELDS, write_csv
from tfcolor.corpus.packages import (deb_file, download, licence_for, member_patterns,
                                     name_match, parse_copyright, unpack)
from tfcolor.corpus.sources import (COPYRIGHT_FROM, CURATED_DROP, CURATED_KEEP,
                                    EXISTING_SET_MEMBERS, LABEL_SOURCES, SOURCES, collect)
from tfcolor.corpus.splits import split_corpus, split_labelled, unit_hash

#: Settings whose value must lie in [0, 1).
FRACTIONS = ("val_frac", "holdout_frac", "label_test_frac", "label_val_frac")
#: Every setting of :func:`build` with its default (the corpus builder's flags, named alike).
DEFAULTS = dict(
    out=os.path.expanduser("~/.cache/tfcolor-corpus"), manifest_dir=None, max_side=512,
    contact_sheets=False, cache=None, no_download=False, no_existing_sets=False, workers=2,
    seed=0, val_frac=0.1, holdout_frac=0.15, dup_bits=10, group_bits=24, label_name="",
    label_size=128, label_test_frac=0.66, label_val_frac=0.12, sizes="", crops_per_photo=32,
    eval_crops=4, **{f.name: f.default for f in dataclasses.fields(FilterConfig)})


def settings_from_values(values=None, **overrides):
    """The settings of :func:`build` (a ``types.SimpleNamespace``) from ``{name: value}`` and
    keyword overrides over :data:`DEFAULTS`; ``existing_sets`` is the negation of
    ``no_existing_sets`` and ``cache`` defaults to ``OUT/cache``.

    Raises ValueError with a one-line message naming the setting (as its flag) at fault.
    """
    values = {**DEFAULTS, **(values or {}), **overrides}
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown corpus settings {unknown}")
    values["existing_sets"] = not values.pop("no_existing_sets")
    a = types.SimpleNamespace(**values)
    for name in FRACTIONS:
        value = getattr(a, name)
        if not 0 <= value < 1:
            raise ValueError(f"--{name} must be in [0, 1); got {value}")
    if a.val_frac + a.holdout_frac >= 1 or a.label_test_frac + a.label_val_frac >= 1:
        raise ValueError("the split fractions leave no training data (--val_frac + "
                         "--holdout_frac and --label_test_frac + --label_val_frac must be < 1)")
    if a.max_side < 32 or a.label_size < 8:
        raise ValueError("--max_side must be >= 32 and --label_size >= 8")
    if inside_git_tree(a.out):
        raise ValueError(f"--out {a.out} is inside the git work tree {inside_git_tree(a.out)}: "
                         "the photos are not committed; pass a directory outside it "
                         "(--manifest_dir may be inside)")
    a.cache = a.cache or os.path.join(a.out, "cache")
    return a


def inside_git_tree(path):
    p = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(p, ".git")):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent


def build(a, sources=None, label_sources=None, log=print):
    """Runs every stage; returns the report dict (also written to OUT/report.json)."""
    t0 = time.time()
    sources = SOURCES if sources is None else sources
    label_sources = LABEL_SOURCES if label_sources is None else label_sources
    every = list(label_sources) + list(sources)  # a file in both is a labelled photo
    debs, root = os.path.join(a.cache, "debs"), os.path.join(a.cache, "root")
    packages = sorted({s.package for s in every})
    doc_of = {p: COPYRIGHT_FROM.get(p, p) for p in packages}
    if not a.no_download:
        extra = set(EXISTING_SET_MEMBERS) if a.existing_sets else set()
        download(sorted(set(packages) | set(doc_of.values()) | extra), debs, log)
    members = member_patterns(every)
    if a.existing_sets:
        for p, patterns in EXISTING_SET_MEMBERS.items():
            members[p] = members.get(p, set()) | patterns | {f"usr/share/doc/{p}/copyright"}
    for p in set(doc_of.values()) - set(packages):
        members[p] = {f"usr/share/doc/{p}/copyright"}
    for pkg, patterns in sorted(members.items()):
        deb = deb_file(debs, pkg)
        if deb is None:
            log(f"skip {pkg}: no .deb in {debs}")
            continue
        unpack(deb, patterns, os.path.join(root, pkg))
    log(f"[{time.time() - t0:6.1f}s] packages unpacked")

    unmatched = []
    cands = collect(every, root, os.path.join(a.cache, "rcc"), unmatched)
    names = [f"{c['package']}:{c['path']}" for c in cands]
    unmatched += [("", "curated", p) for p in CURATED_DROP + CURATED_KEEP
                  if not any(name_match(n, p) for n in names)]
    unmatched = sorted(set(unmatched))
    for pkg, kind, pattern in unmatched:  # a typo, or the package changed: look at it
        log(f"warning: {kind} pattern {pattern!r}{' of ' + pkg if pkg else ''} matches no file")
    staging = os.path.join(a.cache, f"normalised-{a.max_side}")
    os.makedirs(staging, exist_ok=True)
    jobs = [(c, staging, a.max_side) for c in cands]
    if a.workers > 1:
        with Pool(a.workers) as pool:
            recs = pool.map(analyse, jobs, chunksize=4)
    else:
        recs = [analyse(j) for j in jobs]
    log(f"[{time.time() - t0:6.1f}s] {len(recs)} candidates measured "
        f"from {len({r['package'] for r in recs})} packages")

    cfg = FilterConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(FilterConfig)})
    rejected, photos = [], []
    for r in recs:
        r["reason"] = ("unreadable: " + r["error"] if "error" in r
                       else " ".join(reject_reasons(r, cfg)))
        (rejected if r["reason"] else photos).append(r)
    photos, pairs = dedup_and_group(photos, a.dup_bits, a.group_bits)
    dups = [r for r in recs if r.get("duplicate_of")]
    for r in dups:
        r["reason"] = "duplicate of " + r["duplicate_of"]
    rejected += dups
    corpus = [r for r in photos if not r["label"]]
    labelled = [r for r in photos if r["label"]]
    # a scene in the labelled set keeps its corpus copies out of pretraining
    split_corpus(photos, a.seed, a.val_frac, a.holdout_frac)
    corpus = [r for r in photos if not r["label"]]
    split_labelled(labelled, a.seed, a.label_test_frac, a.label_val_frac)

    licences = {}
    for pkg in packages:
        try:
            with open(os.path.join(root, doc_of[pkg], "usr/share/doc", doc_of[pkg], "copyright"),
                      errors="replace") as f:
                licences[pkg] = parse_copyright(f.read())
        except OSError:
            licences[pkg] = [(["*"], "copyright file missing")]
    for r in photos:
        r["licence"] = licence_for(licences[r["package"]], r["path"])
        r["id"] = r["sha256"][:12]
        r["class"] = r["label"]

    # photos/ holds exactly the manifest's photos
    out_photos = os.path.join(a.out, "photos")
    os.makedirs(out_photos, exist_ok=True)
    wanted = {r["id"] + ".png" for r in corpus}
    for f in os.listdir(out_photos):
        if f.endswith(".png") and f not in wanted:
            os.remove(os.path.join(out_photos, f))
    for r in corpus:
        dst = os.path.join(out_photos, r["id"] + ".png")
        if not os.path.exists(dst):
            shutil.copyfile(r["staged"], dst)
    corpus.sort(key=lambda r: (r["package"], r["path"]))
    labelled.sort(key=lambda r: (r["label"], r["package"], r["path"]))
    write_csv(os.path.join(a.out, "manifest.csv"), corpus, MANIFEST_FIELDS)
    write_csv(os.path.join(a.out, "labelled_manifest.csv"), labelled, LABEL_FIELDS)
    rejected.sort(key=lambda r: (r["package"], r["path"]))
    write_csv(os.path.join(a.out, "rejected.csv"), rejected,
               ["package", "path", "reason", "width", "height", "transparent", "colourfulness",
                "colours", "top8", "flat", "label"])
    with open(os.path.join(a.out, "near_duplicates.txt"), "w") as f:
        f.writelines(f"{d}\t{p}\t{q}\n" for d, p, q in sorted(pairs))
    if a.manifest_dir:
        os.makedirs(a.manifest_dir, exist_ok=True)
        for n in ("manifest.csv", "labelled_manifest.csv"):
            shutil.copyfile(os.path.join(a.out, n), os.path.join(a.manifest_dir, n))

    classes = sorted({r["label"] for r in labelled})
    label_name = a.label_name or f"debphoto{len(classes)}"
    if labelled:
        lab = os.path.join(a.out, "labeled")
        os.makedirs(lab, exist_ok=True)
        x = np.stack([square_image(r["staged"], a.label_size) for r in labelled])
        y = np.array([classes.index(r["label"]) for r in labelled], np.int64)
        split = np.array([r["split"] for r in labelled])
        arrays = dict(x=x, y=y, classes=np.array(classes),
                      group=np.array([r["group"] for r in labelled]), split=split,
                      id=np.array([r["id"] for r in labelled]),
                      package=np.array([r["package"] for r in labelled]))
        for s in ("train", "val", "test"):
            arrays[f"x_{s}"], arrays[f"y_{s}"] = x[split == s], y[split == s]
        np.savez_compressed(os.path.join(lab, label_name + ".npz"), **arrays)
        # the largest source alone: a set in which the source cannot predict the class
        largest = Counter(r["package"] for r in labelled).most_common(1)[0][0]
        single = within_source(arrays, largest)
        if single is not None:
            single_name = f"{label_name}_{largest.split('-')[0]}"
            np.savez_compressed(os.path.join(lab, single_name + ".npz"), **single)
            log(f"{single_name}: {len(single['classes'])} classes of {largest} alone, "
                + " / ".join(f"{int((single['split'] == s).sum())} {s}"
                             for s in ("train", "val", "test")))

    if a.existing_sets:
        log("existing sets: " + ", ".join(write_existing_sets(root, a.cache, os.path.join(
            a.out, "labeled"), photos + rejected)))

    for size in [int(s) for s in a.sizes.split(",") if s.strip()]:
        for split, k, centre in (("train", a.crops_per_photo, False),
                                 ("val", a.eval_crops, True), ("holdout", a.eval_crops, True)):
            rows = [r for r in corpus if r["split"] == split]
            if not rows:
                continue
            crops = np.concatenate([random_crops(r["staged"], k, size,
                                                 int(unit_hash(a.seed, r["id"] + split) * 2 ** 32),
                                                 centre) for r in rows])
            if split == "train":
                crops = crops[np.random.default_rng(a.seed).permutation(len(crops))]
            np.save(os.path.join(a.out, f"{'pretrain' if split == 'train' else split}_{size}.npy"),
                    crops)
            with open(os.path.join(a.out, f"{split}_{size}_ids.txt"), "w") as f:
                f.writelines(f"{r['id']}\n" for r in rows for _ in range(k))

    if a.contact_sheets:
        sheets = os.path.join(a.out, "sheets")
        os.makedirs(sheets, exist_ok=True)
        for pkg in packages:
            for kind, rows in (("kept", [r for r in corpus + labelled if r["package"] == pkg]),
                               ("rejected", [r for r in rejected if r["package"] == pkg
                                             and r.get("staged")])):
                if rows:
                    contact_sheet([(r["staged"], (r.get("split") or r["reason"])[:10])
                                   for r in rows[:240]], os.path.join(sheets, f"{pkg}-{kind}.png"))

    report = dict(
        wall_seconds=round(time.time() - t0, 1),
        candidates=len(recs),
        corpus_photos=len(corpus),
        corpus_groups=len({r["group"] for r in corpus}),
        corpus_by_split=dict(Counter(r["split"] for r in corpus)),
        corpus_by_package={p: dict(Counter(r["split"] for r in corpus if r["package"] == p))
                           for p in sorted({r["package"] for r in corpus})},
        licences=dict(Counter(r["licence"] for r in corpus + labelled)),
        rejected_by_reason=dict(Counter(r["reason"].split(":")[0].split(" of ")[0]
                                        for r in rejected)),
        labelled_name=label_name, labelled_images=len(labelled),
        labelled_by_split=dict(Counter(r["split"] for r in labelled)),
        labelled_by_class={c: dict(Counter(r["split"] for r in labelled if r["label"] == c))
                           for c in classes},
        labelled_by_package=dict(Counter(r["package"] for r in labelled)),
        unmatched_patterns=[list(u) for u in unmatched])
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"[{time.time() - t0:6.1f}s] done: {json.dumps(report)}")
    return report
