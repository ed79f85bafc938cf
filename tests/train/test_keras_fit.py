"""Tests of tfcolor.train.keras_fit (Keras-native compile/fit) and of the colorizer's own Keras
training path.

Reference: the generic trainer (tfcolor.train.trainer.Trainer) with the same task, optimizer
config and data: ``fit`` must give the same loss trajectory (epoch of S steps == trainer loop of
S steps) and the same final weights, on one device and under MirroredStrategy over the two
logical CPUs of tests/conftest.py. BackupAndRestore is checked against an uninterrupted run.
"""
import functools
import glob
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import train_standins as si  # noqa: E402

from tfcolor import config  # noqa: E402
from tfcolor import losses  # noqa: E402
from tfcolor import targets as targets_lib  # noqa: E402
from tfcolor import train  # noqa: E402
from tfcolor.models import Colorizer  # noqa: E402
from tfcolor.tasks.base import Task  # noqa: E402
from tfcolor.tasks.colorization import ColorizationTask  # noqa: E402
from tfcolor.train.keras_fit import TaskModel  # noqa: E402

needs_two_cpus = pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2,
                                    reason="needs 2 logical CPU devices (tests/conftest.py)")

STEPS_PER_EPOCH = 2
EPOCHS = 3


@pytest.fixture(autouse=True)
def _deterministic():
    train.set_deterministic(3)


def _opt(**kw):
    base = dict(learning_rate=0.1, lr_drops=[4], lr_drop_factor=0.5, weight_decay=1e-3,
                head_weight_decay=1e-2, bias_lr_multiplier=2.0)
    base.update(kw)
    return config.OptimizerConfig(**base)


def _standin_task(seed=1, dataset=None, dropout=0.0):
    def model_fn():
        keras.utils.set_random_seed(seed)
        return si.StandInColorizer(sync_batch_norm=True, dropout=dropout)

    return ColorizationTask(model_fn=model_fn, loss_fn=si.per_point_parts,
                            dataset=dataset if dataset is not None else si.make_dataset())


def _values(variables):
    return [np.array(v.value if hasattr(v, "value") else v) for v in variables]


def _run_trainer(task, tmp_path, strategy, opt, mixed_precision=False):
    steps = STEPS_PER_EPOCH * EPOCHS
    trainer = train.Trainer(task, strategy=strategy, model_dir=str(tmp_path / "trainer"),
                            train_steps=steps, optimizer_config=opt,
                            steps_per_loop=STEPS_PER_EPOCH, checkpoint_every=steps,
                            summary_every=STEPS_PER_EPOCH, mixed_precision=mixed_precision,
                            handle_sigterm=False)
    result = trainer.train()
    assert [s for s, _ in result.history] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    return result.history, _values(trainer.model.weights)


def _run_fit(task, strategy, opt, callbacks=(), mixed_precision=False, dataset=None):
    with strategy.scope():
        model = TaskModel(task, optimizer_config=opt)
        model.compile(optimizer=train.make_optimizer(opt, STEPS_PER_EPOCH * EPOCHS,
                                                     mixed_precision=mixed_precision))
    history = model.fit(task.build_inputs() if dataset is None else dataset, epochs=EPOCHS,
                        steps_per_epoch=STEPS_PER_EPOCH, callbacks=list(callbacks), verbose=0)
    return model, history.history


def _assert_same_trajectory(trainer_history, fit_history, names, rtol=1e-5):
    for name in names:
        expected = [losses_[name] for _, losses_ in trainer_history]
        np.testing.assert_allclose(fit_history[name], expected, rtol=rtol, err_msg=name)


# --------------------------------------------------------------------------------------------
# fit == trainer

