"""Tests of tfcolor.run_dir: config.json, the latest complete checkpoint, load_model.

References: the JSON module for config.json; ``tf.train.CheckpointManager`` writing the
checkpoints and ``tf.train.latest_checkpoint`` for what TensorFlow itself reports; the colorizer
that was saved for load_model. The trainer's own resume from damaged or half-written checkpoints
is tested in the trainer tests (they share checkpointing's validation).
"""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor import run_dir
from tfcolor.models import build_colorizer
from tfcolor.train import checkpointing


def _config():
    cfg = config_lib.PretrainConfig()
    cfg.model.arch = "vgg_tiny"
    cfg.model.hidden = 8
    cfg.model.taps = ["data", "conv1_1", "conv2_2", "fc7"]
    cfg.model.sync_batch_norm = False
    return cfg


# --------------------------------------------------------------------------------------------
# config.json

def test_write_then_read_config_round_trips_and_is_plain_json(tmp_path):
    cfg = _config()
    cfg.loss.kind = "lab_hist"
    cfg.train.train_steps = 123
    path = run_dir.write_config(tmp_path / "run", cfg)
    assert path == str(tmp_path / "run" / "config.json") == run_dir.config_path(tmp_path / "run")
    as_json = json.loads(json.dumps(cfg.to_dict()))  # tuples become lists
    assert json.load(open(path)) == as_json
    back = run_dir.read_config(tmp_path / "run")
    assert isinstance(back, config_lib.PretrainConfig)
    assert json.loads(json.dumps(back.to_dict())) == as_json
    assert run_dir.read_config(tmp_path / "run", as_dict=True) == as_json
    assert os.listdir(tmp_path / "run") == ["config.json"]  # no temporary file left behind


def test_read_config_of_a_directory_without_one_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        run_dir.read_config(tmp_path)


@pytest.mark.parametrize("content, match", [
        (b"{not json", r"config\.json is not valid JSON \(.* line 1, column 2\)"),
        (b"", "is not valid JSON"),
        (b"[1, 2]", "must hold a JSON object .* got list"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b'{"model": {"arch": "vgg16", "depth": 3}}', r"unknown model config keys: \['depth'\]"),
        (b'{"model": {}, "extra": {}}', r"unknown config sections: \['extra'\]"),
        (b'{"model": "vgg16"}', r"sections must be JSON objects; \['model'\]"),
])
def test_garbled_config_is_a_config_error_naming_the_file(tmp_path, content, match):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(config_lib.ConfigError, match=match) as info:
        run_dir.read_config(tmp_path)
    assert str(tmp_path / "config.json") in str(info.value)


def test_describe_tells_run_directories_apart(tmp_path):
    def make(name, *files):
        for f in files:
            os.makedirs(os.path.dirname(tmp_path / name / f), exist_ok=True)
            (tmp_path / name / f).write_text("{}")
        os.makedirs(tmp_path / name, exist_ok=True)
        return tmp_path / name

    assert run_dir.describe(make("c", "config.json", "export/tfcolor_export.json")) == \
        "colorization"
    assert run_dir.describe(make("e", "tfcolor_export.json")) == "export"
    assert run_dir.describe(make("r", "export/tfcolor_export.json")) == "export"
    assert run_dir.describe(make("b", "tfcolor_baseline.json", "config.json")) == "baseline"
    assert run_dir.describe(make("n", "notes.txt")) is None
    assert run_dir.describe(tmp_path / "absent") is None


# --------------------------------------------------------------------------------------------
# The latest complete checkpoint.

def _save_steps(directory, steps):
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(directory), 5)
    for s in steps:
        step.assign(s)
        manager.save(checkpoint_number=s)
    return step


def test_latest_checkpoint_is_the_named_one_and_ignores_an_interrupted_save(tmp_path):
    assert run_dir.latest_checkpoint(tmp_path) is None
    _save_steps(tmp_path, [2, 4])
    assert run_dir.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-4")
    # A run killed while saving step 6: its temporary folder, and ckpt-6 files already merged
    # (here copies of ckpt-4's) that the state file does not name yet.
    os.makedirs(tmp_path / "ckpt-6_temp" / "part-00000-of-00001")
    for name in os.listdir(tmp_path):
        if name.startswith("ckpt-4."):
            shutil.copy(tmp_path / name, tmp_path / name.replace("ckpt-4", "ckpt-6"))
    assert run_dir.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-4")
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-4")  # agrees
    temporary, orphans = checkpointing.half_written(str(tmp_path), str(tmp_path / "ckpt-4"))
    assert temporary == ["ckpt-6_temp"] and orphans  # read-only: nothing was removed


