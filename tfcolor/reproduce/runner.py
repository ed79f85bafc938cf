"""Runs a reproduction: pretraining arms, the colorizer on held-out photos, the downstream grid.

:func:`run` does, in order, each step resumable (a finished unit is never redone, an unfinished
one is resumed or, for a downstream cell, redone):

1. **photos**: the corpus's ``train`` / ``val`` / ``holdout`` photos as folders of links
   (:mod:`tfcolor.reproduce.corpus`);
2. **pretraining**: every arm (:data:`tfcolor.reproduce.config.ARMS`) with every pretraining seed,
   through :func:`tfcolor.train.pretrain` (or :func:`tfcolor.baselines.pretrain`), with the
   held-out loss on the ``val`` photos every ``eval_every`` steps. A run stopped by SIGTERM keeps
   its checkpoint (:class:`Preempted`); rerunning resumes it. The ``untrained`` control is the
   colorization arm's network at step 0 with the BN statistics of the train photos
   (:func:`tfcolor.train.bn_statistics.estimate`: minutes at most, redone whole if interrupted);
3. **colorizer**: each seed of the ``evaluate_arms`` on the ``holdout`` photos with the library's
   default read-out, against grey and the marginal prior of its training photos, with per-image
   paired bootstrap intervals (:func:`tfcolor.evaluation.evaluate_with_baselines`);
4. **downstream**: every protocol (linear probe, full fine-tuning) x initialisation (random and
   each pretrained trunk) x learning rate of the protocol's grid, with every fine-tuning seed
   (:func:`tfcolor.downstream.protocol.finetune_seeds`, early stopping and LR drops on the
   labelled set's own val split). A cell is one ``results.json``;
5. **report**: per protocol, the learning rate chosen on validation per initialisation and the
   paired differences (:mod:`tfcolor.downstream.comparison`) of each arm against random and of
   ``colorization`` against each other arm (the ablations); ``results.json`` and ``results.md``
   (:mod:`tfcolor.reproduce.report`) in ``output_dir``.

The config is written to ``output_dir/reproduce_config.json`` by the first invocation; a later
invocation with a different config is refused (its finished units would not match), except in
the fields that only select units (:data:`SELECTABLE`: arms, pretraining seeds, evaluated arms,
protocols, learning rates): those may add units (e.g. extend a grid whose chosen rate is at its
edge) or leave some out (e.g. drop a rate that no initialisation chose, to keep the run's
compute within budget); every finished unit is reused, and one left out stays on disk. The
report covers exactly the units the current config names. Two invocations cannot share an
``output_dir`` (a lock).
"""
import dataclasses
import json
import os
import platform
import shutil
import time

import keras
import tensorflow as tf
from absl import logging

from tfcolor import baselines
from tfcolor import config as cfg  # the library's configs (config_lib: the reproduction's)
from tfcolor import evaluation
from tfcolor import predictors
from tfcolor import prior as prior_lib
from tfcolor import run_dir
from tfcolor.config import ConfigError
from tfcolor.downstream import comparison
from tfcolor.downstream import datasets
from tfcolor.downstream import initialization
from tfcolor.downstream import protocol
from tfcolor.reproduce import config as config_lib
from tfcolor.reproduce import corpus as corpus_lib
from tfcolor.reproduce import report
from tfcolor.train import bn_statistics
from tfcolor.train import heldout
from tfcolor.train import lock as lock_lib
from tfcolor.train import pretraining

__all__ = ["Preempted", "run", "pretrain_arm", "evaluate_colorizer", "downstream_cell",
           "collect", "CONFIG_FILE", "RESULTS_FILE"]

CONFIG_FILE = "reproduce_config.json"
RESULTS_FILE = "results.json"
REPORT_FILE = "results.md"
_DONE = "reproduce_done.json"


class Preempted(RuntimeError):
    """A pretraining run stopped (SIGTERM) before its last step; its checkpoint is kept and the
    same command resumes it."""


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=str)
        f.write("\n")
    os.replace(tmp, path)  # a killed write never leaves a half file that looks finished
    return path


