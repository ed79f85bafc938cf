"""The reproduce program's absl entry point (the program: ``tfcolor.programs.reproduce``).

    binaries/reproduce --flagfile=configs/reproduce.flags --output_dir=runs/reproduce
    python binaries/reproduce.py --help
"""
if __package__ in (None, ""):  # python binaries/reproduce.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

import os  # noqa: E402

from absl import flags  # noqa: E402

from tfcolor.programs import reproduce as program  # noqa: E402
from tfcolor.reproduce import config  # noqa: E402

from . import common  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=flags.FLAGS):
    """Defines the program's flags on ``fv`` (at run time, so that programs and tests
    can each use their own FlagValues)."""
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
    flags.DEFINE_string("video_corpus", d.video_corpus, "Video corpus of the arms with video "
                        "(tools/build_video_corpus.py).", flag_values=fv)
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
                        ("ft_max_steps", "Downstream maximum steps."),
                        ("normsgd_warmup_steps", "Warm-up steps of the NormSGD arms.")):
        flags.DEFINE_integer(name, getattr(d, name), help_, flag_values=fv)
    for name, help_ in (("dropout", "Pretraining head dropout."),
                        ("learning_rate", "Pretraining learning rate (x the arm's scale)."),
                        ("weight_decay", "Pretraining weight decay."),
                        ("ft_weight_decay", "Downstream weight decay."),
                        ("ft_dropout", "Downstream classifier dropout."),
                        ("normsgd_learning_rate", "Learning rate of the NormSGD arms.")):
        flags.DEFINE_float(name, getattr(d, name), help_, flag_values=fv)
    flags.DEFINE_list("lr_drops", [str(v) for v in d.lr_drops],
                      "Pretraining LR drops (x0.1) as fractions of the steps.", flag_values=fv)
    flags.DEFINE_list("probe_learning_rates", [str(v) for v in d.probe_learning_rates],
                      "Linear-probe learning-rate grid.", flag_values=fv)
    flags.DEFINE_list("finetune_learning_rates", [str(v) for v in d.finetune_learning_rates],
                      "Fine-tuning learning-rate grid.", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)
    return fv


def config_from_flags(fv=FLAGS):
    """The :class:`tfcolor.reproduce.ReproduceConfig` of the flags (not yet validated)."""
    names = common.own_flag_names(define_flags)
    return program.config_from_values(common.flag_values(fv, names),
                                      common.flag_defaults(fv, names))


def main(argv):
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    try:
        cfg = config_from_flags(FLAGS)
    except ValueError as e:
        common.die(str(e))
    return program.main(cfg, fake_data=FLAGS.fake_data, names=set(FLAGS))


def run():
    """Console-script entry point (``tfcolor-reproduce``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
