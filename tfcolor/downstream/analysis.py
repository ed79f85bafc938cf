"""Analysis of transferred features: feature shift and top activations.

Feature shift (Larsson et al., CVPR 2017, "how much do features change during fine-tuning"):
for every tap (layer) and every unit (channel), the Pearson correlation between the unit's
activations before and after fine-tuning, over all spatial positions of a set of images. A
correlation near 1 means the unit still computes what it computed after pretraining; the
table reports, per layer, the median and the interquartile range (25th and 75th percentiles)
over units. Units that are constant in either network (zero variance, e.g. dead ReLUs) have no
correlation and are counted separately (``dead``). Both trunks must have the same taps and
channel counts (e.g. the pretrained trunk after BN absorption and the fine-tuned one).

Top activations: for chosen units of a tap, the ``k`` image patches that activate them most:
the receptive field of the feature-map cell with the largest activation, cropped from the input
image (clamped at the borders) and resized to a common size, written as a PNG grid (a row per
unit). Receptive fields come from the trunk's layer graph (kernel sizes, strides, dilations of
convolutions and poolings; the maximum over branches).
"""
import math

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw


def _features(trunk, images, batch_size=16):
    """{tap: list of (B, h, w, C) float64 arrays} in inference mode."""
    images = np.asarray(images, np.float32)
    out = {}
    for start in range(0, len(images), batch_size):
        maps = trunk(images[start:start + batch_size], training=False)
        for name, value in maps.items():
            out.setdefault(name, []).append(np.asarray(value, np.float64))
    return out


def feature_shift(trunk_before, trunk_after, images, taps=None, batch_size=16):
    """Per-layer correlation of unit activations before and after fine-tuning.

    Args:
        trunk_before, trunk_after: trunks (images -> {tap: map}) with the same taps.
        images: (N, H, W, C) inputs both trunks accept (float in [0, 1]).
        taps: taps to analyse (default: the common outputs except ``data``).
        batch_size: evaluation batch size.

    Returns:
        A list of rows ``{"layer", "units", "dead", "median", "q25", "q75",
        "correlations"}`` in the trunk's tap order.
    """
    before = _features(trunk_before, images, batch_size)
    after = _features(trunk_after, images, batch_size)
    names = [t for t in before if t in after and t != "data"] if taps is None else list(taps)
    rows = []
    for name in names:
        if name not in before or name not in after:
            raise ValueError(f"tap {name!r} is not an output of both trunks.")
        a = np.concatenate([m.reshape(-1, m.shape[-1]) for m in before[name]])
        b = np.concatenate([m.reshape(-1, m.shape[-1]) for m in after[name]])
        if a.shape != b.shape:
            raise ValueError(f"tap {name!r} has shape {a.shape} before and {b.shape} after "
                             f"fine-tuning; the trunks must match.")
        a = a - a.mean(axis=0)
        b = b - b.mean(axis=0)
        denominator = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
        live = denominator > 1e-12
        corr = (a * b).sum(axis=0)[live] / denominator[live]
        q25, median, q75 = (np.percentile(corr, [25, 50, 75]) if corr.size
                            else (float("nan"),) * 3)
        rows.append({"layer": name, "units": int(a.shape[1]), "dead": int((~live).sum()),
                     "median": float(median), "q25": float(q25), "q75": float(q75),
                     "correlations": corr.tolist()})
    return rows


def format_table(rows):
    """Markdown table of :func:`feature_shift` rows."""
    lines = ["| layer | units | dead | median corr. | IQR (q25 - q75) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['units']} | {r['dead']} | {r['median']:.3f} | "
                     f"{r['q25']:.3f} - {r['q75']:.3f} |")
    return "\n".join(lines)


def plot_feature_shift(rows, path, size=(640, 360), title="Feature shift after fine-tuning"):
    """PNG plot: per layer the median correlation (dot) and the interquartile range (bar)."""
    width, height = size
    left, right, top, bottom = 50, 20, 30, 70
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black")
    y0, y1 = height - bottom, top

    def y_of(v):  # correlation in [-1, 1] -> pixel row
        v = min(max(v, -1.0), 1.0)
        return y0 + (v + 1.0) / 2.0 * (y1 - y0)

    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        y = y_of(v)
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((5, y - 6), f"{v:+.1f}", fill="black")
    n = max(len(rows), 1)
    step = (width - left - right) / n
    for i, r in enumerate(rows):
        x = left + (i + 0.5) * step
        if not math.isnan(r["median"]):
            draw.line([(x, y_of(r["q25"])), (x, y_of(r["q75"]))], fill=(70, 110, 200), width=5)
            m = y_of(r["median"])
            draw.ellipse([x - 4, m - 4, x + 4, m + 4], fill=(200, 40, 40))
        label = r["layer"]
        draw.text((x - 3 * len(label), y0 + 8 + 12 * (i % 3)), label, fill="black")
    image.save(path)
    return path


