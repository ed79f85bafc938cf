"""Held-out loss during training: the learning curve on data the model never trains on.

The training loss of a colorizer says little about what it learned: with a few hundred photos a
network overfits them long before its colorizations of new photos stop improving.
:class:`HeldOutLoss` is a :class:`~tfcolor.train.trainer.Trainer` hook that, at the first loop of
a run (the start of its curve), every ``every`` steps and at the last step, computes the task's
mean loss (and its terms, e.g. hue and chroma) with ``training=False`` on a *fixed* list of
held-out batches (for colorization: the mean per-point loss):

- the batches are built once, for colorization by :func:`tfcolor.data.heldout_batches`, with
  the training pipeline's crop size, centres, loss kind and window, but without shuffling or
  mirroring and with a fixed seed (:data:`tfcolor.data.pretrain.HELDOUT_SEED`), so every
  evaluation of every run of the same data configuration sees the same crops and centres and
  the curves of different runs are comparable;
- the model runs with ``training=False`` (dropout off, batch-norm statistics frozen);
- each value goes to TensorBoard (``heldout/loss``, ``heldout/<term>``), to the log, and as one
  JSON line ``{"step", "loss", "terms", "images", "points"}`` to ``model_dir/heldout.jsonl``
  (appended; after a resume from an earlier checkpoint a step can appear twice: the last line
  wins, see :func:`read_curve`).

Keeping the best model
----------------------
With ``best_dir`` (pretraining's ``TrainConfig.keep_best``: ``model_dir/best``), every
evaluation whose loss is lower than the best so far writes the model's weights to
``best_dir/ckpt-STEP`` (``tf.train.Checkpoint(model=...)``), then its record
``best_dir/best.json`` (``{"step", "loss", "terms", "checkpoint", "heldout"}``, written to a
temporary file and renamed, so it always names a complete checkpoint), then deletes the
previous one. The record is the best-so-far state: a resumed run reads it back and only
replaces it with a strictly lower loss. ``heldout`` says what the held-out set was (source, crop,
points, ...): a record made on another held-out set is not comparable and is replaced at the
next evaluation (with a warning). :func:`tfcolor.run_dir.read_best` reads the record,
:func:`tfcolor.run_dir.load_model` loads the kept model.

Multi-worker runs evaluate on the chief only.
"""
import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor import run_dir
from tfcolor.train import checkpointing
from tfcolor.train import summaries

__all__ = ["HeldOutLoss", "keep_best", "read_curve"]


class HeldOutLoss:
    """Trainer hook: held-out loss every ``every`` steps (see the module docstring).

    Args:
        batches: a list of batch dicts (NumPy or tensors) the task's ``compute_loss`` accepts,
            e.g. from :func:`tfcolor.data.heldout_batches`.
        task: the :class:`tfcolor.tasks.base.Task` being trained (its ``compute_loss`` with
            ``training=False``; each batch is its own global batch, and batches are weighted by
            their rows).
        every: steps between evaluations (a positive integer); the last step is always evaluated.
        path: the JSON-lines file (None: not written).
        best_dir: keep the model of the lowest loss there (see "Keeping the best model" in the
            module docstring); None: not kept.
        heldout: a JSON-able description of the held-out set, stored in the best record and
            compared with an existing record's on resume.
        model_of: ``model_of(trainer) -> model`` to evaluate (default: ``trainer.model``; a
            multi-task run gives its colorization sub-model).

    Attributes:
        curve: ``[(step, loss, terms)]`` of this process's evaluations.
        best: the best-so-far record (a dict, see :func:`tfcolor.run_dir.read_best`) or None.
    """

    def __init__(self, batches, task, *, every=1000, path=None, best_dir=None, heldout=None,
                 model_of=None):
        if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
            raise ValueError(f"eval_every must be a positive integer, got {every!r}")
        if not batches:
            raise ValueError("HeldOutLoss needs at least one batch")
        self.batches = batches
        self.task = task
        self.every = every
        self.path = path
        self.curve = []
        self._last = None
        self._fn = None
        self._model = None
        self.best_dir = best_dir
        self.heldout = heldout
        self.model_of = model_of or (lambda trainer: trainer.model)
        self.best = _resume_best(best_dir, heldout) if best_dir else None

    @staticmethod
    def _rows(batch):
        return int(tf.nest.flatten(batch)[0].shape[0])

    @property
    def images(self):
        return sum(self._rows(b) for b in self.batches)

    def evaluate(self, model):
        """``(loss, terms)``: means over the held-out set, as Python floats."""
        if self._fn is None or self._model is not model:
            self._model = model
            self._fn = tf.function(self._means)
        total, count, terms = 0.0, 0, {}
        for batch in self.batches:
            rows = self._rows(batch)
            loss, term_means = self._fn(batch)
            total += float(loss) * rows
            count += rows
            for name, value in term_means.items():
                terms[name] = terms.get(name, 0.0) + float(value) * rows
        return total / count, {name: value / count for name, value in terms.items()}

    def _means(self, batch):
        rows = tf.nest.flatten(batch)[0].shape[0]
        compute = tf.autograph.experimental.do_not_convert(self.task.compute_loss)
        return compute(self._model, batch, training=False, global_batch_size=rows)

    def __call__(self, trainer, step, losses):  # pylint: disable=unused-argument
        due = self._last is None or step // self.every > self._last // self.every
        if not (due or step >= trainer.train_steps) or step == self._last:
            return
        if not getattr(trainer, "is_chief", True):
            self._last = step
            return
        model = self.model_of(trainer)
        loss, terms = self.evaluate(model)
        self._last = step
        self.curve.append((step, loss, terms))
        scalars = {"heldout/loss": loss}
        scalars.update({"heldout/" + name: value for name, value in terms.items()})
        summaries.write_scalars(trainer.writer, step, scalars)
        logging.info("held-out loss at step %d: %.4f%s (%d images)", step, loss,
                     "".join(f", {k} {v:.4f}" for k, v in sorted(terms.items())), self.images)
        if self.path is not None and math.isfinite(loss):
            line = {"step": int(step), "loss": loss, "terms": terms, "images": self.images}
            if all("centers" in b for b in self.batches):
                line["points"] = int(sum(np.prod(b["centers"].shape[:2]) for b in self.batches))
            with tf.io.gfile.GFile(self.path, "a") as f:
                f.write(json.dumps(line) + "\n")
        if self.best_dir is not None and math.isfinite(loss) and (
                self.best is None or loss < self.best["loss"]):
            self.best = keep_best(model, self.best_dir, step, loss, terms, self.heldout)
            logging.info("lowest held-out loss so far: step %d kept in %s", step, self.best_dir)


