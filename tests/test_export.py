"""Tests for tfcolor.export: the TF Serving contract of the SavedModel, reuse for fine-tuning.

One small colorizer (vgg_tiny trunk, narrow head, synchronized batch normalization as pretraining
builds it) is exported once per module; every test reads it.
"""
import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcolor import export, predictors, run_dir
from tfcolor.models import build_colorizer
from tfcolor.models.colorizer import Colorizer

TAPS = ["data", "conv1_1", "conv2_2", "conv3_3", "conv5_3", "fc7"]  # small graph: fast tracing
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(shape=(2, 21, 35, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _logged():
    """Every message of the Python loggers TensorFlow and absl write to, INFO and up."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def exported_and_log(tmp_path_factory):
    tf.keras.utils.set_random_seed(1)
    model = Colorizer("vgg_tiny", kind="hue_chroma", hidden=16, dropout=0.0, taps=TAPS,
                      sync_batch_norm=True)
    path = str(tmp_path_factory.mktemp("export") / "sm")
    with _logged() as messages:
        export.export_saved_model(model, path, grid_factor=4,
                                  readout_options={"fading": "released"}, config={"note": "test"})
    return (model, path), messages


@pytest.fixture(scope="module")
def exported(exported_and_log):
    return exported_and_log[0]


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])


def _spec_table(loaded):
    table = {}
    for name, fn in loaded.signatures.items():
        _, kwargs = fn.structured_input_signature
        inputs = {k: (v.dtype.name, None if v.shape.rank is None else v.shape.as_list())
                  for k, v in kwargs.items()}
        outputs = {k: (v.dtype.name, v.shape.as_list()) for k, v in fn.structured_outputs.items()}
        table[name] = (inputs, outputs)
    return table


def test_signature_names_dtypes_and_shapes_are_stable(loaded):
    table = _spec_table(loaded)
    assert sorted(table) == sorted(export.SIGNATURES)
    rgb_u8 = ({"images": ("uint8", None)}, {"rgb": ("uint8", [None, None, None, 3])})
    assert table["serving_default"] == rgb_u8
    assert table["colorize"] == rgb_u8
    assert table["colorize_float"] == ({"images": ("float32", None)},
                                       {"rgb": ("float32", [None, None, None, 3])})
    assert table["colorize_bytes"] == ({"images": ("string", None)},
                                       {"rgb": ("uint8", [None, None, None, 3])})
    assert table["histograms"] == ({"images": ("float32", None)}, {
            "logits": ("float32", [None, None, None, 64]),
            "hue": ("float32", [None, None, None, 32]),
            "chroma": ("float32", [None, None, None, 32])})
    inputs, outputs = table["features"]
    assert inputs == {"images": ("float32", None)}
    assert set(outputs) == set(TAPS)
    assert outputs["conv1_1"] == ("float32", [None, None, None, 8])
    assert table["hypercolumn"][1]["hypercolumn"][0] == "float32"


def test_outputs_match_the_in_process_keras_model(exported, loaded):
    model, path = exported
    x = _images()
    want = predictors.colorize_batch(model, x, kind="hue_chroma", fading="released").numpy()
    got = loaded.signatures["colorize_float"](images=tf.constant(x))["rgb"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    # uint8 in, uint8 out: rounding of the same computation on the quantised input.
    u8 = np.round(x * 255).astype(np.uint8)
    got8 = loaded.signatures["serving_default"](images=tf.constant(u8))["rgb"].numpy()
    want8 = predictors.colorize_batch(model, u8.astype(np.float32) / 255,
                                      fading="released").numpy()
    assert np.abs(got8.astype(int) - np.round(want8 * 255)).max() <= 1
    # Grey (1-channel) input gives the same as its RGB replica.
    grey = x.mean(-1, keepdims=True)
    a = loaded.colorize_float(grey)["rgb"].numpy()
    b = loaded.colorize_float(np.repeat(grey, 3, -1))["rgb"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Lightness of the output is the input's.
    np.testing.assert_allclose(got.mean(-1), x.mean(-1), atol=1e-5)
    hist = loaded.histograms(x)
    logits = predictors.predict_grid(model, tf.constant(grey), 4).numpy()
    np.testing.assert_allclose(hist["logits"].numpy(), logits, atol=1e-4)
    assert hist["hue"].shape == (2, 6, 9, 32)
    np.testing.assert_allclose(hist["hue"].numpy().sum(-1), 1.0, atol=1e-5)
    feats = loaded.features(x)
    # The served features see the input mirror-padded to a multiple of 32 (then cropped back).
    padded = predictors.reflect_pad(tf.constant(grey), 32)
    maps = dict(zip(model.taps, model.features(padded, training=False)))
    for name in ("conv1_1", "conv3_3", "fc7"):
        s = model.tap_strides[name]
        want_map = maps[name].numpy()[:, :-(-21 // s), :-(-35 // s)]
        np.testing.assert_allclose(feats[name].numpy(), want_map, atol=1e-5)
    assert feats["fc7"].shape[1:3] == (1, 2)  # ceil(21 / 32), ceil(35 / 32)
    hc = loaded.hypercolumn(x)["hypercolumn"]
    assert hc.shape == (2, 6, 9, sum(model.tap_channels))


def test_any_size_and_batch(loaded):
    for shape in [(1, 1, 1, 3), (3, 5, 64, 1), (1, 70, 33, 3)]:
        out = loaded.colorize_float(_images(shape))["rgb"]
        assert out.shape == shape[:3] + (3,)


def _encode(array, fmt):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def test_colorize_bytes_png_and_jpeg(loaded):
    u8 = np.round(_images((2, 24, 30, 3), seed=3) * 255).astype(np.uint8)
    png = [_encode(u8[0], "PNG"), _encode(u8[1], "PNG")]
    got = loaded.signatures["colorize_bytes"](images=tf.constant(png))["rgb"].numpy()
    want = loaded.signatures["colorize"](images=tf.constant(u8))["rgb"].numpy()
    np.testing.assert_array_equal(got, want)
    jpg = loaded.colorize_bytes(tf.constant([_encode(u8[0], "JPEG")]))["rgb"]
    assert jpg.shape == (1, 24, 30, 3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((21, 35, 3), np.float32), "rank-4 batch"),
    (np.zeros((1, 2, 21, 35, 3), np.float32), "rank-4 batch"),
    (np.zeros((1, 21, 35, 2), np.float32), "1 (grey) or 3 (RGB) channels"),
    (np.zeros((1, 0, 35, 3), np.float32), "must not be empty"),
    (np.full((1, 4, 4, 3), 2.0, np.float32), "float images must be in [0, 1]"),
])
def test_bad_serving_input_names_the_problem(loaded, bad, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        loaded.signatures["colorize_float"](images=tf.constant(bad))


def test_bad_bytes_input(loaded):
    u8 = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same size"):
        loaded.colorize_bytes(tf.constant([_encode(u8, "PNG"), _encode(u8[:5], "PNG")]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.colorize_bytes(tf.constant([b"not an image"]))
    # A scalar or a matrix of strings: the message names the expected shape (the signature
    # declares no rank, so the check runs for signature calls too).
    png = _encode(u8, "PNG")
    for bad in (tf.constant(png), tf.constant([[png]])):
        for call in (loaded.colorize_bytes, lambda x: loaded.signatures["colorize_bytes"](
                images=x)):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=r"images must be a 1-D batch of encoded images \(shape "
                                     r"\[batch\]"):
                call(bad)


@pytest.mark.slow  # a second process loading the SavedModel (about 12 s); the README walk's
# serving snippet does the same
def test_fresh_process_load_and_call(exported, tmp_path):
    model, path = exported
    out = tmp_path / "out.npz"
    script = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({path!r})
x = np.random.default_rng(0).uniform(size=(2, 21, 35, 3)).astype(np.float32)
res = {{}}
for name, fn in loaded.signatures.items():
    if name == "colorize_bytes":
        continue
    arg = np.round(x * 255).astype(np.uint8) if name in ("serving_default", "colorize") else x
    for key, value in fn(images=tf.constant(arg)).items():
        res[name + "/" + key] = value.numpy()
np.savez({str(out)!r}, **res)
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300,
                         capture_output=True, text=True)
    assert "custom gradient" not in run.stderr, run.stderr[-2000:]
    res = np.load(out)
    x = _images()
    want = predictors.colorize_batch(model, x, fading="released").numpy()
    np.testing.assert_allclose(res["colorize_float/rgb"], want, atol=1e-5)
    assert res["serving_default/rgb"].dtype == np.uint8
    assert res["histograms/logits"].shape == (2, 6, 9, 64)
    assert "features/fc7" in res and "hypercolumn/hypercolumn" in res


def _saved_model_cli():
    exe = shutil.which("saved_model_cli")
    if exe:
        return [exe]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.slow  # two saved_model_cli processes (about 15 s); the signatures are checked in
# process in the default run
def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, path = exported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    show = subprocess.run(_saved_model_cli() + ["show", "--dir", path, "--all"], check=True,
                          capture_output=True, text=True, env=env, timeout=300).stdout
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in show
    assert "DT_UINT8" in show and "DT_STRING" in show
    np.save(tmp_path / "in.npy", np.full((1, 20, 24, 3), 128, np.uint8))
    run = subprocess.run(
            _saved_model_cli() + ["run", "--dir", path, "--tag_set", "serve", "--signature_def",
                                  "serving_default", "--inputs", f"images={tmp_path / 'in.npy'}",
                                  "--outdir", str(tmp_path / "cli"), "--overwrite"],
            check=True, capture_output=True, text=True, env=env, timeout=300)
    rgb = np.load(tmp_path / "cli" / "rgb.npy")
    assert rgb.shape == (1, 20, 24, 3) and rgb.dtype == np.uint8, run.stdout[-500:]
    # A mid-grey input keeps its lightness: the mean of every output pixel is ~128.
    assert np.abs(rgb.astype(float).mean(-1) - 128).max() <= 1.0


def test_fine_tuning_step_changes_trunk_variables(exported):
    loaded = tf.saved_model.load(exported[1])  # own copy: this test changes its variables
    assert loaded.trunk_variables and all(v.trainable for v in loaded.trunk_variables)
    assert len(loaded.trainable_variables) > len(loaded.trunk_variables)
    before = [v.numpy().copy() for v in loaded.trunk_variables]
    gray = tf.constant(_images((2, 32, 32, 1), seed=5))
    served_before = loaded.features(gray)["conv1_1"].numpy()
    with tf.GradientTape() as tape:
        maps = loaded(gray, training=False)
        loss = tf.add_n([tf.reduce_mean(tf.square(m)) for m in maps.values()])
    grads = tape.gradient(loss, loaded.trunk_variables)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, loaded.trunk_variables))
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, loaded.trunk_variables)]
    assert sum(changed) >= len(changed) // 2
    # The serving functions read the same (now changed) variables.
    assert not np.allclose(loaded.features(gray)["conv1_1"].numpy(), served_before)


def test_export_and_load_log_nothing_about_inputs_or_gradients(exported_and_log):
    (_, path), export_messages = exported_and_log
    assert export_messages, "the log capture saw nothing: it cannot see the messages either"
    # Captured variables are inputs with valid names: nothing to rename.
    assert not [m for m in export_messages if "unsupported characters" in m]
    with _logged() as load_messages:
        tf.saved_model.load(path)
    assert not [m for m in load_messages if "custom gradient" in m], load_messages[:3]


@pytest.mark.slow  # every trainable variable of the exported and the Keras model (about 20-30 s)
def test_fine_tuning_gradients_equal_the_keras_models(exported):
    """Gradients through the loaded SavedModel's fine-tuning call are the Keras model's: first
    order in inference and training mode, and the second order (a gradient penalty), which a
    SavedModel holding the replica all-reduce's custom gradient could not compute in training
    mode. In training mode the SavedModel's batch norm is the one-replica (unsynchronized) one,
    whose second order differs from the synchronized formula's (``tf.nn.moments`` stops the
    gradient through the mean), so that is the reference there."""
    model, path = exported
    loaded = tf.saved_model.load(path)  # own copy: training mode updates its moving statistics
    keras_vars = model.trunk.trainable_variables
    assert [v.shape for v in loaded.trunk_variables] == [v.shape for v in keras_vars]
    saved_state = [v.numpy() for v in model.variables]
    gray = tf.constant(_images((2, 64, 64, 1), seed=7))

    def gradients(features, variables, training, penalty):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(gray)
                loss = tf.add_n([tf.reduce_mean(tf.square(m)) for m in features(gray, training)])
            total = loss + penalty * tf.reduce_sum(tf.square(inner.gradient(loss, gray)))
        return [g.numpy() for g in outer.gradient(total, variables)]

    def keras_features(x, training):
        return model.features(x, training=training)

    def served_features(x, training):
        return list(loaded(x, training=training).values())

    try:
        for training in (False, True):
            for penalty in (0.0, 1.0):
                if training and penalty:
                    with export._one_replica_batch_norm(model):  # pylint: disable=protected-access
                        want = gradients(keras_features, keras_vars, training, penalty)
                else:
                    want = gradients(keras_features, keras_vars, training, penalty)
                got = gradients(served_features, loaded.trunk_variables, training, penalty)
                scale = max(np.abs(w).max() for w in want)
                assert scale > 0
                for g, w in zip(got, want):  # float32 rounding of two variance formulas
                    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4 * scale,
                                               err_msg=f"training={training} penalty={penalty}")
    finally:
        for v, value in zip(model.variables, saved_state):
            v.assign(value)


def test_keras_model_beside_the_export(exported):
    model, path = exported
    keras_model = export.load_keras_model(path)
    x = tf.constant(_images((1, 32, 32, 1)))
    np.testing.assert_allclose(keras_model.dense(x).numpy(), model.dense(x).numpy(), atol=1e-5)
    assert keras_model.trunk.trainable_variables
    meta = run_dir.read_export_metadata(path)
    assert meta["kind"] == "hue_chroma" and meta["grid_factor"] == 4
    assert meta["readout_options"] == {"fading": "released"} and meta["config"] == {"note": "test"}
    assert meta["signatures"] == list(export.SIGNATURES)


def test_export_from_checkpoint(tmp_path):
    config = pytest.importorskip("tfcolor.config")
    cfg = config.PretrainConfig()
    cfg.model.arch = "vgg_tiny"
    cfg.model.hidden = 8
    model = build_colorizer(cfg.to_dict())
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    for v in model.trainable_variables:
        v.assign(tf.random.normal(v.shape, stddev=0.1, seed=1))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(model_dir), 3).save()
    restored, kind = run_dir.load_model(str(model_dir))
    x = tf.constant(_images((1, 32, 32, 1)))
    np.testing.assert_allclose(restored.dense(x).numpy(), model.dense(x).numpy(), atol=1e-5)
    assert kind == "hue_chroma"
    with pytest.raises(FileNotFoundError, match="config.json"):
        run_dir.load_model(str(tmp_path))
    # load_predictor: a model_dir (no saved_model.pb) gives the restored Keras colorizer.
    predictor = predictors.load_predictor(str(model_dir), grid_factor=2)
    assert isinstance(predictor, predictors.KerasPredictor)
    assert (predictor.kind, predictor.grid_factor, predictor.from_logits) == ("hue_chroma", 2, True)
    np.testing.assert_allclose(predictor(x).numpy(),
                               predictors.predict_grid(model, x, 2).numpy(), atol=1e-5)


def test_the_savedmodel_and_the_keras_model_are_the_same_predictor(exported):
    model, path = exported
    served = predictors.load_predictor(path, grid_factor=2)  # the export's own g (4) wins
    assert isinstance(served, predictors.SavedModelPredictor)
    keras_predictor = predictors.KerasPredictor(model)
    assert (served.kind, served.grid_factor, served.from_logits) == (
            keras_predictor.kind, keras_predictor.grid_factor, keras_predictor.from_logits)
    gray = tf.constant(_images((2, 21, 35, 1), seed=3))
    np.testing.assert_allclose(served(gray).numpy(), keras_predictor(gray).numpy(), atol=1e-4)
    hist = served.histograms(gray)
    assert sorted(hist) == ["chroma", "hue"] and hist["hue"].shape == (2, 6, 9, 32)
    np.testing.assert_allclose(hist["chroma"].numpy().sum(-1), 1.0, atol=1e-5)
    image = _images((1, 30, 50, 3), seed=4)[0]
    options = predictors.ColorizeOptions(uncertainty=True)
    a = predictors.colorize_image(served, image, options)
    b = predictors.colorize_image(keras_predictor, image, options)
    np.testing.assert_allclose(a["rgb"].numpy(), b["rgb"].numpy(), atol=1e-4)
    np.testing.assert_allclose(a["uncertainty"].numpy(), b["uncertainty"].numpy(), atol=1e-4)


def test_bad_export_arguments():
    model = Colorizer("vgg_tiny", kind="hue_chroma", hidden=4)
    with pytest.raises(ValueError, match="grid_factor"):
        export.ServingModule(model, grid_factor=0)
    with pytest.raises(ValueError, match="kind"):
        export.ServingModule(model, kind="rgb")
    with pytest.raises(ValueError, match="cannot be fixed"):
        export.ServingModule(model, readout_options={"seed": 1})


@pytest.mark.parametrize("kind, groups", [("lab_hist", {"a": 32, "b": 32}),
                                          ("lab_joint", {"ab": 256}),
                                          ("lab_regression", {"ab": 2})])
def test_serving_functions_for_every_loss_kind(kind, groups):
    model = Colorizer("vgg_tiny", kind=kind, hidden=8, taps=["data", "conv1_1", "fc7"])
    module = export.ServingModule(model)
    x = _images((1, 20, 26, 3))
    got = module.colorize_float(x)["rgb"].numpy()
    np.testing.assert_allclose(got, predictors.colorize_batch(model, x, kind=kind).numpy(),
                               atol=1e-5)
    hist = module.histograms(x)
    assert {k: v.shape[-1] for k, v in hist.items()} == dict(groups, logits=sum(groups.values()))
    assert module.metadata()["group_sizes"] == list(groups.values())


@pytest.mark.slow
def test_export_is_atomic_and_can_refuse_to_replace(exported, tmp_path, monkeypatch):
    model, _ = exported
    path = tmp_path / "sm"
    export.export_saved_model(model, str(path), save_keras=False)
    before = (path / "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_saved_model(model, str(path), save_keras=False, overwrite=False)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the export were interrupted half-way

    monkeypatch.setattr(tf.saved_model, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        export.export_saved_model(model, str(path), save_keras=False)
    monkeypatch.undo()
    assert (path / "saved_model.pb").read_bytes() == before  # the earlier export is whole
    assert os.listdir(tmp_path) == ["sm"]  # and no partial folder is left beside it
    export.export_saved_model(model, str(path), save_keras=False, grid_factor=2)
    assert run_dir.read_export_metadata(str(path))["grid_factor"] == 2
    assert run_dir.read_export_metadata(str(path))["max_pixels"] == 100_000_000
    assert os.listdir(tmp_path) == ["sm"]
    reloaded = tf.saved_model.load(str(path))
    assert reloaded.colorize_float(_images((1, 9, 9, 3)))["rgb"].shape == (1, 9, 9, 3)


def test_colorize_bytes_refuses_a_decompression_bomb_unread(loaded):
    import importlib.util  # pylint: disable=import-outside-toplevel
    spec = importlib.util.spec_from_file_location(
            "hostile_inputs", os.path.join(ROOT, "tests", "hostile_inputs.py"))
    hostile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hostile)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot be decoded.*too_large"):
        loaded.colorize_bytes(tf.constant([hostile.png_bomb()]))
    u8 = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ok.*empty"):
        loaded.colorize_bytes(tf.constant([_encode(u8, "PNG"), b""]))


def test_the_serving_cap_refuses_larger_batches(exported):
    model, _ = exported
    module = export.ServingModule(model, max_pixels=2 * 10 * 12)
    assert module.colorize_float(np.zeros((2, 10, 12, 3), np.float32))["rgb"].shape == (2, 10, 12,
                                                                                         3)
    for name in ("colorize", "colorize_float", "histograms", "features", "hypercolumn"):
        images = np.zeros((2, 11, 12, 3), np.uint8 if name == "colorize" else np.float32)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="images above the serving cap of 240 pixels"):
            getattr(module, name)(images)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too_large"):
        module.colorize_bytes(tf.constant([_encode(np.zeros((16, 16, 3), np.uint8), "PNG")]))
    assert export.ServingModule(model, max_pixels=None).colorize_float(
            np.zeros((3, 10, 12, 3), np.float32))["rgb"].shape[0] == 3


def test_strip_wise_signatures_equal_the_one_piece_computation(exported, monkeypatch):
    """The colour signatures recombine at full resolution in strips of whole rows (here 64 rows
    of a 301 x 419 image, not a multiple of them; in the batch of three 77 x 51 images a strip
    spans two images). Their uint8 outputs are exactly those of the computation in one piece
    (tfcolor.predictors.colorize_batch, as the signatures ran before); float outputs agree to
    float32 rounding (the graph optimizer rewrites some arithmetic of the one-piece graph, which
    eager execution does not either) and are exactly the same for any strip size."""
    model, _ = exported
    options = {"fading": "released"}

    @tf.function
    def one_piece(images):
        gray = predictors.to_gray(images)
        return predictors.colorize_batch(model, gray, multiple=32, **options)

    rng = np.random.default_rng(7)
    for shape, strip_pixels in [((1, 301, 419, 3), 419 * 70), ((3, 77, 51, 1), 64 * 51)]:
        monkeypatch.setattr(export, "STRIP_PIXELS", strip_pixels)
        assert int(export._strip_rows(shape[0] * shape[1], shape[2], strip_pixels)) == 64
        module = export.ServingModule(model, readout_options=options)
        assert module.multiple == 32
        u8 = (rng.uniform(size=shape) * 255).astype(np.uint8)
        want = export._to_uint8(one_piece(u8)).numpy()
        np.testing.assert_array_equal(module.colorize(u8)["rgb"].numpy(), want)
        if shape[0] == 1:
            got = module.colorize_bytes(tf.constant([_encode(u8[0], "PNG")]))["rgb"].numpy()
            np.testing.assert_array_equal(got, want)
        x = rng.uniform(size=shape).astype(np.float32)
        floats = module.colorize_float(x)["rgb"].numpy()
        np.testing.assert_allclose(floats, one_piece(x).numpy(), rtol=0, atol=2.4e-7)
    monkeypatch.setattr(export, "STRIP_PIXELS", 1 << 24)
    whole = export.ServingModule(model, readout_options=options).colorize_float(x)
    np.testing.assert_array_equal(whole["rgb"].numpy(), floats)


def test_strip_rows_are_aligned_and_bounded():
    for width in (1, 7, 64, 419, 4000, 6001):
        for pixels in (1, 1000, 65536):
            rows = int(export._strip_rows(10_000, width, pixels))
            assert rows == 10_000 or rows * width % 64 == 0
            assert rows * width <= max(pixels, 64 * width)
    assert int(export._strip_rows(30, 419, 1 << 16)) == 30


def test_network_size_is_the_programs(exported):
    """The colour signatures' network input size (TF ops, any size at run time) is the one the
    colorize program computes in Python (round half to even included: 3 x 0.5 -> 2)."""
    model, _ = exported
    module = export.ServingModule(model, max_side=8)
    for h, w in [(3, 16), (5, 16), (8, 8), (9, 8), (1, 300), (300, 1), (17, 13), (1000, 999)]:
        gray = tf.zeros((1, h, w, 1))
        net, size = module._network_input(gray)
        want = predictors._network_input(gray, 8)[1] or (h, w)
        assert tuple(size.numpy()) == tuple(want), (h, w)
        assert net.shape[1:3] == tuple(want)
    assert export.ServingModule(model, max_side=None)._network_input(gray)[1] is None
    for bad in (0, 7, 8.5, True, "512"):
        with pytest.raises((ValueError, TypeError), match="max_side"):
            export.ServingModule(model, max_side=bad)


def test_colour_signatures_run_the_network_at_max_side_as_the_program():
    """On an image larger than max_side, the colour signatures give the pixels of
    tfcolor.predictors.colorize_image with the same max_side (the network on the shrunk grey,
    the colour upsampled back and recombined with the full-resolution lightness), not those of
    the network at full size; images up to max_side are unchanged."""
    tf.keras.utils.set_random_seed(1)
    model = Colorizer("vgg_tiny", kind="hue_chroma", hidden=16, dropout=0.0, taps=TAPS)
    for v in model.head.trainable_variables[-2:]:  # peaked histograms: saturated colours
        v.assign(v * 30.0)
    options = {"fading": "released"}
    module = export.ServingModule(model, readout_options=options, max_side=64)
    full = export.ServingModule(model, readout_options=options, max_side=None)
    predictor = predictors.KerasPredictor(model)
    rng = np.random.default_rng(3)
    u8 = (rng.uniform(size=(1, 150, 97, 3)) * 255).astype(np.uint8)
    program = predictors.colorize_image(
            predictor, u8[0], predictors.ColorizeOptions(max_side=64, **options),
            output_dtype=np.uint8)["rgb"]
    got = module.colorize(u8)["rgb"].numpy()[0]
    # The same numbers by two implementations: uint8 may differ by one step where float32
    # rounding of the two graphs lands on either side of a rounding boundary.
    diff = np.abs(got.astype(int) - program.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    at_full = full.colorize(u8)["rgb"].numpy()[0]
    assert np.abs(at_full.astype(int) - program.astype(int)).max() > 4
    x = rng.uniform(size=(2, 150, 97, 1)).astype(np.float32)
    floats = module.colorize_float(x)["rgb"].numpy()
    for i in range(2):
        want = predictors.colorize_image(
                predictor, x[i], predictors.ColorizeOptions(max_side=64, **options))["rgb"]
        np.testing.assert_allclose(floats[i], want.numpy(), rtol=0, atol=1e-5)
    small = x[:, :60, :50]
    np.testing.assert_array_equal(module.colorize_float(small)["rgb"].numpy(),
                                  full.colorize_float(small)["rgb"].numpy())
