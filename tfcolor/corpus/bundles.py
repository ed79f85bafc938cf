"""Files inside other files: Qt resource bundles (``.rcc``) and Jigzo puzzles (``.pzl``).

GCompris ships its images inside Qt binary resource bundles (:func:`rcc_members`,
:func:`unpack_rcc`); a Jigzo puzzle holds its photo in a texture atlas next to the cut pieces
(:func:`pzl_photo`, :func:`unpack_pzl`). A source pattern ``BUNDLE!MEMBER`` selects such members
(:func:`unpack_bundle`, by extension).
"""
import io
import json
import os
import re
import struct
import zlib

from PIL import Image


IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


PZL_MEMBER = "image.png"   # the photo of a Jigzo puzzle, as a bundle member


def rcc_members(blob):
    """Yield ``(path, bytes)`` for every file in a Qt binary resource bundle."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset):
        (length,) = struct.unpack_from(">H", blob, names + offset)
        return blob[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, base)
        path = f"{prefix}/{name_at(name_offset)}".lstrip("/") if index else ""
        if flags & 2:  # directory: child count, first child
            count, first = struct.unpack_from(">II", blob, base + 6)
            stack.extend((first + k, path) for k in range(count))
            continue
        (offset,) = struct.unpack_from(">I", blob, base + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4:data + offset + 4 + size]
        if flags & 4:  # zstd-compressed: not used by the bundles read here
            continue
        if flags & 1:  # zlib with a 4-byte length prefix
            payload = zlib.decompress(payload[4:])
        yield path, payload


def unpack_rcc(bundle, dest):
    """Unpack the images of a bundle into ``dest`` once; returns {member path: file}."""
    index = os.path.join(dest, ".members.json")
    if os.path.exists(index) and os.path.getmtime(index) >= os.path.getmtime(bundle):
        with open(index) as f:
            return json.load(f)
    out = {}
    with open(bundle, "rb") as f:
        blob = f.read()
    for member, payload in rcc_members(blob):
        if member.lower().endswith(IMAGE_EXTS):
            target = os.path.join(dest, member)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(payload)
            out[member] = target
    os.makedirs(dest, exist_ok=True)
    with open(index, "w") as f:
        json.dump(out, f)
    return out


def pzl_photo(blob):
    """The photograph of a Jigzo puzzle file as a PIL image.

    Layout (jigzo 0.6): the lines ``PzlF``, version, name, URL, map name and map size, the map
    text (``cropNNN ...`` piece lines and ``image X Y W H ...``: where the whole photo lies in
    the atlas), then files, each as a name line, a size line and the bytes: a thumbnail
    ``NAME-t.jpg``, the piece mask ``NAME.png`` and the atlas ``NAME.jpg``.
    """
    if not blob.startswith(b"PzlF\n"):
        raise ValueError("not a Jigzo puzzle (no 'PzlF' magic)")
    pos, lines = 0, []
    for _ in range(6):
        end = blob.index(b"\n", pos)
        lines.append(blob[pos:end].decode("latin-1").strip())
        pos = end + 1
    name, map_size = lines[2], int(lines[5])
    text = blob[pos:pos + map_size].decode("latin-1")
    pos += map_size
    m = re.search(r"^image\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text, re.M)
    if not m:
        raise ValueError("Jigzo puzzle without an 'image' line in its map")
    x, y, w, h = (int(v) for v in m.groups())
    if w > 64 and h > 64:   # the atlas draws a dark frame around the photo: cut it off
        x, y, w, h = x + 3, y + 3, w - 6, h - 6
    files = {}
    while pos < len(blob):
        end = blob.index(b"\n", pos)
        member = blob[pos:end].decode("latin-1").strip()
        end2 = blob.index(b"\n", end + 1)
        size = int(blob[end + 1:end2])
        files[member] = blob[end2 + 1:end2 + 1 + size]
        pos = end2 + 1 + size
    if name + ".jpg" not in files:
        raise ValueError(f"Jigzo puzzle without its atlas {name}.jpg")
    atlas = Image.open(io.BytesIO(files[name + ".jpg"])).convert("RGB")
    if x + w > atlas.width or y + h > atlas.height or w < 1 or h < 1:
        raise ValueError(f"image region {x},{y} {w}x{h} outside the {atlas.size} atlas")
    return atlas.crop((x, y, x + w, y + h))


def unpack_pzl(puzzle, dest):
    """Write the photo of a Jigzo puzzle to ``dest/image.png`` once; returns {member: file}."""
    target = os.path.join(dest, PZL_MEMBER)
    if not (os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(puzzle)):
        with open(puzzle, "rb") as f:
            im = pzl_photo(f.read())
        os.makedirs(dest, exist_ok=True)
        tmp = target + ".tmp"
        im.save(tmp, format="PNG")
        os.replace(tmp, target)
    return {PZL_MEMBER: target}


def unpack_bundle(bundle, dest):
    """Members of a bundle file: a Qt resource bundle or a Jigzo puzzle (by extension)."""
    return unpack_pzl(bundle, dest) if bundle.endswith(".pzl") else unpack_rcc(bundle, dest)
