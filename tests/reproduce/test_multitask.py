"""Tests of the reproduction's multi-proxy arms (Table 4.7): their configs, a C+J pretraining
that is preempted, resumed and reused, the video corpus check, the downstream classifier tap and
the report's Table 4.7 rows."""
import dataclasses
import json
import logging
import os
import signal

import pytest

from tfcolor.config import ConfigError
from tfcolor.reproduce import config as config_lib
from tfcolor.reproduce import corpus as corpus_lib
from tfcolor.reproduce import report
from tfcolor.reproduce import runner

NEW_ARMS = ("jigsaw", "video", "cj", "cjv", "cj_sgd")


def _config(corpus="/c", output_dir="/o", **kw):
    values = dict(corpus=corpus, output_dir=output_dir, arms=("cj",), evaluate_arms=(),
                  pretrain_seeds=(0,), finetune_seeds=(0,), protocols=("linear_probe",),
                  hidden=8, crop_size=32, batch_size=2, points=4, pretrain_steps=4, eval_every=2,
                  heldout_images=2, probe_learning_rates=(0.1,), ft_batch_size=8,
                  ft_eval_every=2, ft_max_steps=2, normsgd_warmup_steps=1)
    values.update(kw)
    return config_lib.ReproduceConfig(**values)


def test_the_new_arms_are_the_table_rows():
    arms = config_lib.ARMS
    assert {a: arms[a].tasks for a in NEW_ARMS} == {
            "jigsaw": ("jigsaw",), "video": ("video",), "cj": ("colorization", "jigsaw"),
            "cjv": ("colorization", "jigsaw", "video"), "cj_sgd": ("colorization", "jigsaw")}
    assert [arms[a].label for a in NEW_ARMS] == ["J", "V", "C+J", "C+J+V", "C+J (SGD)"]
    # C+J under SGD differs from C+J only in the gradient rule.
    cj, sgd = dataclasses.asdict(arms["cj"]), dataclasses.asdict(arms["cj_sgd"])
    assert [k for k in cj if k != "description" and cj[k] != sgd[k]] == ["gradient_rule"]
    assert (arms["cj"].gradient_rule, arms["cj_sgd"].gradient_rule) == ("normsgd", "sum")
    assert [a for a in arms if arms[a].is_colorizer and arms[a].is_multitask] == [
            "cj", "cjv", "cj_sgd"]
    # Thesis: 8 images alone, 4 per task jointly.
    assert [arms[a].task_batch_size(8) for a in NEW_ARMS] == [8, 8, 4, 4, 4]
    assert not arms["colorization"].is_multitask and arms["colorization"].task_batch_size(8) == 8


def test_jigsaw_pieces_follow_the_crop():
    assert config_lib.jigsaw_piece_size(500) == 224  # 227, to a multiple of 8
    assert config_lib.jigsaw_piece_size(128) == 56
    for crop in (16, 32, 96, 128, 352):
        piece = config_lib.jigsaw_piece_size(crop)
        assert piece % 8 == 0 and 2 * piece <= crop


@pytest.mark.parametrize("change, field", [
        (dict(evaluate_arms=("jigsaw",), arms=("jigsaw",)), "evaluate_arms"),
        (dict(normsgd_learning_rate=0), "normsgd_learning_rate"),
        (dict(normsgd_warmup_steps=-1), "normsgd_warmup_steps"),
        (dict(normsgd_warmup_steps=2), "normsgd_warmup_steps"),  # the first drop is at step 2
        (dict(video_corpus=""), "video_corpus"),
])
def test_bad_multitask_values_name_their_field(change, field):
    with pytest.raises(ConfigError) as e:
        _config(**change).validate()
    assert e.value.field == field


@pytest.mark.parametrize("arm", NEW_ARMS)
def test_each_arm_is_a_valid_pretraining_config(arm, tmp_path):
    folders = {s: str(tmp_path) for s in ("train", "val")}
    config = _config(crop_size=128, batch_size=8, pretrain_steps=1000).validate()
    run = runner._pretrain_config(config, arm, 0, folders, str(tmp_path / "m")).validate()
    mt = run.multitask
    assert tuple(mt.tasks) == config_lib.ARMS[arm].tasks and mt.input_channels == 3
    per_task = 4 if len(mt.tasks) > 1 else 8
    assert run.data.batch_size == per_task
    if "jigsaw" in mt.tasks:
        assert mt.task_data["jigsaw"] == {"crop_size": 128, "min_side": 128, "max_side": 128,
                                          "batch_size": per_task}
        assert mt.task_options["jigsaw"] == {"piece_size": 56, "tap": "conv3_3"}
    if "video" in mt.tasks:
        assert mt.task_data["video"]["data"] == os.path.join(
                os.path.expanduser("~/.cache/tfcolor-video"), "train")
        assert mt.task_options["video"]["model_kwargs"]["taps"] == list(config.taps)
    normsgd = mt.gradient_rule == "normsgd"
    assert run.optimizer.learning_rate == (config.normsgd_learning_rate if normsgd
                                           else config.learning_rate)
    assert run.optimizer.warmup_steps == (config.normsgd_warmup_steps if normsgd else 0)
    # The held-out loss is the colorizer's: only arms with colorization read the val photos.
    assert (run.data.heldout_data is not None) == ("colorization" in mt.tasks)


