"""The paper's fine-tuning protocol (Larsson et al., CVPR 2017, section 4).

1. The labelled training set is split 90/10
   (:meth:`tfcolor.downstream.datasets.LabeledData.split`).
2. The network is fine-tuned on the 90% with SGD + momentum; every ``eval_every`` steps the
   *validation score* (top-1 accuracy, mAP or mean IU -- not the loss) is measured on the 10%.
3. Whenever the score stops improving (``patience`` evaluations in a row without an improvement
   larger than ``min_delta``) the learning rate is multiplied by ``drop_factor``; the first
   plateau after ``max_drops`` (2) drops ends training (:class:`PlateauSchedule`). The weights
   of the best validation score are restored at the end (``restore_best``; the paper does not
   say, it is standard practice).
4. Optionally (``retrain_full``) a fresh network is trained on 100% of the training data for the
   same number of steps with the learning rate dropped at the same steps, and that network is
   the one evaluated.

Training is a task of :mod:`tfcolor.tasks.downstream` (:func:`make_task`: classification,
multi-label or segmentation, on batches of :func:`tfcolor.downstream.pipelines.train_dataset`)
run by :func:`train_task` through the one entry point :func:`tfcolor.train.experiment.run` (the
generic trainer: distribution strategy, weight decay as an L2 term, checkpoints, NaN guard); the
protocol drives it through the trainer's hooks. The learning rate is a plain variable of the
optimizer, assigned on each drop. :func:`score` measures a model on a labelled set.

Everything about the network (initialisation, grey or colour input, BN absorption, frozen layers)
is in the ``model_fn`` the caller passes, see :func:`tfcolor.downstream.initialization.model_fn`.
"""
import dataclasses
import math
import os
import tempfile
import time
import typing
import weakref

import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor import config as config_lib
from tfcolor.config import ConfigError
from tfcolor.downstream import pipelines
from tfcolor.downstream import scoring
from tfcolor.tasks import downstream as tasks
from tfcolor.train import checkpointing
from tfcolor.train import experiment


class PlateauSchedule:
    """Drop the learning rate when the validation score stops improving; stop after the drops.

    Call :meth:`update` with every validation score. It returns

    * ``"improved"``: a new best score (larger by more than ``min_delta``; lower for
      ``mode="min"``);
    * ``"continue"``: no improvement yet, patience not exhausted;
    * ``"drop"``: ``patience`` evaluations without improvement: the learning rate was multiplied
      by ``drop_factor`` (and the patience counter reset);
    * ``"stop"``: a plateau after ``max_drops`` drops: training should end.

    Args:
        learning_rate: initial rate.
        drop_factor: multiplier at each drop (0.1).
        patience: evaluations without improvement that make a plateau (1: the first evaluation
            that does not beat the best).
        max_drops: drops before stopping (the paper: 2).
        min_delta: an improvement must exceed this.
        mode: ``"max"`` (scores) or ``"min"``.
    """

    def __init__(self, learning_rate, drop_factor=0.1, patience=1, max_drops=2, min_delta=0.0,
                 mode="max"):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {learning_rate!r}.")
        if not 0 < drop_factor < 1:
            raise ValueError(f"drop_factor must be in (0, 1); got {drop_factor!r}.")
        if int(patience) < 1:
            raise ValueError(f"patience must be >= 1; got {patience!r}.")
        if int(max_drops) < 0:
            raise ValueError(f"max_drops must be >= 0; got {max_drops!r}.")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}.")
        self.learning_rate = float(learning_rate)
        self.drop_factor = float(drop_factor)
        self.patience = int(patience)
        self.max_drops = int(max_drops)
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best_score = None
        self.best_step = None
        self.bad_evaluations = 0
        self.drop_steps = []
        self.stopped = False
        self.history = []  # (step, score, learning rate used before this evaluation, action)

    def _better(self, score):
        if self.best_score is None:
            return True
        if self.mode == "max":
            return score > self.best_score + self.min_delta
        return score < self.best_score - self.min_delta

    def update(self, step, score):
        if self.stopped:
            raise RuntimeError("PlateauSchedule.update after it said 'stop'.")
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"validation score at step {step} is NaN.")
        rate = self.learning_rate
        if self._better(score):
            self.best_score, self.best_step = score, int(step)
            self.bad_evaluations = 0
            action = "improved"
        else:
            self.bad_evaluations += 1
            if self.bad_evaluations < self.patience:
                action = "continue"
            elif len(self.drop_steps) < self.max_drops:
                self.learning_rate *= self.drop_factor
                self.drop_steps.append(int(step))
                self.bad_evaluations = 0
                action = "drop"
            else:
                self.stopped = True
                action = "stop"
        self.history.append((int(step), score, rate, action))
        return action


