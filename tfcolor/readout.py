"""Reading colours off predicted histograms: the network's grid output -> full-resolution RGB.

The network predicts one histogram per output group (``kind`` as in ``tfcolor.targets``) on the
dense grid, ``(B, ceil(H/g), ceil(W/g), D)``. The readout (:func:`readout`, :func:`readout_rgb`),
all TensorFlow ops (eager, ``tf.function``, inside a SavedModel):

1. softmax per group (``from_logits=True``, :func:`split_predictions`) and, optionally, histogram
   transfer (``tfcolor.histogram_transfer``) on the probabilities;
2. a point estimate per grid cell: for ``hue_chroma`` hue = circular expectation
   (``arg z``), chroma = interpolated median, then chromatic fading
   (``tfcolor.estimates.estimate_hue_chroma``); for Lab kinds a and b (expectation of each
   marginal by default, the paper's best for Lab; median / median_bin_centre / mode / sample
   also; the joint 16 x 16 grid has no median);
3. the colour channels are upsampled bilinearly to the full input resolution
   (:func:`upsample_grid`). Grid cell ``(i, j)`` is input pixel ``(i g, j g)`` (the
   ``DenseHypercolumn`` contract), so full-resolution pixel ``y`` reads grid coordinate ``y / g``
   (clamped at the last cell). Hue is circular, so hue and chroma are upsampled as the chroma
   vector ``(C cos 2 pi H, C sin 2 pi H)`` and turned back into hue and chroma (no wrap-around
   artefacts between hue 0.98 and 0.02);
4. recombination with the **full-resolution input lightness**: ``hcl_to_rgb([H, C, gray],
   lightness="mean")`` (chroma reduced where infeasible, ``variant`` paper or released), or for
   Lab ``lab_to_rgb([L*(gray), a, b])``;
5. **lightness matching** (:func:`match_lightness`; ``lightness="exact"``, default): the output
   keeps the input lightness exactly, ``mean(R, G, B) == gray`` at every pixel.
   ``rgb <- gray + s (rgb - mean(rgb))`` with the largest ``s`` in [0, 1] that keeps every channel
   in [0, 1], i.e. colour is desaturated rather than the lightness changed where the prediction
   leaves the gamut. ``lightness="released"`` is the authors' ``match_lightness``:
   ``clip(rgb - mean(rgb) + gray, 0, 1)`` (lightness can drift where it clips); ``lightness=None``
   skips the step (Lab outputs then keep L* of the grey, not the mean).

Defaults are the choices the ECCV 2016 paper finds best: chroma median (linearly interpolated
inside the bin where the cumulative histogram crosses 0.5, the paper's wording;
``chroma_method="median_bin_centre"`` is the released code's bin-centre rule), hue circular
expectation, Lab histograms by expectation ("in Lab, expectation gives the best results"), and
chromatic fading ``fading="released"``, ``min(|z|/eta, 1)``. The paper prints
``max(|z|/eta, 1)``, which never fades (at most a 4% boost) although its text says to
"downweight the chroma" and its table needs fading to beat grey (0.342 without vs 0.343 grey,
0.299 with); that printed form stays available as ``fading="paper"`` (see
``tfcolor.estimates``).

Uncertainty map: normalised hue entropy times chroma, ``H(p_hue) / log K * C`` in [0, 1] (high
where the model is unsure of the hue of a colourful pixel); for Lab kinds the mean normalised
entropy of the a and b histograms (joint: of the joint histogram); zeros for regression.

Samples: ``hue_method="sample"`` / ``chroma_method="sample"`` draw every pixel independently
(``tfcolor.estimates`` inverse CDF; noisy images). ``sample_quantile=u`` instead takes the same
quantile ``u`` of every pixel's histograms (one uniform draw per image, the released code's
"once" mode), which gives spatially coherent alternative colorizations
(``tfcolor.predictors.colorize_image`` with ``samples=n`` uses that with ``n`` draws).

Running a network on images of any size is ``tfcolor.predictors``; reading and writing image
files is ``tfcolor.image_files``.
"""
import math

