"""Tests for tfcolor.downstream.protocol: the plateau schedule and end-to-end fine-tuning."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.downstream import datasets, initialization, pipelines, protocol
from tfcolor.train.strategy import make_strategy  # one strategy per device set


def test_plateau_schedule_scripted_scores():
    s = protocol.PlateauSchedule(0.1, drop_factor=0.1, patience=1, max_drops=2)
    scripted = [(10, 0.5), (20, 0.6), (30, 0.6), (40, 0.7), (50, 0.65), (60, 0.7)]
    actions = [s.update(step, score) for step, score in scripted]
    # 30: no gain -> first drop; 50: no gain -> second drop; 60: a tie is no gain and two
    # drops were made already -> stop.
    assert actions == ["improved", "improved", "drop", "improved", "drop", "stop"]
    assert s.drop_steps == [30, 50]
    assert s.learning_rate == pytest.approx(0.001)
    assert s.best_score == 0.7 and s.best_step == 40
    assert s.stopped
    with pytest.raises(RuntimeError):
        s.update(70, 0.9)


def test_plateau_schedule_patience_and_min_delta():
    s = protocol.PlateauSchedule(1.0, drop_factor=0.5, patience=2, max_drops=1, min_delta=0.05)
    seq = [0.5, 0.52, 0.6, 0.61, 0.62, 0.7, 0.7, 0.7]
    actions = [s.update(i, v) for i, v in enumerate(seq)]
    assert actions == ["improved", "continue", "improved", "continue", "drop", "improved",
                       "continue", "stop"]
    assert s.learning_rate == 0.5 and s.drop_steps == [4]
    # The rate recorded with each evaluation is the one used before it.
    assert [h[2] for h in s.history] == [1.0] * 5 + [0.5] * 3


def test_plateau_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="drop_factor"):
        protocol.PlateauSchedule(0.1, drop_factor=1.5)
    with pytest.raises(ValueError, match="NaN"):
        protocol.PlateauSchedule(0.1).update(1, float("nan"))
    with pytest.raises(ValueError, match="val_fraction"):
        protocol.FinetuneConfig(val_fraction=1.0).validate()


def test_learning_rate_assignment_reaches_a_traced_step():
    v = tf.Variable(1.0)
    opt = keras.optimizers.SGD(learning_rate=0.5)
    opt.build([v])

    @tf.function
    def step():
        opt.apply([tf.constant(1.0)], [v])

    step()
    assert v.numpy() == pytest.approx(0.5)
    protocol._set_learning_rate(opt, 0.1)  # pylint: disable=protected-access
    step()
    assert v.numpy() == pytest.approx(0.4)


def _stripes(n, seed=0, size=16):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, (n, size, size, 3)).astype(np.float32)
    for i in range(n):
        if y[i]:
            x[i, :, ::4] += 0.6
        else:
            x[i, ::4, :] += 0.6
    return datasets.from_arrays(np.clip(x, 0, 1), y)


def test_tiny_finetune_beats_chance_and_retrains_on_full(tmp_path):
    train, test = _stripes(96, seed=0), _stripes(40, seed=1)
    sample = pipelines.eval_dataset(train.subset(np.arange(16)), batch_size=16)
    sample = next(iter(sample))["image"].numpy()
    fn = initialization.model_fn("random", "classification", 2, arch="vgg_tiny",
                                 taps="conv1_1-conv3_3", rebalance_images=sample, seed=0,
                                 dropout=0.0)
    config = protocol.FinetuneConfig(batch_size=16, learning_rate=0.01, weight_decay=0.0,
                                     eval_every=10, max_steps=60, patience=2,
                                     retrain_full=True)
    result = protocol.finetune(fn, train, test, config, model_dir=str(tmp_path))
    assert result.test["top1"] >= 0.8  # chance is 0.5
    assert result.test_full is not None and result.test_full["top1"] >= 0.7
    # per-image top-1 classes in the order of the test set: they give back the accuracy
    for scores in (result.test, result.test_full):
        assert len(scores["predictions"]) == len(test)
        assert np.mean(np.array(scores["predictions"]) == test.labels) == pytest.approx(
                scores["top1"])
    assert result.stop_step <= 60
    assert [h[0] for h in result.history] == list(range(10, result.stop_step + 1, 10))
    with pytest.raises(ValueError, match="earlier run"):
        protocol.finetune(fn, train, test, config, model_dir=str(tmp_path))


def test_summarize():
    s = protocol.summarize([0.5, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(np.sqrt(0.02))
    assert protocol.summarize([0.3])["std"] == 0.0


def _segmentation_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.2, (n, 16, 16, 3)).astype(np.float32)
    masks = np.zeros((n, 16, 16), np.uint8)
    x[:, :, 8:] += 0.7  # class 1 on the bright right half
    masks[:, :, 8:] = 1
    masks[:, :2] = 255
    return datasets.LabeledData(np.clip(x, 0, 1), masks, "segmentation", 2)


def test_segmentation_and_multilabel_protocol_runs(tmp_path):
    seg = _segmentation_data()
    fn = initialization.model_fn("random", "segmentation", 2, arch="vgg_tiny",
                                 taps="conv1_1-conv2_2", hidden=8, seed=0, dropout=0.0)
    config = protocol.FinetuneConfig(batch_size=4, num_points=16, eval_every=2, max_steps=4,
                                     val_fraction=0.25, learning_rate=0.01)
    result = protocol.finetune(fn, seg, seg, config, model_dir=str(tmp_path / "seg"))
    assert result.metric == "mean_iu" and 0.0 <= result.test["mean_iu"] <= 1.0
    assert len(result.test["per_class_iu"]) == 2
    y = np.array([[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]] * 3)
    x = np.random.default_rng(1).uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
    multi = datasets.from_arrays(x, y, task="multilabel")
    fn = initialization.model_fn("random", "multilabel", 3, arch="vgg_tiny",
                                 taps="conv1_1-conv2_2", seed=0)
    config = protocol.FinetuneConfig(batch_size=4, eval_every=2, max_steps=4, ap_method="area")
    result = protocol.finetune(fn, multi, multi, config, model_dir=str(tmp_path / "multi"))
    assert result.metric == "mAP" and 0.0 <= result.test["mAP"] <= 1.0


def test_finetune_under_mirrored_strategy(tmp_path):
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    fn = initialization.model_fn("random", "classification", 2, arch="vgg_tiny",
                                 taps="conv1_1-conv2_2", seed=0)
    config = protocol.FinetuneConfig(batch_size=8, eval_every=2, max_steps=4)
    result = protocol.finetune(fn, _stripes(40), _stripes(10, seed=2), config,
                               model_dir=str(tmp_path), strategy=strategy)
    assert result.stop_step <= 4 and 0.0 <= result.test["top1"] <= 1.0


def test_an_explicit_validation_set_scores_the_plateau_and_train_is_not_split(tmp_path,
                                                                              monkeypatch):
    """With ``val_data`` (e.g. a set's own val split) the whole training set is trained on (no
    split) and every validation score in the history is the model's score on ``val_data``."""
    train, val = _stripes(32, seed=0), _stripes(12, seed=3)
    zeros = datasets.from_arrays(val.images, np.zeros(len(val), np.int64), num_classes=2)
    monkeypatch.setattr(datasets.LabeledData, "split",
                        lambda *a, **k: pytest.fail("train_data must not be split"))
    fn = initialization.model_fn("random", "classification", 2, arch="vgg_tiny",
                                 taps="conv1_1-conv2_2", seed=0, dropout=0.0)
    config = protocol.FinetuneConfig(batch_size=8, eval_every=2, max_steps=4,
                                     restore_best=False)
    seen = []
    real_score = protocol.score

    def spy(model, data, cfg, color=False):
        out = real_score(model, data, cfg, color=color)
        if data is zeros:
            seen.append(out["top1"])
        return out
    monkeypatch.setattr(protocol, "score", spy)
    result = protocol.finetune(fn, train, None, config, model_dir=str(tmp_path), val_data=zeros)
    assert [h[0] for h in result.history] == [2, 4]
    assert [h[1] for h in result.history] == seen and len(seen) == 2
    with pytest.raises(ValueError, match="val_data is a segmentation set"):
        protocol.finetune(fn, train, None, config, model_dir=str(tmp_path / "x"),
                          val_data=_segmentation_data())
