"""Tests of tfcolor.evaluation: model vs grey vs marginal prior, per-image paired statistics."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor import color, evaluation, image_files, predictors, prior as prior_lib, tints


def _red_prior():
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[0], chroma[12] = 1.0, 1.0
    return prior_lib.MarginalPrior("hue_chroma", {"hue": hue, "chroma": chroma})


def _blue_prior():
    hue, chroma = np.zeros(32), np.zeros(32)
    hue[21], chroma[12] = 1.0, 1.0
    return prior_lib.MarginalPrior("hue_chroma", {"hue": hue, "chroma": chroma})


def _write(folder, name, rgb):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def reddish(tmp_path):
    rng = np.random.default_rng(0)
    folder = str(tmp_path / "imgs")
    for i in range(5):
        img = np.zeros((24, 28, 3), np.uint8)
        img[..., 0] = rng.integers(150, 220)
        img[..., 1] = img[..., 2] = rng.integers(40, 90)
        _write(folder, f"im{i}.png", img)
    with open(os.path.join(folder, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_per_image_metrics_against_numpy():
    rng = np.random.default_rng(1)
    true = rng.uniform(size=(2, 8, 9, 3)).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.1, size=true.shape), 0, 1).astype(np.float32)
    m = evaluation.per_image_metrics(true, pred)
    mse = ((true - pred) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(m["psnr"], 10 * np.log10(1 / mse), rtol=1e-4)
    assert np.all(m["alphabeta_rms"] >= m["alphabeta_mean"])   # RMS >= mean (Jensen)
    same = evaluation.per_image_metrics(true, true)
    np.testing.assert_allclose(same["alphabeta_mean"], 0.0, atol=1e-6)
    assert np.all(np.isinf(same["psnr"]))
    one = evaluation.per_image_metrics(true[0], pred[0])
    assert one["psnr"].shape == (1,) and one["psnr"][0] == pytest.approx(m["psnr"][0])


def test_model_equal_to_the_prior_has_zero_paired_difference(reddish):
    prior = _red_prior()
    model = prior.predictor(grid_factor=4)  # a "model" that predicts exactly the prior
    result = evaluation.evaluate_with_baselines(model, [reddish], prior=prior, n_resamples=500)
    assert len(result.images) == 5
    assert [os.path.basename(p) for p, _ in result.skipped] == ["broken.png"]
    for metric, st in result.paired["model-prior"].items():
        assert st["mean_difference"] == 0 and st["ci_low"] == 0 == st["ci_high"], metric
        assert st["fraction_improved"] == 0 and st["fraction_tied"] == 1
    agg = result.metrics.result()
    assert sorted(agg) == ["gray", "model", "prior"]
    report = result.report()
    assert report["prior"]["kind"] == "hue_chroma"
    assert len(report["per_image"]["images"]) == 5
    assert len(report["per_image"]["prior"]["psnr"]) == 5


def test_right_hue_beats_grey_and_a_wrong_prior_on_every_image(reddish):
    # Red-ish photos: a constant red prediction is closer than grey, a constant blue one is not.
    model = _red_prior().predictor()
    result = evaluation.evaluate_with_baselines(model, [reddish], prior=_blue_prior(),
                                                n_resamples=500)
    for base in ("model-gray", "model-prior"):
        err = result.paired[base]["alphabeta_mean"]
        assert err["fraction_improved"] == 1.0 and err["ci_high"] < 0, base
        assert result.paired[base]["psnr"]["ci_low"] > 0, base
    # The per-image values are those of the pairs: the mean difference is their mean.
    diff = (np.array(result.per_image["model"]["alphabeta_mean"])
            - np.array(result.per_image["gray"]["alphabeta_mean"]))
    assert result.paired["model-gray"]["alphabeta_mean"]["mean_difference"] == pytest.approx(
            diff.mean())


def test_without_prior_and_errors(reddish, tmp_path):
    model = _red_prior().predictor()
    result = evaluation.evaluate_with_baselines(model, [reddish], max_images=2, n_resamples=200)
    assert list(result.paired) == ["model-gray"] and result.prior is None
    assert len(result.images) == 2 and result.report()["prior"] is None
    lab = prior_lib.MarginalPrior("lab_joint", {"ab": np.full(256, 1 / 256)})
    with pytest.raises(ValueError, match="kind"):
        evaluation.evaluate_with_baselines(model, [reddish], prior=lab)
    bad = str(tmp_path / "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "x.jpg"), "wb") as f:
        f.write(b"nope")
    with pytest.raises(ValueError, match="could be read"):
        evaluation.evaluate_with_baselines(model, [bad])


def test_prior_is_read_out_with_the_models_options(reddish):
    # fading="released" fades an uncertain hue: a flat hue histogram reads out as grey.
    flat = prior_lib.MarginalPrior("hue_chroma", {"hue": np.full(32, 1 / 32),
                                                  "chroma": np.eye(32)[12]})
    image = image_files.read_image(os.path.join(reddish, "im0.png"))
    options = predictors.ColorizeOptions(fading="released")
    rgb = predictors.colorize_image(flat.predictor(), image, options)["rgb"]
    np.testing.assert_allclose(rgb, tf.repeat(tf.reduce_mean(rgb, -1, keepdims=True), 3, -1),
                               atol=1e-3)
    result = evaluation.evaluate_with_baselines(_red_prior().predictor(), [reddish], options,
                                                prior=flat, n_resamples=200)
    np.testing.assert_allclose(result.per_image["prior"]["alphabeta_mean"],
                               result.per_image["gray"]["alphabeta_mean"], atol=1e-3)


class _FailsOnWideImages:
    """A prior predictor whose network raises (as a failing op would) on images wider than 30."""

    def __init__(self, inner):
        self._inner = inner
        self.kind, self.grid_factor, self.from_logits = inner.kind, inner.grid_factor, False

    def __call__(self, gray):
        if gray.shape[2] > 30:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating\nstack")
        return self._inner(gray)


def test_an_input_whose_colorization_fails_is_skipped_and_the_rest_evaluated(reddish):
    _write(reddish, "wide.png", np.full((24, 40, 3), 128, np.uint8))
    predictor = _FailsOnWideImages(_red_prior().predictor())
    result = evaluation.evaluate_with_baselines(predictor, [reddish], n_resamples=200)
    reasons = dict(result.skipped)
    wide = os.path.join(reddish, "wide.png")
    assert reasons[wide] == "failed: ResourceExhaustedError: OOM when allocating"
    assert os.path.join(reddish, "broken.png") in reasons
    assert len(result.images) == 5 and wide not in result.images
    assert all(len(v) == 5 for v in result.per_image["model"].values())


def test_tint_baselines_are_scored_and_compared(reddish):
    """A constant red tint fitted on the photos' own pixels is as good as a red prediction on
    these uniformly reddish images; the (0, 0) tint is exactly the grey baseline."""
    model = _red_prior().predictor()
    pixels = np.concatenate([image_files.read_image(os.path.join(reddish, f"im{i}.png"))
                             .reshape(-1, 3) for i in range(5)])
    ab = color.rgb_to_alphabeta(pixels).numpy()
    fitted = {"constant_tint": tints.ConstantTint.fit(pixels.mean(-1), ab),
              "zero_tint": tints.ConstantTint((0.0, 0.0))}
    result = evaluation.evaluate_with_baselines(model, [reddish], tints=fitted, n_resamples=200)
    assert set(result.paired) == {"model-gray", "model-constant_tint", "model-zero_tint"}
    np.testing.assert_allclose(result.per_image["zero_tint"]["alphabeta_mean"],
                               result.per_image["gray"]["alphabeta_mean"], atol=1e-6)
    # the tint fitted on these very pixels is at least as close as any other constant
    assert (np.mean(result.per_image["constant_tint"]["alphabeta_mean"])
            <= np.mean(result.per_image["model"]["alphabeta_mean"]) + 1e-6)
    assert result.report()["tints"]["constant_tint"]["kind"] == "constant_tint"
    with pytest.raises(ValueError, match="cannot be named"):
        evaluation.evaluate_with_baselines(model, [reddish], tints={"gray": fitted["zero_tint"]})