import tensorflow as tf

from tfcolor import bins as bins_lib
from tfcolor import color
from tfcolor import estimates
from tfcolor import histogram_transfer
from tfcolor.losses import LOSS_KINDS

# loss kind (every one of tfcolor.losses.LOSS_KINDS) -> ((group name, bin spec preset or None
# for regression values), ...)
GROUPS = {
        "hue_chroma": (("hue", "hue"), ("chroma", "chroma")),
        "lab_hist": (("a", "lab_a"), ("b", "lab_b")),
        "lab_joint": (("ab", "lab_ab"),),
        "lab_regression": (("ab", None),),
}
LIGHTNESS_MODES = ("exact", "released", None)
#: Keyword options of :func:`readout` that choose how colours are read off (fixed in a
#: SavedModel's metadata as ``readout_options``; per-call arguments such as ``seed`` excluded).
READOUT_OPTIONS = ("hue_method", "chroma_method", "lab_method", "fading", "eta", "hcl_variant",
                   "lightness")


def _check_kind(kind):
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {LOSS_KINDS}")


def group_sizes(kind):
    """Sizes of the head's output groups for ``kind`` (the default bin specs)."""
    _check_kind(kind)
    return tuple(2 if spec is None else bins_lib.get(spec).num_bins for _, spec in GROUPS[kind])


def split_predictions(predictions, kind="hue_chroma", from_logits=True):
    """Splits the head's output into named groups; softmax if ``from_logits``.

    Args:
        predictions: (..., D) concatenated head output.
        kind: loss kind (see module docstring).
        from_logits: apply a softmax per group (ignored for ``lab_regression``).

    Returns:
        dict group name -> float32 tensor: probabilities (..., K), or (..., 2) a/b values for
        regression.
    """
    sizes = group_sizes(kind)
    predictions = tf.cast(tf.convert_to_tensor(predictions), tf.float32)
    depth = predictions.shape[-1]
    if depth is not None and depth != sum(sizes):
        raise ValueError(f"predictions have {depth} channels but kind={kind!r} needs "
                         f"{sum(sizes)} (groups {sizes}); wrong kind for this model?")
    parts = tf.split(predictions, list(sizes), axis=-1)
    out = {}
    for (name, spec), part in zip(GROUPS[kind], parts):
        if spec is not None and from_logits:
            part = tf.nn.softmax(part, axis=-1)
        out[name] = part
    return out


def upsample_grid(values, size, grid_factor=4, network_size=None, rows=None):
    """Bilinear upsampling of grid maps to full resolution, under the dense-grid convention.

    Grid cell ``(i, j)`` is network-input pixel ``(i g, j g)``. When the network saw the image at
    ``network_size`` instead of ``size`` (shrunk for speed), full-resolution pixel ``y`` is
    network pixel ``(y + 0.5) * H_net / H - 0.5`` first.

    Args:
        values: (B, h, w, C) grid maps.
        size: (H, W) output size (ints or int tensor).
        grid_factor: g.
        network_size: (H_net, W_net) or None (= size).
        rows: ``(start, height)``: only output rows ``start`` to ``start + size[0] - 1`` of an
            image ``height`` rows high (a strip; the same values as those rows of the whole).

    Returns:
        (B, H, W, C) float32.
    """
    values = tf.cast(values, tf.float32)
    size = tf.cast(tf.convert_to_tensor(size), tf.int32)
    net = size if network_size is None else tf.cast(tf.convert_to_tensor(network_size), tf.int32)
    grid_hw = tf.shape(values)[1:3]
    g = float(grid_factor)
    for axis in (1, 2):
        n_out = size[axis - 1]
        n_in = grid_hw[axis - 1]
        pix = tf.cast(tf.range(n_out), tf.float32)
        if rows is not None and axis == 1:
            start, n_out = rows
            pix = tf.cast(tf.range(start, start + size[0]), tf.float32)
        if network_size is not None:
            ratio = tf.cast(net[axis - 1], tf.float32) / tf.cast(n_out, tf.float32)
            pix = tf.maximum((pix + 0.5) * ratio - 0.5, 0.0)
        coord = tf.clip_by_value(pix / g, 0.0, tf.cast(n_in - 1, tf.float32))
        lo = tf.cast(tf.floor(coord), tf.int32)
        hi = tf.minimum(lo + 1, n_in - 1)
        frac = coord - tf.cast(lo, tf.float32)
        shape = [-1, 1, 1] if axis == 1 else [-1, 1]
        frac = tf.reshape(frac, shape)
        values = (tf.gather(values, lo, axis=axis) * (1.0 - frac)
                  + tf.gather(values, hi, axis=axis) * frac)
    return values


