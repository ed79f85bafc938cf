"""The distillation program's absl entry point (the program: ``tfcolor.programs.distill``).

    binaries/distill --flagfile=configs/distill_cpu.flags
    python binaries/distill.py --help

Every flag of ``binaries/pretrain`` (the run, the student's model section, data, optimizer and
the tasks trained with distillation), with the distillation defaults (``--tasks=distillation``,
``--gradient_rule=sum``, ``--model_dir=runs/distill``), and the distillation flags, each named as
the ``tfcolor.config.DistillConfig`` field it sets.
"""
if __package__ in (None, ""):  # python binaries/distill.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import distill as program  # noqa: E402

from . import common  # noqa: E402
from . import pretrain  # noqa: E402

FLAGS = flags.FLAGS

#: binaries/pretrain's flags whose default differs here.
DEFAULTS = {"model_dir": "runs/distill", "tasks": "distillation", "gradient_rule": "sum"}


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (the global FLAGS by default), at run time (see
    ``binaries/pretrain.define_flags``)."""
    if "teachers" in fv:
        return fv
    pretrain.define_flags(fv)
    for name, value in DEFAULTS.items():
        fv.set_default(name, value)
    return fv


def config_from_flags(fv=FLAGS):
    """A ``tfcolor.config.PretrainConfig`` from the parsed flags (no validation here)."""
    return pretrain.config_from_flags(fv, prog=program, define=define_flags)


def build_config(fv=FLAGS):
    """The validated ``PretrainConfig`` of the parsed flags ``fv``; raises
    ``tfcolor.programs.distill.FlagError`` naming the flag."""
    return pretrain.build_config(fv, prog=program, define=define_flags)


FlagError = program.FlagError


def main(argv):
    return pretrain.main(argv, prog=program, define=define_flags)


def run():
    """Console-script entry point (``tfcolor-distill``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
