"""Tests for tfcolor.predictors: any-size prediction, colorizing a batch or one image, the
predictor classes."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor import predictors, readout
from tfcolor.models.colorizer import Colorizer

TAPS = ["data", "conv1_1", "conv2_2", "conv3_3", "fc7"]


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(2)
    return Colorizer("vgg_tiny", kind="hue_chroma", hidden=8, dropout=0.0, taps=TAPS)


def test_reflect_pad_matches_numpy_symmetric_and_handles_tiny_images():
    x = np.random.default_rng(1).uniform(size=(2, 5, 7, 1)).astype(np.float32)
    got = predictors.reflect_pad(x, 8).numpy()
    want = np.pad(x, [(0, 0), (0, 3), (0, 1), (0, 0)], mode="symmetric")
    np.testing.assert_array_equal(got, want)
    tiny = predictors.reflect_pad(np.ones((1, 1, 2, 1), np.float32), 32)
    assert tiny.shape == (1, 32, 32, 1)


# ---------------------------------------------------------------------------- with a model


def test_colorize_batch_any_size_equals_manual_pipeline(model):
    rgb = np.random.default_rng(10).uniform(size=(2, 23, 41, 3)).astype(np.float32)
    out = predictors.colorize_batch(model, rgb).numpy()
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out.mean(-1), rgb.mean(-1), atol=1e-5)
    gray = rgb.mean(-1, keepdims=True)
    padded = predictors.reflect_pad(gray, 32)
    assert padded.shape == (2, 32, 64, 1)
    logits = model.dense(padded, grid_factor=4)[:, :6, :11]
    want = readout.readout_rgb(logits, gray).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert predictors.model_stride(model) == 32


def test_colorize_image_options(model):
    image = np.random.default_rng(11).uniform(size=(40, 70, 3)).astype(np.float32)
    predictor = predictors.KerasPredictor(model)
    opts = predictors.ColorizeOptions(max_side=32, samples=2, uncertainty=True, fading="released")
    out = predictors.colorize_image(predictor, image, opts)
    assert out["rgb"].shape == (40, 70, 3)
    np.testing.assert_allclose(out["rgb"].numpy().mean(-1), image.mean(-1), atol=1e-5)
    assert out["uncertainty"].shape == (40, 70) and len(out["samples"]) == 2
    grey_in = predictors.colorize_image(predictor, image.mean(-1), opts)["rgb"].numpy()
    np.testing.assert_allclose(grey_in, out["rgb"].numpy(), atol=1e-5)  # colour is discarded
    with pytest.raises(ValueError, match="reference"):
        predictors.colorize_image(predictor, image, predictors.ColorizeOptions(transfer="bias"))
    with pytest.raises(ValueError, match="empty"):
        predictors.colorize_image(predictor, np.zeros((0, 4, 3), np.float32))
    ref = np.zeros((10, 10, 3), np.float32)
    ref[..., 0] = 0.9  # a red reference
    for method in ("quantile", "bias"):
        res = predictors.colorize_image(predictor, image, predictors.ColorizeOptions(
                transfer=method, max_side=32, transfer_steps=50), reference=ref)["rgb"].numpy()
        np.testing.assert_allclose(res.mean(-1), image.mean(-1), atol=1e-4)


def test_mixed_precision_model_is_read_out_in_float32(model):
    import keras
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_float16")
        half = Colorizer("vgg_tiny", kind="hue_chroma", hidden=8, dropout=0.0, taps=TAPS)
    finally:
        keras.config.set_dtype_policy(previous)
    half.set_weights(model.get_weights())
    rgb = np.random.default_rng(13).uniform(size=(1, 24, 24, 3)).astype(np.float32)
    logits = predictors.predict_grid(half, rgb.mean(-1, keepdims=True), 4)
    assert logits.dtype == tf.float16
    out = predictors.colorize_batch(half, rgb)
    assert out.dtype == tf.float32
    want = predictors.colorize_batch(model, rgb).numpy()
    assert np.abs(out.numpy() - want).mean() < 0.02
    np.testing.assert_allclose(out.numpy().mean(-1), rgb.mean(-1), atol=1e-5)


def test_shrunk_network_input_stays_in_range():
    # An all-white 683 x 512 image shrunk to 512 x 384 by the antialiased area
    # resize came out at 1.0000075, which the SavedModel's range check refused.
    white = tf.ones([1, 512, 683, 1])
    net, net_hw = predictors._network_input(white, 512)  # pylint: disable=protected-access
    assert net_hw == (384, 512)
    assert float(tf.reduce_max(net)) == 1.0  # clipped, not 1.0000075
    assert float(tf.reduce_min(net)) == pytest.approx(1.0, abs=1e-4)  # still white
    rng = np.random.default_rng(3)
    noise = tf.constant((rng.uniform(size=(1, 700, 333, 1)) > 0.5).astype(np.float32))
    net, _ = predictors._network_input(noise, 100)  # pylint: disable=protected-access
    assert 0.0 <= float(tf.reduce_min(net)) and float(tf.reduce_max(net)) <= 1.0


# ---------------------------------------------------------------------------- the predictor classes


def test_keras_predictor_is_predict_grid_with_the_models_kind(model):
    predictor = predictors.KerasPredictor(model, grid_factor=2)
    assert isinstance(predictor, predictors.Predictor)
    assert (predictor.kind, predictor.grid_factor, predictor.from_logits) == (
            model.kind, 2, True)
    assert predictor.multiple == 32
    gray = np.random.default_rng(20).uniform(size=(2, 13, 27, 1)).astype(np.float32)
    out = predictor(gray).numpy()
    assert out.shape == (2, 7, 14, 64)  # ceil(13 / 2), ceil(27 / 2)
    np.testing.assert_allclose(out, predictors.predict_grid(model, gray, 2).numpy(), atol=1e-5)
    hist = predictor.histograms(gray)
    assert sorted(hist) == ["chroma", "hue"]
    np.testing.assert_allclose(hist["hue"].numpy(), tf.nn.softmax(out[..., :32]).numpy(),
                               atol=1e-5)
    with pytest.raises(ValueError, match="grid_factor"):
        predictors.KerasPredictor(model, grid_factor=0)
    with pytest.raises(ValueError, match="unknown kind"):
        predictors.KerasPredictor(model, kind="rgb")
    with pytest.raises(TypeError):
        predictors.Predictor()  # pylint: disable=abstract-class-instantiated


def test_colorize_options_carry_exactly_the_readout_options():
    import inspect
    options = predictors.ColorizeOptions()
    assert set(options.readout_kwargs()) == set(readout.READOUT_OPTIONS)
    params = inspect.signature(readout.readout).parameters
    for name in readout.READOUT_OPTIONS:  # each is a keyword of readout() with the same default
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == getattr(options, name), name


@pytest.mark.parametrize("options", [
    dict(),
    dict(samples=2, uncertainty=True, max_side=64),
    dict(hue_method="sample", chroma_method="sample", seed=3),
    dict(lightness="released", fading=None),
], ids=["default", "samples+uncertainty+shrunk", "sampled", "released"])
def test_strip_wise_recombination_equals_the_whole(model, options):
    """Strips of whole rows (here 64 rows: the 301 x 419 image is not a multiple of them) give
    exactly the numbers of the recombination in one piece, floats and 8-bit outputs alike."""
    predictor = predictors.KerasPredictor(model)
    image = (np.random.default_rng(4).uniform(size=(301, 419, 3)) * 255).astype(np.uint8)
    whole = predictors.colorize_image(predictor, image,
                                      predictors.ColorizeOptions(tile_pixels=None, **options))
    tiled_options = predictors.ColorizeOptions(tile_pixels=419 * 70, **options)
    assert predictors._strip_rows(301, 419, tiled_options.tile_pixels) == 64
    tiled = predictors.colorize_image(predictor, image, tiled_options)
    as_uint8 = predictors.colorize_image(predictor, image, tiled_options, output_dtype=np.uint8)
    assert sorted(whole) == sorted(tiled) == sorted(as_uint8)
    for key in whole:
        pairs = zip(whole[key], tiled[key], as_uint8[key]) if key == "samples" else [
                (whole[key], tiled[key], as_uint8[key])]
        for a, b, c in pairs:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            assert c.dtype == np.uint8
            np.testing.assert_array_equal(predictors.to_uint8(a.numpy()), c)


def test_strip_rows_are_aligned_and_bounded():
    for width in (1, 7, 64, 419, 4000, 6001):
        for tile in (1, 1000, 65536):
            rows = predictors._strip_rows(10_000, width, tile)
            assert rows == 10_000 or rows * width % 64 == 0  # whole image or aligned strips
            assert rows * width <= max(tile, 64 * width)
    assert predictors._strip_rows(30, 419, 1 << 16) == 30  # never more rows than the image
    assert predictors._strip_rows(30, 419, None) == 30