@dataclasses.dataclass
class FinetuneConfig:
    """Numbers of the fine-tuning protocol and pipelines.

    Attributes:
        batch_size: global batch size.
        crop_size: training crop (None: whole images, which must then share a size).
        scale_range: (lo, hi): short side scaled uniformly into this range before cropping.
        eval_resize: evaluation: the short side is resized to this (None: as is).
        eval_crop: evaluation centre crop (classification; None: ``crop_size``).
        mirror: random horizontal mirroring.
        num_points: segmentation: sampled pixels per image.
        learning_rate, momentum, weight_decay, bias_lr_multiplier: SGD (weight decay as the
            trainer's L2 term on kernels).
        drop_factor, patience, max_drops, min_delta: :class:`PlateauSchedule`.
        eval_every: steps between validation evaluations.
        max_steps: upper bound on steps.
        val_fraction: held-out fraction of the training data (0.1); 0 trains ``max_steps``
            without validation.
        retrain_full: retrain on 100% for the same number of steps and drops.
        restore_best: keep the weights of the best validation score.
        ten_crop: classification: average the scores of 10 crops at test time.
        ap_method: ``"11point"`` (VOC 2007) or ``"area"`` (VOC 2010+) for mAP.
        eval_batch_size: evaluation batch size.
        seed: seed of the split, the pipeline and the weights.
    """
    batch_size: int = 32
    crop_size: typing.Optional[int] = None
    scale_range: typing.Optional[tuple] = None
    eval_resize: typing.Optional[int] = None
    eval_crop: typing.Optional[int] = None
    mirror: bool = True
    num_points: int = 256
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_multiplier: float = 1.0
    drop_factor: float = 0.1
    patience: int = 1
    max_drops: int = 2
    min_delta: float = 0.0
    eval_every: int = 100
    max_steps: int = 20000
    val_fraction: float = 0.1
    retrain_full: bool = False
    restore_best: bool = True
    ten_crop: bool = False
    ap_method: str = "11point"
    eval_batch_size: int = 32
    seed: int = 0

    def validate(self):
        for name in ("batch_size", "eval_every", "max_steps", "num_points", "eval_batch_size",
                     "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.", name)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1); got {self.val_fraction!r}.",
                              "val_fraction")
        if self.ap_method not in scoring.AP_METHODS:
            raise ConfigError(f"ap_method must be one of {scoring.AP_METHODS}; got "
                              f"{self.ap_method!r}.", "ap_method")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive; got {self.learning_rate!r}.",
                              "learning_rate")
        if not 0 < self.drop_factor < 1:
            raise ConfigError(f"drop_factor must be in (0, 1); got {self.drop_factor!r}.",
                              "drop_factor")
        if self.scale_range is not None:
            lo, hi = self.scale_range
            if not 0 < lo <= hi:
                raise ConfigError(f"scale_range must be (lo, hi) with 0 < lo <= hi; got "
                                  f"{self.scale_range!r}.", "scale_range")
        return self


