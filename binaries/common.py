"""The absl side of the programs: flag files, ``--help``, flags -> options and configs, errors.

Each program is ``binaries/NAME.py`` here (installed as the module ``tfcolor_binaries.NAME``, the
console script ``tfcolor-NAME``) with ``define_flags(fv)``, ``config_from_flags(fv)`` (or
``options_from_flags``), ``main(argv)`` and ``run()``, over the flag-free program
``tfcolor.programs.NAME``, which does the work. Only this folder reads flags.

Flags are named exactly as the config fields they set (:func:`config_from_flags` copies them,
through ``tfcolor.programs.common.config_from_values``), so a ``ConfigError`` from the library
names its flag (:func:`flag_error`). A program's ``tfcolor.programs.common.ProgramError`` ends in
one line on stderr, ``NAME: error: MESSAGE``, and its exit status (:func:`report_error`).
"""
import logging as std_logging
import os
import re
import sys
import types
import weakref

from absl import app
from absl import flags

from tfcolor.programs import common as program_common


def _checkout_root():
    """The source checkout these entry points run from (it holds ``setup.py`` and ``configs/``),
    or None when they are installed into site-packages (``tfcolor_binaries``)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
# FlagValues -> {alias: flag}, see define_deprecated_alias.
_ALIASES = weakref.WeakKeyDictionary()


def flag_section(fv, title):
    """Lists the flags defined on ``fv`` from now on under ``title`` in ``--help``.

    ``title=None`` goes back to the program's own, first group. Sections only group the help:
    they change nothing in parsing.
    """
    _SECTIONS.setdefault(fv, []).append((len(defined_flags(fv)), title))


def define_deprecated_alias(fv, alias, name):
    """Accepts ``--alias`` for the flag ``--name`` (an earlier spelling). Aliases are not
    flags of their own: :func:`defined_flags` leaves them out and ``--help`` lists them in one
    closing paragraph."""
    flags.DEFINE_alias(alias, name, flag_values=fv)
    _ALIASES.setdefault(fv, {})[alias] = name


def defined_flags(fv):
    """The long names of the flags of ``fv`` in the order they were defined (not aliases)."""
    aliases = _ALIASES.get(fv, {})
    return [name for name in fv if fv[name].name == name and name not in aliases]


def own_flag_names(define_flags):
    """The flags a program's ``define_flags`` defines, in definition order (not absl's own)."""
    fresh = flags.FlagValues()
    before = set(fresh)
    define_flags(fresh)
    return [name for name in defined_flags(fresh) if name not in before]


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
    names = defined_flags(own)
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
    aliases = _ALIASES.get(own, {})
    if aliases:
        examples = [f"--{alias} for --{name}" for alias, name in list(aliases.items())[:2]]
        lines += ["", flags.text_wrap(
                f"Deprecated spellings, still accepted: {len(aliases)} flags also take the form "
                f"of earlier releases ({', '.join(examples)}, ...).", indent="",
                firstline_indent="")]
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


def program_name(argv0=None):
    """The program's name in error lines: ``tfcolor-export``, ``export`` (``binaries/export``,
    ``python binaries/export.py``, ``python -m binaries.export``) or ``tfcolor``."""
    argv0 = sys.argv[0] if argv0 is None and sys.argv else argv0
    program = os.path.basename(argv0) if argv0 else "tfcolor"
    if program in ("__main__.py", "-m", "-c"):
        program = "tfcolor"
    elif program.endswith(".py"):
        program = program[:-len(".py")]
    return program


def die(message, status=2, *, hard=False):
    """Prints ``program: error: message`` to stderr and exits with ``status``.

    ``hard=True`` flushes the logs and output and ends the process with ``os._exit``, without
    the interpreter's finalization (see ``tfcolor.programs.common.ProgramError``).
    """
    sys.stderr.write(f"{program_name()}: error: {message}\n")
    if hard:
        for handler in std_logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # pylint: disable=protected-access
    sys.exit(status)


def report_error(error):
    """Ends the process for a program's ``ProgramError`` (:func:`die`)."""
    die(error.message, error.status, hard=error.hard)


def _reporting_errors(main):
    def wrapped(argv):
        try:
            return main(argv)
        except program_common.ProgramError as e:
            report_error(e)
    return wrapped


def run_program(define_flags, main, doc):
    """A program's entry point: its console script ``tfcolor-NAME``, ``python -m
    binaries.NAME``, ``python binaries/NAME.py`` and the checkout's ``binaries/NAME``.

    Makes relative ``--flagfile`` paths work from any directory of a checkout, defines the
    program's flags and runs ``main`` under ``absl.app``; a ``ProgramError`` ends in one line
    (:func:`report_error`). ``--help`` (``-h``, ``-?``, ``--helpshort``) prints ``doc`` (the
    program's docstring) and all its flags (:func:`program_help`) and exits 0; ``--helpfull``
    adds every other flag of the process and exits 0.
    """
    sys.argv = resolve_flagfiles(sys.argv)
    define_flags()
    wanted = _help_requested(sys.argv)
    if wanted:
        text = program_help(define_flags, doc, _console_script(sys.argv[0]))
        if wanted == "full":
            text += "\nAll flags of the process:\n\n" + flags.FLAGS.get_help() + "\n"
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `tfcolor-pretrain --help | head`: no error at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    app.run(_reporting_errors(main))


def flag_values(fv, names):
    """``{name: value}`` of the flags ``names`` of the parsed ``fv``."""
    return {name: fv[name].value for name in names if name in fv}


def flag_defaults(fv, names):
    """``{name: default}`` of the flags ``names`` of ``fv`` (their "unset" values)."""
    return {name: fv[name].default for name in names if name in fv}


def given_flags(fv, names):
    """The flags among ``names`` that were given on the command line or in a flag file."""
    return frozenset(name for name in names if name in fv and fv[name].present)


def options_from_flags(fv, define_flags):
    """The program's options: a ``types.SimpleNamespace`` holding the value of every flag its
    ``define_flags`` defines, by name, in definition order."""
    return types.SimpleNamespace(**flag_values(fv, own_flag_names(define_flags)))


def config_from_flags(cls, fv, *, flag_names=None, parsers=None):
    """An instance of the dataclass ``cls`` whose fields are read from the flags named like them
    (``tfcolor.programs.common.config_from_values``; a field whose default is ``None`` is
    ``None`` while its flag holds the flag's default)."""
    names = flag_names_of(fv)
    return program_common.config_from_values(cls, flag_values(fv, names),
                                             flag_defaults(fv, names), flag_names=flag_names,
                                             parsers=parsers)


def flag_names_of(fv):
    """Every flag name of ``fv`` (a set)."""
    return set(fv)


def flag_error(error, fv, flag_names=None):
    """The message of a library error with its field called by its flag (defined on ``fv``):
    ``--batch_size must be a positive integer, got 0``; other errors are unchanged."""
    return program_common.option_error(error, set(fv), flag_names)
