"""What the programs (``tfcolor.programs``) share, without any command-line parsing.

Each program is a module here whose functions take plain values: a config object of the library
(``tfcolor.config.PretrainConfig``, ``tfcolor.reproduce.ReproduceConfig``, ...) or an *options*
object (any object with one attribute per setting, named as the program's flags, e.g. a
``types.SimpleNamespace``), and return the exit status. Their absl entry points, which parse the
flags into these values, are ``binaries/NAME.py`` (installed as ``tfcolor_binaries``, see
``binaries/common.py``).

Programs only gather values; the library (``tfcolor.config``) validates them. Options are named
exactly as the config fields they set (:func:`config_from_values` copies them), so a
``ConfigError`` from the library, whose ``field`` attribute names the field, becomes a usage
error naming the option (:func:`option_error`: ``--batch_size must be a positive integer, got
0``). A program ends with such an error by raising :class:`ProgramError` (:func:`die`); the entry
point prints it as one line, ``NAME: error: MESSAGE``, and exits with its status.
"""
import contextlib
import dataclasses
import gc
import logging
import os
import re
import tempfile


class ProgramError(Exception):
    """A program cannot go on: ``message`` is the one line to show, ``status`` the exit status.

    ``hard=True`` (for errors raised once TensorFlow input pipelines are running) asks the entry
    point to end the process with ``os._exit`` after printing, without the interpreter's
    finalization: destroying a ``tf.data`` iterator whose pipeline has just failed can wait
    forever for its in-flight parallel calls (seen with TF 2.21 after a "no decodable image"
    error), which would leave a finished run hanging instead of exiting. Everything a run must
    keep (checkpoints, the lock's release) is done before the error reaches the entry point.
    """

    def __init__(self, message, status=2, *, hard=False):
        super().__init__(message)
        self.message, self.status, self.hard = message, status, hard


def die(message, status=2, *, hard=False):
    """Ends the program with a one-line error: raises :class:`ProgramError`."""
    raise ProgramError(message, status, hard=hard)


def config_from_values(cls, values, defaults=None, *, flag_names=None, parsers=None, _prefix=""):
    """An instance of the dataclass ``cls`` whose fields are read from the options named like them.

    Nested dataclass fields (``PretrainConfig.data``) are read the same way, their fields called
    ``section.field`` in ``flag_names`` and ``parsers``.

    Args:
        cls: a dataclass; a field without an option of its name keeps its default.
        values: ``{option name: value}``.
        defaults: ``{option name: the option's "unset" value}`` (the flags' defaults).
        flag_names: ``{"section.field": option}`` for the fields whose option is named otherwise
            (``{"loss.kind": "loss"}``).
        parsers: ``{"section.field": function}`` turning an option's value into the field's
            (comma-separated lists, enums).

    A field whose default is ``None`` is ``None`` while its option holds its "unset" value from
    ``defaults`` (``""``, ``0`` or ``-1``), so ``--min_side=0`` is "use the default".
    """
    flag_names, parsers, defaults = flag_names or {}, parsers or {}, defaults or {}
    out = {}
    for field in dataclasses.fields(cls):
        path = _prefix + field.name
        factory = field.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            out[field.name] = config_from_values(factory, values, defaults,
                                                 flag_names=flag_names, parsers=parsers,
                                                 _prefix=path + ".")
            continue
        flag = flag_names.get(path, field.name)
        if flag not in values:
            continue
        value = values[flag]
        if field.default is None and flag in defaults and value == defaults[flag]:
            out[field.name] = None
        elif path in parsers:
            out[field.name] = parsers[path](value)
        else:
            out[field.name] = value
    return cls(**out)


def option_of(field, names, flag_names=None):
    """The option (among ``names``) that sets config ``field`` (``"data.points"`` ->
    ``"points"``), or None."""
    if not field:
        return None
    flag = (flag_names or {}).get(field, field.rsplit(".", 1)[-1])
    return flag if flag in names else None