@dataclasses.dataclass
class FinetuneResult:
    """What :func:`finetune` returns. Everything but ``model`` (the fine-tuned network: the
    retrained one with ``retrain_full``) is a plain Python value; :meth:`to_dict` leaves the
    model out (JSON-serialisable). For classification, ``test`` and ``test_full`` also hold
    ``predictions``: the top-1 class of every test image, in the test set's order."""
    task: str
    metric: str
    history: list
    drop_steps: list
    stop_step: int
    best_step: typing.Optional[int]
    best_val: typing.Optional[float]
    test: dict
    test_full: typing.Optional[dict]
    seconds: float
    model: typing.Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "model"}


def score(model, data, config, *, color=False, per_image=False):
    """Scores of ``model`` on ``data``: top1/top5, mAP, or mean_iu/pixel_accuracy.

    ``per_image`` (classification): also ``predictions``, the top-1 class of every image in the
    order of ``data``, so that differences can be resampled over images
    (:func:`tfcolor.paired_statistics.seed_image_bootstrap`)."""
    config = config or FinetuneConfig()
    crop = config.eval_crop or config.crop_size
    ds = pipelines.eval_dataset(data, batch_size=config.eval_batch_size,
                                resize=config.eval_resize, crop_size=crop, color=color,
                                ten_crop=config.ten_crop and data.task != "segmentation")
    predict = _predict_fn(model)
    scores, labels = [], []
    confusion = np.zeros((data.num_classes, data.num_classes), np.int64)
    for batch in ds:
        x = batch["image"]
        if data.task == "segmentation":
            pred = tf.argmax(predict(x), axis=-1).numpy()
            confusion += scoring.confusion_matrix(pred, batch["label"].numpy(),
                                                  data.num_classes)
            continue
        if config.ten_crop:
            b = tf.shape(x)[0]
            flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
            s = predict(flat)
            s = tf.reduce_mean(tf.reshape(s, [b, 10, -1]), axis=1)
        else:
            s = predict(x)
        scores.append(s.numpy())
        labels.append(batch["label"].numpy())
    if data.task == "segmentation":
        miu, per_class, pixel_acc = scoring.mean_iou(confusion)
        return {"mean_iu": miu, "pixel_accuracy": pixel_acc,
                "per_class_iu": [None if np.isnan(v) else float(v) for v in per_class]}
    scores = np.concatenate(scores)
    labels = np.concatenate(labels)
    if data.task == "classification":
        out = {"top1": scoring.top_k_accuracy(scores, labels, 1),
               "top5": scoring.top_k_accuracy(scores, labels, min(5, data.num_classes))}
        if per_image:
            out["predictions"] = [int(c) for c in np.argmax(scores, axis=1)]
        return out
    m, per_class = scoring.mean_average_precision(scores, labels, config.ap_method)
    return {"mAP": m, "per_class_ap": [None if np.isnan(v) else float(v) for v in per_class]}


_PREDICT_FNS = weakref.WeakKeyDictionary()


def _predict_fn(model):
    """One traced ``predict_scores`` per model (evaluations reuse it)."""
    fn = _PREDICT_FNS.get(model)
    if fn is None:
        fn = _PREDICT_FNS[model] = tf.function(model.predict_scores, reduce_retracing=True)
    return fn


def _set_learning_rate(optimizer, value):
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.learning_rate = float(value)


def _fresh_dir(path):
    if tf.io.gfile.exists(path) and tf.io.gfile.glob(
            os.path.join(path, f"{checkpointing.CHECKPOINT_PREFIX}-*")):
        raise ValueError(f"{path} already holds checkpoints of an earlier run; the protocol's "
                         f"state is not resumable: use a new directory.")
    tf.io.gfile.makedirs(path)
    return path


