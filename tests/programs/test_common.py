"""Tests of the programs' entry points (``binaries/common.py``): every program explains itself
with --help.

The expected flags come from each entry point's own ``define_flags`` (``binaries/NAME.py``) on a
fresh ``FlagValues``, so a flag added to a program without showing up in its help fails here.
The programs run as subprocesses (``--help`` exits the process) through every way of starting
them: the checkout's ``binaries/NAME``, ``python binaries/NAME.py``, ``python -m binaries.NAME``
and the installed console script ``tfcolor-NAME`` next to this interpreter.
"""
import importlib
import os
import pkgutil
import re
import subprocess
import sys

import pytest
from absl import flags

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
import binaries
import tfcolor.programs
from binaries import common

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAMS = sorted(m.name for m in pkgutil.iter_modules(binaries.__path__) if m.name != "common")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
FLAG_LINE = re.compile(r"^  (?:-\S+,)?--(?:\[no\])?([\w-]+):", re.M)


def _own_flags(name):
    return set(common.own_flag_names(importlib.import_module(f"binaries.{name}").define_flags))


def _run(cmd, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=cwd)


def _console_script(name):
    script = "tfcolor-" + name.replace("_", "-")
    path = os.path.join(os.path.dirname(sys.executable), script)
    if not os.path.isfile(path):
        pytest.skip(f"{script} is not installed next to {sys.executable} "
                    "(pip install -e . installs it)")
    return path


def test_every_program_has_an_entry_point_of_each_kind():
    assert {"pretrain", "export", "colorize", "evaluate", "finetune", "reproduce",
            "build_corpus"} <= set(PROGRAMS)
    assert PROGRAMS == sorted(m.name for m in pkgutil.iter_modules(tfcolor.programs.__path__)
                              if m.name != "common")
    for name in PROGRAMS:
        module = importlib.import_module(f"binaries.{name}")
        assert callable(module.run) and callable(module.define_flags), name
        assert callable(importlib.import_module(f"tfcolor.programs.{name}").main), name
        assert os.access(os.path.join(ROOT, "binaries", name), os.X_OK), name
        assert os.path.isfile(os.path.join(ROOT, "binaries", f"{name}.py")), name


@pytest.mark.parametrize("name", PROGRAMS)
def test_help_text_lists_every_flag_of_the_program_once(name):
    entry = importlib.import_module(f"binaries.{name}")
    doc = importlib.import_module(f"tfcolor.programs.{name}").__doc__
    text = common.program_help(entry.define_flags, doc)
    listed = FLAG_LINE.findall(text)
    assert sorted(listed) == sorted(_own_flags(name))
    assert text.startswith(doc.strip("\n").splitlines()[0])


# finetune and reproduce import TensorFlow while defining their flags (about 10 s each): slow.
_SLOW_TO_START = ("finetune", "reproduce")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_TO_START
                                  else n for n in PROGRAMS])
def test_checkout_executable_help_exits_0_with_every_flag(name, tmp_path):
    proc = _run([os.path.join(ROOT, "binaries", name), "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(FLAG_LINE.findall(proc.stdout)) == _own_flags(name)
    assert "Try --helpfull" not in proc.stdout


@pytest.mark.parametrize("name", [n if n == "colorize" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in PROGRAMS])
def test_installed_console_script_help_exits_0_with_every_flag(name, tmp_path):
    proc = _run([_console_script(name), "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(FLAG_LINE.findall(proc.stdout)) == _own_flags(name)
    # The examples name the command the user typed, not the checkout's binaries/NAME.
    assert f"binaries/{name} " not in proc.stdout


@pytest.mark.parametrize("how", ["module", "script"])
def test_python_module_and_script_help(how, tmp_path):
    cmd = ([sys.executable, "-m", "binaries.export"] if how == "module" else
           [sys.executable, os.path.join(ROOT, "binaries", "export.py")])
    proc = _run(cmd + ["--help"], cwd=tmp_path if how == "script" else ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(FLAG_LINE.findall(proc.stdout)) == _own_flags("export")


@pytest.mark.parametrize("arg", ["-h", "-?", "--helpshort", "-help"])
def test_every_help_spelling_gives_the_same_help(arg):
    cmd = [os.path.join(ROOT, "binaries", "colorize")]
    proc = _run(cmd + [arg])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == _run(cmd + ["--help"]).stdout


def test_helpfull_exits_0_and_adds_absl_flags():
    proc = _run([os.path.join(ROOT, "binaries", "colorize"), "--helpfull"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = set(FLAG_LINE.findall(proc.stdout))
    assert _own_flags("colorize") <= listed
    assert {"flagfile", "undefok", "verbosity"} <= listed   # absl.flags' and absl.logging's


def test_help_after_double_dash_is_an_argument_not_a_request():
    proc = _run([os.path.join(ROOT, "binaries", "export"), "--", "--help"])
    assert proc.returncode != 0 and "Flags" not in proc.stdout


def test_sections_group_flags_in_definition_order():
    def define(fv):
        flags.DEFINE_string("zeta", "z", "First, own group.", flag_values=fv)
        common.flag_section(fv, "Model")
        flags.DEFINE_boolean("beta", True, "In Model.", flag_values=fv)
        flags.DEFINE_integer("alpha", 3, "In Model too.", lower_bound=1, flag_values=fv)
        common.flag_section(fv, None)
        flags.DEFINE_enum("gamma", "a", ["a", "b"], "Back in the own group.", flag_values=fv)
        return fv

    text = common.program_help(define, "Does things.\n\n    binaries/toy --zeta=x\n",
                               program="tfcolor-toy")
    assert text.startswith("Does things.\n\n    tfcolor-toy --zeta=x\n")
    options, model = text.index("\nOptions:\n"), text.index("\nModel:\n")
    positions = {n: text.index(f"--{n}:") if f"--{n}:" in text else text.index(f"--[no]{n}:")
                 for n in ("zeta", "beta", "alpha", "gamma")}
    assert options < positions["zeta"] < positions["gamma"] < model
    assert model < positions["beta"] < positions["alpha"]
    assert "(default: 'true')" in text and "(a positive integer)" in text
    assert "<a|b>: Back in the own group." in text