def receptive_fields(model):
    """{layer name: (receptive field size, stride (jump))} from a functional model's graph."""
    config = model.get_config()
    rf = {}
    for layer_config in config["layers"]:
        name = layer_config["name"]
        parents = []

        def collect(obj):
            if isinstance(obj, dict):
                if "keras_history" in obj.get("config", {}):
                    parents.append(obj["config"]["keras_history"][0])
                    return
                for v in obj.values():
                    collect(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj:
                    collect(v)

        collect(layer_config.get("inbound_nodes", []))
        size, jump = (1, 1)
        if parents:
            size = max(rf[p][0] for p in parents if p in rf)
            jump = max(rf[p][1] for p in parents if p in rf)
        layer = model.get_layer(name)
        kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        strides = getattr(layer, "strides", None)
        if kernel is not None:
            k = int(kernel[0]) if isinstance(kernel, (tuple, list)) else int(kernel)
            s = int(strides[0]) if isinstance(strides, (tuple, list)) else int(strides or k)
            d = getattr(layer, "dilation_rate", (1,))
            d = int(d[0]) if isinstance(d, (tuple, list)) else int(d)
            size = size + (k - 1) * d * jump
            jump = jump * s
        if isinstance(layer, keras.Model):
            inner = receptive_fields(layer)
            last = list(inner.values())[-1]
            size, jump = size + (last[0] - 1) * jump, jump * last[1]
        rf[name] = (size, jump)
    return rf


def _tap_layer(trunk, tap):
    """Name of the layer producing output ``tap``."""
    tensor = trunk.output[tap]
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history is not None else tap


def top_activations(trunk, images, tap, units, k=8, path=None, patch_size=48, batch_size=16,
                    display_images=None):
    """Patches of ``images`` that most activate ``units`` of ``tap`` (see module docstring).

    Args:
        trunk: images -> {tap: map}.
        images: (N, H, W, C) network inputs in [0, 1].
        tap: the tap (layer) to analyse.
        units: channel indices.
        k: patches per unit (at most one per image).
        path: where to write the PNG grid (None: no file).
        patch_size: side of each patch in the grid.
        batch_size: evaluation batch size.
        display_images: (N, H, W, 1 or 3) images to crop from (default: ``images``), e.g. the
            colour originals of grey inputs.

    Returns:
        ``(grid, records)``: uint8 grid (rows = units) and per unit a list of
        ``(activation, image index, y0, x0, y1, x1)``.
    """
    images = np.asarray(images, np.float32)
    shown = np.asarray(images if display_images is None else display_images, np.float32)
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    if tap not in trunk.output:
        raise ValueError(f"{tap!r} is not a trunk output; outputs: {list(trunk.output)}.")
    maps = np.concatenate(_features(trunk, images, batch_size)[tap])
    channels = maps.shape[-1]
    bad = [u for u in units if not 0 <= int(u) < channels]
    if bad:
        raise ValueError(f"units {bad} out of range for {tap!r} with {channels} channels.")
    rf = receptive_fields(trunk)
    size, jump = rf.get(_tap_layer(trunk, tap), (1, 1))
    h, w = images.shape[1:3]
    rows, records = [], []
    for unit in units:
        per_image = maps[..., int(unit)].reshape(len(maps), -1)
        best_pos = per_image.argmax(axis=1)
        best_val = per_image.max(axis=1)
        order = np.argsort(-best_val)[:k]
        patches, rec = [], []
        for idx in order:
            cy, cx = divmod(int(best_pos[idx]), maps.shape[2])
            y, x = cy * jump, cx * jump  # the released convention: cell k at pixel k * stride
            y0, x0 = max(0, y - size // 2), max(0, x - size // 2)
            y1, x1 = min(h, y + size // 2 + 1), min(w, x + size // 2 + 1)
            crop = shown[idx, y0:y1, x0:x1]
            patch = tf.image.resize(crop, (patch_size, patch_size), method="nearest").numpy()
            patches.append(patch)
            rec.append((float(best_val[idx]), int(idx), y0, x0, y1, x1))
        while len(patches) < k:
            patches.append(np.ones((patch_size, patch_size, 3), np.float32))
        rows.append(np.concatenate([np.pad(p, ((1, 1), (1, 1), (0, 0)), constant_values=1.0)
                                    for p in patches], axis=1))
        records.append(rec)
    grid = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    if path is not None:
        Image.fromarray(grid).save(path)
    return grid, records