def make_task(model_fn, data, config=None, *, color=False, seed=None):
    """The training task of ``data`` (a :mod:`tfcolor.tasks.downstream` task) with the
    pipeline numbers of ``config`` (:class:`FinetuneConfig`); ``seed`` (default
    ``config.seed``) seeds the pipeline's shuffle and augmentation."""
    config = config or FinetuneConfig()
    return tasks.for_data(data, model_fn, num_points=config.num_points,
                          batch_size=config.batch_size, crop_size=config.crop_size,
                          scale_range=config.scale_range, mirror=config.mirror, color=color,
                          seed=config.seed if seed is None else seed)


def train_task(task, model_dir, steps, config=None, *, strategy=None, hooks=(), drops=()):
    """Trains ``task`` (e.g. from :func:`make_task`) for ``steps`` with the optimizer numbers of
    ``config`` (:class:`FinetuneConfig`) and the learning rate dropped at ``drops``, through
    :func:`tfcolor.train.experiment.run`; returns its :class:`~tfcolor.train.experiment.RunResult`
    (``.model``, ``.train``, ``.trainer``). ``hooks``: ``hook(trainer, step, losses)`` after
    every loop of ``min(eval_every, steps)`` steps."""
    config = config or FinetuneConfig()
    steps = int(steps)
    optimizer = config_lib.OptimizerConfig(
            learning_rate=config.learning_rate, lr_drops=tuple(int(d) for d in drops),
            lr_drop_factor=config.drop_factor, momentum=config.momentum,
            weight_decay=config.weight_decay, bias_lr_multiplier=config.bias_lr_multiplier)
    train = config_lib.TrainConfig(
            model_dir=model_dir, train_steps=steps, steps_per_loop=min(config.eval_every, steps),
            checkpoint_every=steps, keep_checkpoints=1,
            summary_every=min(config.eval_every, steps), image_every=0, export=False)
    # seed=False: the model_fn seeds Keras itself, and the pipeline's shuffle must not depend
    # on a global seed set here (it did not in the loop this replaces).
    return experiment.run(task, train, optimizer,
                          strategy=strategy or tf.distribute.get_strategy(), hooks=hooks,
                          handle_sigterm=False, seed=False)


def finetune(model_fn, train_data, test_data=None, config=None, *, model_dir=None,
             strategy=None, color=False, val_data=None):
    """Runs the protocol (see the module docstring).

    Args:
        model_fn: ``() -> DownstreamModel`` building a freshly initialised network (called once,
            and again for ``retrain_full``, inside the strategy's scope).
        train_data: :class:`tfcolor.downstream.datasets.LabeledData` (split 90/10 here, by
            ``config.val_fraction``, unless ``val_data`` is given).
        test_data: optional LabeledData evaluated at the end.
        val_data: optional LabeledData that scores early stopping and the LR drops instead of a
            ``val_fraction`` split of ``train_data`` (which is then trained on whole): a set's
            own validation split, large enough that the plateau is not noise.
        config: :class:`FinetuneConfig`.
        model_dir: checkpoints/summaries (``search/`` and ``full/`` sub-directories); None: a
            temporary directory.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
        color: the model takes RGB input (after ``gray_to_rgb_conv1``) instead of grey.

    Returns:
        :class:`FinetuneResult`.
    """
    config = (config or FinetuneConfig()).validate()
    start = time.perf_counter()
    metric = scoring.PRIMARY_METRIC[train_data.task]
    model_dir = model_dir or tempfile.mkdtemp(prefix="tfcolor_finetune_")
    if val_data is not None:
        if val_data.task != train_data.task:
            raise ValueError(f"val_data is a {val_data.task} set, train_data a {train_data.task} "
                             "set")
        fit, val = train_data, val_data
    elif config.val_fraction > 0:
        fit, val = train_data.split(config.val_fraction, seed=config.seed)
    else:
        fit, val = train_data, None

    schedule = PlateauSchedule(config.learning_rate, config.drop_factor, config.patience,
                               config.max_drops, config.min_delta)
    best = {}

    def hook(trainer, step, losses):
        if val is None or (step % config.eval_every and step < config.max_steps):
            return
        value = score(trainer.model, val, config, color=color)[metric]
        action = schedule.update(step, value)
        logging.info("step %d: validation %s %.4f (%s), loss %.4f, lr %g", step, metric, value,
                     action, losses.get("loss", float("nan")), schedule.learning_rate)
        if action == "improved" and config.restore_best:
            best["weights"] = [np.array(v) for v in trainer.model.weights]
        elif action == "drop":
            _set_learning_rate(trainer.optimizer, schedule.learning_rate)
        elif action == "stop":
            trainer.request_stop()

    search = train_task(make_task(model_fn, fit, config, color=color, seed=config.seed),
                        _fresh_dir(os.path.join(model_dir, "search")), config.max_steps, config,
                        strategy=strategy, hooks=[hook])
    stop_step = int(search.train.step)
    model = search.model
    if best.get("weights") is not None:
        model.set_weights(best["weights"])
    test = (score(model, test_data, config, color=color, per_image=True)
            if test_data is not None else {})
    test_full = None
    if config.retrain_full:
        drops = [d for d in schedule.drop_steps if d < stop_step]
        full = train_task(make_task(model_fn, train_data, config, color=color,
                                    seed=config.seed + 1),
                          _fresh_dir(os.path.join(model_dir, "full")), stop_step, config,
                          strategy=strategy, drops=drops)
        model = full.model
        test_full = (score(model, test_data, config, color=color, per_image=True)
                     if test_data is not None else {})
    return FinetuneResult(
            task=train_data.task, metric=metric,
            history=[list(h) for h in schedule.history], drop_steps=list(schedule.drop_steps),
            stop_step=stop_step, best_step=schedule.best_step, best_val=schedule.best_score,
            test=test, test_full=test_full, seconds=time.perf_counter() - start, model=model)


