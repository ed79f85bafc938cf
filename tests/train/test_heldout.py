"""Tests of tfcolor.train.heldout: the held-out loss curve of pretraining."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as cfg
from tfcolor import data as data_lib
from tfcolor import losses, run_dir, targets
from tfcolor.tasks.colorization import ColorizationTask
from tfcolor.train import heldout, pretraining


def _task(loss_fn):
    return ColorizationTask(loss_fn=loss_fn)


def _batches(images=5, **kw):
    data = cfg.DataConfig(**dict(dict(batch_size=3, crop_size=48, points=6), **kw))
    return data_lib.heldout_batches("embedded:validation", data,
                                    cfg.LossConfig(kind="lab_joint", window=3),
                                    targets.TargetBuilder("lab_joint", window=3), images=images)


class _UniformModel:
    """Predicts the uniform histogram (all logits zero) at every point."""

    def sparse(self, gray, centers, training=False):  # pylint: disable=unused-argument
        return tf.zeros(tf.concat([tf.shape(centers)[:2], [256]], 0))


class _Trainer:
    """What the hook reads of a Trainer."""

    def __init__(self, model, train_steps, writer):
        self.model, self.train_steps, self.writer, self.is_chief = model, train_steps, writer, True


def test_uniform_predictor_scores_log_k_minus_the_target_entropy(tmp_path):
    # KL(t || uniform over 256 bins) = log 256 - H(t), averaged over every point of the uneven
    # batches (3 + 2 images): a hand formula independent of the loss and hook code.
    batches = _batches()
    t = np.concatenate([b["targets"].reshape(-1, 256) for b in batches]).astype(np.float64)
    entropy = -np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0), axis=1)
    expected = float(np.mean(np.log(256.0) - entropy))
    hook = heldout.HeldOutLoss(batches, _task(losses.HistogramKL((256,))), every=10)
    loss, terms = hook.evaluate(_UniformModel())
    assert loss == pytest.approx(expected, rel=1e-5) and terms == {}
    assert hook.images == 5


def test_hook_evaluates_every_n_steps_and_at_the_end_and_writes_the_curve(tmp_path):
    path = str(tmp_path / run_dir.HELDOUT_CURVE_FILE)
    task = _task(lambda y, p: {"a": losses.HistogramKL((256,))(y, p)})   # one part: the loss
    hook = heldout.HeldOutLoss(_batches(), task, every=100, path=path)
    trainer = _Trainer(_UniformModel(), 230, tf.summary.create_noop_writer())
    for step in (30, 60, 90, 120, 150, 180, 210, 230):
        hook(trainer, step, {})
    assert [s for s, _, _ in hook.curve] == [30, 120, 210, 230]
    with open(path, "a") as f:
        f.write('{"step": 120, "loss": 1.5, "terms": {}}\n{"step": 240, "lo')  # killed mid-write
    curve = heldout.read_curve(str(tmp_path))
    assert [s for s, _, _ in curve] == [30, 120, 210, 230]
    assert curve[1][1] == 1.5                                      # the last line of a step wins
    first = json.loads(open(path).readline())
    assert first["images"] == 5 and first["points"] == 30
    assert first["terms"]["a"] == pytest.approx(first["loss"], rel=1e-6)
    assert heldout.read_curve(str(tmp_path / "nothing")) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        heldout.HeldOutLoss(_batches(images=1), _task(losses.HistogramKL((256,))), every=0)
    with pytest.raises(cfg.ConfigError, match="heldout_data='/no/such/dir'"):
        cfg.DataConfig(heldout_data="/no/such/dir").validate()
    with pytest.raises(cfg.ConfigError, match="eval_every must be a positive integer"):
        cfg.TrainConfig(eval_every=0).validate()


def test_pretraining_writes_a_falling_heldout_curve(tmp_path):
    """A tiny run on the shipped photos: the held-out loss is logged at every eval_every steps
    and at the end, and the trained model's held-out loss is below the untrained one's."""
    model_dir = str(tmp_path / "run")
    config = cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv2_2", "conv3_3"), hidden=32,
                              dropout=0.0),
        data=cfg.DataConfig(data="embedded", batch_size=4, crop_size=64, points=16,
                            validation_images=0, targets_on_device=False,
                            heldout_data="embedded:validation", heldout_images=8),
        loss=cfg.LossConfig(kind="hue_chroma"),
        optimizer=cfg.OptimizerConfig(learning_rate=0.01, lr_drops=[]),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=60, steps_per_loop=10,
                              checkpoint_every=60, summary_every=30, image_every=0, export=False,
                              deterministic=True, eval_every=30)).validate()
    result = pretraining.pretrain(config)
    curve = heldout.read_curve(model_dir)
    assert [s for s, _, _ in curve] == [10, 30, 60]
    assert [s for s, _, _ in result.heldout_curve] == [10, 30, 60]
    assert set(curve[0][2]) == {"hue", "chroma"}
    for _, loss, terms in curve:
        assert loss == pytest.approx(terms["hue"] + terms["chroma"], rel=1e-5)
    assert curve[-1][1] < curve[0][1]


class _LogitsModel(tf.Module):
    """Predicts the same logits (a variable) at every point; checkpointable."""

    def __init__(self):
        super().__init__()
        self.logits = tf.Variable(tf.zeros([256]))

    def sparse(self, gray, centers, training=False):  # pylint: disable=unused-argument
        return tf.broadcast_to(self.logits, tf.concat([tf.shape(centers)[:2], [256]], 0))


def _run_steps(hook, model, trainer, steps, scales):
    """Evaluates at ``steps`` with logits ``scale * log(mean target + 1e-3)``, or, for scale
    ``"mean"``, the logits of the mean target itself: the constant prediction of lowest mean KL
    (the unique minimum), so strictly lower than any other."""
    mean = np.mean(np.concatenate([b["targets"].reshape(-1, 256) for b in hook.batches]), 0)
    for step, scale in zip(steps, scales):
        logits = (np.log(np.maximum(mean, 1e-30)) if scale == "mean"
                  else scale * np.log(mean + 1e-3))
        model.logits.assign(logits.astype("f4"))
        hook(trainer, step, {})


def test_keep_best_keeps_the_lowest_loss_and_survives_a_resume(tmp_path):
    best_dir = str(tmp_path / run_dir.BEST_DIR)
    task = _task(losses.HistogramKL((256,)))
    model = _LogitsModel()
    trainer = _Trainer(model, 50, tf.summary.create_noop_writer())
    hook = heldout.HeldOutLoss(_batches(), task, every=10, best_dir=best_dir,
                               heldout={"set": "a"})
    _run_steps(hook, model, trainer, [10, 20, 30, 40], [0.2, 1.0, 0.6, 3.0])
    losses_by_step = {s: loss for s, loss, _ in hook.curve}
    assert min(losses_by_step, key=losses_by_step.get) == 20
    record = run_dir.read_best_dir(best_dir)
    assert (record["step"], record["loss"]) == (20, losses_by_step[20])
    assert record["heldout"] == {"set": "a"} and hook.best["step"] == 20
    assert sorted(n for n in tf.io.gfile.listdir(best_dir) if n.startswith("ckpt-20")) == [
            "ckpt-20.data-00000-of-00001", "ckpt-20.index"]   # the earlier best (10) is gone
    assert not [n for n in tf.io.gfile.listdir(best_dir) if n.startswith("ckpt-10")]
    # The kept weights are those evaluated at step 20, whatever the model holds now.
    restored = _LogitsModel()
    tf.train.Checkpoint(model=restored).restore(record["checkpoint"]).expect_partial()
    assert hook.evaluate(restored)[0] == pytest.approx(losses_by_step[20], rel=1e-6)
    # A resumed run reads the record back: a worse loss keeps it, a lower one replaces it.
    resumed = heldout.HeldOutLoss(_batches(), task, every=10, best_dir=best_dir,
                                  heldout={"set": "a"})
    assert resumed.best["step"] == 20
    _run_steps(resumed, model, trainer, [30], [3.0])
    assert run_dir.read_best_dir(best_dir)["step"] == 20
    _run_steps(resumed, model, trainer, [40], ["mean"])
    record = run_dir.read_best_dir(best_dir)
    assert record["step"] == 40 and record["loss"] < losses_by_step[20]
    # Another held-out set: the record is not comparable and is replaced at the next evaluation.
    other = heldout.HeldOutLoss(_batches(), task, every=10, best_dir=best_dir,
                                heldout={"set": "b"})
    assert other.best is None
    _run_steps(other, model, trainer, [60], [3.0])
    assert run_dir.read_best_dir(best_dir)["step"] == 60


def test_keep_best_replaces_only_on_a_strictly_lower_loss(tmp_path):
    best_dir = str(tmp_path / "best")
    hook = heldout.HeldOutLoss(_batches(), _task(losses.HistogramKL((256,))), every=10,
                               best_dir=best_dir)
    model = _LogitsModel()
    trainer = _Trainer(model, 30, tf.summary.create_noop_writer())
    _run_steps(hook, model, trainer, [10, 20, 30], [1.0, 1.0, 1.0])   # equal losses
    assert run_dir.read_best_dir(best_dir)["step"] == 10
    with open(os.path.join(best_dir, run_dir.BEST_RECORD_FILE), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="is not a best-model record"):
        run_dir.read_best_dir(best_dir)
    assert heldout.HeldOutLoss(_batches(), hook.task, every=10, best_dir=best_dir).best is None
    assert run_dir.read_best_dir(str(tmp_path / "none")) is None


def _tiny_config(model_dir, train_steps, **train):
    return cfg.PretrainConfig(
        model=cfg.ModelConfig(arch="vgg_tiny", taps=("conv1_2", "conv2_2", "conv3_3"), hidden=32,
                              dropout=0.0, prior_bias=True),
        data=cfg.DataConfig(data="embedded", batch_size=4, crop_size=64, points=16,
                            validation_images=0, targets_on_device=False,
                            heldout_data="embedded:validation", heldout_images=8),
        loss=cfg.LossConfig(kind="hue_chroma"),
        optimizer=cfg.OptimizerConfig(learning_rate=0.03, lr_drops=[]),
        train=cfg.TrainConfig(model_dir=model_dir, train_steps=train_steps, steps_per_loop=10,
                              checkpoint_every=20, summary_every=20, image_every=0,
                              deterministic=True, eval_every=10, keep_best=True,
                              **train)).validate()


def _same_weights(a, b):
    return all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights))


@pytest.mark.slow
def test_pretraining_keeps_and_exports_the_model_of_the_lowest_heldout_loss(tmp_path):
    from tfcolor import export as export_lib  # pylint: disable=import-outside-toplevel
    model_dir = str(tmp_path / "run")
    first = pretraining.pretrain(_tiny_config(model_dir, 40, export=False))
    best = run_dir.read_best(model_dir)
    curve = heldout.read_curve(model_dir)
    assert best["step"] == min(curve, key=lambda e: e[1])[0]      # the argmin of heldout.jsonl
    assert best["loss"] == pytest.approx(min(e[1] for e in curve), rel=1e-6)
    assert first.best["step"] == best["step"]
    # Resumed for more steps: the record carries over and is the argmin of the whole curve.
    second = pretraining.pretrain(_tiny_config(model_dir, 70))
    curve = heldout.read_curve(model_dir)
    assert [s for s, _, _ in curve] == [10, 20, 30, 40, 50, 60, 70]
    best = run_dir.read_best(model_dir)
    assert best["step"] == min(curve, key=lambda e: e[1])[0]
    assert second.best["step"] == best["step"]
    # The run's model is the kept one: load_model, the end-of-run export and a re-export agree.
    path, record = run_dir.model_checkpoint(model_dir)
    assert path == best["checkpoint"] and record["step"] == best["step"]
    loaded, _ = run_dir.load_model(model_dir)
    assert _same_weights(loaded, second.model)
    meta = run_dir.read_export_metadata(run_dir.export_path(model_dir))
    assert meta["checkpoint"] == {"path": f"ckpt-{best['step']}", "step": best["step"],
                                  "selected": "best_heldout", "heldout_loss": best["loss"]}
    again = export_lib.export_from_checkpoint(model_dir, str(tmp_path / "again"))
    assert run_dir.read_export_metadata(again)["checkpoint"] == meta["checkpoint"]
    assert _same_weights(export_lib.load_keras_model(again), loaded)
    # Its held-out loss is the recorded one (the kept weights are the evaluated ones).
    task = ColorizationTask(loss_fn=pretraining.colorization.build_loss(cfg.LossConfig()))
    hook = heldout.HeldOutLoss(pretraining.colorization.heldout_batches(
        _tiny_config(model_dir, 70)), task)
    assert hook.evaluate(loaded)[0] == pytest.approx(best["loss"], rel=1e-4)
    # Without keep_best the run's model is the last checkpoint again.
    config = run_dir.read_config(model_dir, as_dict=True)
    config["train"]["keep_best"] = False
    run_dir.write_config(model_dir, config)
    path, record = run_dir.model_checkpoint(model_dir)
    assert path.endswith("ckpt-70") and record is None
