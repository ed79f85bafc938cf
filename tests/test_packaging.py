"""setup.py's version ranges, the Bazel lock file and the BUILD file agree with each other.

requirements_lock.txt is what Bazel installs (MODULE.bazel -> rules_python ``pip.parse``); pip
users install from setup.py's ranges. These tests keep the two from drifting apart: every pin
satisfies the range setup.py states, the lock is closed under dependencies (rules_python installs
each wheel on its own, so a missing transitive dependency only shows up as an ImportError inside
Bazel) and it names every distribution that a ``requirement(...)`` in BUILD asks for. setup.py
installs the ``tfcolor`` package and the programs' entry points (``binaries/`` as
``tfcolor_binaries``), with one console script per program.
"""
import ast
import importlib
import importlib.metadata
import pathlib
import re
import sys

import pytest
import setuptools
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_kwargs():
    """The keyword arguments setup.py passes to ``setup()`` (run with ``setup`` replaced)."""
    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        source = (ROOT / "setup.py").read_text()
        namespace = {"__file__": str(ROOT / "setup.py"), "__name__": "setup"}
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("TFCOLOR_TF_PACKAGE", raising=False)   # the default: tensorflow-cpu
            exec(compile(source, "setup.py", "exec"), namespace)
    finally:
        setuptools.setup = original
    return captured


def _lock():
    """``{canonical name: Version}`` from requirements_lock.txt; every entry an exact pin."""
    pins = {}
    for line in (ROOT / "requirements_lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("--"):   # comments and pip options (an extra index)
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==" and "*" not in spec.version, f"not an exact pin: {line!r}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Version(spec.version)
    return pins


def _direct_requirements(kwargs):
    reqs = [Requirement(r) for r in kwargs["install_requires"]]
    for items in kwargs["extras_require"].values():
        reqs += [Requirement(r) for r in items]
    return reqs


def test_module_bazel_installs_the_lock_for_the_python_it_was_resolved_for():
    module = (ROOT / "MODULE.bazel").read_text()
    assert re.search(r'requirements_lock\s*=\s*"//:requirements_lock.txt"', module)
    versions = set(re.findall(r'python_version\s*=\s*"([0-9.]+)"', module))
    header = (ROOT / "requirements_lock.txt").read_text()
    assert len(versions) == 1 and f"Python {versions.pop()} on Linux" in header


def test_lock_pins_satisfy_setup_py_ranges(setup_kwargs):
    pins = _lock()
    problems = []
    for req in _direct_requirements(setup_kwargs):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req}: not in requirements_lock.txt")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req}: the lock pins {pins[name]}")
    assert not problems, problems


def test_every_direct_requirement_has_a_lower_and_an_upper_bound(setup_kwargs):
    # An open range lets a fresh install pick up a release nobody has run the tests against.
    # packaging is exempt: only tests/test_packaging.py uses it, through its stable core API.
    loose = []
    for req in _direct_requirements(setup_kwargs):
        ops = {s.operator for s in req.specifier}
        bounded = "==" in ops or (ops & {">=", ">", "~="} and ops & {"<", "<=", "~="})
        if not bounded and canonicalize_name(req.name) != "packaging":
            loose.append(str(req))
    assert not loose, loose


def test_setup_py_pins_the_tensorflow_and_keras_releases(setup_kwargs):
    by_name = {canonicalize_name(Requirement(r).name): Requirement(r).specifier
               for r in setup_kwargs["install_requires"]}
    assert "tensorflow-cpu" in by_name                     # the default build
    for name, ok, bad in [("tensorflow-cpu", "2.21.3", "2.22.0"), ("keras", "3.15.9", "3.16.0"),
                          ("tensorboard", "2.21.1", "2.22.0")]:
        assert by_name[name].contains(ok) and not by_name[name].contains(bad), name
        assert not by_name[name].contains("2.20.0" if name != "keras" else "3.14.0"), name


def test_lock_is_closed_under_dependencies():
    # For each pinned distribution installed here at the pinned version, every dependency it
    # declares for this interpreter (extras excluded) is pinned too.
    pins = _lock()
    environment = dict(default_environment(), extra="")
    missing, checked = [], 0
    for name, version in pins.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        checked += 1
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(environment):
                if canonicalize_name(req.name) not in pins:
                    missing.append(f"{name} {version} needs {req}")
    if checked == 0:
        pytest.skip("no distribution is installed at its locked version here")
    assert not missing, missing