def _record_path(best_dir):
    return os.path.join(best_dir, run_dir.BEST_RECORD_FILE)


def _resume_best(best_dir, heldout):
    """The record of ``best_dir`` if it was made on the same held-out set and its checkpoint
    exists, else None (with a warning when one is set aside)."""
    try:
        record = run_dir.read_best_dir(best_dir)
    except ValueError as e:  # tfcolor.config.ConfigError
        logging.warning("%s: the next held-out evaluation replaces it", e)
        return None
    if record is None:
        return None
    if not tf.io.gfile.exists(record["checkpoint"] + ".index"):
        logging.warning("the best-model record of %s names %s, which is missing: the next "
                        "held-out evaluation replaces it", best_dir, record["checkpoint"])
        return None
    if heldout is not None and record.get("heldout") != heldout:
        logging.warning("the best model kept in %s (step %d, held-out loss %.4f) was measured on "
                        "another held-out set (%s; now %s): the next held-out evaluation "
                        "replaces it", best_dir, record["step"], record["loss"],
                        record.get("heldout"), heldout)
        return None
    logging.info("best model so far: step %d, held-out loss %.4f (%s)", record["step"],
                 record["loss"], best_dir)
    return record


def keep_best(model, best_dir, step, loss, terms=None, heldout=None):
    """Writes ``model``'s weights as the best model of ``best_dir`` (module docstring): the
    checkpoint ``ckpt-STEP``, then the record naming it, then removes older checkpoints there.
    Returns the record."""
    tf.io.gfile.makedirs(best_dir)
    name = f"{checkpointing.CHECKPOINT_PREFIX}-{int(step)}"
    checkpoint = tf.train.Checkpoint(model=model)
    _ = checkpoint.save_counter  # created, so saved: loaders that assert every object match
    checkpoint.write(os.path.join(best_dir, name))
    record = {"step": int(step), "loss": float(loss), "terms": dict(terms or {}),
              "checkpoint": name, "heldout": heldout}
    path = _record_path(best_dir)
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(record, indent=2))
    tf.io.gfile.rename(tmp, path, overwrite=True)
    record["checkpoint"] = os.path.join(best_dir, name)
    for other in tf.io.gfile.listdir(best_dir):
        other = other.rstrip("/")
        if other.startswith(checkpointing.CHECKPOINT_PREFIX + "-") and not (
                other.startswith(name + ".") or other == name):
            full = os.path.join(best_dir, other)
            if tf.io.gfile.isdir(full):
                tf.io.gfile.rmtree(full)
            else:
                tf.io.gfile.remove(full)
    return record


def read_curve(model_dir):
    """``[(step, loss, terms)]`` from ``model_dir/heldout.jsonl``, one entry per step (the last
    line written for a step wins), sorted by step; ``[]`` when there is no file. Lines that do not
    parse (a run killed mid-write) are skipped."""
    path = run_dir.heldout_curve_path(model_dir)
    if not tf.io.gfile.exists(path):
        return []
    by_step = {}
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
                by_step[int(entry["step"])] = (float(entry["loss"]), dict(entry.get("terms", {})))
            except (ValueError, KeyError, TypeError):
                continue
    return [(step, loss, terms) for step, (loss, terms) in sorted(by_step.items())]