#: Fields that only say which units (a pretraining run, a colorizer evaluation, a downstream
#: cell) to run: no unit's own settings depend on them, so a later invocation may add units or
#: leave some out and every finished unit stays valid.
SELECTABLE = ("arms", "pretrain_seeds", "evaluate_arms", "protocols", "probe_learning_rates",
              "finetune_learning_rates")


def _check_config(config):
    """Writes the config on the first invocation; later ones must match it, except in the
    :data:`SELECTABLE` fields, which may differ (the stored config is then the new one)."""
    path = os.path.join(config.output_dir, CONFIG_FILE)
    new = config.to_dict()
    if not os.path.exists(path):
        _write_json(path, new)
        return
    # A field added to ReproduceConfig after the run started has its default there.
    old = {**config_lib.ReproduceConfig(corpus="-", output_dir="-").to_dict(),
           **_read_json(path)}
    changed = {k: (old.get(k), v) for k, v in new.items() if k != "output_dir"
               and k not in SELECTABLE and old.get(k) != v}
    if changed:
        raise ConfigError(
                f"output_dir {config.output_dir} holds a reproduction with another config ("
                + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
                + "): its finished runs would be mixed with the new ones. Use a new "
                  "output_dir, or the same settings to resume (only "
                  + ", ".join(SELECTABLE) + " may differ).",
                sorted(changed)[0])
    if new != old:
        logging.info("changing the units of the reproduction in %s: %s", config.output_dir,
                     {k: v for k, v in new.items() if old.get(k) != v})
        _write_json(path, new)


# ----------------------------------------------------------------------------------------------
# Pretraining.


def _multitask(config, arm):
    """The :class:`tfcolor.config.MultiTaskConfig` of a multi-proxy arm (sizes: the module
    docstring of :mod:`tfcolor.reproduce.config`)."""
    if not arm.is_multitask:
        return cfg.MultiTaskConfig()
    batch = arm.task_batch_size(config.batch_size)
    task_data, task_options = {}, {}
    if "jigsaw" in arm.tasks:
        side = config.crop_size
        task_data["jigsaw"] = {"crop_size": side, "min_side": side, "max_side": side,
                               "batch_size": batch}
        task_options["jigsaw"] = {"piece_size": config_lib.jigsaw_piece_size(side),
                                  "tap": config.taps[-1]}
    if "video" in arm.tasks:
        task_data["video"] = {"data": os.path.join(os.path.expanduser(config.video_corpus),
                                                   "train"),
                              "crop_size": config.crop_size, "batch_size": batch}
        task_options["video"] = {"model_kwargs": {"taps": list(config.taps),
                                                  "hidden": config.hidden,
                                                  "dropout": config.dropout}}
    return cfg.MultiTaskConfig(tasks=tuple(arm.tasks), gradient_rule=arm.gradient_rule,
                               schedule="joint", task_data=task_data,
                               task_options=task_options, input_channels=3)


def _pretrain_config(config, arm_name, seed, folders, model_dir):
    arm = config_lib.ARMS[arm_name]
    colorizer = arm.is_colorizer
    return cfg.PretrainConfig(
            model=cfg.ModelConfig(arch=config.arch, taps=tuple(config.taps),
                                  hidden=config.hidden, dropout=config.dropout),
            data=cfg.DataConfig(data=folders["train"],
                                batch_size=(arm.task_batch_size(config.batch_size)
                                            if arm.is_multitask else config.batch_size),
                                crop_size=config.crop_size, points=config.points,
                                heldout_data=folders["val"] if colorizer else None,
                                heldout_images=config.heldout_images),
            loss=cfg.LossConfig(kind=arm.objective),
            optimizer=_optimizer(config, arm),
            multitask=_multitask(config, arm),
            train=cfg.TrainConfig(model_dir=model_dir, train_steps=config.pretrain_steps,
                                  steps_per_loop=min(25, config.eval_every,
                                                     config.pretrain_steps),
                                  checkpoint_every=min(250, config.pretrain_steps),
                                  keep_checkpoints=2, summary_every=min(25, config.pretrain_steps),
                                  image_every=0, seed=seed, export=False,
                                  eval_every=config.eval_every))