def match_lightness(rgb, gray, mode="exact"):
    """Gives ``rgb`` the lightness ``gray`` (mean of R, G, B); see the module docstring.

    Args:
        rgb: (..., 3) float.
        gray: (..., 1) float in [0, 1].
        mode: ``"exact"`` (keep the lightness exactly, desaturate to stay in gamut) or
            ``"released"`` (the authors' ``clip(rgb - mean + gray, 0, 1)``).

    Returns:
        (..., 3) float32 in [0, 1].
    """
    if mode not in ("exact", "released"):
        raise ValueError(f"lightness matching mode must be 'exact' or 'released', got {mode!r}")
    rgb = tf.cast(rgb, tf.float32)
    gray = tf.cast(gray, tf.float32)
    if mode == "released":
        return tf.clip_by_value(rgb - tf.reduce_mean(rgb, axis=-1, keepdims=True) + gray, 0.0, 1.0)
    return histogram_transfer.desaturate_into_gamut(rgb, gray)


def _quantile_value(spec, probs, u):
    """Centre of the first bin whose cumulative probability reaches ``u`` (per-image scalar)."""
    cum = tf.math.cumsum(probs, axis=-1)
    u = tf.reshape(tf.cast(u, tf.float32), [-1] + [1] * (probs.shape.rank - 1))
    index = tf.reduce_sum(tf.cast(cum < u * cum[..., -1:], tf.int32), axis=-1)
    index = tf.minimum(index, spec.num_bins - 1)
    return tf.gather(spec.centers_tensor(), index)


def _normalised_entropy(probs):
    k = probs.shape[-1]
    return estimates.entropy(probs) / math.log(k)


