"""Video frames with their optical flow, and the relative-flow pairs of the video proxy task.

The video proxy of chapter 4 of Larsson's thesis (METHOD_CH4.md §8.5.1 "Video (V)"): Farnebäck
optical flow is attached to a frame; pairs of locations are sampled on the frame (the first
uniformly, the second at a Gaussian offset from the first), and the network predicts, from the
frame alone, into which of 32 bins the amplitude of the pair's *relative* flow falls:
``|| flow(second) - flow(first) ||``. Relative flow does not see a camera translation.

Two halves:

**Offline (NumPy + OpenCV): frames and flow into TFRecords.** TensorFlow has no optical-flow
op, and the flow of a frame never changes, so it is computed once, when a corpus is built
(``tools/build_video_corpus.py``), with OpenCV's Farnebäck implementation: :func:`read_frames`
decodes a video (any file or image-sequence pattern ``cv2.VideoCapture`` opens) and scales it to
a short side (:data:`DEFAULT_SHORT_SIDE`, 160 pixels); :func:`farneback_flow` gives the flow
from frame ``t`` to frame ``t + stride`` (:class:`FarnebackParams`, :data:`DEFAULT_STRIDE`);
:func:`clip_examples` and :func:`write_records` store one ``tf.train.Example`` per frame
(:func:`encode_example`: the frame as PNG, the flow as float16 raw bytes, its shape, the clip
and frame number). OpenCV is an optional dependency (``pip install 'tfcolor[video]'``) imported
only by the functions that need it. :func:`synthetic_clip` makes frames whose flow is known
exactly (textured squares translated over a textured background), for tests and examples that
need no video download.

**Online (TensorFlow ops only): the training pairs.** :func:`video_dataset` reads the records
(:class:`tfcolor.data.sources.TFRecordSource`: shuffling, repetition, file sharding) and yields
batches ``{"frame": (B, S, S, 3), "first", "second": (B, P, 2) float32 (y, x), "label": (B, P)
int32, "index": (B,) int64}``. Per frame (:func:`augment_example`):

1. the short side is scaled to an integer drawn from ``[min_side, max_side]`` of the
   :class:`tfcolor.config.DataConfig` and an ``S x S`` crop (``crop_size``) is cut: frame and
   flow in one resampling op (:func:`tfcolor.data.stages.scale_crop`), the flow multiplied by
   the scale so that it stays in the crop's pixels;
2. a random horizontal mirror flips the frame and the flow *and negates the flow's x
   component*, so the flow stays the motion of the mirrored frame;
3. ``points`` pairs (:func:`sample_pairs`): first locations uniform over the crop (at least
   ``edge_buffer`` from its border; pixel centres); second locations at independent zero-mean
   Gaussian offsets in y and x with standard deviation ``offset_stddev * S`` (released code:
   0.2), kept inside the crop (``border``);
4. the label (:func:`relative_amplitude`, :func:`bin_labels`): the flow is read bilinearly at
   both locations, the norm of the difference is binned by the ``bins - 1`` increasing inner
   edges of :func:`load_bin_edges` (values below the first edge are bin 0, above the last the
   last bin: the clamp).

Randomness is stateless and keyed by ``(seed, index)``, ``index`` being the element's position
in the record stream (as :func:`tfcolor.data.pretrain_dataset` does): a pipeline rebuilt at
``start`` yields exactly the tail of the stream from 0, so the trainer resumes exactly.

Flow layout: ``(H, W, 2)`` float with channel 0 the vertical displacement ``dy`` and channel 1
the horizontal ``dx``, in pixels, the library's (y, x) order (OpenCV's is (x, y)).

Bins (:func:`tanh_edges`, :func:`quantile_edges`): the thesis gives 32 bins and no range. The
default is fitted on the training split of the corpus under the default sampling
(:func:`fit_bin_edges`, written by the corpus builder to ``flow_bins.json``): bin 0 holds every
relative amplitude below :data:`DEFAULT_FLOOR` (0.1 pixel, where Farnebäck's estimate is noise),
and the other 31 bins equal shares of the amplitudes above it, so every class above the floor is
as frequent as the next whatever the corpus' frame size, frame rate and stride (a fixed pixel
range would put most pairs of a slow corpus in a few bins). The released code's binning,
``floor(32 tanh(amplitude))`` (about linear up to 1 pixel, the last bin above 2 pixels), is
:func:`tanh_edges` and the fallback for records without fitted bins.
"""
import dataclasses
import json
import logging
import math
import os
import random