def _optimizer(config, arm):
    normsgd = arm.is_multitask and arm.gradient_rule == "normsgd"
    rate = config.normsgd_learning_rate if normsgd else config.learning_rate
    return cfg.OptimizerConfig(learning_rate=rate * arm.lr_scale,
                               lr_drops=tuple(config.lr_drops) if arm.lr_drop else (),
                               weight_decay=config.weight_decay,
                               warmup_steps=config.normsgd_warmup_steps if normsgd else 0)


def pretrain_arm(config, arm_name, seed, folders):
    """Pretrains (or resumes, or reuses) one arm with one seed; returns its info dict
    (``model_dir``, ``seconds``, ``final_losses``, ``heldout_curve`` ``[[step, loss], ...]``).

    A multi-proxy arm trains through :func:`tfcolor.train.pretrain` with its ``multitask``
    section; its ``heldout_curve`` is the colorizer's when colorization is one of its tasks (else
    empty), and ``final_losses`` holds every task's final training loss and logged terms
    (``jigsaw``, ``jigsaw/accuracy``, ...).

    The ``untrained`` control (:attr:`tfcolor.reproduce.config.Arm.untrained`) writes, through
    :func:`tfcolor.train.bn_statistics.estimate`, the colorization arm's network of the same seed
    at step 0 with BN statistics of ``statistics_steps`` batches; its info has ``steps`` 0,
    ``statistics_steps``, the training-mode loss over those batches as ``final_losses`` and the
    held-out loss at step 0 as its curve. An unfinished attempt is removed and redone.

    Raises:
        Preempted: the run was stopped before its last step (its checkpoint is kept).
    """
    arm = config_lib.ARMS[arm_name]
    name = config_lib.init_name(arm_name, seed)
    model_dir = os.path.join(config.output_dir, "pretrain", name)
    done = os.path.join(model_dir, _DONE)
    if os.path.exists(done):
        # The run where it is now: output_dir may have been given another way, moved or copied.
        return dict(_read_json(done), model_dir=model_dir)
    if arm.untrained and os.path.isdir(model_dir):
        shutil.rmtree(model_dir)  # an unfinished statistics pass: redone from the start
    os.makedirs(model_dir, exist_ok=True)
    start = time.perf_counter()
    logging.info("pretraining %s (%s) with seed %d in %s", arm_name, arm.objective, seed,
                 model_dir)
    if arm.untrained:
        record = bn_statistics.estimate(_pretrain_config(config, arm_name, seed, folders,
                                                         model_dir), arm.statistics_steps)
        stopped, losses = "completed", record["losses"]
        curve = [[int(s), float(v)] for s, v, _ in heldout.read_curve(model_dir)]
    elif arm.is_colorizer or arm.is_multitask:
        result = pretraining.pretrain(_pretrain_config(config, arm_name, seed, folders,
                                                       model_dir))
        stopped, losses = result.stopped, result.train.losses
        curve = [[int(s), float(v)] for s, v, _ in heldout.read_curve(model_dir)]
    else:
        kwargs = dict(arch=config.arch, hidden=config.hidden, taps=tuple(config.taps))
        if arm.objective == "split_brain":
            kwargs["split"] = "lab"
        data_config = cfg.DataConfig(data=folders["train"], batch_size=config.batch_size,
                                     crop_size=config.crop_size, points=config.points)
        result = baselines.pretrain(
                arm.objective, folders["train"], model_dir, model_kwargs=kwargs,
                data_config=data_config, train_steps=config.pretrain_steps,
                optimizer_config=_optimizer(config, arm),
                steps_per_loop=min(25, config.pretrain_steps),
                checkpoint_every=min(250, config.pretrain_steps), seed=seed)
        stopped, losses, curve = result.stopped, result.losses, []
    if stopped != "completed":
        raise Preempted(f"pretraining {name} stopped early ({stopped}); its checkpoint in "
                        f"{model_dir} is kept: rerun the same command to resume.")
    if arm.is_multitask:  # the step's norms are not losses: keep the losses and their terms
        losses = {k: v for k, v in (losses or {}).items() if not k.startswith("grad/")}
    info = {"init": name, "arm": arm_name, "objective": arm.objective, "seed": seed,
            "model_dir": model_dir, "steps": 0 if arm.untrained else config.pretrain_steps,
            "seconds": time.perf_counter() - start,
            "final_losses": {k: float(v) for k, v in (losses or {}).items()},
            "heldout_curve": curve}
    if arm.untrained:
        info["statistics_steps"] = arm.statistics_steps
    _write_json(done, info)
    return info


