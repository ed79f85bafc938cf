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

Multi-worker runs evaluate on the chief only.
"""
import json
import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor import run_dir
from tfcolor.train import summaries

__all__ = ["HeldOutLoss", "read_curve"]


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

    Attributes:
        curve: ``[(step, loss, terms)]`` of this process's evaluations.
    """

    def __init__(self, batches, task, *, every=1000, path=None):
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
        loss, terms = self.evaluate(trainer.model)
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