def test_a_run_begun_before_the_new_fields_resumes(tmp_path):
    config = _config(output_dir=str(tmp_path)).validate()
    old = config.to_dict()
    for key in ("normsgd_learning_rate", "normsgd_warmup_steps", "video_corpus"):
        del old[key]
    with open(tmp_path / runner.CONFIG_FILE, "w") as f:
        json.dump(old, f)
    runner._check_config(dataclasses.replace(config, normsgd_warmup_steps=50))  # the defaults
    with pytest.raises(ConfigError, match="normsgd_learning_rate"):
        runner._check_config(dataclasses.replace(config, normsgd_learning_rate=0.5))


def test_a_missing_video_corpus_is_one_line_before_anything_is_written(tmp_path):
    corpus = corpus_lib.make_fake_corpus(str(tmp_path / "corpus"), photos=6)
    out = tmp_path / "out"
    config = _config(corpus, str(out), arms=("cj", "cjv"), video_corpus=str(tmp_path / "none"))
    with pytest.raises(corpus_lib.VideoCorpusError) as e:
        runner.run(config)
    message = str(e.value)
    assert "\n" not in message and "tools/build_video_corpus.py" in message
    assert message.startswith(f"video corpus '{tmp_path / 'none'}' has no train/*.tfrecord")
    assert isinstance(e.value, corpus_lib.CorpusError) and e.value.flag == "video_corpus"
    assert not out.exists()
    (tmp_path / "none" / "train").mkdir(parents=True)
    with pytest.raises(corpus_lib.VideoCorpusError):  # a folder without records
        corpus_lib.check_video_corpus(str(tmp_path / "none"))
    (tmp_path / "none" / "train" / "a.tfrecord").write_bytes(b"")
    assert corpus_lib.check_video_corpus(str(tmp_path / "none")) == str(tmp_path / "none")


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def cj_arm(tmp_path_factory):
    """C+J pretrained for 4 steps: SIGTERM at step 2, then resumed by the same call (about a
    minute on 2 idle cores, three under load: slow)."""
    from tfcolor.train import pretraining
    root = tmp_path_factory.mktemp("reproduce_mt")
    corpus = corpus_lib.make_fake_corpus(str(root / "corpus"), photos=8)
    config = _config(corpus, str(root / "out")).validate()
    folders = corpus_lib.split_folders(corpus, str(root / "photos"))
    original = pretraining.pretrain

    def preempt(trainer, step, losses):
        if step >= 2:
            os.kill(os.getpid(), signal.SIGTERM)

    pretraining.pretrain = lambda cfg, **kw: original(cfg, hooks=[preempt], **kw)
    try:
        with pytest.raises(runner.Preempted, match="rerun the same command to resume"):
            runner.pretrain_arm(config, "cj", 0, folders)
    finally:
        pretraining.pretrain = original
    model_dir = os.path.join(config.output_dir, "pretrain", "cj_s0")
    stopped = sorted(os.listdir(model_dir))
    log, logger = _Messages(), logging.getLogger("absl")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    try:
        info = runner.pretrain_arm(config, "cj", 0, folders)
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
    return config, folders, info, stopped, log.messages


@pytest.mark.slow
def test_a_multitask_arm_resumes_and_writes_its_done_file(cj_arm):
    config, folders, info, stopped, messages = cj_arm
    model_dir = info["model_dir"]
    assert "ckpt-2.index" in stopped and runner._DONE not in stopped
    with open(os.path.join(model_dir, runner._DONE)) as f:
        assert json.load(f)["steps"] == 4
    # Resumed from the preempted step, not restarted.
    assert any(m.startswith("resumed from") and m.endswith("at step 2") for m in messages)
    assert [s for s, _ in info["heldout_curve"]][-1] == 4
    assert {"colorization", "jigsaw", "jigsaw/accuracy"} <= set(info["final_losses"])
    assert not any(k.startswith("grad/") for k in info["final_losses"])
    # A finished arm is reused as it is.
    stamp = os.path.getmtime(os.path.join(model_dir, "ckpt-4.index"))
    assert runner.pretrain_arm(config, "cj", 0, folders) == info
    assert os.path.getmtime(os.path.join(model_dir, "ckpt-4.index")) == stamp