import numpy as np
import tensorflow as tf

import tfcolor.data.decode as decode_lib
import tfcolor.data.sources as sources_lib
import tfcolor.data.stages as stages
from tfcolor import config as config_lib
from tfcolor import layers
from tfcolor.config import ConfigError
from tfcolor.data import pretrain

__all__ = ["DEFAULT_SHORT_SIDE", "DEFAULT_STRIDE", "DEFAULT_FRAME_STEP", "DEFAULT_BINS",
           "DEFAULT_OFFSET_STDDEV", "DEFAULT_FLOOR", "BORDERS", "BINS_FILE", "FEATURES",
           "FarnebackParams",
           "import_cv2", "read_frames", "farneback_flow", "clip_examples", "encode_example",
           "write_records", "synthetic_clip", "parse_example", "tanh_edges", "quantile_edges",
           "load_bin_edges", "write_bin_edges", "sample_pairs", "read_flow",
           "relative_amplitude", "bin_labels", "augment_example", "video_dataset",
           "fit_bin_edges"]

_LOG = logging.getLogger("tfcolor.data")

#: Short side the frames are stored at (pixels): CPU-scale, a small trunk sees 128-pixel crops.
DEFAULT_SHORT_SIDE = 160
#: Frames between the two frames of the flow: flow(t -> t + 3). The released code averages the
#: flows of three consecutive frame pairs (a 3-frame window); one flow over the same window has
#: the same motion and, at 160 pixels where per-frame motion is mostly below a pixel, a better
#: signal-to-noise ratio.
DEFAULT_STRIDE = 3
#: Every ``DEFAULT_FRAME_STEP``-th frame of a clip gets an example (neighbours are near copies).
DEFAULT_FRAME_STEP = 5
#: Bins of the relative-flow amplitude (thesis: 32).
DEFAULT_BINS = 32
#: Relative-flow amplitudes below this many pixels are one bin (bin 0) of the fitted bins:
#: Farnebäck's error on static, well-textured frames is about 0.02 pixels and real frames add
#: sensor noise and compression; half the relative amplitudes of the corpus fall below 0.1
#: pixels, and plain quantile bins would spend 16 of 32 classes telling noise levels apart.
DEFAULT_FLOOR = 0.1
#: Standard deviation of the second location's offset as a fraction of the crop side (released
#: code: ``sampling_stddev=0.2`` of the input size; not in the thesis).
DEFAULT_OFFSET_STDDEV = 0.2
#: How a second location that would leave the crop is kept inside: ``"truncate"`` draws the
#: Gaussian offset conditioned on staying inside (per axis, by the inverse CDF), ``"clip"``
#: clamps it to the border (the released code reads the flow at clamped coordinates).
BORDERS = ("truncate", "clip")
#: File of fitted bin edges next to a corpus' records (JSON: {"edges": [...], ...}).
BINS_FILE = "flow_bins.json"

#: Features of one record.
FEATURES = {
    "frame": tf.io.FixedLenFeature([], tf.string),      # PNG or JPEG, RGB
    "flow": tf.io.FixedLenFeature([], tf.string),       # float16 raw, (height, width, 2) (dy, dx)
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "clip": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "frame_index": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "stride": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


@dataclasses.dataclass(frozen=True)
class FarnebackParams:
    """``cv2.calcOpticalFlowFarneback`` parameters.

    Defaults: the released code's (pyramid scale 0.5, 10 iterations, polynomial neighbourhood
    5 with sigma 1.1, Gaussian window), with the window and the pyramid scaled to 160-pixel
    frames: the released window of 40 pixels was for frames of about 400 pixels (15 here), and
    4 levels keep the coarsest level at 10 pixels (8 levels would go below one pixel; OpenCV
    stops early anyway).
    """
    pyr_scale: float = 0.5
    levels: int = 4
    winsize: int = 15
    iterations: int = 10
    poly_n: int = 5
    poly_sigma: float = 1.1
    gaussian: bool = True


def import_cv2():
    """The ``cv2`` module, or an ImportError saying how to install it."""
    try:
        # optional: cv2 (the 'video' extra, opencv-python-headless)
        import cv2  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ImportError("optical flow needs OpenCV: pip install 'tfcolor[video]' (or pip "
                          "install opencv-python-headless)") from err
    return cv2


def _resize_short(frame, short_side, cv2):
    h, w = frame.shape[:2]
    if short_side is None or min(h, w) == short_side:
        return frame
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 takes (width, height)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interp)


