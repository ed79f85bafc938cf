"""Grouped splits: train / val / holdout of the corpus, train / val / test of the labelled set.

Splits are by scene group with a fixed seed: a group's place comes from a hash of the seed and
the group name (:func:`unit_hash`), so adding photos never moves the old ones. Corpus groups that
hold a labelled photo are ``labeled_only`` (:func:`split_corpus`); the labelled set is split per
class, whole groups in a seeded order (:func:`split_labelled`).
"""
import hashlib
from collections import defaultdict


def unit_hash(seed, name):
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16) / 16 ** 15


def split_corpus(recs, seed, val_frac, holdout_frac):
    """train / val / holdout per group; groups holding a labelled photo are ``labeled_only``."""
    labelled_groups = {r["group"] for r in recs if r["label"]}
    for r in recs:
        u = unit_hash(seed, r["group"])
        r["split"] = ("labeled_only" if r["group"] in labelled_groups else
                      "holdout" if u < holdout_frac else
                      "val" if u < holdout_frac + val_frac else "train")


def split_labelled(recs, seed, test_frac, val_frac):
    """Per class, whole groups in a seeded order: test first, then val, the rest train."""
    by_class = defaultdict(lambda: defaultdict(list))
    for r in recs:
        by_class[r["label"]][r["group"]].append(r)
    for cls, groups in by_class.items():
        names = sorted(groups, key=lambda g: unit_hash(f"{seed}:{cls}", g))
        n = sum(len(v) for v in groups.values())
        done = 0
        for g in names:
            split = ("test" if done < test_frac * n else
                     "val" if done < (test_frac + val_frac) * n else "train")
            for r in groups[g]:
                r["split"] = split
            done += len(groups[g])
