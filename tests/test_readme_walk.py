"""A new user's first hour: every command and snippet of README.md, in order, from a fresh copy.

The checkout's files (``git ls-files``, as they are in the working tree) are copied to a temporary
directory, and every bash and Python block of README.md that is not marked
``<!-- docs-test: skip (...) -->`` runs there in the README's order, on the README's own relative
paths (``runs/quickstart``, ``exports/quickstart/1``, ...): bash blocks as ``bash -c`` scripts,
Python blocks as ``python -c`` in a fresh process. Each must exit 0. ``pip install`` parts are
left out (the tests run in an installed environment: docs/testing.md); the copy's own code runs,
since the ``binaries/`` entry points put their checkout first on the path and the Python blocks
get it on ``PYTHONPATH``. The corpus goes where the README says, ``~/.cache/tfcolor-corpus``
(built once; reruns are offline).

Slow: the quick start, colorize, evaluate, the corpus, fine-tuning and export take about half an
hour on 2 cores (more the first time the corpus is built).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docs_blocks  # noqa: E402

ROOT = docs_blocks.ROOT
# What the README says its commands write (checked after the walk, where each is named).
WRITTEN = ["runs/quickstart/config.json", "runs/quickstart/colorizations.png",
           "runs/quickstart/heldout.jsonl", "runs/quickstart/export/saved_model.pb",
           "colorized/gcompris_cat.png", "colorized_shipped/gcompris_cat.png",
           "dog_colorized.png", "eval/metrics.json", "eval/cumulative_error.png",
           "runs/ft_fmnist100/results.json", "exports/quickstart/1/saved_model.pb"]


def _copy_checkout(dest):
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
                           ).stdout.decode().split("\0")
    copied = 0
    for name in filter(None, files):
        src = ROOT / name
        if not src.is_file():   # deleted in the working tree
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
        copied += 1
    return copied


def walk_steps():
    """The README's runnable blocks, in order: ``(block, argv)``."""
    steps = []
    for block in docs_blocks.blocks("README.md"):
        if not block.is_code or block.skipped:
            continue
        if block.lang == "python":
            steps.append((block, [sys.executable, "-c", block.code]))
        else:
            steps.append((block, ["bash", "-c", docs_blocks.shell_script(block.code)]))
    return steps


def test_walk_has_the_readme_path():
    """The walk covers the README's path (guards the extraction, runs in the default suite)."""
    codes = [b.code for b, _ in walk_steps()]
    for command in ("binaries/pretrain --flagfile=configs/quickstart.flags", "binaries/colorize",
                    "binaries/evaluate", "binaries/finetune", "binaries/export"):
        assert any(command in c for c in codes), command
    first = docs_blocks.shell_script(codes[0])
    assert "pip install" not in first and "binaries/pretrain" in first


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_readme_walk(tmp_path):
    copy = tmp_path / "tfcolor"
    assert _copy_checkout(copy) > 100
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(copy) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    failures, log = [], []
    for block, argv in walk_steps():
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=3 * 3600)
        log.append(f"{block.id}: exit {proc.returncode} in {time.monotonic() - start:.0f} s")
        if proc.returncode != 0:
            failures.append(f"{block.id} exited {proc.returncode}:\n{block.code}\n"
                            f"--- stderr (tail) ---\n{proc.stderr[-2500:]}")
    print("\n".join(log))
    assert not failures, "\n\n".join(failures)
    missing = [path for path in WRITTEN if not (copy / path).is_file()]
    assert not missing, f"the README says its commands write {missing}"


def test_what_the_walk_checks_is_named_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in WRITTEN:
        folder, _, name = path.rpartition("/")
        assert (folder or name) in readme, path
