"""Self-supervised baselines in the colorizer's framework (same trunks, loop and protocol).

* :mod:`tfcolor.baselines.denoising` -- denoising autoencoder (salt-and-pepper 5%).
* :mod:`tfcolor.baselines.split_brain` -- split-brain autoencoder (Zhang et al. 2017).
* Lab L2 regression colorization is the colorizer's loss kind ``"lab_regression"``.
* Random initialisation is ``init="random"`` of :mod:`tfcolor.transfer.init`.

:func:`pretrain` trains a baseline with :class:`tfcolor.train.Trainer` on the pretraining
pipeline of :mod:`tfcolor.data` (random crops, mirrors and sparse centres exactly as for
colorization; the baseline's noise / targets are TF ops mapped onto those batches) and writes
``tfcolor_baseline.json`` into the ``model_dir`` so that :func:`load` (and
``tfcolor.transfer.init.load_trunk(model_dir)``) can rebuild the model.
"""
import dataclasses
import json
import os

import tensorflow as tf

BASELINES = ("denoising", "split_brain")
BASELINE_FILE = "tfcolor_baseline.json"


class _Denoising:
    """Adapter giving a denoising Colorizer the baseline interface (``arch``, downstream)."""

    def __init__(self, model):
        self.model = model
        self.arch = model.arch

    def downstream_trunk(self, absorb_bn="auto", color_input=False):
        from tfcolor.baselines import denoising  # pylint: disable=import-outside-toplevel
        return denoising.downstream_trunk(self.model, absorb_bn, color_input)


def build(kind, **model_kwargs):
    """A fresh baseline network (``"denoising"`` or ``"split_brain"``)."""
    if kind == "denoising":
        from tfcolor.baselines import denoising  # pylint: disable=import-outside-toplevel
        return denoising.build_model(**model_kwargs)
    if kind == "split_brain":
        from tfcolor.baselines import split_brain  # pylint: disable=import-outside-toplevel
        return split_brain.SplitBrainAutoencoder(**model_kwargs)
    raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}.")


def load(model_dir, checkpoint=None):
    """Rebuilds a trained baseline from its ``model_dir``; the object has ``arch`` and
    ``downstream_trunk(absorb_bn, color_input)``."""
    path = os.path.join(model_dir, BASELINE_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing: {model_dir} is not a baseline model_dir.")
    with tf.io.gfile.GFile(path) as f:
        meta = json.load(f)
    model = build(meta["kind"], **meta["model"])
    ckpt = checkpoint or tf.train.latest_checkpoint(model_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}.")
    tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    return _Denoising(model) if meta["kind"] == "denoising" else model


def pretrain(kind, source, model_dir, *, model_kwargs=None, data_config=None, train_steps=1000,
             optimizer_config=None, noise_rate=0.05, corrupted_weight=1.0, strategy=None,
             steps_per_loop=10, checkpoint_every=None, summary_every=None, seed=0):
    """Pretrains a baseline; returns the :class:`tfcolor.train.TrainResult`.

    Args:
        kind: ``"denoising"`` or ``"split_brain"``.
        source: images (anything :func:`tfcolor.data.as_source` accepts).
        model_dir: checkpoints, summaries and ``tfcolor_baseline.json``.
        model_kwargs: arguments of the network (``arch``, ``taps``, ``split``, ...).
        data_config: :class:`tfcolor.data.PretrainDataConfig` (its targets are ignored).
        train_steps, optimizer_config, strategy, steps_per_loop, checkpoint_every,
            summary_every: of the :class:`tfcolor.train.Trainer`.
        noise_rate, corrupted_weight: denoising options.
        seed: seed of the noise.
    """
    from tfcolor import data as data_lib  # pylint: disable=import-outside-toplevel
    from tfcolor import train  # pylint: disable=import-outside-toplevel
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}.")
    model_kwargs = dict(model_kwargs or {})
    data_config = dataclasses.replace(data_config or data_lib.PretrainDataConfig(),
                                      targets_on_device=True)
    ds = data_lib.pretrain_dataset(source, data_config)
    if kind == "denoising":
        from tfcolor.baselines import denoising  # pylint: disable=import-outside-toplevel
        ds = denoising.denoising_batches(ds, noise_rate, seed)
        loss_fn = denoising.denoising_loss(corrupted_weight)
    else:
        from tfcolor.baselines import split_brain  # pylint: disable=import-outside-toplevel
        ds = split_brain.split_brain_batches(ds, model_kwargs.get("split", "lab"),
                                             l_bins=model_kwargs.get("l_bins", 100),
                                             ab_bins=model_kwargs.get("ab_bins", 10))
        loss_fn = None
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, BASELINE_FILE), "w") as f:
        json.dump({"kind": kind, "model": model_kwargs,
                   "noise_rate": noise_rate if kind == "denoising" else None}, f, indent=2)
    holder = {}

    def model_fn():
        holder["model"] = build(kind, **model_kwargs)
        return holder["model"]

    def lazy_loss(y_true, y_pred):
        fn = loss_fn or holder["model"].loss_fn()
        return fn(y_true, y_pred)

    trainer = train.Trainer(
            strategy=strategy or tf.distribute.get_strategy(), model_fn=model_fn,
            loss_fn=lazy_loss, dataset=ds, model_dir=model_dir, train_steps=int(train_steps),
            optimizer_config=optimizer_config, steps_per_loop=int(steps_per_loop),
            checkpoint_every=int(checkpoint_every or train_steps),
            summary_every=int(summary_every or steps_per_loop), image_every=0)
    return trainer.train()
