"""Tests for tfcolor.downstream.analysis."""
import numpy as np
import pytest
from PIL import Image

from tfcolor import models
from tfcolor.downstream import analysis


def _trunk(seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    return models.build_trunk("vgg_tiny", taps="conv1_1-conv2_2", batch_norm="none")


def test_feature_shift_identity_and_change(tmp_path):
    before = _trunk(0)
    images = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    rows = analysis.feature_shift(before, before, images)
    assert [r["layer"] for r in rows] == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    for r in rows:
        assert r["median"] == pytest.approx(1.0, abs=1e-9)
    # Scaling a unit positively keeps its correlation at 1; other weights lower it.
    after = _trunk(1)
    layer = before.get_layer("conv1_1")
    after.get_layer("conv1_1").set_weights([w * 2.0 for w in layer.get_weights()])
    rows = analysis.feature_shift(before, after, images)
    assert rows[0]["median"] == pytest.approx(1.0, abs=1e-9)
    assert rows[-1]["median"] < 0.99
    assert rows[-1]["q25"] <= rows[-1]["median"] <= rows[-1]["q75"]
    text = analysis.format_table(rows)
    assert text.startswith("| layer |") and "conv2_2" in text
    path = analysis.plot_feature_shift(rows, str(tmp_path / "shift.png"))
    assert Image.open(path).size == (640, 360)


def test_receptive_fields_of_vgg():
    rf = analysis.receptive_fields(_trunk())
    assert rf["conv1_1"] == (3, 1)
    assert rf["conv1_2"] == (5, 1)
    assert rf["pool1"] == (6, 2)
    assert rf["conv2_1"] == (10, 2)


def test_top_activations_finds_the_brightest_patch(tmp_path):
    trunk = models.build_trunk("vgg_tiny", taps="data", batch_norm="none")
    images = np.zeros((3, 12, 12, 1), np.float32)
    images[1, 5, 7] = 1.0
    images[2, 2, 2] = 0.5
    grid, records = analysis.top_activations(trunk, images, "data", [0], k=2,
                                             path=str(tmp_path / "top.png"), patch_size=8)
    assert records[0][0][1] == 1 and records[0][1][1] == 2
    assert records[0][0][2:] == (5, 7, 6, 8)  # a 1-pixel receptive field
    assert grid.shape == (10, 20, 3)
    assert Image.open(tmp_path / "top.png").size == (20, 10)
    with pytest.raises(ValueError, match="out of range"):
        analysis.top_activations(trunk, images, "data", [3])
