"""The untrained colorizer: a pretraining run's network at step 0 with the batch-normalization
statistics of its training photos, and no learning.

A pretrained trunk reaches the downstream protocol with its BN statistics folded into its
convolutions (:func:`tfcolor.downstream.initialization.load_trunk`, ``absorb_bn="auto"``), a
random one is re-balanced instead; so "pretrained beats random" mixes what the network learned
with how its activations are scaled. :func:`estimate` writes the control that separates them:
the colorizer that :func:`tfcolor.train.pretrain` would start from, with only its moving
statistics estimated, in a ``model_dir`` that :func:`tfcolor.run_dir.load_model` (hence
``load_trunk(init=model_dir)``, ``binaries/evaluate``, ``binaries/finetune --init``) loads like
any colorization run.

* **The network**: built exactly as pretraining builds it: the same seeding
  (:func:`tfcolor.train.experiment.seed_everything` with ``config.train.seed``), the same task
  (:meth:`tfcolor.tasks.colorization.ColorizationTask.from_config`) and the same step object
  (:class:`tfcolor.train.task_step.TaskStep`, the trainer's), so every weight is the one the
  colorization run of the same config has at step 0 (``tests/reproduce`` checks it bit for bit
  against a real run).
* **The photos**: the first ``statistics_steps`` batches of the pretraining input pipeline (the
  same photos, order, crops, mirroring and targets as the run's first steps), through the loss
  in training mode, as a training step runs them, with no gradient and no update: the weights
  stay bit-identical and only the BN statistics change.
* **The estimate** (a choice): each BN layer's moving mean and variance are set to the *plain
  mean over the batches* of the layer's batch mean and (biased) batch variance, which is what the
  layer's own moving averages estimate, without their exponential weighting and without the
  residue of their initial values (momentum ``m`` keeps ``m**N`` of them: 5% after 300 batches
  at Keras' 0.99). In training mode a layer normalises by its batch's statistics, so the
  activations, and these means, do not depend on the order in which layers are estimated. The
  variance is the mean within-batch variance, as the moving average's; the variance over all
  pixels would add the variance of the batch means across batches.
* **Strategies**: any single-worker strategy (``default`` / ``one_device``, ``mirrored``);
  batches are split across replicas as in training. With ``sync_batch_norm`` the batch
  statistics are the global batch's (all replicas agree); with per-replica BN each replica
  normalises its own share, as in training, and the estimate averages the replicas' statistics
  (a replica's copy alone would use a fraction of the photos). Multi-worker and TPU strategies are
  refused. Mixed precision is honoured as in training (BN statistics are float32 either way).

What :func:`estimate` writes in ``config.train.model_dir`` (which must hold no checkpoint yet):
``config.json`` (the given config, unchanged: the same as the colorization run's), one checkpoint
``ckpt-0`` (global step 0) with the objects a training checkpoint holds, ``heldout.jsonl`` with
the held-out loss at step 0 when ``config.data.heldout_data`` is set (the untrained colorizer
with the estimated statistics, in inference mode), and :data:`RECORD_FILE`
(:func:`read_record`), written last: its presence marks a finished pass.
"""
import json
import os
import time
import types

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor import run_dir
from tfcolor.config import ConfigError
from tfcolor.tasks import colorization
from tfcolor.train import checkpointing
from tfcolor.train import experiment
from tfcolor.train import heldout as heldout_lib
from tfcolor.train import lock as lock_lib
from tfcolor.train import pretraining
from tfcolor.train import strategy as strategy_lib
from tfcolor.train import task_step as task_step_lib

__all__ = ["estimate", "batch_norm_layers", "read_record", "RECORD_FILE",
           "DEFAULT_STATISTICS_STEPS"]

#: The record of a finished statistics pass, in the ``model_dir``.
RECORD_FILE = "bn_statistics.json"
#: Batches of the pretraining pipeline the statistics are averaged over by default.
DEFAULT_STATISTICS_STEPS = 300


