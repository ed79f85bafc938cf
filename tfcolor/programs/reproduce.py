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

from absl import flags
from absl import logging

from tfcolor.programs import common

common.quiet_tensorflow()

FLAGS = flags.FLAGS


def define_flags(fv=flags.FLAGS):
    """Defines the program's flags on ``fv`` (at run time, so that programs and tests
    can each use their own FlagValues)."""
    from tfcolor.reproduce import config  # pylint: disable=import-outside-toplevel
    d = config.ReproduceConfig()
    common.flag_section(fv, "Run")
    flags.DEFINE_string("corpus", os.path.expanduser("~/.cache/tfcolor-corpus"),
                        "Folder written by the corpus builder (tfcolor-build-corpus).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where everything is written (resumable).",
                        flag_values=fv)
    flags.DEFINE_bool("fake_data", False, "Use a tiny synthetic corpus (smoke runs, tests).",
                      flag_values=fv)
    flags.DEFINE_string("labeled_set", d.labeled_set, "labeled/NAME.npz of the corpus.",
                        flag_values=fv)
    common.flag_section(fv, "Arms, seeds and protocols")
    flags.DEFINE_list("arms", list(d.arms), f"Pretraining recipes, of {sorted(config.ARMS)}.",
                      flag_values=fv)
    flags.DEFINE_list("pretrain_seeds", [str(s) for s in d.pretrain_seeds],
                      "One pretraining run per arm and seed.", flag_values=fv)
    flags.DEFINE_list("finetune_seeds", [str(s) for s in d.finetune_seeds],
                      "Fine-tuning seeds of every downstream cell.", flag_values=fv)
    flags.DEFINE_list("protocols", list(d.protocols), f"Subset of {config.PROTOCOLS}.",
                      flag_values=fv)
    flags.DEFINE_list("evaluate_arms", list(d.evaluate_arms),
                      "Colorizer arms evaluated on the holdout photos.", flag_values=fv)
    common.flag_section(fv, "Recipe (pretraining; ft_: downstream)")
    flags.DEFINE_string("arch", d.arch, "Trunk architecture.", flag_values=fv)
    flags.DEFINE_list("taps", list(d.taps), "Hypercolumn taps (and random-init taps).",
                      flag_values=fv)
    for name, help_ in (("hidden", "Hidden units of the pretraining heads."),
                        ("crop_size", "Pretraining crop."),
                        ("batch_size", "Pretraining batch size."),
                        ("points", "Sampled pixels per image in pretraining."),
                        ("pretrain_steps", "Pretraining steps per run."),
                        ("heldout_images", "Val photos of the held-out loss."),
                        ("eval_every", "Steps between held-out losses."),
                        ("ft_batch_size", "Downstream batch size."),
                        ("ft_eval_every", "Downstream steps between validations."),
                        ("ft_max_steps", "Downstream maximum steps.")):
        flags.DEFINE_integer(name, getattr(d, name), help_, flag_values=fv)
    for name, help_ in (("dropout", "Pretraining head dropout."),
                        ("learning_rate", "Pretraining learning rate (x the arm's scale)."),
                        ("weight_decay", "Pretraining weight decay."),
                        ("ft_weight_decay", "Downstream weight decay."),
                        ("ft_dropout", "Downstream classifier dropout.")):
        flags.DEFINE_float(name, getattr(d, name), help_, flag_values=fv)
    flags.DEFINE_list("lr_drops", [str(v) for v in d.lr_drops],
                      "Pretraining LR drops (x0.1) as fractions of the steps.", flag_values=fv)
    flags.DEFINE_list("probe_learning_rates", [str(v) for v in d.probe_learning_rates],
                      "Linear-probe learning-rate grid.", flag_values=fv)
    flags.DEFINE_list("finetune_learning_rates", [str(v) for v in d.finetune_learning_rates],
                      "Fine-tuning learning-rate grid.", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)


def _int_list(flag):
    try:
        return tuple(int(v) for v in FLAGS[flag].value)
    except ValueError:
        raise ValueError(f"--{flag} must be a comma-separated list of integers, got "
                         f"{','.join(FLAGS[flag].value)!r}") from None


def config_from_flags():
    """The :class:`tfcolor.reproduce.ReproduceConfig` of the flags (not yet validated)."""
    from tfcolor.reproduce import config  # pylint: disable=import-outside-toplevel
    float_lists = {k: tuple(common.parse_float_list(FLAGS[k].value, k))
                   for k in ("lr_drops", "probe_learning_rates", "finetune_learning_rates")}
    int_lists = {k: _int_list(k) for k in ("pretrain_seeds", "finetune_seeds")}
    return common.config_from_flags(config.ReproduceConfig, FLAGS,
                                    parsers={**{k: (lambda v, k=k: float_lists[k])
                                                for k in float_lists},
                                             **{k: (lambda v, k=k: int_lists[k])
                                                for k in int_lists},
                                             **{k: tuple for k in ("arms", "protocols",
                                                                   "evaluate_arms", "taps")}})


def _main():
    from tfcolor import reproduce  # pylint: disable=import-outside-toplevel
    cfg = config_from_flags()
    if FLAGS.fake_data:
        cfg.corpus = reproduce.make_fake_corpus(os.path.join(FLAGS.output_dir, "fake_corpus"))
    results = reproduce.run(cfg, progress=lambda stage, name: logging.info("%s: %s", stage,
                                                                            name),
                            command=sys.argv)
    from tfcolor.reproduce import report  # pylint: disable=import-outside-toplevel
    text = report.markdown(results)
    print(text)


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    # pylint: disable=import-outside-toplevel
    from tfcolor.config import ConfigError
    from tfcolor.reproduce import CorpusError, Preempted
    from tfcolor.train.lock import ModelDirLockedError
    try:
        _main()
    except ConfigError as e:  # a fielded error: its field is called by its flag
        common.die(common.flag_error(e, FLAGS))
    except CorpusError as e:
        common.die(f"--corpus: {e}")
    except ValueError as e:
        common.die(str(e))
    except ModelDirLockedError as e:
        common.die(str(e))
    except Preempted as e:
        common.die(str(e), status=3)


def run():
    """Console-script entry point (``tfcolor-reproduce``)."""
    common.run_program(define_flags, main)


if __name__ == "__main__":
    run()
