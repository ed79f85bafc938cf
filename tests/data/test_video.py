"""Tests for tfcolor.data.video: flow, records, pairs, labels, determinism and resume."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.data import video

try:
    import cv2  # noqa: F401
    HAVE_CV2 = True
except ImportError:
    HAVE_CV2 = False
needs_cv2 = pytest.mark.skipif(not HAVE_CV2, reason="OpenCV (cv2) is not installed: pip "
                               "install 'tfcolor[video]'")


def _write_synthetic(folder, clips=2, frames=6, size=(40, 48), stride=2, seed=0):
    """Record files of synthetic clips with their exact flow; returns the folder."""
    for c in range(clips):
        images, flow = video.synthetic_clip(frames, *size, seed=seed + c, object_size=14,
                                            background_speed=(0.5, -0.25))
        examples = [video.encode_example(f, fl, clip=f"c{c}", frame_index=t, stride=stride)
                    for t, f, fl in video.clip_examples(images, stride=stride, frame_step=1,
                                                        flows=lambda t: flow(t, stride))]
        video.write_records(os.path.join(folder, f"c{c}.tfrecord"), examples)
    return str(folder)


def _config(**fields):
    values = dict(data="unused", batch_size=2, crop_size=32, min_side=40, max_side=40,
                  points=16, edge_buffer=0)
    values.update(fields)
    return config_lib.DataConfig(**values)


def _take(ds, n):
    return [{k: v for k, v in b.items()} for b in ds.take(n).as_numpy_iterator()]


@needs_cv2
def test_farneback_recovers_a_known_translation():
    rng = np.random.default_rng(3)
    texture = video._texture(rng, 140, 170, 6)  # pylint: disable=protected-access
    grey = (texture[..., 0] * 255).astype(np.uint8)
    texture = np.repeat(grey[..., None], 3, axis=-1)  # an RGB frame with equal channels
    for dy, dx in [(2, -3), (-1, 1), (0, 4)]:
        a = texture[10:106, 10:138]
        b = texture[10 - dy:106 - dy, 10 - dx:138 - dx]  # a's content moved by (dy, dx)
        flow = video.farneback_flow(a, b[..., 0])  # RGB and grey frames alike
        inner = flow[16:-16, 16:-16].reshape(-1, 2)
        # the median within a tenth of a pixel, and nine in ten pixels within half a pixel
        np.testing.assert_allclose(np.median(inner, axis=0), [dy, dx], atol=0.1)
        assert np.mean(np.linalg.norm(inner - [dy, dx], axis=-1) < 0.5) > 0.9


@needs_cv2
def test_farneback_on_a_synthetic_clip_matches_its_exact_flow():
    frames, flow = video.synthetic_clip(4, 96, 128, seed=1, background_speed=(1.0, -1.5))
    error = np.linalg.norm(video.farneback_flow(frames[0], frames[1]) - flow(0), axis=-1)
    assert np.median(error) < 0.3, np.median(error)


def test_import_error_says_how_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("no cv2")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    with pytest.raises(ImportError, match=r"tfcolor\[video\]"):
        video.farneback_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


def test_record_round_trip(tmp_path):
    frames, flow = video.synthetic_clip(3, 20, 24, seed=2)
    exact = flow(0, 2)
    serialized = video.encode_example(frames[0], exact, clip="clip", frame_index=7, stride=2)
    video.write_records(tmp_path / "a.tfrecord", [serialized])
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "a.tfrecord"))))
    parsed = video.parse_example(record)
    np.testing.assert_array_equal(np.round(parsed["frame"].numpy() * 255), frames[0])
    # float16: a relative error of 2^-11 at most
    np.testing.assert_allclose(parsed["flow"].numpy(), exact, rtol=2 ** -11, atol=1e-7)
    assert parsed["clip"].numpy() == b"clip" and parsed["frame_index"].numpy() == 7
    with pytest.raises(ValueError, match="flow must be"):
        video.encode_example(frames[0], exact[:, :-1])


def test_relative_amplitude_and_bins_against_numpy():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(2, 9, 11, 2)).astype(np.float32)
    first = rng.uniform(0, [8, 10], (2, 20, 2)).astype(np.float32)
    second = rng.uniform(0, [8, 10], (2, 20, 2)).astype(np.float32)
    first[:, :5] = np.round(first[:, :5])  # pixel centres read the pixel itself

    def bilinear(f, p):
        y, x = p
        y0, x0 = min(int(np.floor(y)), f.shape[0] - 2), min(int(np.floor(x)), f.shape[1] - 2)
        wy, wx = y - y0, x - x0
        return ((1 - wy) * (1 - wx) * f[y0, x0] + (1 - wy) * wx * f[y0, x0 + 1]
                + wy * (1 - wx) * f[y0 + 1, x0] + wy * wx * f[y0 + 1, x0 + 1])

    expected = np.array([[np.linalg.norm(bilinear(flow[b], second[b, p])
                                         - bilinear(flow[b], first[b, p]))
                          for p in range(20)] for b in range(2)])
    got = video.relative_amplitude(flow, first, second).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for b in range(2):
        for p in range(5):
            y, x = first[b, p].astype(int)
            np.testing.assert_allclose(video.read_flow(flow[b], first[b, p:p + 1])[0],
                                       flow[b, y, x], rtol=1e-6)
    edges = video.tanh_edges(32)
    labels = video.bin_labels(got, edges).numpy()
    np.testing.assert_array_equal(labels, np.searchsorted(edges, got, side="right"))
    # The released code's formula, floor(32 tanh(a)), away from the edges' rounding.
    np.testing.assert_array_equal(labels, np.floor(32 * np.tanh(got)).astype(int))
    # The clamp: below the first edge is bin 0, beyond the last the last bin; an edge itself
    # belongs to the bin above it.
    np.testing.assert_array_equal(video.bin_labels([0.0, edges[0], 1e9], edges), [0, 1, 31])


def test_quantile_edges_fill_the_bins_above_the_floor():
    rng = np.random.default_rng(1)
    amplitudes = np.concatenate([np.zeros(5000), rng.exponential(1.0, 31_000)])
    edges = video.quantile_edges(amplitudes, 32, floor=0.1)
    assert edges.shape == (31,) and edges[0] == np.float32(0.1) and np.all(np.diff(edges) > 0)
    counts = np.bincount(video.bin_labels(amplitudes, edges).numpy(), minlength=32)
    above = counts[1:]
    assert counts[0] == np.sum(amplitudes < 0.1)
    assert above.min() > 0.9 * above.mean() and above.max() < 1.1 * above.mean()
    plain = video.quantile_edges(rng.uniform(size=3200), 32, floor=0)
    counts = np.bincount(video.bin_labels(rng.uniform(size=3200), plain).numpy(), minlength=32)
    assert counts.shape == (32,) and counts.min() > 50


def test_bin_edges_are_read_from_the_corpus_or_fall_back_to_tanh(tmp_path):
    folder = tmp_path / "corpus" / "train"
    folder.mkdir(parents=True)
    edges, where = video.load_bin_edges(str(folder))
    assert where == "tanh" and np.allclose(edges, video.tanh_edges())
    video.write_bin_edges(tmp_path / "corpus" / video.BINS_FILE, np.arange(1, 32) / 10)
    edges, where = video.load_bin_edges(str(folder))
    assert where.endswith(video.BINS_FILE) and np.allclose(edges, np.arange(1, 32) / 10)
    assert json.loads((tmp_path / "corpus" / video.BINS_FILE).read_text())["bins"] == 32
    with pytest.raises(ValueError, match="holds 32 bins, not 16"):
        video.load_bin_edges(str(folder), bins=16)


@pytest.mark.parametrize("border", video.BORDERS)
def test_pairs_stay_inside_the_crop_with_gaussian_offsets(border):
    first, second = video.sample_pairs((4, 5), 64, 100_000, offset_stddev=0.1, edge_buffer=3,
                                       border=border)
    first, second = first.numpy(), second.numpy()
    assert first.min() >= 3 and first.max() <= 60 and np.all(first == np.round(first))
    assert second.min() >= 0 and second.max() <= 63
    offsets = second - first
    # Away from the border the offsets are N(0, 6.4^2) per axis, independent.
    inner = np.all((first > 25) & (first < 38), axis=1)
    sd = offsets[inner].std(axis=0)
    np.testing.assert_allclose(sd, [6.4, 6.4], rtol=0.06)
    np.testing.assert_allclose(offsets[inner].mean(axis=0), [0, 0], atol=0.4)
    assert abs(np.corrcoef(offsets[inner].T)[0, 1]) < 0.06  # 4 standard errors (n ~ 4300)
    if border == "truncate":  # conditioned on the crop, not piled up on its border
        assert np.mean(second == 0) + np.mean(second == 63) < 0.001


def test_mirror_flips_the_flow_and_keeps_the_labels(tmp_path):
    frames, flow = video.synthetic_clip(3, 40, 40, seed=4, background_speed=(0.7, 1.3))
    frame = tf.constant(frames[0] / 255.0, tf.float32)
    motion = tf.constant(flow(0, 2))
    kwargs = dict(crop_size=40, side_range=None, points=64)
    plain = video.augment_example(frame, motion, (1, 2), mirror=False, **kwargs)
    mirrored = video.augment_example(frame, motion, (1, 2), mirror=True, **kwargs)
    np.testing.assert_array_equal(mirrored["frame"], plain["frame"].numpy()[:, ::-1])
    expected = plain["flow"].numpy()[:, ::-1] * [1, -1]
    np.testing.assert_allclose(mirrored["flow"], expected)
    # The same pair read in the mirrored crop at mirrored positions: the same amplitude.
    def flip(p):
        return p.numpy() * [1, -1] + [0, 39]
    amplitude = video.relative_amplitude(mirrored["flow"], flip(plain["first"]),
                                         flip(plain["second"]))
    np.testing.assert_allclose(amplitude, plain["amplitude"], rtol=1e-5, atol=1e-6)
    assert bool(mirrored["mirrored"]) and not bool(plain["mirrored"])


def test_scaling_scales_the_flow_with_the_frame():
    size = 40
    flow = np.zeros((size, size, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.0, -2.0
    out = video.augment_example(tf.zeros([size, size, 3]), tf.constant(flow), (0, 1),
                                crop_size=32, side_range=(80, 80), points=4, mirror=False)
    np.testing.assert_allclose(out["flow"].numpy().reshape(-1, 2).mean(0), [2.0, -4.0],
                               rtol=1e-5)


def test_stream_is_deterministic_and_resumes_exactly(tmp_path):
    folder = _write_synthetic(tmp_path)
    kwargs = dict(source=folder, bin_edges=video.tanh_edges(), include_index=True, seed=7,
                  include_flow=True, include_amplitude=True)
    stream = _take(video.video_dataset(_config(), **kwargs), 4)
    again = _take(video.video_dataset(_config(), **kwargs), 4)
    resumed = _take(video.video_dataset(_config(), start=4, **kwargs), 2)
    assert [list(b["index"]) for b in stream] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    for a, b in zip(stream, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for a, b in zip(stream[2:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    batch = stream[0]
    assert batch["frame"].shape == (2, 32, 32, 3) and batch["label"].shape == (2, 16)
    assert batch["first"].dtype == np.float32 and batch["label"].dtype == np.int32
    assert batch["first"].min() >= 0 and batch["second"].max() <= 31
    # The labels are the binned amplitudes of the yielded flow at the yielded pairs.
    amplitude = video.relative_amplitude(batch["flow"], batch["first"], batch["second"])
    np.testing.assert_allclose(amplitude, batch["amplitude"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batch["label"], video.bin_labels(amplitude,
                                                                   video.tanh_edges()))
    other = _take(video.video_dataset(_config(), **dict(kwargs, seed=8)), 1)[0]
    assert not np.array_equal(other["first"], batch["first"])


def test_cached_stream_resumes_exactly_and_names_its_frames(tmp_path):
    folder = _write_synthetic(tmp_path)
    kwargs = dict(source=folder, bin_edges=video.tanh_edges(), include_index=True,
                  include_names=True, cache=True, seed=3)
    stream = _take(video.video_dataset(_config(), **kwargs), 4)
    resumed = _take(video.video_dataset(_config(), start=6, **kwargs), 1)
    for key in stream[3]:
        np.testing.assert_array_equal(stream[3][key], resumed[0][key])
    assert all(n.startswith(b"c") and b"#" in n for n in stream[0]["name"])


def test_bad_arguments_are_named(tmp_path):
    folder = _write_synthetic(tmp_path, clips=1)
    with pytest.raises(config_lib.ConfigError, match="border"):
        video.video_dataset(_config(), source=folder, border="wrap")
    with pytest.raises(config_lib.ConfigError, match="bin_edges"):
        video.video_dataset(_config(), source=folder, bin_edges=[0.5, 0.1])
    with pytest.raises(TypeError, match="unknown option"):
        video.video_dataset(_config(), source=folder, colour=True)