# ----------------------------------------------------------------------------------------------
# The colorizer on the holdout photos.


def evaluate_colorizer(model_dir, holdout_folder, out_path):
    """The colorizer of ``model_dir`` on the holdout photos against grey and the marginal prior
    of its own training photos (default read-out); cached in ``out_path``."""
    if os.path.exists(out_path):
        return _read_json(out_path)
    start = time.perf_counter()
    predictor = predictors.KerasPredictor.from_model_dir(model_dir)
    source, data_config, loss_config, options = prior_lib.data_config_from_run_config(
            run_dir.read_config(model_dir, as_dict=True))
    prior = prior_lib.marginal_prior(source, data_config, loss_config, **options)
    result = evaluation.evaluate_with_baselines(predictor, [holdout_folder], prior=prior)
    out = {"images": len(result.images), "skipped": [list(s) for s in result.skipped],
           "metrics": result.metrics.result(), "paired": result.paired,
           "readout": dataclasses.asdict(predictors.ColorizeOptions()),
           "seconds": time.perf_counter() - start}
    _write_json(out_path, out)
    return out


# ----------------------------------------------------------------------------------------------
# Downstream.


def _labeled(config):
    path = corpus_lib.labeled_set_path(config.corpus, config.labeled_set)
    return {split: datasets.load(f"{path}:{split}") for split in ("train", "val", "test")}


def finetune_config(config, learning_rate):
    """The :class:`tfcolor.downstream.protocol.FinetuneConfig` of a downstream cell."""
    return protocol.FinetuneConfig(
            batch_size=config.ft_batch_size, learning_rate=float(learning_rate),
            weight_decay=config.ft_weight_decay, eval_every=config.ft_eval_every,
            max_steps=config.ft_max_steps).validate()


def freeze_after(model, tap):
    """Freezes the trunk layers of ``model`` (a downstream model) after the layer ``tap``, which
    its classifier pools: they do not reach the loss (a multi-proxy trunk has every layer of the
    architecture), and a trainable variable that does not reach the loss fails the training
    step (its zero gradient is built from a Keras variable's string dtype). The network's output
    is unchanged. Returns ``model``."""
    layers = model.trunk.layers
    names = [layer.name for layer in layers]
    if tap not in names:
        raise ValueError(f"freeze_after: the trunk has no layer {tap!r}; layers: {names}")
    for layer in layers[names.index(tap) + 1:]:
        if layer.weights:
            layer.trainable = False
    return model