def test_without_state_file_the_only_checkpoint_is_taken_and_several_are_refused(tmp_path):
    _save_steps(tmp_path, [2])
    os.remove(tmp_path / "checkpoint")
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    assert run_dir.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-2")
    assert not os.path.exists(tmp_path / "checkpoint")  # nothing written
    _save_steps(tmp_path / "two", [2, 4])
    os.remove(tmp_path / "two" / "checkpoint")
    with pytest.raises(checkpointing.CorruptCheckpointError, match="no 'checkpoint' state file"):
        run_dir.latest_checkpoint(tmp_path / "two")


def test_a_named_but_missing_or_damaged_checkpoint_raises_instead_of_none(tmp_path):
    _save_steps(tmp_path, [2])
    data = next(p for p in os.listdir(tmp_path) if p.startswith("ckpt-2.data"))
    raw = bytearray((tmp_path / data).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / data).write_bytes(bytes(raw))
    with pytest.raises(checkpointing.CorruptCheckpointError, match="corrupt or half-written"):
        run_dir.latest_checkpoint(tmp_path)
    assert run_dir.latest_checkpoint(tmp_path, validate=False) == str(tmp_path / "ckpt-2")
    os.remove(tmp_path / "ckpt-2.index")
    assert tf.train.latest_checkpoint(str(tmp_path)) is None  # what TensorFlow would say
    for validate in (True, False):
        with pytest.raises(checkpointing.CorruptCheckpointError, match="index file .* missing"):
            run_dir.latest_checkpoint(tmp_path, validate=validate)


def test_an_unreadable_state_file_raises(tmp_path):
    (tmp_path / "checkpoint").write_text("")
    with pytest.raises(checkpointing.CorruptCheckpointError, match="cannot be read"):
        run_dir.latest_checkpoint(tmp_path)


# --------------------------------------------------------------------------------------------
# load_model

def _trained_run(directory, steps=(1, 2)):
    """A run directory: config.json and checkpoints of a colorizer with random weights per step;
    returns {step: the model's dense output on a fixed image}."""
    cfg = _config()
    run_dir.write_config(directory, cfg)
    model = build_colorizer(cfg)
    x = tf.random.stateless_uniform([1, 24, 24, 1], seed=(1, 2))
    model.dense(x)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(directory), 5)
    outputs = {}
    for step in steps:
        for i, v in enumerate(model.trainable_variables):
            v.assign(tf.random.stateless_normal(v.shape, seed=(step, i), stddev=0.1))
        manager.save(checkpoint_number=step)
        outputs[step] = model.dense(x).numpy()
    return outputs, x


def test_load_model_restores_the_latest_checkpoint_or_a_given_one(tmp_path):
    outputs, x = _trained_run(tmp_path)
    model, kind = run_dir.load_model(tmp_path)
    assert kind == "hue_chroma" and model.taps == _config().model.taps
    np.testing.assert_allclose(model.dense(x).numpy(), outputs[2], atol=1e-6)
    older, _ = run_dir.load_model(str(tmp_path), checkpoint=str(tmp_path / "ckpt-1"))
    np.testing.assert_allclose(older.dense(x).numpy(), outputs[1], atol=1e-6)
    assert np.abs(outputs[1] - outputs[2]).max() > 1e-3  # the two checkpoints differ


def test_load_model_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        run_dir.load_model(tmp_path)
    run_dir.write_config(tmp_path, _config())
    with pytest.raises(FileNotFoundError, match=f"no checkpoint in {tmp_path}"):
        run_dir.load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(config_lib.ConfigError, match="not valid JSON"):
        run_dir.load_model(tmp_path)


def test_load_model_refuses_a_checkpoint_of_another_model(tmp_path):
    _trained_run(tmp_path, steps=(1,))
    cfg = _config()
    cfg.model.hidden = 16  # config.json now describes another head
    run_dir.write_config(tmp_path, cfg)
    with pytest.raises(checkpointing.CheckpointError, match="does not fit"):
        run_dir.load_model(tmp_path)