def read_frames(path, short_side=DEFAULT_SHORT_SIDE, max_frames=None):
    """Every frame of a video as RGB uint8 (T, H, W, 3), the short side scaled to
    ``short_side`` (None: as decoded).

    Args:
        path: a video file or an image-sequence pattern (``"dir/image.%04d.pgm"``): anything
            ``cv2.VideoCapture`` opens.
        short_side: the short side of the returned frames (area interpolation when shrinking).
        max_frames: stop after this many frames.

    Raises:
        ImportError: OpenCV is missing. ValueError: nothing could be decoded.
    """
    cv2 = import_cv2()
    capture = cv2.VideoCapture(os.fspath(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(_resize_short(frame[..., ::-1], short_side, cv2))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"no frame could be decoded from {os.fspath(path)!r}")
    return np.ascontiguousarray(np.stack(frames))


def farneback_flow(first, second, params=FarnebackParams()):
    """Dense Farnebäck flow from ``first`` to ``second`` (RGB or grey uint8 frames of one size):
    (H, W, 2) float32, channel 0 ``dy``, channel 1 ``dx``, in pixels, on ``first``'s grid
    (``first[y, x]`` moved to ``second[y + dy, x + dx]``)."""
    cv2 = import_cv2()

    def grey(frame):
        frame = np.asarray(frame)
        if frame.ndim == 3:
            frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(frame.astype(np.uint8))

    a, b = grey(first), grey(second)
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape} and {b.shape}")
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if params.gaussian else 0
    flow = cv2.calcOpticalFlowFarneback(a, b, None, params.pyr_scale, params.levels,
                                        params.winsize, params.iterations, params.poly_n,
                                        params.poly_sigma, flags)
    return np.ascontiguousarray(flow[..., ::-1], dtype=np.float32)