def downstream_cell(config, protocol_name, init, init_value, learning_rate, data,
                    rebalance_images=None, feature_tap=None):
    """One grid cell: ``finetune_seeds`` of one protocol, initialisation and learning rate;
    cached in its ``results.json`` (an unfinished cell's runs are discarded and redone).

    ``feature_tap``: the trunk output the classifier pools (default: the trunk's last). A
    multi-proxy trunk has every tap of the architecture; the runner gives it the deepest of
    ``taps``, the layer the other initialisations' classifiers pool, so every initialisation is
    fine-tuned as the same network; its layers after ``feature_tap`` are frozen
    (:func:`freeze_after`: they do not reach the loss)."""
    cell_dir = os.path.join(config.output_dir, "downstream", protocol_name, init,
                            f"lr{learning_rate:g}")
    done = os.path.join(cell_dir, RESULTS_FILE)
    if os.path.exists(done):
        return _read_json(done)
    runs_dir = os.path.join(cell_dir, "runs")
    if os.path.exists(runs_dir):  # an interrupted attempt: the protocol is not resumable
        shutil.rmtree(runs_dir)
    train = data["train"]
    random = init_value == "random"

    def make(seed):
        build = initialization.model_fn(
                init_value, train.task, train.num_classes, arch=config.arch,
                taps=list(config.taps) if random else None,
                from_layer="head" if protocol_name == "linear_probe" else None,
                rebalance_images=rebalance_images if random else None, seed=seed,
                dropout=config.ft_dropout, head_taps=feature_tap)
        if feature_tap is None:
            return build
        return lambda: freeze_after(build(), feature_tap)

    start = time.perf_counter()
    out = protocol.finetune_seeds(make, train, data["test"], finetune_config(config,
                                                                             learning_rate),
                                  list(config.finetune_seeds), model_dir=runs_dir,
                                  val_data=data["val"])
    out.update(protocol=protocol_name, init=init, learning_rate=float(learning_rate),
               seconds=time.perf_counter() - start)
    shutil.rmtree(runs_dir, ignore_errors=True)  # checkpoints of a finished cell: not needed
    logging.info("%s / %s / lr %g: test %s %.4f +- %.4f (%.0f s)", protocol_name, init,
                 learning_rate, out["metric"], out["test"]["mean"], out["test"]["std"],
                 out["seconds"])
    _write_json(done, out)
    return out


# ----------------------------------------------------------------------------------------------
# Collecting.


def primary_comparison(config):
    """The comparison named before the runs, read at its own level (the others are Holm
    corrected): colorization - untrained when the control is run, else colorization - random."""
    if "colorization" in config.arms and "untrained" in config.arms:
        return "colorization - untrained"
    return "colorization - random" if "colorization" in config.arms else None


def _comparisons(config, chosen, grid=None, labels=None):
    seeds = config.pretrain_seeds
    inits = {arm: [config_lib.init_name(arm, s) for s in seeds] for arm in config.arms}
    out = {}
    for arm in config.arms:
        out[f"{arm} - random"] = comparison.paired_difference(chosen, inits[arm], ["random"])
    if "colorization" in config.arms:
        for arm in config.arms:
            if arm != "colorization":
                out[f"colorization - {arm}"] = comparison.paired_difference(
                        chosen, inits["colorization"], inits[arm])
    # Combining proxies (Table 4.7): C+J against J (against C above), C+J+V against C+J, and
    # NormSGD against plain SGD for C+J.
    for a, b in MULTITASK_COMPARISONS:
        if a in config.arms and b in config.arms:
            out[f"{a} - {b}"] = comparison.paired_difference(chosen, inits[a], inits[b])
    if grid is not None and labels is not None:
        inits["random"] = ["random"]
        for name, c in out.items():
            a, b = name.split(" - ")
            c["runs_and_images"] = comparison.runs_and_images(grid, chosen, inits[a], inits[b],
                                                              labels)
    return comparison.with_holm(out, primary_comparison(config))


#: Paired differences between multi-proxy arms that the report adds when both are run.
MULTITASK_COMPARISONS = (("cj", "jigsaw"), ("cjv", "cj"), ("cj", "cj_sgd"))


def collect(config, pretrain, colorizer, cells, data_sizes, seconds, labels=None):
    """The ``results.json`` payload of finished units (see the module docstring); ``labels``:
    the labelled set's test labels (for the intervals over runs and images)."""
    downstream = {}
    for protocol_name, by_init in cells.items():
        grid = {init: {f"{lr:g}": comparison.grid_cell(r) for lr, r in by_lr.items()}
                for init, by_lr in by_init.items()}
        chosen = comparison.choose_learning_rates(grid)
        metric = next(iter(next(iter(by_init.values())).values()))["metric"]
        downstream[protocol_name] = {"metric": metric, "grid": grid, "chosen": chosen,
                                     "primary": primary_comparison(config),
                                     "comparisons": _comparisons(config, chosen, grid, labels)}
    return {"config": config.to_dict(),
            "arms": {a: dataclasses.asdict(config_lib.ARMS[a]) for a in config.arms},
            "data": data_sizes, "pretrain": pretrain, "colorizer": colorizer,
            "downstream": downstream, "seconds": seconds,
            "machine": {"processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "python": platform.python_version(),
                        "tensorflow": tf.__version__, "keras": keras.__version__}}


