"""Helpers shared by the absl programs (``tfcolor.programs``): flag files, errors, list flags.

Each program is a module here with ``define_flags(fv)``, ``main(argv)`` and ``run()``, the
entry point of its console script (``tfcolor-NAME``), of ``python -m tfcolor.programs.NAME`` and
of the checkout's ``binaries/NAME``.

Programs only parse flags; the library (``tfcolor.config``) validates the values. Flags are named
exactly as the config fields they set (:func:`config_from_flags` copies them), so a
``ConfigError`` from the library, whose ``field`` attribute names the field, becomes a usage
error naming the flag (:func:`flag_error`: ``--batch_size must be a positive integer, got 0``)
and a non-zero exit status.
"""
import dataclasses
import os
import re
import sys
import weakref

from absl import app
from absl import flags


def _checkout_root():
    """The source checkout this package is imported from (it holds ``setup.py`` and
    ``configs/``), or None for a package installed into site-packages."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(
            os.path.join(root, "configs")):
        return root
    return None


ROOT = _checkout_root()


def resolve_flagfiles(argv):
    """Makes ``--flagfile=configs/x.flags`` work from any directory of a checkout.

    A relative flag-file path that does not exist from the current directory but does from the
    root of the source checkout (:data:`ROOT`) is rewritten to the latter. Without a checkout
    (an installed package) relative paths are relative to the current directory only. Other
    arguments are returned unchanged.
    """
    out = []
    for arg in argv:
        match = re.match(r"^(--?flagfile=)(.+)$", arg)
        if (match and ROOT and not os.path.isabs(match.group(2))
                and not os.path.exists(match.group(2))):
            candidate = os.path.join(ROOT, match.group(2))
            if os.path.exists(candidate):
                arg = match.group(1) + candidate
        out.append(arg)
    return out


#: ``--help``, ``-h``, ``-?`` and ``--helpshort``: the program's usage and all its flags.
HELP_ARGS = re.compile(r"^--?(help|h|\?|helpshort)$")
#: ``--helpfull``: the same plus every flag of the process (absl's logging flags, ...).
HELPFULL_ARGS = re.compile(r"^--?helpfull$")

# FlagValues -> [(number of flags defined before the section, title)], see flag_section.
_SECTIONS = weakref.WeakKeyDictionary()


def flag_section(fv, title):
    """Lists the flags defined on ``fv`` from now on under ``title`` in ``--help``.

    ``title=None`` goes back to the program's own, first group. Sections only group the help:
    they change nothing in parsing.
    """
    _SECTIONS.setdefault(fv, []).append((len(_flag_names(fv)), title))


def _flag_names(fv):
    """The long names of the flags of ``fv`` in the order they were defined."""
    return [name for name in fv if fv[name].name == name]


def _console_script(argv0):
    """``tfcolor-NAME`` when the program runs as its installed console script, else None."""
    base = os.path.basename(argv0 or "")
    return base if base.startswith("tfcolor-") else None


def _render_flag(flag):
    """One flag as absl's help shows it: ``--[no]name: help`` and ``(default: ...)``."""
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    text = flags.text_wrap(f"{name}: {flag.help or ''}".rstrip(), indent="    ",
                           firstline_indent="  ")
    for extra in (f"default: {flag.default_as_str}" if flag.default_as_str else "",
                  flag.parser.syntactic_help):
        if extra:
            text += "\n" + flags.text_wrap(f"({extra})", indent="    ")
    return text


def program_help(define_flags, doc, program=None):
    """The text of a program's ``--help``: its docstring and every flag its ``define_flags``
    defines, in the order and sections (:func:`flag_section`) of their definition.

    ``program``: the console script's name (``tfcolor-export``, ``tfcolor-build-corpus``), which
    then replaces the checkout's ``binaries/export`` (``binaries/build_corpus``) in the
    docstring's examples.
    """
    own = flags.FlagValues()
    define_flags(own)
    names = _flag_names(own)
    sections = sorted(_SECTIONS.get(own, []), key=lambda item: item[0])
    groups, order = {}, []
    for index, name in enumerate(names):
        title = None
        for start, section in sections:
            if start <= index:
                title = section
        if title not in groups:
            groups[title] = []
            order.append(title)
        groups[title].append(name)
    text = (doc or "").strip("\n")
    if program:
        short = program[len("tfcolor-"):].replace("-", "_")
        text = re.sub(rf"\bbinaries/{re.escape(short)}(?=\s)", program, text)
    lines = [text, "", flags.text_wrap(
            "Flags (--name=value; --flagfile=FILE reads flags from a file, one per line; "
            "--helpfull also lists absl's own flags):", indent="", firstline_indent="")]
    for title in order:
        lines += ["", f"{title or 'Options'}:"]
        lines += [_render_flag(own[name]) for name in groups[title]]
    return "\n".join(lines) + "\n"


