"""Duplicates and scene groups: difference hashes, Hamming distances, union-find.

Exact duplicates (same sha256) and near-identical copies (16 x 16 difference hash, :func:`dhash`,
within ``dup_bits`` of 256) keep one copy: the labelled one, else the largest. Near-duplicates
within ``group_bits`` and explicit same-scene rules (a record's ``group_key``) are merged into
scene groups (:func:`dedup_and_group`).
"""
import hashlib

import numpy as np
from PIL import Image


def dhash(arr, n=16):
    """256-bit difference hash of the grey image (packed uint8)."""
    g = np.asarray(Image.fromarray(arr).convert("L").resize((n + 1, n), Image.BILINEAR), np.int16)
    return np.packbits((g[:, 1:] > g[:, :-1]).ravel())


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def hamming_matrix(hashes):
    bits = np.unpackbits(np.asarray(hashes, np.uint8), axis=1).astype(np.int16)
    return bits.shape[1] - (bits @ bits.T + (1 - bits) @ (1 - bits).T)


def dedup_and_group(recs, dup_bits, group_bits):
    """Drops duplicates (sets ``duplicate_of``) and sets ``group`` on the kept records."""
    # labelled photos first, then largest first: the copy kept is labelled, else the largest
    order = sorted(range(len(recs)), key=lambda i: (not recs[i]["label"],
                                                    -recs[i]["width"] * recs[i]["height"],
                                                    recs[i]["package"], recs[i]["path"]))
    recs[:] = [recs[i] for i in order]
    by_sha, kept = {}, []
    for r in recs:
        if r["sha256"] in by_sha:
            r["duplicate_of"] = by_sha[r["sha256"]]
        else:
            by_sha[r["sha256"]] = f"{r['package']}:{r['path']}"
            kept.append(r)
    dist = hamming_matrix([r["dhash"] for r in kept]) if kept else np.zeros((0, 0))
    alive = np.ones(len(kept), bool)
    for i in range(len(kept)):
        if not alive[i]:
            continue
        for j in np.nonzero(alive & (dist[i] <= dup_bits))[0]:
            if j > i:
                alive[j] = False
                kept[j]["duplicate_of"] = f"{kept[i]['package']}:{kept[i]['path']}"
                kept[j]["dup_bits"] = int(dist[i, j])
    index = np.nonzero(alive)[0]
    kept = [kept[i] for i in index]
    dist = dist[np.ix_(index, index)]
    uf = _UnionFind(len(kept))
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(dist <= group_bits, 1))):
        uf.union(i, j)
        pairs.append((int(dist[i, j]), kept[i]["path"], kept[j]["path"]))
    first = {}
    for i, r in enumerate(kept):
        if r["group_key"]:
            uf.union(i, first.setdefault(r["group_key"], i))
    for i, r in enumerate(kept):
        root = kept[uf.find(i)]
        name = f"{root['package']}:{root['path']}".encode()
        r["group"] = "g" + hashlib.sha1(name).hexdigest()[:10]
    return kept, pairs
