"""Imports the programs under ``binaries/`` by path, for the program tests.

``tests/binaries`` is a package, so pytest imports its test files as ``binaries.test_*`` and a
plain ``import binaries.pretrain`` would find this test package instead of the programs. The
programs are therefore loaded from their files and registered as ``binaries.<name>`` (with
``binaries.common``, which they import, loaded first).
"""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name):
    spec = importlib.util.spec_from_file_location(
            f"binaries.{name}", os.path.join(ROOT, "binaries", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"binaries.{name}"] = module
    spec.loader.exec_module(module)
    return module


def load_program(name):
    """Returns the freshly imported module of ``binaries/<name>.py``."""
    if "binaries.common" not in sys.modules:
        _load("common")
    return _load(name)
