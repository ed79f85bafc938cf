"""The small-scale reproduction: does colorization teach a network to see?

Parses flags into a :class:`tfcolor.reproduce.ReproduceConfig` (each flag is named as its field)
and calls :func:`tfcolor.reproduce.run`, which pretrains every arm with every pretraining seed on
the corpus's train photos, evaluates the colorizer on the holdout photos against grey and the
marginal prior, runs the linear probe and full fine-tuning on the labelled set for random and
every pretrained trunk over a learning-rate grid and several fine-tuning seeds, and writes
``results.json`` and ``results.md`` into ``--output_dir`` (see ``tfcolor/reproduce/runner.py``).

    binaries/build_corpus --out ~/.cache/tfcolor-corpus       # once, ~1 min
    binaries/reproduce --flagfile=configs/reproduce.flags --output_dir=runs/reproduce

Interrupting: SIGTERM during pretraining checkpoints and exits with status 3; any stop is safe.
Rerunning the same command resumes: finished pretraining runs, colorizer evaluations and
downstream cells are reused, the unfinished one is resumed (pretraining) or redone (a downstream
cell). A different config on the same ``--output_dir`` is refused, except in the flags that
only select units (``--arms``, ``--pretrain_seeds``, ``--evaluate_arms``, ``--protocols``,
``--probe_learning_rates``, ``--finetune_learning_rates``): adding a rate to a grid runs only the
new cells, and a rate left out keeps its cells on disk but out of the report.

``--fake_data`` builds a tiny synthetic corpus in ``OUTPUT_DIR/fake_corpus`` instead of reading
``--corpus`` (a smoke run of every stage; its numbers mean nothing).
"""
import os
import sys

from absl import logging

from tfcolor.programs import common

common.quiet_tensorflow()

# The reproduction imports TensorFlow: after quiet_tensorflow() (binaries/reproduce --help loads it
# anyway, for its flags' defaults in tfcolor.reproduce.config).
from tfcolor import reproduce  # noqa: E402
from tfcolor.config import ConfigError  # noqa: E402
from tfcolor.reproduce import CorpusError, Preempted, config, report  # noqa: E402
from tfcolor.train.lock import ModelDirLockedError  # noqa: E402


def _int_list(values, flag):
    try:
        return tuple(int(v) for v in values[flag])
    except ValueError:
        raise ValueError(f"--{flag} must be a comma-separated list of integers, got "
                         f"{','.join(values[flag])!r}") from None


def config_from_values(values, defaults=None):
    """The :class:`tfcolor.reproduce.ReproduceConfig` of ``{option: value}`` (lists as lists of
    strings, as absl's list flags hold them; not yet validated)."""
    float_lists = {k: tuple(common.parse_float_list(values[k], k))
                   for k in ("lr_drops", "probe_learning_rates", "finetune_learning_rates")
                   if k in values}
    int_lists = {k: _int_list(values, k) for k in ("pretrain_seeds", "finetune_seeds")
                 if k in values}
    return common.config_from_values(config.ReproduceConfig, values, defaults,
                                     parsers={**{k: (lambda v, k=k: float_lists[k])
                                                 for k in float_lists},
                                              **{k: (lambda v, k=k: int_lists[k])
                                                 for k in int_lists},
                                              **{k: tuple for k in ("arms", "protocols",
                                                                    "evaluate_arms", "taps")}})


def main(cfg, *, fake_data=False, command=None, names=None):
    """Runs the reproduction ``cfg`` (a ``ReproduceConfig``) and prints its report; returns the
    exit status. ``fake_data``: a tiny synthetic corpus in ``OUTPUT_DIR/fake_corpus`` instead of
    ``cfg.corpus``; ``command``: the command line recorded in results.json (default
    ``sys.argv``); ``names``: the options a config field may be called by in errors."""
    names = set(vars(cfg)) if names is None else names
    try:
        _main(cfg, fake_data, sys.argv if command is None else command)
    except ConfigError as e:  # a fielded error: its field is called by its option
        common.die(common.option_error(e, names))
    except CorpusError as e:
        common.die(f"--{e.flag}: {e}")
    except ValueError as e:
        common.die(str(e))
    except ModelDirLockedError as e:
        common.die(str(e))
    except Preempted as e:
        common.die(str(e), status=3)
    return 0


def _main(cfg, fake_data, command):
    if fake_data:
        cfg.corpus = reproduce.make_fake_corpus(os.path.join(cfg.output_dir, "fake_corpus"))
    results = reproduce.run(cfg, progress=lambda stage, name: logging.info("%s: %s", stage,
                                                                            name),
                            command=command)
    text = report.markdown(results)
    print(text)