def clip_examples(frames, *, stride=DEFAULT_STRIDE, frame_step=DEFAULT_FRAME_STEP,
                  params=FarnebackParams(), flows=None):
    """``(t, frame_t, flow(t -> t + stride))`` for ``t = 0, frame_step, ...`` while ``t +
    stride`` is a frame of the clip. ``flows``: a function ``t -> flow`` instead of Farnebäck
    (e.g. the exact flow of :func:`synthetic_clip`)."""
    frames = np.asarray(frames)
    for name, value in (("stride", stride), ("frame_step", frame_step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for t in range(0, len(frames) - stride, frame_step):
        flow = flows(t) if flows is not None else farneback_flow(frames[t], frames[t + stride],
                                                                  params)
        yield t, frames[t], flow


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(frame, flow, *, clip="", frame_index=-1, stride=0, image_format="png"):
    """One serialized ``tf.train.Example`` (:data:`FEATURES`): an RGB uint8 frame (H, W, 3)
    and its flow (H, W, 2) (stored as float16: 1/1024-pixel steps below one pixel, far below
    Farnebäck's error)."""
    frame = np.asarray(frame)
    flow = np.asarray(flow)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    if flow.shape != frame.shape[:2] + (2,):
        raise ValueError(f"flow must be (H, W, 2) = {frame.shape[:2] + (2,)}, got {flow.shape}")
    if image_format == "png":
        encoded = tf.io.encode_png(frame).numpy()
    elif image_format == "jpeg":
        encoded = tf.io.encode_jpeg(frame, quality=95).numpy()
    else:
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
    features = {
        "frame": _bytes(encoded),
        "flow": _bytes(np.ascontiguousarray(flow, dtype="<f2").tobytes()),
        "height": _int(frame.shape[0]), "width": _int(frame.shape[1]),
        "clip": _bytes(str(clip).encode()), "frame_index": _int(frame_index),
        "stride": _int(stride),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)  # the same bytes in every process


def write_records(path, examples):
    """Writes serialized examples to the TFRecord file ``path`` atomically (a temporary file
    renamed at the end, so an interrupted build leaves no partial file); returns their count."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for serialized in examples:
                writer.write(serialized)
                count += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count


def _texture(rng, height, width, scale):
    """Smooth random RGB texture in [0, 1]: white noise blurred by a Gaussian of standard
    deviation ``scale / 2`` pixels (circularly, by FFT), stretched to [0, 1] per channel.
    Smooth with curvature everywhere, as Farnebäck's quadratic expansion needs (bilinearly
    upsampled noise is flat between its nodes)."""
    noise = rng.normal(size=(height, width, 3))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    sigma = scale / 2.0
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))[..., None]
    smooth = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * kernel, axes=(0, 1)))
    lo, hi = smooth.min(axis=(0, 1)), smooth.max(axis=(0, 1))
    return (smooth - lo) / np.maximum(hi - lo, 1e-12)


def synthetic_clip(num_frames=8, height=64, width=64, *, objects=2, object_size=20,
                   max_speed=2.0, background_speed=(0.0, 0.0), seed=0):
    """A clip with exactly known flow: textured squares moving at constant integer-free
    velocities over a textured background that moves at ``background_speed`` (dy, dx).

    The background is a smooth coarse colour texture, the squares a finer, more saturated one,
    so what moves can be told from how it looks. Frames are rendered by sampling the textures at
    sub-pixel positions (bilinear), so motion is exact.

    Returns:
        ``(frames, flow)``: uint8 RGB (T, H, W, 3) and ``flow(t)``, a function giving the exact
        (H, W, 2) flow (dy, dx) from frame ``t`` to frame ``t + s`` for any stride ``s`` through
        ``flow(t, s)`` (default ``s = 1``): each pixel's displacement is that of the layer
        (square or background) visible there in frame ``t``.
    """
    rng = np.random.default_rng(seed)
    pad = int(math.ceil(max(abs(v) for v in background_speed) * num_frames)) + 2
    big_h, big_w = height + 2 * pad, width + 2 * pad
    background = 0.15 + 0.7 * _texture(rng, big_h + 2, big_w + 2, 8)
    textures, starts, speeds = [], [], []
    for _ in range(objects):
        tex = _texture(rng, object_size + 2, object_size + 2, 3)
        tint = rng.uniform(0, 1, 3)
        textures.append(np.clip(0.5 * tex + 0.5 * tint * (tex > 0.5), 0, 1))
        starts.append(rng.uniform([0, 0], [height - object_size, width - object_size]))
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.5, 1.0) * max_speed
        speeds.append(np.array([np.sin(angle), np.cos(angle)]) * speed)
    bg_speed = np.asarray(background_speed, np.float64)

    def sample(image, ys, xs):
        y0 = np.clip(np.floor(ys).astype(int), 0, image.shape[0] - 2)
        x0 = np.clip(np.floor(xs).astype(int), 0, image.shape[1] - 2)
        fy = np.clip(ys - y0, 0, 1)[..., None]
        fx = np.clip(xs - x0, 0, 1)[..., None]
        return ((1 - fy) * (1 - fx) * image[y0, x0] + (1 - fy) * fx * image[y0, x0 + 1]
                + fy * (1 - fx) * image[y0 + 1, x0] + fy * fx * image[y0 + 1, x0 + 1])

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)

    def layers(t):
        """Frame t and, per pixel, the index of the visible layer (-1: background)."""
        off = bg_speed * t
        frame = sample(background, yy - off[0] + pad, xx - off[1] + pad)
        owner = np.full((height, width), -1)
        for k, (tex, start, v) in enumerate(zip(textures, starts, speeds)):
            top = start + v * t
            ly, lx = yy - top[0], xx - top[1]
            inside = (ly >= 0) & (ly < object_size - 1) & (lx >= 0) & (lx < object_size - 1)
            frame = np.where(inside[..., None], sample(tex, ly, lx), frame)
            owner = np.where(inside, k, owner)
        return frame, owner

    frames = []
    owners = []
    for t in range(num_frames):
        frame, owner = layers(t)
        frames.append(np.round(frame * 255).astype(np.uint8))
        owners.append(owner)

    def flow(t, stride=1):
        out = np.empty((height, width, 2), np.float32)
        out[...] = bg_speed * stride
        for k, v in enumerate(speeds):
            out[owners[t] == k] = v * stride
        return out

    return np.stack(frames), flow


# ----------------------------------------------------------------------------------------------
# Bins.


def _check_bins(bins):
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")


def tanh_edges(bins=DEFAULT_BINS, scale=1.0):
    """The released code's bins as ``bins - 1`` inner edges: ``floor(bins * tanh(a / scale))``,
    i.e. edges ``scale * atanh(k / bins)``, k = 1..bins-1 (``scale``: amplitude units, pixels)."""
    _check_bins(bins)
    k = np.arange(1, bins, dtype=np.float64)
    return (scale * np.arctanh(k / bins)).astype(np.float32)


def quantile_edges(amplitudes, bins=DEFAULT_BINS, floor=DEFAULT_FLOOR):
    """Inner edges from amplitudes: bin 0 is everything below ``floor`` (the clamp at the
    bottom: differences Farnebäck cannot resolve are one class), and the other ``bins - 1``
    bins hold equal shares of the amplitudes at or above it (their quantiles ``k / (bins -
    1)``). ``floor=0``: plain quantiles ``k / bins`` of all amplitudes. Edges are made strictly
    increasing (a tie moves the next edge up by the smallest float32 step)."""
    _check_bins(bins)
    a = np.asarray(amplitudes, np.float64).ravel()
    a = a[np.isfinite(a)]
    if floor:
        a = a[a >= floor]
        qs = np.arange(1, bins - 1) / (bins - 1)
    else:
        qs = np.arange(1, bins) / bins
    if a.size < bins:
        raise ValueError(f"need at least {bins} amplitudes (at or above floor={floor}) to fit "
                         f"{bins} bins, got {a.size}")
    edges = np.quantile(a, qs).astype(np.float32)
    if floor:
        edges = np.concatenate([[np.float32(floor)], edges])
    for i in range(1, len(edges)):
        if edges[i] <= edges[i - 1]:
            edges[i] = np.nextafter(edges[i - 1], np.float32(np.inf))
    return edges


def write_bin_edges(path, edges, **info):
    """Writes fitted edges (and ``info``: how they were fitted) to a JSON file."""
    edges = np.asarray(edges, np.float32)
    with open(path, "w") as f:
        json.dump(dict(info, bins=len(edges) + 1, edges=[float(e) for e in edges]), f, indent=1)


def load_bin_edges(data, bins=DEFAULT_BINS):
    """The inner bin edges for records ``data`` (a file, folder or glob; of a list, the first):
    the fitted ``flow_bins.json`` in the records' folder or the folder above it (a corpus keeps
    one for its splits), else :func:`tanh_edges` (the released code's bins, logged). Returns
    ``(edges, where)``."""
    candidates = []
    if isinstance(data, (list, tuple)) and data:
        data = data[0]
    if isinstance(data, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(data))
        folder = path if os.path.isdir(path) else os.path.dirname(path.split("*", 1)[0])
        candidates = [os.path.join(folder, BINS_FILE),
                      os.path.join(os.path.dirname(folder.rstrip(os.sep)), BINS_FILE)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            with open(candidate) as f:
                edges = np.asarray(json.load(f)["edges"], np.float32)
            if len(edges) + 1 != bins:
                raise ValueError(f"{candidate} holds {len(edges) + 1} bins, not {bins}")
            return edges, candidate
    _LOG.info("tfcolor.data: no %s next to %r; relative flow binned by the released code's "
              "tanh bins", BINS_FILE, data)
    return tanh_edges(bins), "tanh"


# ----------------------------------------------------------------------------------------------
# Pairs and labels (TensorFlow ops).


def sample_pairs(seed, crop_size, points, *, offset_stddev=DEFAULT_OFFSET_STDDEV,
                 edge_buffer=0, border="truncate"):
    """``(first, second)``, each (points, 2) float32 (y, x) inside ``[0, crop_size - 1]``.

    First locations are pixel centres drawn uniformly from ``[edge_buffer, crop_size -
    edge_buffer)`` per axis; second locations add independent N(0, (offset_stddev *
    crop_size)^2) offsets per axis, kept inside the crop as :data:`BORDERS` says.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    first = tf.cast(tf.random.stateless_uniform([points, 2], seeds[0], edge_buffer,
                                                crop_size - edge_buffer, dtype=tf.int32),
                    tf.float32)
    sigma = float(offset_stddev) * crop_size
    top = float(crop_size - 1)
    if sigma <= 0:
        return first, first
    if border == "clip":
        offset = tf.random.stateless_normal([points, 2], seeds[1], stddev=sigma)
        return first, tf.clip_by_value(first + offset, 0.0, top)
    # Truncated normal by the inverse CDF: u uniform in [Phi(lo), Phi(hi)], offset = sigma *
    # Phi^-1(u), lo and hi the distances to the borders in units of sigma.
    def ndtr(z):  # the standard normal CDF
        return 0.5 * tf.math.erfc(-z / math.sqrt(2.0))

    lo = ndtr(-first / sigma)
    hi = ndtr((top - first) / sigma)
    u = tf.random.stateless_uniform([points, 2], seeds[1])
    p = tf.clip_by_value(lo + u * (hi - lo), 1e-7, 1.0 - 1e-7)
    second = first + sigma * tf.math.ndtri(p)
    return first, tf.clip_by_value(second, 0.0, top)


def read_flow(flow, locations):
    """Bilinear reads of a flow field (..., H, W, 2) at (..., P, 2) float (y, x) pixel
    locations -> (..., P, 2) (locations clamped to the field)."""
    flow = tf.convert_to_tensor(flow, tf.float32)
    locations = tf.cast(locations, tf.float32)
    batched = flow.shape.rank == 4
    if not batched:
        flow, locations = flow[None], locations[None]
    shape = tf.shape(flow)
    ylo, yhi, fy = layers.axis_sampling(locations[..., 0], 1, shape[1], "released", 0.0)
    xlo, xhi, fx = layers.axis_sampling(locations[..., 1], 1, shape[2], "released", 0.0)
    b = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(ylo))

    def at(y, x):
        return tf.gather_nd(flow, tf.stack([b, y, x], axis=-1))

    fy, fx = fy[..., None], fx[..., None]
    out = ((1 - fy) * ((1 - fx) * at(ylo, xlo) + fx * at(ylo, xhi))
           + fy * ((1 - fx) * at(yhi, xlo) + fx * at(yhi, xhi)))
    return out if batched else out[0]