def test_lock_covers_every_requirement_in_build():
    wanted = set(re.findall(r'requirement\("([^"]+)"\)', (ROOT / "BUILD").read_text()))
    assert wanted, "BUILD names no third-party requirement: the pattern is stale"
    pins = _lock()
    assert not {n for n in wanted if canonicalize_name(n) not in pins}



def test_the_library_and_the_entry_points_are_installed(setup_kwargs):
    # The programs' code lives in tfcolor.programs; binaries/ (their absl entry points) is
    # installed as tfcolor_binaries, the package of the console scripts.
    packages = setup_kwargs["packages"]
    assert "tfcolor" in packages and "tfcolor.programs" in packages
    assert {p.split(".")[0] for p in packages} == {"tfcolor", "tfcolor_binaries"}, packages
    assert setup_kwargs["package_dir"] == {"tfcolor_binaries": "binaries"}
    assert (ROOT / "binaries" / "__init__.py").is_file()


def test_every_console_script_runs_a_program(setup_kwargs):
    scripts = dict(s.split("=", 1) for s in setup_kwargs["entry_points"]["console_scripts"])
    programs = sorted(p.stem for p in (ROOT / "tfcolor" / "programs").glob("*.py")
                      if p.stem not in ("__init__", "common"))
    assert sorted(scripts) == sorted("tfcolor-" + p.replace("_", "-") for p in programs)
    assert sorted(p.stem for p in (ROOT / "binaries").glob("*.py")
                  if p.stem not in ("__init__", "common")) == programs
    sys.path.insert(0, str(ROOT))   # binaries/ is a package at the checkout's root
    for script, target in scripts.items():
        module, function = target.split(":")
        name = script[len("tfcolor-"):].replace("-", "_")
        assert function == "run" and module == "tfcolor_binaries." + name, (script, target)
        # tfcolor_binaries.NAME is binaries/NAME.py (importable as binaries.NAME in a checkout)
        assert callable(getattr(importlib.import_module("binaries." + name), function)), target


def _absl_imports(path):
    """``absl.flags`` / ``absl.app`` imports of a Python file (``absl.logging`` is allowed)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(("absl.flags", "absl.app"))]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith(("absl.flags", "absl.app")):
                found.append(node.module)
            elif node.module == "absl":
                found += [f"absl.{a.name}" for a in node.names if a.name in ("flags", "app")]
    return found


def test_the_library_never_imports_absl_flags_or_app():
    # tfcolor/ never reads flags: binaries/ parse them into configs and call the library.
    offenders = {str(p.relative_to(ROOT)): _absl_imports(p)
                 for p in sorted((ROOT / "tfcolor").rglob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}
    assert _absl_imports(ROOT / "binaries" / "common.py")   # the check sees such imports


#: The reasons a function-level import gives on its line or the line above: the import cycle it
#: breaks, the optional package it needs, or the measurably quicker path it keeps light.
IMPORT_REASONS = ("# cycle: ", "# optional: ", "# lazy: ")


def _unexplained_local_imports(text, name):
    """``"name:line: statement"`` for every import inside a function of the source ``text`` whose
    line and the line above carry none of :data:`IMPORT_REASONS`."""
    lines = text.splitlines()
    found = set()
    for function in ast.walk(ast.parse(text, filename=name)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                near = lines[max(node.lineno - 2, 0):node.lineno]
                if not any(reason in line for line in near for reason in IMPORT_REASONS):
                    found.add((node.lineno, lines[node.lineno - 1].strip()))
    return [f"{name}:{line}: {statement}" for line, statement in sorted(found)]


def test_every_function_level_import_says_why():
    # House rule: imports at the top of modules, unless one inside a function says why:
    # "# cycle: this <- other (how)", "# optional: package (extra)" or "# lazy: what it keeps fast".
    sample = ("def f():\n    import os\n\n\ndef g():\n    # optional: cv2 (the 'video' extra)\n"
              "    import cv2\n\n\nclass C:\n    def h(self):\n        from json import dumps\n")
    assert _unexplained_local_imports(sample, "sample") == [  # the check sees them
            "sample:2: import os", "sample:12: from json import dumps"]
    paths = sorted((ROOT / "tfcolor").rglob("*.py")) + sorted((ROOT / "binaries").glob("*.py"))
    assert ROOT / "tfcolor" / "run_dir.py" in paths and ROOT / "binaries" / "common.py" in paths
    offenders = [found for path in paths
                 for found in _unexplained_local_imports(path.read_text(),
                                                         path.relative_to(ROOT).as_posix())]
    assert not offenders, (
            "imports inside functions without a reason ('# cycle: ', '# optional: ' or "
            "'# lazy: ' on the line or the line above); move them to the module's top:\n"
            + "\n".join(offenders))
