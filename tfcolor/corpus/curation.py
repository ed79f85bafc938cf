"""Telling photographs from drawings: image statistics, filters and contact sheets.

Each candidate is loaded (EXIF-rotated; transparency cropped away or laid on grey,
:func:`load_image`), measured on a nearest-neighbour thumbnail of at most 256 x 256 pixels
(:func:`measure`: colourfulness, distinct 5-bit colours, flat fraction, top-8 colour coverage)
and rejected for the reasons of :func:`reject_reasons` under a :class:`FilterConfig`;
:func:`analyse` (the worker of the build) hashes, measures and normalises one candidate, cached
by sha256. :func:`contact_sheet` draws the sheets the curation was decided on.
"""
import dataclasses
import hashlib
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from tfcolor.corpus.dedup import dhash
from tfcolor.corpus.packages import name_match
from tfcolor.corpus.sources import CURATED_DROP, CURATED_KEEP


Image.MAX_IMAGE_PIXELS = None   # the corpus's own files: no decompression-bomb limit
GREY_BACKGROUND = (128, 128, 128)


def _opaque_rows(alpha):
    """(top, bottom) of the longest run of rows that are >= 99% opaque, or None."""
    good = (alpha >= 250).mean(1) >= 0.99
    best, start = None, None
    for i, g in enumerate(np.append(good, False)):
        if g and start is None:
            start = i
        elif not g and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def load_image(path, max_side=None, for_label=False):
    """RGB PIL image, EXIF-rotated; transparency cropped away (corpus) or laid on grey (labels).

    Returns (image, original (w, h), transparent fraction after the crop).
    """
    with Image.open(path) as im:
        if max_side and im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))  # DCT-domain downscale of huge JPEGs
        size = im.size
        orientation = im.getexif().get(0x0112, 1)
        im = ImageOps.exif_transpose(im)
        if orientation in (5, 6, 7, 8):
            size = size[::-1]
        if im.mode in ("P", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
        transparent = 0.0
        if im.mode == "RGBA":
            alpha = np.asarray(im.getchannel("A"))
            if not for_label and (alpha < 250).mean() > 0.02:
                rows = _opaque_rows(alpha)
                if rows and rows[1] - rows[0] >= 0.25 * alpha.shape[0]:
                    im = im.crop((0, rows[0], im.size[0], rows[1]))
                    alpha = alpha[rows[0]:rows[1]]
            transparent = float((alpha < 250).mean())
            background = Image.new("RGBA", im.size, GREY_BACKGROUND + (255,))
            im = Image.alpha_composite(background, im)
        return im.convert("RGB"), size, transparent


def thumbnail(im, area=256 * 256):
    """Nearest-neighbour downscale to at most ``area`` pixels (keeps flat fills exactly flat)."""
    w, h = im.size
    s = min(1.0, (area / (w * h)) ** 0.5)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST)
    return np.asarray(im)


def measure(arr):
    """Statistics that separate photographs from drawings (uint8 RGB thumbnail)."""
    a = arr.astype(np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    q = (arr >> 3).astype(np.int32)
    codes = (q[..., 0] << 10 | q[..., 1] << 5 | q[..., 2]).ravel()
    counts = np.bincount(codes, minlength=1 << 15)
    top8 = float(np.sort(counts)[-8:].sum() / codes.size)
    d = arr.astype(np.int16)
    flat = float(((np.abs(d[:-1, :-1] - d[:-1, 1:]).max(-1) == 0)
                  & (np.abs(d[:-1, :-1] - d[1:, :-1]).max(-1) == 0)).mean())
    return dict(colourfulness=round(colourfulness, 2), colours=int((counts > 0).sum()),
                top8=round(top8, 4), flat=round(flat, 4))


@dataclasses.dataclass
class FilterConfig:
    min_side: int = 256
    label_min_side: int = 40
    max_transparent: float = 0.02
    min_colourfulness: float = 8.0
    min_colours: int = 64
    max_flat: float = 0.25
    max_top8: float = 0.75


def _curated(rec, patterns):
    return any(name_match(f"{rec['package']}:{rec['path']}", p) for p in patterns)


def reject_reasons(rec, cfg):
    """Why a measured candidate is not a usable photograph (empty list: keep it).

    Labelled candidates come from folders of photographs (cartoon sub-folders are not listed)
    and are often cut-outs on a white or transparent background, so only the size, emptiness,
    grey and posterisation tests apply to them.
    """
    out = []
    label = bool(rec["label"])
    if min(rec["width"], rec["height"]) < (cfg.label_min_side if label else cfg.min_side):
        out.append("small")
    if rec["transparent"] > (0.9 if label else cfg.max_transparent):
        out.append("alpha")
    if rec["colourfulness"] < cfg.min_colourfulness:
        out.append("grey")
    if rec["colours"] < cfg.min_colours:
        out.append("few_colours")
    if not label and not _curated(rec, CURATED_KEEP):
        if rec["flat"] > cfg.max_flat:
            out.append("flat")
        if rec["top8"] > cfg.max_top8:
            out.append("palette")
    if _curated(rec, CURATED_DROP) or rec.get("curated_out"):
        out.append("curated")
    return out


def analyse(job):
    """Worker: hash, measure and normalise one candidate (cached by sha256 in ``staging``)."""
    rec, staging, max_side = job
    rec = dict(rec)
    try:
        with open(rec["file"], "rb") as f:
            rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        rec.update(error=f"{type(e).__name__}: {e}", width=0, height=0)
        return rec
    key = os.path.join(staging, rec["sha256"][:16] + ("-label" if rec["label"] else ""))
    rec["staged"] = key + ".png"
    if os.path.exists(key + ".json") and os.path.exists(rec["staged"]):
        with open(key + ".json") as f:
            rec.update(json.load(f))
        return rec
    try:
        im, (w, h), transparent = load_image(rec["file"], 2 * max_side, bool(rec["label"]))
    except Exception as e:  # pylint: disable=broad-except  # any decoder error: skip, reported
        rec.update(error=f"{type(e).__name__}: {e}", width=0, height=0)
        return rec
    arr = thumbnail(im)
    stats = dict(width=w, height=h, transparent=round(transparent, 4), **measure(arr),
                 dhash=dhash(arr).tolist())
    s = max_side / min(im.size)
    if s < 1:
        im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                       Image.LANCZOS)
    tmp = f"{key}.{os.getpid()}.tmp"
    im.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, rec["staged"])
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, key + ".json")
    rec.update(stats)
    return rec


def contact_sheet(items, path, cell=128, cols=12):
    """PNG grid of thumbnails, each captioned with its index in ``items`` [(file, caption)]."""
    rows = max(1, -(-len(items) // cols))
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 12)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (file, caption) in enumerate(items):
        with Image.open(file) as im:
            im = im.convert("RGB")
            im.thumbnail((cell, cell))
            x, y = (i % cols) * cell, (i // cols) * (cell + 12)
            sheet.paste(im, (x + (cell - im.size[0]) // 2, y))
            draw.text((x + 2, y + cell), f"{i} {caption}"[:22], fill=(0, 0, 0))
    sheet.save(path)