def summarize(values):
    """``{"mean", "std", "n", "values"}`` of a list of scores (std: sample, ddof=1; 0 for n=1)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = float(np.mean(values)) if n else float("nan")
    std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": values}


def finetune_seeds(make_model_fn, train_data, test_data, config, seeds, *, model_dir=None,
                   strategy=None, color=False, subset_fn=None, on_result=None, val_data=None):
    """:func:`finetune` once per seed; returns ``{"runs": [...], "test": summary, ...}``.

    Args:
        make_model_fn: ``seed -> model_fn`` (e.g. ``lambda s: init.model_fn(..., seed=s)``).
        train_data, test_data, config, strategy, color, val_data: as in :func:`finetune`.
        seeds: list of ints; each run uses ``dataclasses.replace(config, seed=seed)``.
        model_dir: runs go to ``model_dir/seed_<seed>`` (None: temporary directories).
        subset_fn: optional ``(train_data, seed) -> train_data`` (e.g. N images per class drawn
            with the seed).
        on_result: optional ``on_result(seed, FinetuneResult)`` called after each run (e.g. to
            analyse ``result.model``); results are not kept otherwise.
    """
    runs = []
    model_dir = model_dir or tempfile.mkdtemp(prefix="tfcolor_finetune_")
    for seed in seeds:
        data = subset_fn(train_data, seed) if subset_fn is not None else train_data
        cfg = dataclasses.replace(config, seed=int(seed))
        result = finetune(make_model_fn(int(seed)), data, test_data, cfg,
                          model_dir=os.path.join(model_dir, f"seed_{seed}"), strategy=strategy,
                          color=color, val_data=val_data)
        runs.append(dict(result.to_dict(), seed=int(seed), train_examples=len(data)))
        if on_result is not None:
            on_result(int(seed), result)
    metric = runs[0]["metric"]
    out = {"metric": metric, "runs": runs,
           "test": summarize([r["test"][metric] for r in runs if r["test"]])}
    if config.retrain_full:
        out["test_full"] = summarize([r["test_full"][metric] for r in runs if r["test_full"]])
    return out