def batch_norm_layers(model):
    """Every ``keras.layers.BatchNormalization`` in ``model`` (nested models included), in
    build order, each once."""
    found, seen = [], set()

    def walk(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for child in getattr(layer, "layers", None) or ():
            walk(child)
    walk(model)
    return found


def read_record(model_dir):
    """The record of a finished pass in ``model_dir`` (a dict), or None."""
    path = os.path.join(str(model_dir), RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _components(variable):
    """The per-replica values of a (possibly mirrored) variable, as float64 arrays."""
    value = getattr(variable, "value", variable)
    parts = getattr(value, "values", None) or (value,)
    return [np.asarray(tf.convert_to_tensor(p), np.float64) for p in parts]


def _check(config, statistics_steps, strategy):
    if isinstance(statistics_steps, bool) or not isinstance(statistics_steps, int) \
            or statistics_steps <= 0:
        raise ConfigError(f"statistics_steps must be a positive integer; got "
                          f"{statistics_steps!r}", "statistics_steps")
    if not config.multitask.single_colorization:
        raise ConfigError("the untrained control is a single-task colorizer; the config trains "
                          f"{list(config.multitask.tasks)} (multitask section)", "multitask.tasks")
    if config.model.prior_bias:
        raise ConfigError("prior_bias starts the head at the training prior; the untrained "
                          "control keeps the head as built: set it to false", "model.prior_bias")
    if isinstance(strategy, (tf.distribute.MultiWorkerMirroredStrategy,
                             tf.distribute.TPUStrategy)):
        raise ConfigError(f"the statistics pass runs on one worker; got "
                          f"{type(strategy).__name__} (use default or mirrored)", "train.strategy")
    model_dir = config.train.model_dir
    if checkpointing.found_checkpoints(model_dir):
        raise ConfigError(f"model_dir {model_dir} already holds checkpoints: the untrained "
                          "control is written into an empty model_dir", "train.model_dir")


def estimate(config, statistics_steps=DEFAULT_STATISTICS_STEPS, *, strategy=None):
    """Writes the untrained control of ``config`` into ``config.train.model_dir`` (module
    docstring); returns its record.

    Args:
        config: the :class:`tfcolor.config.PretrainConfig` of the colorization run whose step 0
            is wanted (single-task colorization, no ``prior_bias``).
        statistics_steps: batches of the pretraining pipeline to average over.
        strategy: a single-worker ``tf.distribute.Strategy`` (default:
            ``config.train.strategy`` by name).

    Returns:
        The record (also in ``model_dir/`` :data:`RECORD_FILE`): ``statistics_steps``,
        ``images``, ``replicas``, ``sync_batch_norm``, ``estimator``, ``layers`` (the BN layers
        estimated), ``losses`` (the training-mode loss and its terms, averaged over the
        batches), ``heldout_loss`` (or None), ``checkpoint``, ``seed``, ``seconds``.

    Raises:
        tfcolor.config.ConfigError: a bad argument or config, or a ``model_dir`` with checkpoints.
        tfcolor.train.lock.ModelDirLockedError: another run is using ``model_dir``.
    """
    config.validate()
    t = config.train
    model_dir = t.model_dir
    start = time.perf_counter()
    # As pretraining does, in its order: the seed decides the weights.
    experiment.seed_everything(t.seed, t.deterministic)
    strategy = strategy or strategy_lib.make_strategy(t.strategy, tpu=t.tpu)
    _check(config, statistics_steps, strategy)
    tf.io.gfile.makedirs(model_dir)
    with lock_lib.hold(model_dir):
        run_dir.write_config(model_dir, config)
        previous_policy = keras.mixed_precision.global_policy()
        if t.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            task = colorization.ColorizationTask.from_config(config)
            step = task_step_lib.TaskStep(task, strategy=strategy, train_steps=t.train_steps,
                                          optimizer_config=config.optimizer,
                                          mixed_precision=t.mixed_precision)
            layers = batch_norm_layers(step.model)
            losses = _statistics_pass(step, layers, statistics_steps)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        _, position, trackables = step.checkpoint_parts()  # positioned input: no iterator
        saver = checkpointing.Checkpointer(model_dir, max_to_keep=1, input_position=position,
                                           **trackables)
        checkpoint = saver.save(int(step.step.numpy()))
        heldout_loss = _heldout_loss(config, task, step.model)
        record = {"statistics_steps": statistics_steps,
                  "images": statistics_steps * step.global_batch_size,
                  "batch_size": step.global_batch_size,
                  "replicas": strategy.num_replicas_in_sync,
                  "sync_batch_norm": bool(config.model.sync_batch_norm),
                  "estimator": "mean over batches of the batch mean and batch variance",
                  "layers": [layer.name for layer in layers], "losses": losses,
                  "heldout_loss": heldout_loss, "checkpoint": os.path.basename(checkpoint),
                  "seed": t.seed, "seconds": time.perf_counter() - start}
        path = os.path.join(model_dir, RECORD_FILE)
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            f.write(json.dumps(record, indent=1) + "\n")
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    logging.info("untrained control in %s: BN statistics of %d layers over %d batches (%d "
                 "images), training-mode loss %.4f, held-out loss %s", model_dir, len(layers),
                 statistics_steps, record["images"], losses.get("loss", float("nan")),
                 "-" if heldout_loss is None else f"{heldout_loss:.4f}")
    return record


def _statistics_pass(step, layers, statistics_steps):
    """Runs ``statistics_steps`` batches through ``step``'s loss in training mode without any
    update, then sets every BN layer's moving statistics to the mean of its batch statistics;
    returns the mean loss and terms."""
    task, model, strategy = step.task, step.model, step.strategy
    trainable = [v.numpy() for v in model.trainable_variables]
    inputs = step.inputs
    names = None

    def replica_fn(batch):
        loss, terms = task.compute_loss(model, batch, training=True,
                                        global_batch_size=step.global_batch_size)
        return {"loss": loss, **terms}

    def one_batch(iterator):
        per_replica = strategy.run(replica_fn, args=(inputs.next_batch(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    momenta = [layer.momentum for layer in layers]
    sums = [[0.0, 0.0] for _ in layers]
    totals = {}
    try:
        for layer in layers:  # the moving statistics become the batch's: read after each batch
            layer.momentum = 0.0
        fn = tf.function(one_batch, autograph=False)
        iterator = inputs.get()
        for _ in range(statistics_steps):
            out = fn(iterator)
            names = names or list(out)
            for name in names:
                totals[name] = totals.get(name, 0.0) + float(out[name])
            for acc, layer in zip(sums, layers):
                acc[0] = acc[0] + np.mean(_components(layer.moving_mean), axis=0)
                acc[1] = acc[1] + np.mean(_components(layer.moving_variance), axis=0)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    with strategy.scope():
        for (mean_sum, var_sum), layer in zip(sums, layers):
            layer.moving_mean.assign((mean_sum / statistics_steps).astype(np.float32))
            layer.moving_variance.assign((var_sum / statistics_steps).astype(np.float32))
    changed = [v.path for v, before in zip(model.trainable_variables, trainable)
               if not np.array_equal(v.numpy(), before)]
    if changed:  # a layer that learns in its forward pass: the control would not be untrained
        raise RuntimeError(f"the statistics pass changed trainable weights {changed[:3]}")
    return {name: value / statistics_steps for name, value in totals.items()}


def _heldout_loss(config, task, model):
    """The held-out loss of ``model`` in inference mode at step 0, appended to the run's
    ``heldout.jsonl`` as a training run does (None without held-out photos)."""
    batches = colorization.heldout_batches(config)
    if batches is None:
        return None
    hook = heldout_lib.HeldOutLoss(batches, task, every=1,
                                   path=run_dir.heldout_curve_path(config.train.model_dir),
                                   heldout=pretraining.heldout_identity(config))
    hook(types.SimpleNamespace(model=model, train_steps=0, is_chief=True,
                               writer=tf.summary.create_noop_writer()), 0, {})
    return hook.curve[-1][1]