def relative_amplitude(flow, first, second):
    """``|| flow(second) - flow(first) ||`` per pair: flow (..., H, W, 2), locations
    (..., P, 2) -> (..., P) float32."""
    diff = read_flow(flow, second) - read_flow(flow, first)
    return tf.norm(diff, axis=-1)


def bin_labels(amplitude, edges):
    """Bin index in ``[0, len(edges)]`` of each amplitude, int32: the number of inner edges at
    or below it (below the first edge: 0; at or above the last: the last bin)."""
    edges = tf.constant(np.asarray(edges, np.float32))
    amplitude = tf.convert_to_tensor(amplitude, tf.float32)
    flat = tf.reshape(amplitude, [1, -1])
    labels = tf.searchsorted(edges[None], flat, side="right", out_type=tf.int32)
    return tf.reshape(labels, tf.shape(amplitude))


def parse_example(serialized):
    """A record -> ``{"frame": (H, W, 3) float32 in [0, 1], "flow": (H, W, 2) float32,
    "clip", "frame_index"}``."""
    f = tf.io.parse_single_example(serialized, FEATURES)
    h, w = tf.cast(f["height"], tf.int32), tf.cast(f["width"], tf.int32)
    frame = tf.io.decode_image(f["frame"], channels=3, expand_animations=False)
    frame = tf.image.convert_image_dtype(tf.reshape(frame, [h, w, 3]), tf.float32)
    flow = tf.io.decode_raw(f["flow"], tf.float16, little_endian=True)
    flow = tf.cast(tf.reshape(flow, [h, w, 2]), tf.float32)
    return {"frame": frame, "flow": flow, "clip": f["clip"], "frame_index": f["frame_index"]}


