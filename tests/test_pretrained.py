"""Tests of tfcolor.pretrained: shipping a trained colorizer inside the package."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs"))
import tiny_model_dir  # noqa: E402

from tfcolor import pretrained  # noqa: E402


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    model = tiny_model_dir.make_model_dir(str(root / "run"), seed=3)
    out = pretrained.write(str(root / "run"), str(root / "ship"), command="binaries/pretrain x",
                           data="tests", licence="Apache-2.0", card="# tiny\n",
                           extra={"note": "test"})
    return model, out


def test_written_folder_loads_to_the_same_colorizer_within_float16(shipped):
    model, path = shipped
    loaded, kind = pretrained.load(path)
    assert kind == model.kind
    gray = tf.random.stateless_uniform([2, 40, 48, 1], [1, 2])
    expected = model.dense(gray).numpy()
    got = loaded.dense(gray).numpy()
    # float16 weights: relative error of a weight <= 2^-11; the logits follow closely.
    np.testing.assert_allclose(got, expected, atol=5e-3 * max(1.0, np.abs(expected).max()))
    manifest = pretrained.read_manifest(path)
    assert manifest["command"] == "binaries/pretrain x" and manifest["note"] == "test"
    assert manifest["parameters"] == sum(int(np.prod(w.shape)) for w in model.weights)
    assert set(manifest["sha256"]) == {"config.json", "weights.npz"}


def test_a_damaged_file_fails_its_hash_and_unknown_names_list_the_available(shipped, tmp_path):
    _, path = shipped
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(path, copy)
    with open(os.path.join(copy, "weights.npz"), "r+b") as f:
        f.seek(100)
        f.write(b"\0\1\2\3")
    with pytest.raises(ValueError, match="fails its sha256 check"):
        pretrained.load(copy)
    with pytest.raises(ValueError, match="no shipped model 'nope'; available"):
        pretrained.load("nope")
    with pytest.raises(FileExistsError):
        pretrained.write("unused", path)


def test_weights_that_do_not_fit_the_config_are_refused(shipped, tmp_path):
    _, path = shipped
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(path, copy)
    with open(os.path.join(copy, "config.json")) as f:
        config = json.load(f)
    config["model"]["hidden"] = 16
    with open(os.path.join(copy, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match="has shape"):
        pretrained.load(copy, verify=False)


def test_the_shipped_default_loads_and_colorizes_a_shipped_photo():
    """The model shipped in the package (no training): hashes verify, it rebuilds from its
    config, and it turns a shipped validation photo's grey version into a colour image whose
    lightness is the input's (the read-out recombines the predicted colour with it)."""
    from tfcolor import color, predictors
    from tfcolor.data import embedded
    assert pretrained.DEFAULT in pretrained.available()
    manifest = pretrained.read_manifest()
    assert manifest["command"].startswith("binaries/pretrain") and manifest["data"]
    assert manifest["heldout_metrics"]["metrics"]["model"]["images"] == 25
    model, kind = pretrained.load()
    assert kind == "hue_chroma"
    from PIL import Image
    path = embedded.embedded_photos("validation")[0]
    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32)[None, :128, :160] / 255.0
    out = predictors.colorize_batch(model, tf.constant(rgb), kind=kind).numpy()
    assert out.shape == rgb.shape and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    gray = color.rgb_to_gray(tf.constant(rgb)).numpy()
    # colour, and the input's lightness kept (mean RGB within a few 8-bit levels on average)
    assert np.abs(out - out.mean(-1, keepdims=True)).mean() > 1e-3
    assert np.abs(out.mean(-1, keepdims=True) - gray).mean() < 0.03