@pytest.mark.parametrize("strategy_name,clip_norm,positioned", [
    ("default", None, False),
    pytest.param("mirrored", 0.05, True, marks=needs_two_cpus),
])
def test_fit_gives_the_trainers_losses_and_weights(tmp_path, strategy_name, clip_norm,
                                                   positioned):
    """6 steps as 3 epochs of 2 == 3 trainer loops of 2: losses (rtol 1e-5) and weights (incl.
    BN moving statistics) agree. Weight decay (separate head rate), bias multiplier, a learning
    rate drop at step 4, synchronized BN and (mirrored) clipping of the global gradient (0.05
    is below the gradient norm, so it clips) are all active; the mirrored run reads batches
    carrying "index" (dropped by the step)."""
    strategy = train.make_strategy(strategy_name)
    opt = _opt(clip_norm=clip_norm)
    dataset = si.make_dataset_fn() if positioned else None
    trainer_history, trainer_weights = _run_trainer(_standin_task(dataset=dataset), tmp_path,
                                                    strategy, opt)
    model, fit_history = _run_fit(_standin_task(dataset=dataset), strategy, opt)
    assert model.loss_names == ["loss", "colorization", "weight_decay", "colorization/high",
                                "colorization/low"]
    _assert_same_trajectory(trainer_history, fit_history, model.loss_names)
    fit_weights = _values(model.network.weights)
    assert len(fit_weights) == len(trainer_weights)
    for a, b in zip(fit_weights, trainer_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The runs trained (not a comparison of two untouched models) and the rate dropped.
    keras.utils.set_random_seed(1)
    untouched = si.StandInColorizer(sync_batch_norm=True)
    untouched.sparse(tf.zeros([1, 8, 8, 1]), tf.zeros([1, 5, 2], tf.int32))
    assert not np.allclose(_values(untouched.trainable_variables)[0],
                           _values(model.network.trainable_variables)[0])
    assert train.current_learning_rate(model.optimizer) == pytest.approx(0.05)


@pytest.mark.slow  # two mixed-precision trainings (about 25-40 s); fit's default-precision
# equality with the trainer stays in the default run
def test_fit_mixed_precision_uses_the_loss_scale_optimizer_and_matches_the_trainer(tmp_path):
    """Under mixed_float16, compile wraps the optimizer in Keras' LossScaleOptimizer; fit and the
    trainer (also loss-scaled) give the same losses."""
    strategy = train.make_strategy("default")
    opt = _opt()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        trainer_history, trainer_weights = _run_trainer(_standin_task(), tmp_path, strategy, opt,
                                                        mixed_precision=True)
        with strategy.scope():
            model = TaskModel(_standin_task(), optimizer_config=opt)
            model.compile(optimizer=train.make_optimizer(opt, STEPS_PER_EPOCH * EPOCHS))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(_standin_task().build_inputs(), epochs=EPOCHS,
                            steps_per_epoch=STEPS_PER_EPOCH, verbose=0).history
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.network.conv.compute_dtype == "float16"
    _assert_same_trajectory(trainer_history, history, ["loss", "colorization"], rtol=1e-4)
    for a, b in zip(_values(model.network.weights), trainer_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_evaluate_reports_the_inference_loss_and_the_weight_decay_by_hand():
    """evaluate (test_step) = mean point loss of the model in inference mode + sum of
    0.5 * rate * ||kernel||^2 (head rate on the head's kernel), computed here directly."""
    opt = _opt(weight_decay=1e-3, head_weight_decay=1e-2)
    model = TaskModel(_standin_task(), optimizer_config=opt)
    model.compile(optimizer=train.make_optimizer(opt, 10))
    batch = next(iter(si.make_dataset()))
    result = model.evaluate(si.make_dataset().take(1), return_dict=True, verbose=0)
    net = model.network
    logits = net.sparse(batch["gray"], batch["centers"], training=False)
    data = float(tf.reduce_mean(si.per_point_loss(batch["targets"], logits)))
    decay = (0.5 * 1e-3 * float(tf.reduce_sum(tf.square(net.conv.kernel)))
             + 0.5 * 1e-2 * float(tf.reduce_sum(tf.square(net.head.kernel))))
    assert result["colorization"] == pytest.approx(data, rel=1e-6)
    assert result["weight_decay"] == pytest.approx(decay, rel=1e-6)
    assert result["loss"] == pytest.approx(data + decay, rel=1e-6)


def _images():
    return (np.random.default_rng(0).uniform(0, 1, (4, 40, 40, 3)) * 255).astype(np.uint8)


def _data_config():
    return config.DataConfig(batch_size=2, crop_size=32, points=8, edge_buffer=4, min_side=32,
                             max_side=36)


def _denoising_task():
    from tfcolor.tasks import denoising  # pylint: disable=import-outside-toplevel
    return denoising.DenoisingTask(_data_config(), source=_images(), model_kwargs=dict(
        arch="vgg_tiny", taps="conv1_1-conv2_2", hidden=8))


def _split_brain_task():
    from tfcolor.tasks import split_brain  # pylint: disable=import-outside-toplevel
    return split_brain.SplitBrainTask(_data_config(), source=_images(), model_kwargs=dict(
        arch="vgg_tiny", taps="conv1_1-conv2_2", hidden=8, l_bins=3, ab_bins=2))


def _classification_task():
    from tfcolor.downstream import datasets, initialization  # pylint: disable=import-outside-toplevel
    from tfcolor.tasks import downstream  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    data = datasets.from_arrays(rng.integers(0, 255, (16, 12, 12, 1), dtype=np.uint8),
                                np.arange(16) % 3, num_classes=3)
    model_fn = initialization.model_fn("random", "classification", 3, arch="vgg_tiny",
                                       taps="conv1_1-conv2_2", seed=0, dropout=0.0, hidden=8)
    return downstream.ClassificationTask(data, model_fn, batch_size=4)


@pytest.mark.parametrize("make_task", [
    _classification_task,
    pytest.param(_denoising_task, marks=pytest.mark.slow),
    pytest.param(_split_brain_task, marks=pytest.mark.slow),
], ids=["classification", "denoising", "split_brain"])
def test_every_task_trains_with_fit_as_with_the_trainer(tmp_path, make_task):
    """The other objectives (tfcolor.tasks): one epoch of 2 steps == one trainer loop of 2
    steps, losses and weights. The classification pipeline reshuffles on every iteration, so
    this also checks that fit starts the input once (no symbolic-build batch, see
    TaskModel._maybe_symbolic_build)."""
    strategy = train.make_strategy("default")
    opt = _opt()
    keras.utils.set_random_seed(7)
    trainer = train.Trainer(make_task(), strategy=strategy, model_dir=str(tmp_path),
                            train_steps=2, optimizer_config=opt, steps_per_loop=2,
                            checkpoint_every=2, summary_every=2, handle_sigterm=False)
    expected = trainer.train().losses
    keras.utils.set_random_seed(7)
    task = make_task()
    # Made where the trainer makes it (before the model): the downstream pipeline's shuffle
    # order depends on TF's global seed at creation, which building the model changes.
    dataset = task.build_inputs()
    with strategy.scope():
        model = TaskModel(task, optimizer_config=opt)
        model.compile(optimizer=train.make_optimizer(opt, 2))
    history = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0).history
    assert model.loss_names == trainer.loss_names
    for name in model.loss_names:
        np.testing.assert_allclose(history[name][0], expected[name], rtol=1e-5, err_msg=name)
    for a, b in zip(_values(model.network.weights), _values(trainer.model.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Callbacks

class _KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("killed")


@pytest.mark.parametrize("strategy_name", [
    "default", pytest.param("mirrored", marks=[needs_two_cpus, pytest.mark.slow])])
def test_backup_and_restore_resumes_to_the_uninterrupted_weights(tmp_path, strategy_name):
    """Killed after epoch 1 (of 0..2) and rerun with BackupAndRestore: the rerun trains epoch 2
    only and ends with the uninterrupted run's weights, BN statistics and optimizer step. Every
    epoch reads the same batches (a finite dataset of one epoch), the condition for an exact
    Keras resume (module docstring)."""
    strategy = train.make_strategy(strategy_name)
    opt = _opt()

    def epoch_data():
        return si.make_dataset().take(STEPS_PER_EPOCH)

    def fit(backup_dir, seed, kill=None):
        with strategy.scope():
            model = TaskModel(_standin_task(seed=seed), optimizer_config=opt)
            model.compile(optimizer=train.make_optimizer(opt, STEPS_PER_EPOCH * EPOCHS))
        callbacks = [keras.callbacks.BackupAndRestore(str(backup_dir))]
        if kill is not None:
            callbacks.append(_KillAfterEpoch(kill))
        history = model.fit(epoch_data(), epochs=EPOCHS, callbacks=callbacks, verbose=0)
        return model, history

    reference, _ = fit(tmp_path / "ref", seed=1)
    with pytest.raises(RuntimeError, match="killed"):
        fit(tmp_path / "backup", seed=1, kill=1)
    assert os.path.exists(tmp_path / "backup" / "latest.weights.h5")
    # Another initialisation: the weights must come from the backup.
    resumed, history = fit(tmp_path / "backup", seed=5)
    assert history.epoch == [2]
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS_PER_EPOCH
    for a, b in zip(_values(resumed.network.weights), _values(reference.network.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(_values(resumed.optimizer.variables), _values(reference.optimizer.variables)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_tensorboard_callback_writes_the_task_losses(tmp_path):
    strategy = train.make_strategy("default")
    _run_fit(_standin_task(), strategy, _opt(),
             callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    tags = set()
    for path in glob.glob(str(tmp_path / "tb" / "train" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_loss", "epoch_colorization", "epoch_weight_decay",
            "epoch_colorization/low"} <= tags


# --------------------------------------------------------------------------------------------
# Serialization

@keras.saving.register_keras_serializable(package="tfcolor_tests")
class SerializableStandInTask(Task):
    """The stand-in colorization task with get_config/from_config (a Keras-serialisable task)."""

    name = "standin"

    def __init__(self, seed=1, batch_size=4):
        self.seed = seed
        self.batch_size_ = batch_size
        self._task = _standin_task(seed=seed, dataset=si.make_dataset(batch_size=batch_size))

    def get_config(self):
        return {"seed": self.seed, "batch_size": self.batch_size_}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def build_model(self):
        return self._task.build_model()

    def build_inputs(self, start=0):
        return self._task.build_inputs(start)

    def compute_loss(self, model, batch, *, training, global_batch_size):
        return self._task.compute_loss(model, batch, training=training,
                                       global_batch_size=global_batch_size)


def test_get_config_round_trip_and_keras_file(tmp_path):
    opt = _opt(clip_norm=1.5)
    model = TaskModel(SerializableStandInTask(seed=2), optimizer_config=opt, name="tm")
    model.compile(optimizer=train.make_optimizer(opt, 10))
    model.fit(model.task.build_inputs(), epochs=1, steps_per_epoch=2, verbose=0)
    config_ = model.get_config()
    clone = TaskModel.from_config(config_)
    assert clone.get_config() == config_
    assert clone.optimizer_config == opt and clone.task.seed == 2 and clone.name == "tm"
    assert clone.loss_names == ["loss", "standin", "weight_decay", "standin/high",
                                "standin/low"]
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, TaskModel)
    for a, b in zip(_values(loaded.network.weights), _values(model.network.weights)):
        np.testing.assert_array_equal(a, b)
    gray = next(iter(si.make_dataset()))["gray"]
    np.testing.assert_allclose(loaded(gray).numpy(), model(gray).numpy(), rtol=1e-6)
    # The compile config and the optimizer state (step, momentum) are restored; it trains on.
    assert isinstance(loaded.optimizer, keras.optimizers.SGD)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for a, b in zip(_values(loaded.optimizer.variables), _values(model.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    loaded.fit(loaded.task.build_inputs(), epochs=1, steps_per_epoch=1, verbose=0)


def test_task_without_get_config_says_what_to_do():
    model = TaskModel(_standin_task())
    with pytest.raises(NotImplementedError, match="get_config"):
        model.get_config()


# --------------------------------------------------------------------------------------------
# Bad input

def test_bad_arguments_give_clear_errors():
    with pytest.raises(TypeError, match="tfcolor.tasks.base.Task"):
        TaskModel(object())
    with pytest.raises(config.ConfigError, match="bias_lr_multiplier"):
        TaskModel(_standin_task(), optimizer_config=_opt(bias_lr_multiplier=0.0))
    model = TaskModel(_standin_task())
    with pytest.raises(ValueError, match="loss= is not accepted"):
        model.compile(optimizer="sgd", loss="mse")
    model.compile(optimizer="sgd")
    batch = next(iter(si.make_dataset()))
    with pytest.raises(ValueError, match="dicts of tensors"):
        model.fit(tf.data.Dataset.from_tensors((batch["gray"], batch["targets"])), verbose=0)
    with pytest.raises(ValueError, match="lack"):
        TaskModel(_standin_task(dataset=si.make_dataset().map(
            lambda b: {"gray": b["gray"], "targets": b["targets"]})))


# --------------------------------------------------------------------------------------------
# The colorizer as a plain Keras model: compile(loss=HueChromaLoss()) + fit == trainer

@functools.lru_cache(maxsize=None)
def _colorizer_batches(batch=4, size=48, points=8, steps=STEPS_PER_EPOCH * EPOCHS):
    """``steps`` batches of random crops, centres and hue/chroma targets (built once)."""
    rng = np.random.default_rng(0)
    rgb = rng.uniform(size=(batch * steps, size, size, 3)).astype("float32")
    centers = rng.integers(0, size, size=(batch * steps, points, 2)).astype("float32")
    targets = targets_lib.TargetBuilder("hue_chroma")(rgb, centers).numpy()
    return {"gray": rgb.mean(-1, keepdims=True), "centers": centers, "targets": targets}


def _colorizer_data():
    batches = _colorizer_batches()
    return tf.data.Dataset.from_tensor_slices(batches).batch(4, drop_remainder=True).repeat()


def _colorizer(seed=4):
    keras.utils.set_random_seed(seed)
    return Colorizer("vgg_tiny", hidden=16, taps="conv5_1-fc7")


@pytest.mark.parametrize("strategy_name", [
    "default", pytest.param("mirrored", marks=[needs_two_cpus, pytest.mark.slow])])
def test_colorizer_compile_fit_with_hue_chroma_loss_equals_the_trainer(tmp_path, strategy_name):
    """Plain Keras on ({"gray", "centers"}, targets) with HueChromaLoss() (per-point reduction
    made a mean over points by Colorizer.compile) == the trainer's ColorizationTask without
    weight decay or bias multiplier, dropout 0.5 included; under MirroredStrategy Keras' own
    1/replicas loss scaling and optimizer gradient sum give the trainer's global mean."""
    strategy = train.make_strategy(strategy_name)
    opt = _opt(weight_decay=0.0, head_weight_decay=None, bias_lr_multiplier=1.0,
               learning_rate=0.05)
    task = ColorizationTask(model_fn=_colorizer, loss_fn=losses.HueChromaLoss(),
                            dataset=_colorizer_data())
    trainer_history, trainer_weights = _run_trainer(task, tmp_path, strategy, opt)
    with strategy.scope():
        model = _colorizer()
        model.compile(optimizer=train.make_optimizer(opt, STEPS_PER_EPOCH * EPOCHS),
                      loss=losses.HueChromaLoss(), jit_compile=False)
    assert model.loss.reduction == "sum_over_batch_size"
    data = _colorizer_data().map(
        lambda b: ({"gray": b["gray"], "centers": b["centers"]}, b["targets"]))
    history = model.fit(data, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, verbose=0).history
    np.testing.assert_allclose(history["loss"], [h["loss"] for _, h in trainer_history],
                               rtol=1e-5)
    for a, b in zip(_values(model.weights), trainer_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