@pytest.mark.slow
def test_the_downstream_classifier_pools_the_same_tap_for_every_trunk(cj_arm):
    from tfcolor.downstream import initialization
    config, _, info, _, _ = cj_arm
    assert runner._feature_tap(config, "cj_s0") == "conv3_3"
    assert runner._feature_tap(config, "random") is None
    assert runner._feature_tap(config, "colorization_s0") is None
    shared = initialization.model_fn(info["model_dir"], "classification", 3, arch=config.arch)()
    assert shared.feature_tap != "conv3_3"  # the shared trunk goes on to the deepest layer
    given = initialization.model_fn(info["model_dir"], "classification", 3, arch=config.arch,
                                    head_taps="conv3_3")()
    random = initialization.model_fn("random", "classification", 3, arch=config.arch,
                                     taps=list(config.taps))()
    assert given.feature_tap == random.feature_tap == "conv3_3"
    assert given.trunk.input.shape[-1] == random.trunk.input.shape[-1] == 1  # grey, summed
    # The layers after the pooled tap do not reach the loss: frozen, every trainable trunk
    # variable gets a gradient and the logits do not change.
    import numpy as np
    import tensorflow as tf
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    before = given.logits(images).numpy()
    runner.freeze_after(given, "conv3_3")
    frozen = [layer.name for layer in given.trunk.layers if layer.weights and not layer.trainable]
    assert "conv4_1" in frozen and "conv3_3" not in frozen
    np.testing.assert_array_equal(given.logits(images).numpy(), before)
    trunk_vars = given.trunk.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(given.logits(images, training=True) ** 2)
    grads = tape.gradient(loss, trunk_vars)
    assert trunk_vars and all(g is not None for g in grads)


def _cell(test):
    return {"test_mean": test, "val_mean": 0.5, "test_std": 0.0, "learning_rate": 0.1,
            "at_edge": False, "test": {}}


def test_the_report_puts_our_rows_next_to_table_4_7():
    inits = {"colorization_s0": 0.40, "colorization_s1": 0.30, "jigsaw_s0": 0.20,
             "video_s0": 0.33, "cj_s0": 0.36, "cjv_s0": 0.10, "cj_sgd_s0": 0.50}
    results = {"pretrain": {i: {"arm": i.rsplit("_s", 1)[0]} for i in inits},
               "downstream": {"finetune": {"metric": "top1", "chosen": {
                       "random": _cell(0.25), **{i: _cell(v) for i, v in inits.items()}},
                       "comparisons": {"cj - random": {"mean": 0.11,
                                                       "t_interval": [-0.02, 0.24]}}}}}
    lines = report.multitask_table(results, "finetune").splitlines()
    assert len(lines) == 2 + 7
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    # Seeds averaged (colorization: 0.35); ranks by hand: cj_sgd .50, cj .36, colorization .35,
    # video .33, random .25, jigsaw .20, cjv .10. Thesis ranks (cls): C, V, J, C+J+V, C+J, none.
    assert rows["colorization"] == ("| C (Colorization) | colorization | 0.350 | 3 | - | 61.1 | "
                                    "36.3 | 1 |")
    assert rows["cj"] == "| C+J | cj | 0.360 | 2 | +0.110 [-0.020, +0.240] | 59.2 | 35.5 | 5 |"
    assert rows["cj_sgd"].endswith("| 0.500 | 1 | - | - | - | - |")
    assert rows["random"].startswith("| No Pretraining | random | 0.250 | 5 |")
    assert rows["random"].endswith("| 46.2 | 23.5 | 6 |")
    assert [r.split(" | ")[1] for r in lines[2:]] == list(report.THESIS_TABLE_4_7)


def test_the_normsgd_grid_marks_the_lowest_last_held_out_loss():
    def run(last, best):
        return {"heldout_curve": [[100, best], [300, last]], "seconds": 9.0,
                "final_losses": {"jigsaw": 3.5, "jigsaw/accuracy": 0.04}}

    grid = {"arm": "cj", "steps": 300, "seed": 0,
            "results": {"0.0001": run(3.52, 3.50), "1e-06": run(3.84, 3.84),
                        "1e-05": run(3.45, 3.46)}}
    lines = report.normsgd_grid_table(grid).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 1e-06", "| **1e-05**", "| 0.0001"]
    assert lines[3] == "| **1e-05** | **3.450** | 3.450 @ 300 | 3.500 (0.04) | 9 |"
    assert lines[4].startswith("| 0.0001 | 3.520 | 3.500 @ 100 |")


def test_the_warm_up_is_checked_only_when_a_normsgd_arm_runs():
    _config(arms=("colorization", "cj_sgd"), normsgd_warmup_steps=50).validate()
    with pytest.raises(ConfigError):
        _config(arms=("colorization", "jigsaw"), normsgd_warmup_steps=50).validate()


def test_the_readme_table_of_the_committed_run_has_every_row():
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
            "results_tables", os.path.join(root, "tools", "results_tables.py"))
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    with open(os.path.join(root, "results", "reproduce_multitask.json")) as f:
        results = json.load(f)
    text = tables.multitask_headline()
    for arm in ("random", "colorization", "jigsaw", "video", "cj", "cjv", "cj_sgd"):
        assert f" | {arm} | " in text
    for name in ("colorization - cj", "cj - jigsaw", "cjv - cj", "cj - cj_sgd"):
        c = results["downstream"]["finetune"]["comparisons"][name]
        assert f"| {name} | {c['n']} | {c['mean']:+.3f} |" in text