def augment_example(frame, flow, seed, *, crop_size, side_range=None, points,
                    offset_stddev=DEFAULT_OFFSET_STDDEV, edge_buffer=0, border="truncate",
                    mirror="random", resize_kernel="triangle", antialias=True):
    """One training element of a frame and its flow (see the module docstring).

    Args:
        frame: (H, W, 3) float32 in [0, 1]. flow: (H, W, 2) float32 (dy, dx).
        seed: stateless seed, shape (2,).
        crop_size: S. side_range: ``(lo, hi)`` of the scaled short side (None: no scaling;
            the frame's short side must then be at least S).
        points, offset_stddev, edge_buffer, border: :func:`sample_pairs`.
        mirror: ``"random"`` (probability 1/2), True or False.

    Returns:
        ``{"frame": (S, S, 3), "flow": (S, S, 2), "first", "second": (P, 2) float32,
        "amplitude": (P,) float32, "mirrored": bool}``.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    shape = tf.shape(frame)
    h, w = shape[0], shape[1]
    if side_range is None:
        nh, nw = h, w
    else:
        short = tf.random.stateless_uniform([], seeds[0], side_range[0], side_range[1] + 1,
                                            dtype=tf.int32)
        nh, nw = stages.scaled_size(h, w, short)
    oy = tf.random.stateless_uniform([], seeds[1], 0, nh - crop_size + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[2], 0, nw - crop_size + 1, dtype=tf.int32)
    both = tf.concat([tf.cast(frame, tf.float32), tf.cast(flow, tf.float32)], axis=-1)
    if side_range is None:
        crop = both[oy:oy + crop_size, ox:ox + crop_size]
    else:
        crop = stages.scale_crop(both, (nh, nw), (oy, ox), (crop_size, crop_size),
                                 kernel=resize_kernel, antialias=antialias)
    scale = tf.stack([tf.cast(nh, tf.float32) / tf.cast(h, tf.float32),
                      tf.cast(nw, tf.float32) / tf.cast(w, tf.float32)])
    rgb = tf.clip_by_value(crop[..., :3], 0.0, 1.0)
    motion = crop[..., 3:] * scale
    if mirror == "random":
        flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
    else:
        flip = tf.constant(bool(mirror))
    rgb = tf.cond(flip, lambda: tf.reverse(rgb, axis=[1]), lambda: rgb)
    motion = tf.cond(flip, lambda: tf.reverse(motion, axis=[1]) * [1.0, -1.0],
                     lambda: motion)
    rgb = tf.ensure_shape(rgb, [crop_size, crop_size, 3])
    motion = tf.ensure_shape(motion, [crop_size, crop_size, 2])
    first, second = sample_pairs(seeds[4], crop_size, points, offset_stddev=offset_stddev,
                                 edge_buffer=edge_buffer, border=border)
    return {"frame": rgb, "flow": motion, "first": first, "second": second,
            "amplitude": relative_amplitude(motion, first, second), "mirrored": flip}



def video_dataset(data_config=None, *, source=None, bin_edges=None,
                  offset_stddev=DEFAULT_OFFSET_STDDEV, border="truncate", input_context=None,
                  include_flow=False, include_amplitude=False, **options):
    """Training batches of the video proxy from frame-and-flow TFRecords.

    Args:
        data_config: a :class:`tfcolor.config.DataConfig`: ``data`` (the records: a file, a
            folder of ``*.tfrecord`` files or a glob; default: the corpus' train split when
            ``source`` is None), ``batch_size``, ``crop_size``, ``min_side``/``max_side`` (the
            scaled short side; set both to the stored short side for crops at the stored
            scale), ``points`` (pairs per frame), ``edge_buffer`` (of the first locations; None
            means 0 here: the thesis samples them uniformly over the image),
            ``shuffle_buffer``.
        source: the records instead of ``data_config.data`` (path, glob or list of files).
        bin_edges: inner bin edges (``bins - 1`` increasing values); None:
            :func:`load_bin_edges` of the records.
        offset_stddev, border: the second location's offset (:func:`sample_pairs`).
        input_context: ``tf.distribute.InputContext`` for explicit per-worker sharding and
            per-replica batches.
        include_flow, include_amplitude: also yield the cropped flow (B, S, S, 2) and the
            amplitudes (B, P) (pictures, bin fitting, tests).
        **options: fields of :class:`tfcolor.data.pretrain.PipelineOptions`; used: ``seed``,
            ``deterministic``, ``shuffle``, ``cache`` (True: the records in memory), ``repeat``,
            ``drop_remainder``, ``random_mirror``, ``shard_policy``, ``resize_kernel``,
            ``antialias``, ``include_names`` (``"name"``: clip and frame), ``include_index``,
            ``start``, ``num_parallel_calls``, ``prefetch``; the image-decoding limits do not
            apply to the corpus' own frames.

    Returns:
        Batches ``{"frame", "first", "second", "label"}`` (see the module docstring), with
        ``"index"``, ``"name"``, ``"flow"``, ``"amplitude"`` as asked.
    """
    data = config_lib.DataConfig() if data_config is None else data_config
    if not isinstance(data, config_lib.DataConfig):
        raise TypeError(f"data_config must be a tfcolor.config.DataConfig, got "
                        f"{type(data).__name__}")
    data.validate(sources=False)
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(pretrain.PipelineOptions)})
    if unknown:
        raise TypeError(f"video_dataset() got unknown option(s) {unknown}")
    opts = pretrain.PipelineOptions(**options).validate()
    if border not in BORDERS:
        raise ConfigError(f"border must be one of {BORDERS}, got {border!r}", "border")
    if isinstance(offset_stddev, bool) or not isinstance(offset_stddev, (int, float)) or not (
            0 <= offset_stddev < math.inf):
        raise ConfigError(f"offset_stddev must be a number >= 0, got {offset_stddev!r}",
                          "offset_stddev")
    records_path = data.data if source is None else source
    if isinstance(records_path, (str, os.PathLike)):
        records_path = os.path.expanduser(os.fspath(records_path))
    if bin_edges is None:
        bin_edges, _ = load_bin_edges(records_path)
    edges = np.asarray(bin_edges, np.float32)
    if edges.ndim != 1 or len(edges) < 1 or not np.all(np.diff(edges) > 0):
        raise ConfigError("bin_edges must be a strictly increasing list of inner edges",
                          "bin_edges")
    if isinstance(records_path, (list, tuple)):
        records_path = [os.path.expanduser(os.fspath(p)) for p in records_path]
    src = sources_lib.TFRecordSource(records_path)
    crop = data.crop_size
    side_range = data.side_range
    buffer = 0 if data.edge_buffer is None else data.edge_buffer
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2 ** 31)
    shard = stages.shard_spec(src, opts.shard_policy, input_context)
    stream = input_context.input_pipeline_id if input_context is not None else 0
    batch_size = (input_context.get_per_replica_batch_size(data.batch_size)
                  if input_context is not None else data.batch_size)
    parallel, deterministic = opts.num_parallel_calls, opts.deterministic
    _LOG.info("tfcolor.data: video pairs from %r; seed %d", src, seed)

    def records(shuffle, repeat):
        ds = src.records(shuffle=shuffle, seed=seed, repeat=repeat, shard=shard,
                         shuffle_buffer=data.shuffle_buffer, deterministic=deterministic)
        return ds.filter(lambda r: tf.equal(r["status"], decode_lib.OK))

    start = opts.start

    def with_index(ds):
        if start:
            ds = ds.skip(start)
        return ds.enumerate(start=start).map(lambda i, e: dict(e, index=i))

    if opts.cache is not False:
        ds = records(shuffle=False, repeat=False)
        ds = ds.map(lambda r: {"encoded": r["encoded"], "name": r["name"]})
        ds = ds.cache("" if opts.cache is True else opts.cache)
        if opts.shuffle:
            ds = ds.shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if opts.repeat:
            ds = ds.repeat()
    else:
        ds = records(shuffle=opts.shuffle, repeat=opts.repeat)
    ds = with_index(ds)

    def make(element):
        parsed = parse_example(element["encoded"])
        out = augment_example(
                parsed["frame"], parsed["flow"], stages.element_seed(seed, element["index"],
                                                                     stream),
                crop_size=crop, side_range=side_range, points=data.points,
                offset_stddev=offset_stddev, edge_buffer=buffer, border=border,
                mirror="random" if opts.random_mirror else False,
                resize_kernel=opts.resize_kernel, antialias=opts.antialias)
        result = {"frame": out["frame"], "first": out["first"], "second": out["second"],
                  "label": bin_labels(out["amplitude"], edges)}
        if include_flow:
            result["flow"] = out["flow"]
        if include_amplitude:
            result["amplitude"] = out["amplitude"]
        if opts.include_names:
            result["name"] = tf.strings.join([parsed["clip"], "#",
                                              tf.strings.as_string(parsed["frame_index"])])
        if opts.include_index:
            result["index"] = element["index"]
        return result

    ds = ds.map(make, num_parallel_calls=parallel, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=opts.drop_remainder, num_parallel_calls=parallel,
                  deterministic=deterministic)
    if opts.prefetch:
        ds = ds.prefetch(opts.prefetch)
    return ds.with_options(stages.dataset_options(
            src, deterministic=deterministic, input_context=input_context,
            shard_policy=opts.shard_policy))


def fit_bin_edges(data_config, *, source=None, bins=DEFAULT_BINS, floor=DEFAULT_FLOOR,
                  pairs=200_000, seed=0, **kwargs):
    """Quantile bin edges (:func:`quantile_edges`) of the relative-flow amplitudes of about
    ``pairs`` pairs drawn by :func:`video_dataset` (the pipeline's own crops, mirrors and
    pairs, repeating the records as needed). ``kwargs``: further :func:`video_dataset`
    arguments (``offset_stddev``, ``border``, ...). Returns ``(edges, amplitudes)``."""
    data = config_lib.DataConfig() if data_config is None else data_config
    ds = video_dataset(data, source=source, bin_edges=tanh_edges(bins), include_amplitude=True,
                       seed=seed, repeat=True, shuffle=True, drop_remainder=False, **kwargs)
    per_batch = data.batch_size * data.points
    amplitudes = []
    for batch in ds.take(max(1, -(-pairs // per_batch))):
        amplitudes.append(batch["amplitude"].numpy().ravel())
    amplitudes = np.concatenate(amplitudes)
    return quantile_edges(amplitudes, bins, floor), amplitudes
