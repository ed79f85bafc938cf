r"""Distils one or several frozen teachers into a student trunk (Larsson's dissertation, §4.1:
task-agnostic distillation with the AB divergence), alone or jointly with other proxy tasks.

    binaries/pretrain --flagfile=configs/quickstart.flags --train_steps=100 \
        --model_dir=runs/teacher
    binaries/distill --flagfile=configs/distill_cpu.flags --teachers=runs/teacher

The run is a pretraining run whose tasks include ``distillation`` (default: it alone): the
student is the shared trunk of ``--arch`` (``--input_channels``), trained on the run's data
section (``--data``, ``--crop_size``, ...) to match the teachers' activations at
``--teacher_layer`` (``top``: the top non-task layer, pre-ReLU) by ``--distill_loss`` (``ab``:
the AB divergence, alpha = 1/4, beta = 0), several teachers combined by ``--combine``
(``subset``: a random feature subset drawn once from ``--subset_seed``; ``auxiliary``: an
auxiliary layer). The teacher statistics are computed once, before training, over
``--statistics_batches`` batches and kept in ``model_dir/distill_statistics.json``; a resumed run
reads them back. Teachers are never written into the checkpoints. The distilled trunk is the
run's shared trunk: ``binaries/finetune --init=MODEL_DIR``, another run's ``--init`` or
``--teachers`` read it (``tfcolor.run_dir.load_shared_trunk``).

Resumes automatically from the latest checkpoint in --model_dir; one run per --model_dir (as
``binaries/pretrain``). Every flag is named as the ``tfcolor.config.PretrainConfig`` field it
sets (the distillation fields are ``PretrainConfig.distill``'s), except ``--loss`` for
``loss.kind`` (the colorization loss of a joint run).
"""
from tfcolor.programs import common
from tfcolor.programs import pretrain as pretrain_program

common.quiet_tensorflow()

#: The one config field whose option is named otherwise (as binaries/pretrain).
FLAG_NAMES = pretrain_program.FLAG_NAMES
#: Options whose text form differs from the field's value.
PARSERS = pretrain_program.PARSERS

FlagError = pretrain_program.FlagError


def config_from_values(values, defaults=None):
    """A ``tfcolor.config.PretrainConfig`` from ``{option: value}`` (no validation here)."""
    # lazy: keeps TensorFlow out of binaries/distill --help
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    return common.config_from_values(config.PretrainConfig, values, defaults,
                                     flag_names=FLAG_NAMES, parsers=PARSERS)


def build_config(values, defaults=None):
    """The validated ``PretrainConfig`` of ``{option: value}``, whose tasks include
    ``distillation`` and which names a teacher; raises FlagError naming the option."""
    # lazy: keeps TensorFlow out of binaries/distill --help
    from tfcolor import config  # pylint: disable=import-outside-toplevel
    try:
        cfg = config_from_values(values, defaults).validate()
    except (config.ConfigError, ValueError) as e:
        raise FlagError(pretrain_program.option_message(e, set(values))) from e
    if "distillation" not in cfg.multitask.tasks:
        raise FlagError(f"--tasks must include distillation, got {','.join(cfg.multitask.tasks)}")
    if not cfg.distill.teachers:
        raise FlagError("--teachers is empty: name at least one teacher (a model_dir, an export "
                        "or a SavedModel)")
    return cfg


def main(cfg, *, force_unlock=False, names=None):
    """Distils as ``cfg`` (a validated ``PretrainConfig``) says; returns the exit status.

    Errors end the program as ``binaries/pretrain``'s do (``common.ProgramError``: status 2 for
    bad data or config, e.g. a teacher that is not a run; 3: non-finite loss; 4: checkpoint; 5:
    ``model_dir`` in use).
    """
    if "distillation" not in cfg.multitask.tasks:
        common.die(f"--tasks must include distillation, got {','.join(cfg.multitask.tasks)}")
    return pretrain_program.main(cfg, force_unlock=force_unlock, names=names)
