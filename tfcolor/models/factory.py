"""The one model factory: the colorizer a configuration describes.

:func:`build_colorizer` is the only place that turns a :class:`tfcolor.config.PretrainConfig`
(or its dict form, ``config.json`` of a run directory) into a :class:`Colorizer`: pretraining,
export, fine-tuning initialisation and the programs all build through it, so a checkpoint written
by one always fits the model rebuilt by another.
"""
from tfcolor import config as config_lib
from tfcolor.models import multitask
from tfcolor.models import trunk as trunk_lib
from tfcolor.models.colorizer import Colorizer

__all__ = ["build_colorizer", "build_shared_trunk", "build_run_colorizer"]


def _config_error(message):
    return config_lib.ConfigError(message)


def _as_config(config):
    if isinstance(config, config_lib.PretrainConfig):
        return config
    if isinstance(config, dict):
        bad = sorted(k for k, v in config.items() if not isinstance(v, dict))
        if bad:
            raise _config_error(f"config sections must be dicts; {bad} are not")
        return config_lib.PretrainConfig.from_dict(config)
    raise TypeError(f"build_colorizer takes a tfcolor.config.PretrainConfig or its dict "
                    f"(config.json); got {type(config).__name__}")


def _validate(section_name, section):
    """``section.validate()``, with any error it lets through re-raised as a ConfigError naming
    the section (e.g. ``float('x')`` of a string where a number belongs)."""
    try:
        section.validate()
    except config_lib.ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise _config_error(f"{section_name}: a value has the wrong type or form ({e})") from e


def build_colorizer(config, *, prior=None, trunk=None):
    """The colorizer of ``config``; call inside ``strategy.scope()`` when training distributed.

    Args:
        config: a :class:`tfcolor.config.PretrainConfig` or its dict (``to_dict()``, as in a run
            directory's ``config.json``). Its ``model`` section gives the trunk (``arch``,
            ``taps``, ``fov``, ``batch_norm``, ``sync_batch_norm``, ``input_mean``) and head
            (``hidden``, ``dropout``, ``convention``); ``loss.kind`` the output groups. Other
            sections (data, optimizer, train) are not looked at, so the model of a run whose
            data is gone can still be rebuilt.
        prior: a :class:`tfcolor.prior.MarginalPrior` of the loss kind: the head's output bias
            starts at it (:meth:`tfcolor.layers.HistogramHead.start_at_prior`; what
            ``model.prior_bias`` asks pretraining to do). None: the default initialization.
        trunk: a :class:`tfcolor.models.multitask.SharedTrunk` to build the colorizer on
            (multi-task training; its input channels are the colorizer's ``input_channels``,
            3: an RGB-encoded grey input) instead of a trunk of its own; the model section's
            trunk fields (``arch``, ``batch_norm``, ...) then describe the shared trunk and
            are not looked at here.

    Returns:
        A new :class:`tfcolor.models.Colorizer`.

    Raises:
        tfcolor.config.ConfigError: a bad value (the message names the field, e.g.
            ``model.taps``), unknown keys or sections.
        TypeError: ``config`` is neither a ``PretrainConfig`` nor a dict.
    """
    config = _as_config(config)
    m = config.model
    _validate("model", m)
    _validate("loss", config.loss)
    for name in ("fov", "sync_batch_norm"):
        if not isinstance(getattr(m, name), bool):
            raise _config_error(f"model.{name} must be true or false, got {getattr(m, name)!r}")
    try:
        trunk_lib.resolve_taps(m.arch, m.taps, fov=m.fov)
    except (TypeError, ValueError) as e:
        raise _config_error(f"model.taps={m.taps!r} does not fit arch={m.arch!r}: {e}") from e
    try:
        if trunk is not None:
            model = Colorizer(trunk=trunk.model, tap_strides=trunk.tap_strides(m.taps),
                              kind=config.loss.kind, hidden=m.hidden, dropout=m.dropout,
                              convention=m.convention, input_channels=trunk.input_channels)
        else:
            model = Colorizer(m.arch, taps=m.taps, kind=config.loss.kind, hidden=m.hidden,
                              dropout=m.dropout, convention=m.convention,
                              batch_norm=m.batch_norm, sync_batch_norm=m.sync_batch_norm,
                              fov=m.fov, input_mean=m.input_mean)
    except ValueError as e:
        raise _config_error(f"model: {e} (the model section {config.model} does not describe a "
                            "colorizer)") from e
    if prior is not None:
        if prior.kind != config.loss.kind:
            raise ValueError(f"a {prior.kind} prior cannot start a {config.loss.kind} head")
        model.head.start_at_prior(prior.probabilities(),
                                  regression=prior.kind == "lab_regression")
    return model


def build_shared_trunk(config):
    """The shared trunk of a multi-task ``config``
    (:class:`tfcolor.models.multitask.SharedTrunk`): ``model.arch`` with the model section's trunk
    options and ``multitask.input_channels`` input channels, every tap."""
    config = _as_config(config)
    m = config.model
    _validate("model", m)
    options = dict(sync_batch_norm=m.sync_batch_norm, input_mean=m.input_mean)
    if m.batch_norm is not None:
        options["batch_norm"] = m.batch_norm
    return multitask.build_shared_trunk(m.arch, input_channels=config.multitask.input_channels,
                                        fov=m.fov, **options)


def build_run_colorizer(config):
    """``(checkpoint_model, colorizer)``: the colorizer of a run's ``config`` and the object its
    checkpoints hold as ``model``. A colorization run: the colorizer twice. A multi-task run
    with colorization: a :class:`tfcolor.models.multitask.MultiTaskModel` of the shared trunk
    and the colorizer alone (restore with ``expect_partial``: the other tasks' heads are left
    out).

    Raises:
        tfcolor.config.ConfigError: the run trained no colorizer.
    """
    config = _as_config(config)
    if config.multitask.single_colorization:
        model = build_colorizer(config)
        return model, model
    if "colorization" not in config.multitask.tasks:
        raise _config_error(f"this run trained no colorizer (tasks: "
                            f"{', '.join(config.multitask.tasks)}); its trunk can be fine-tuned "
                            "(binaries/finetune --init) but not colorize")
    trunk = build_shared_trunk(config)
    colorizer = build_colorizer(config, trunk=trunk)
    return multitask.MultiTaskModel(trunk, {"colorization": colorizer}), colorizer