def option_error(error, names, flag_names=None):
    """The message of a library error with its field called by its option: a
    ``tfcolor.config.ConfigError`` whose ``field`` is ``data.batch_size`` reads
    ``--batch_size must be a positive integer, got 0`` when ``batch_size`` is one of ``names``;
    other errors are unchanged."""
    flag = option_of(getattr(error, "field", None), names, flag_names)
    if flag is None or not hasattr(error, "naming"):
        return str(error)
    return error.naming("--" + flag)


def name_flags(message, flag_names):
    """Prefixes the leading field name of a library error message with ``--`` when it is a flag."""
    match = re.match(r"^(\w+)\b", message)
    if match and match.group(1) in flag_names:
        return "--" + message
    return message


def parse_float_list(value, flag):
    """"0.5,0.75" -> [0.5, 0.75]; "" -> []; raises ValueError naming ``flag``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [v for v in str(value).split(",") if v.strip()]
    try:
        return [float(v) for v in items]
    except ValueError:
        raise ValueError(f"--{flag} must be a comma-separated list of numbers, got {value!r}") \
            from None


def parse_taps(value):
    """The ``--taps`` option: "" or "all" -> None; "a,b-c" -> ["a", "b-c"]; one item -> str."""
    if value is None or value.strip() in ("", "all"):
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items[0] if len(items) == 1 else items


def quiet_tensorflow():
    """Hides TensorFlow's C++ INFO/WARNING lines unless the user asked for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def one_line(error):
    """``Type: first line of the message`` of an exception (TensorFlow's span many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")


def storage_error(error):
    """True if ``error`` comes from the disk: full, read-only, not writable, an I/O error
    (``tfcolor.train.checkpointing.storage_error``; ``OSError`` and TensorFlow errors)."""
    # lazy: keeps TensorFlow out of every program's --help
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    return checkpointing.storage_error(error)


def storage_message(action, error, then=""):
    """One line for a storage error: ``cannot ACTION: No space left on device; THEN``."""
    # lazy: keeps TensorFlow out of every program's --help
    from tfcolor.train import checkpointing  # pylint: disable=import-outside-toplevel
    line = f"cannot {action}: {checkpointing.storage_reason(error)}"
    return f"{line}; {then}" if then else line


def writable_folder(path, option):
    """Creates the folder ``path`` (the program's option ``option``) if needed and checks that a
    file can be written in it; a disk error ends the program with one line, before any work."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        die(storage_message(f"write to --{option}={path}", e))


_NOISY_LOGGERS = ("tensorflow", "absl", "keras", "h5py")


def _forget_tracebacks(error):
    """Drops the frames that ``error`` and its causes keep alive (the objects of a failed load)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


@contextlib.contextmanager
def quiet_failure():
    """Runs a model load whose failure is reported as one line: if it raises, what the attempt
    built (a half-restored checkpoint, a partly loaded SavedModel) is released at once with
    TensorFlow's and Keras' Python logging silenced, so that their dozens of warnings about
    unrestored values do not follow (or bury) the error; the logging levels are restored after.
    A load that succeeds is not affected."""
    try:
        yield
    except BaseException as error:
        loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            _forget_tracebacks(error)
            gc.collect()
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
        raise


def model_error(path, error):
    """One line saying why the model at ``path`` (a model_dir or a SavedModel) cannot be used."""
    lines = str(error).strip().splitlines()
    if isinstance(error, FileNotFoundError) and lines and str(path) in lines[0]:
        return lines[0]  # tfcolor's own message (config.json / checkpoint missing)
    return f"cannot load the model at {path} (damaged or incomplete?): {one_line(error)}"


def skip_summary(skipped):
    """``skipped 3 input(s) (corrupt 2, too_large 1)`` from ``[(path, "reason: detail"), ...]``."""
    if not skipped:
        return "skipped 0 inputs"
    counts = {}
    for _, message in skipped:
        reason = str(message).split(":", 1)[0]
        counts[reason] = counts.get(reason, 0) + 1
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    return f"skipped {len(skipped)} input(s) ({detail}; one 'skipped PATH: reason' line each above)"