def _feature_tap(config, init):
    if init == "random" or not config_lib.ARMS[init.rsplit("_s", 1)[0]].is_multitask:
        return None  # the committed cells: the trunk's last output, the deepest of taps
    return config.taps[-1]


def run(config, *, progress=None, command=None):
    """Runs (or resumes) the reproduction of ``config`` (a :class:`ReproduceConfig`); returns
    the results dict also written to ``output_dir/results.json`` (and ``results.md``).

    Args:
        config: a :class:`tfcolor.reproduce.config.ReproduceConfig`.
        progress: optional ``progress(stage, name)`` called before each unit.
        command: optional argv recorded in the results (``"argv"``) and the report.

    Raises:
        tfcolor.config.ConfigError: a bad config, or ``output_dir`` holds another config.
        tfcolor.reproduce.corpus.CorpusError: the corpus (or, for an arm with video, the video
            corpus) is missing or incomplete.
        Preempted: a pretraining run was stopped (SIGTERM); rerun to resume.
    """
    config.validate()
    if config.uses_video:
        corpus_lib.check_video_corpus(config.video_corpus)
    os.makedirs(config.output_dir, exist_ok=True)
    note = progress or (lambda stage, name: None)
    with lock_lib.hold(config.output_dir):
        _check_config(config)
        seconds = {}
        t0 = time.perf_counter()
        folders = corpus_lib.split_folders(config.corpus, os.path.join(config.output_dir,
                                                                       "photos"))
        data = _labeled(config)
        pretrain = {}
        for arm in config.arms:
            for seed in config.pretrain_seeds:
                note("pretrain", config_lib.init_name(arm, seed))
                info = pretrain_arm(config, arm, seed, folders)
                pretrain[info["init"]] = info
        seconds["pretrain"] = sum(p["seconds"] for p in pretrain.values())
        colorizer = {}
        for arm in config.evaluate_arms:
            for seed in config.pretrain_seeds:
                name = config_lib.init_name(arm, seed)
                note("colorizer", name)
                os.makedirs(os.path.join(config.output_dir, "colorizer"), exist_ok=True)
                colorizer[name] = evaluate_colorizer(
                        pretrain[name]["model_dir"], folders["holdout"],
                        os.path.join(config.output_dir, "colorizer", f"{name}.json"))
        seconds["colorizer"] = sum(c["seconds"] for c in colorizer.values())
        sample = initialization.rebalance_sample(data["train"])
        values = {"random": "random", **{n: p["model_dir"] for n, p in pretrain.items()}}
        cells = {}
        for protocol_name in config.protocols:
            for init in config.inits():
                for lr in config.learning_rates(protocol_name):
                    note(protocol_name, f"{init} lr {lr:g}")
                    cells.setdefault(protocol_name, {}).setdefault(init, {})[lr] = \
                        downstream_cell(config, protocol_name, init, values[init], lr, data,
                                        rebalance_images=sample,
                                        feature_tap=_feature_tap(config, init))
        seconds["downstream"] = sum(r["seconds"] for by_init in cells.values()
                                    for by_lr in by_init.values() for r in by_lr.values())
        seconds["this_invocation"] = time.perf_counter() - t0
        sizes = {**{f"{k}_photos": len(os.listdir(v)) for k, v in folders.items()},
                 **{f"{config.labeled_set}_{k}": len(v) for k, v in data.items()},
                 "classes": data["train"].num_classes}
        results = collect(config, pretrain, colorizer, cells, sizes, seconds,
                          labels=data["test"].labels)
        if command is not None:
            results["argv"] = list(command)
        _write_json(os.path.join(config.output_dir, RESULTS_FILE), results)
        with open(os.path.join(config.output_dir, REPORT_FILE), "w", encoding="utf-8") as f:
            f.write(report.markdown(results))
    return results