def readout(histograms, gray, *, kind="hue_chroma", grid_factor=4, network_size=None,
            hue_method="expectation", chroma_method="median", lab_method=None,
            fading=estimates.DEFAULT_FADING,
            eta=estimates.DEFAULT_FADING_ETA, hcl_variant="paper", lightness="exact",
            sample_quantile=None, seed=None, rows=None):
    """Grid histograms -> full-resolution RGB and uncertainty (module docstring, steps 2-5).

    Args:
        histograms: dict from :func:`split_predictions` (probabilities at grid resolution).
        gray: (B, H, W, 1) full-resolution grey in [0, 1].
        kind: loss kind of the model.
        grid_factor: g of the prediction grid.
        network_size: (H_net, W_net) the network saw, if the image was shrunk; None = (H, W).
        hue_method: ``"expectation"`` (circular), ``"mode"`` or ``"sample"``.
        chroma_method: ``"median"`` (interpolated, the paper), ``"median_bin_centre"`` (the
            released code), ``"expectation"``, ``"mode"`` or ``"sample"``.
        lab_method: point estimate of Lab histograms; default ``"expectation"`` (the paper's
            best for Lab; ``lab_hist`` also takes the medians).
        fading: chromatic fading, ``"released"`` (default, ``min(|z|/eta, 1)``), ``"paper"``
            (the printed ``max(|z|/eta, 1)``, never fades) or None.
        eta: fading threshold (0.03).
        hcl_variant: ``"paper"`` or ``"released"`` reconstruction (``tfcolor.color.hcl_to_rgb``).
        lightness: ``"exact"``, ``"released"`` or None (module docstring, step 5).
        sample_quantile: None, or a per-image quantile in [0, 1] (scalar or (B,)) replacing every
            point-estimate method by that quantile of the histograms (coherent samples).
        seed: seed of ``"sample"`` methods (int, shape-[2] seed or ``tf.random.Generator``).
        rows: ``(start, height)``: ``gray`` holds rows ``start``... of an image ``height`` rows
            high, and the result is those rows of the whole image's readout (strip-wise
            recombination, ``tfcolor.predictors``; ``"sample"`` methods then need an int seed).

    Returns:
        dict ``rgb`` (B, H, W, 3) float32 in [0, 1] and ``uncertainty`` (B, H, W, 1) in [0, 1].
    """
    _check_kind(kind)
    if lightness not in LIGHTNESS_MODES:
        raise ValueError(f"lightness must be one of {LIGHTNESS_MODES}, got {lightness!r}")
    gray = tf.cast(tf.convert_to_tensor(gray), tf.float32)
    if gray.shape.rank != 4 or gray.shape[-1] not in (1, None):
        raise ValueError(f"gray must have shape (B, H, W, 1), got {gray.shape}")
    size = tf.shape(gray)[1:3]
    maps = grid_maps(histograms, kind=kind, hue_method=hue_method, chroma_method=chroma_method,
                     lab_method=lab_method, fading=fading, eta=eta,
                     sample_quantile=sample_quantile, seed=seed)
    return recombine(maps, gray,
                     lambda t: upsample_grid(t, size, grid_factor, network_size, rows),
                     kind=kind, hcl_variant=hcl_variant, lightness=lightness)


def grid_maps(histograms, *, kind="hue_chroma", hue_method="expectation",
              chroma_method="median", lab_method=None, fading=estimates.DEFAULT_FADING,
              eta=estimates.DEFAULT_FADING_ETA, sample_quantile=None, seed=None,
              uncertainty=True):
    """Step 2 of :func:`readout` at grid resolution (arguments as there): dict ``colour``
    (B, h, w, 2), the chroma vector ``(C cos 2 pi H, C sin 2 pi H)`` for ``hue_chroma``, else
    ``(a, b)``; ``uncertainty`` (B, h, w, 1), or None for regression or ``uncertainty=False``.
    :func:`recombine` turns them into full-resolution colours, whole or strip by strip."""
    _check_kind(kind)
    unc = None
    if kind == "hue_chroma":
        hue_p, chroma_p = histograms["hue"], histograms["chroma"]
        hue_spec, chroma_spec = bins_lib.get("hue"), bins_lib.get("chroma")
        if sample_quantile is not None:
            hue = _quantile_value(hue_spec, hue_p, sample_quantile)
            chroma = _quantile_value(chroma_spec, chroma_p, sample_quantile)
            if fading is not None:
                chroma = estimates.apply_chromatic_fading(chroma, hue_p, eta=eta, variant=fading)
        else:
            hue, chroma = estimates.estimate_hue_chroma(
                    hue_p, chroma_p, hue_method=hue_method, chroma_method=chroma_method,
                    fading=fading, eta=eta, seed=seed)
        chroma = tf.clip_by_value(chroma, 0.0, 1.0)
        angle = 2.0 * math.pi * hue
        colour = tf.stack([chroma * tf.cos(angle), chroma * tf.sin(angle)], axis=-1)
        if uncertainty:
            plain_chroma = estimates.estimate(chroma_spec, chroma_p, "median")
            unc = (_normalised_entropy(hue_p) * plain_chroma)[..., None]
    elif kind == "lab_regression":
        colour = histograms["ab"]
    else:
        if kind == "lab_hist":
            method = lab_method or "expectation"
            parts, ents = [], []
            for name, preset in GROUPS[kind]:
                spec, p = bins_lib.get(preset), histograms[name]
                if sample_quantile is not None:
                    parts.append(_quantile_value(spec, p, sample_quantile))
                else:
                    parts.append(estimates.estimate(spec, p, method, seed=seed))
                if uncertainty:
                    ents.append(_normalised_entropy(p))
            colour = tf.stack(parts, axis=-1)
            ent = 0.5 * (ents[0] + ents[1]) if uncertainty else None
        else:
            method = lab_method or "expectation"
            spec, p = bins_lib.get("lab_ab"), histograms["ab"]
            if sample_quantile is not None:
                index = tf.cast(_quantile_value(
                        bins_lib.UniformBins(spec.num_bins, 0.0, float(spec.num_bins)), p,
                        sample_quantile), tf.int32)
                colour = tf.gather(spec.centers_tensor(), index)
            else:
                colour = estimates.estimate(spec, p, method, seed=seed)
            ent = _normalised_entropy(p) if uncertainty else None
        unc = None if ent is None else ent[..., None]
    return {"colour": colour, "uncertainty": unc}