def _help_requested(argv):
    """``"help"``, ``"full"`` or None for the arguments before a ``--``."""
    for arg in argv[1:]:
        if arg == "--":
            return None
        if HELP_ARGS.match(arg):
            return "help"
        if HELPFULL_ARGS.match(arg):
            return "full"
    return None


def run_program(define_flags, main):
    """A program's entry point: its console script ``tfcolor-NAME``, ``python -m
    tfcolor.programs.NAME`` and the checkout's ``binaries/NAME``.

    Makes relative ``--flagfile`` paths work from any directory of a checkout, defines the
    program's flags and runs ``main`` under ``absl.app``. ``--help`` (``-h``, ``-?``,
    ``--helpshort``) prints the program's docstring and all its flags (:func:`program_help`)
    and exits 0; ``--helpfull`` adds every other flag of the process and exits 0.
    """
    sys.argv = resolve_flagfiles(sys.argv)
    define_flags()
    wanted = _help_requested(sys.argv)
    if wanted:
        module = sys.modules.get(main.__module__)
        text = program_help(define_flags, getattr(module, "__doc__", ""),
                            _console_script(sys.argv[0]))
        if wanted == "full":
            text += "\nAll flags of the process:\n\n" + flags.FLAGS.get_help() + "\n"
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `tfcolor-pretrain --help | head`: no error at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    app.run(main)


def config_from_flags(cls, fv, *, flag_names=None, parsers=None, _prefix=""):
    """An instance of the dataclass ``cls`` whose fields are read from the flags named like them.

    Nested dataclass fields (``PretrainConfig.data``) are read the same way, their fields called
    ``section.field`` in ``flag_names`` and ``parsers``.

    Args:
        cls: a dataclass; a field without a flag of its name keeps its default.
        fv: parsed ``absl.flags.FlagValues``.
        flag_names: ``{"section.field": flag}`` for the fields whose flag is named otherwise
            (``{"loss.kind": "loss"}``).
        parsers: ``{"section.field": function}`` turning a flag's value into the field's
            (comma-separated lists, enums).

    A field whose default is ``None`` is ``None`` while its flag holds the flag's default (its
    "unset" value: ``""``, ``0`` or ``-1``), so ``--min_side=0`` is "use the default".
    """
    flag_names, parsers = flag_names or {}, parsers or {}
    values = {}
    for field in dataclasses.fields(cls):
        path = _prefix + field.name
        factory = field.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            values[field.name] = config_from_flags(factory, fv, flag_names=flag_names,
                                                   parsers=parsers, _prefix=path + ".")
            continue
        flag = flag_names.get(path, field.name)
        if flag not in fv:
            continue
        value = fv[flag].value
        if field.default is None and value == fv[flag].default:
            values[field.name] = None
        elif path in parsers:
            values[field.name] = parsers[path](value)
        else:
            values[field.name] = value
    return cls(**values)


def flag_of(field, fv, flag_names=None):
    """The flag that sets config ``field`` (``"data.points"`` -> ``"points"``), or None."""
    if not field:
        return None
    flag = (flag_names or {}).get(field, field.rsplit(".", 1)[-1])
    return flag if flag in fv else None


def flag_error(error, fv, flag_names=None):
    """The message of a library error with its field called by its flag: a
    ``tfcolor.config.ConfigError`` whose ``field`` is ``data.batch_size`` reads
    ``--batch_size must be a positive integer, got 0``; other errors are unchanged."""
    flag = flag_of(getattr(error, "field", None), fv, flag_names)
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
    """The ``--taps`` flag: "" or "all" -> None; "a,b-c" -> ["a", "b-c"]; one item -> str."""
    if value is None or value.strip() in ("", "all"):
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items[0] if len(items) == 1 else items


def quiet_tensorflow():
    """Hides TensorFlow's C++ INFO/WARNING lines unless the user asked for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def die(message, status=2, *, hard=False):
    """Prints ``program: error: message`` to stderr and exits with ``status``.

    ``hard=True`` (for errors raised once TensorFlow input pipelines are running) flushes the
    logs and output and ends the process with ``os._exit``, without the interpreter's
    finalization: destroying a ``tf.data`` iterator whose pipeline has just failed can wait
    forever for its in-flight parallel calls (seen with TF 2.21 after a "no decodable image"
    error), which would leave a finished run hanging instead of exiting. Everything a run must
    keep (checkpoints, the lock's release) is done before the error reaches the program.
    """
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tfcolor"
    if program in ("__main__.py", "-m", "-c"):
        program = "tfcolor"
    elif program.endswith(".py"):  # python -m tfcolor.programs.NAME, binaries/NAME: "NAME"
        program = program[:-len(".py")]
    sys.stderr.write(f"{program}: error: {message}\n")
    if hard:
        import logging as std_logging  # pylint: disable=import-outside-toplevel
        for handler in std_logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # pylint: disable=protected-access
    sys.exit(status)


def one_line(error):
    """``Type: first line of the message`` of an exception (TensorFlow's span many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")


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