def recombine(maps, gray, upsample, *, kind="hue_chroma", hcl_variant="paper",
              lightness="exact"):
    """Steps 3-5 of :func:`readout`: :func:`grid_maps` -> colours at the pixels of ``gray``.

    Args:
        maps: :func:`grid_maps` of the image(s).
        gray: (B, H, W, 1) grey of the pixels to colour (the whole image or a strip of it).
        upsample: grid map (B, h, w, C) -> its values at those pixels, (B, H, W, C)
            (:func:`upsample_grid`, or rows of it).
        kind, hcl_variant, lightness: as in :func:`readout`.

    Returns:
        dict ``rgb`` (B, H, W, 3) float32 and ``uncertainty`` (B, H, W, 1) (None when ``maps``
        has none, except for regression: zeros).
    """
    if kind == "hue_chroma":
        vec = upsample(maps["colour"])
        chroma_full = tf.clip_by_value(tf.norm(vec, axis=-1, keepdims=True), 0.0, 1.0)
        hue_full = tf.math.atan2(vec[..., 1:], vec[..., :1]) / (2.0 * math.pi)
        hue_full = hue_full - tf.floor(hue_full)
        rgb = color.hcl_to_rgb(tf.concat([hue_full, chroma_full, gray], axis=-1),
                               lightness="mean", variant=hcl_variant, validate=False)
    else:
        ab_full = upsample(maps["colour"])
        l_star = color.rgb_to_lab(tf.repeat(gray, 3, axis=-1), validate=False)[..., :1]
        rgb = color.lab_to_rgb(tf.concat([l_star, ab_full], axis=-1), validate=False)
    if lightness is not None:
        rgb = match_lightness(rgb, gray, lightness)
    if maps["uncertainty"] is not None:
        uncertainty = upsample(maps["uncertainty"])
    elif kind == "lab_regression":
        uncertainty = tf.zeros_like(gray)
    else:
        uncertainty = None
    if uncertainty is not None:
        uncertainty = tf.clip_by_value(uncertainty, 0.0, 1.0)
    return {"rgb": tf.cast(rgb, tf.float32), "uncertainty": uncertainty}


def readout_rgb(predictions, gray, *, kind="hue_chroma", grid_factor=4, from_logits=True,
                **kwargs):
    """The whole readout as one call: head output on the grid -> full-resolution RGB.

    Args:
        predictions: (B, ceil(H/g), ceil(W/g), D), e.g. ``model.dense(gray, grid_factor=g)``.
        gray: (B, H, W, 1) full-resolution grey in [0, 1].
        kind, grid_factor: as in :func:`readout`.
        from_logits: ``predictions`` are logits (True) or probabilities.
        **kwargs: readout options of :func:`readout` (:data:`READOUT_OPTIONS`, ``network_size``,
            ``sample_quantile``, ``seed``).

    Returns:
        (B, H, W, 3) float32 RGB in [0, 1].
    """
    histograms = split_predictions(predictions, kind, from_logits)
    return readout(histograms, gray, kind=kind, grid_factor=grid_factor, **kwargs)["rgb"]
