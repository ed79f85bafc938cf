"""The code in README.md and docs/*.md runs as written (the convention: docs/testing.md).

Python blocks run one by one (each in a fresh namespace) in a temporary working directory that
holds the checkout's ``tfcolor/``, ``configs/`` and ``binaries/`` and a small trained run at the
pages' own paths: ``runs/quickstart`` with its export ``runs/quickstart/export`` and a copy at
``exports/quickstart/1``. Bash blocks of the docs/ pages run there too; README's bash blocks are
a new user's walk, run in order by ``tests/test_readme_walk.py``. Blocks marked slow run under
``-m slow``, in page order (so a page's commands may build on each other).
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docs_blocks  # noqa: E402

ROOT = docs_blocks.ROOT
BLOCKS = docs_blocks.all_blocks()
LINKED = ("tfcolor", "configs", "binaries", "results", "tools", "benchmarks")


def _params(selected):
    return [pytest.param(b, id=b.id) for b in selected]


def _make_run(work):
    """runs/quickstart: a vgg_tiny colorizer's config.json and checkpoint (untrained), its export
    in runs/quickstart/export and a copy in exports/quickstart/1 (what the README's commands
    write, at the README's paths)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfcolor import config, export, run_dir  # pylint: disable=import-outside-toplevel
    from tfcolor.models import build_colorizer  # pylint: disable=import-outside-toplevel
    model_dir = work / "runs" / "quickstart"
    cfg = config.PretrainConfig()
    cfg.data.data = "embedded"
    cfg.data.crop_size, cfg.data.points, cfg.data.batch_size = 64, 16, 4
    cfg.model.arch, cfg.model.hidden, cfg.model.sync_batch_norm = "vgg_tiny", 8, False
    cfg.model.taps = ["data", "conv1_1", "conv2_2", "conv3_3", "fc7"]
    cfg.train.model_dir = "runs/quickstart"
    tf.keras.utils.set_random_seed(0)
    model = build_colorizer(cfg)
    run_dir.write_config(str(model_dir), cfg)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(model_dir), 2).save()
    export.export_from_checkpoint(str(model_dir), str(model_dir / "export"))
    shutil.copytree(model_dir / "export", work / "exports" / "quickstart" / "1")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("docs")
    for name in LINKED:
        os.symlink(ROOT / name, work / name)
    _make_run(work)
    return work


def _exec_python(block, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    namespace = {"__name__": "__docs__"}
    exec(compile(block.code, block.id, "exec"), namespace)  # pylint: disable=exec-used


def _run_bash(block, cwd, timeout):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(["bash", "-c", docs_blocks.shell_script(block.code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{block.id} exited {proc.returncode}:\n{block.code}\n"
                                  f"--- stderr (tail) ---\n{proc.stderr[-3000:]}")


# -- the convention holds ----------------------------------------------------------------------

def test_every_block_is_code_or_text_and_every_mark_is_known():
    bad = [f"{b.id}: language {b.lang!r}" for b in BLOCKS if b.lang not in
           ("python", "bash", "text")]
    bad += [f"{b.id}: mark {b.mark!r}" for b in BLOCKS
            if b.mark and b.mark != "slow" and not re.fullmatch(r"skip \(.+\)", b.mark)]
    bad += [f"{b.id}: a text block needs no mark" for b in BLOCKS if b.lang == "text" and b.mark]
    assert not bad, "blocks outside the docs-test convention (docs/testing.md):\n" + "\n".join(bad)


def test_the_pages_have_code_blocks_to_run():
    """The extraction finds what the pages hold (a regex that found nothing would pass all)."""
    readme = [b for b in BLOCKS if b.page == "README.md" and b.is_code]
    assert sum(b.lang == "python" for b in readme) >= 2
    assert any("binaries/pretrain --flagfile=configs/quickstart.flags" in b.code for b in readme)
    assert sum(b.lang == "python" and not b.skipped for b in BLOCKS) >= 6


def test_readme_test_command_is_ci_word_for_word():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line.strip() for line in ci.split("\n")
                   if line.startswith("pip install") and "pytest" in line)
    readme = [b.code.strip() for b in BLOCKS if b.page == "README.md" and b.lang == "bash"]
    assert command in readme, (command, readme)
    assert readme[0].startswith("pip install -e . && "), "the first README command installs"


def test_relative_links_resolve():
    broken = []
    for page in docs_blocks.PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)   # links are not in code
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text):
            if not (ROOT / page).parent.joinpath(target).exists():
                broken.append(f"{page}: {target}")
    assert not broken, broken


def test_library_map_names_exist():
    """Every class named in a library-map row of a tfcolor module is an attribute of it."""
    import importlib  # pylint: disable=import-outside-toplevel
    text = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    missing, checked = [], 0
    for module, concept in re.findall(r"^\| `(tfcolor(?:\.\w+)*)` \| (.*) \|$", text, re.M):
        mod = importlib.import_module(module)
        for name in re.findall(r"`([A-Z]\w+)`", concept):
            checked += 1
            if not hasattr(mod, name):
                missing.append(f"{module}.{name}")
    assert checked >= 10 and not missing, missing


# -- the blocks run ------------------------------------------------------------------------------

@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.lang == "python" and not b.mark))
def test_python_block_runs(block, workdir, monkeypatch):
    _exec_python(block, workdir, monkeypatch)


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.lang == "bash" and not b.mark
                                          and b.page != "README.md"))
def test_bash_block_runs(block, workdir):
    _run_bash(block, workdir, timeout=300)


_SLOW_PAGES = sorted({b.page for b in BLOCKS if b.slow and b.page != "README.md"})


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("page", _SLOW_PAGES)
def test_slow_blocks_run_in_page_order(page, workdir, monkeypatch):
    """A page's slow blocks (training, several programs, the corpus) in order; the corpus goes to
    its documented place, ~/.cache/tfcolor-corpus (rebuilt only when missing: reruns are
    offline)."""
    for block in (b for b in BLOCKS if b.page == page and b.slow):
        if block.lang == "python":
            _exec_python(block, workdir, monkeypatch)
        else:
            _run_bash(block, workdir, timeout=3000)


def test_shell_script_leaves_pip_install_out():
    script = docs_blocks.shell_script("pip install -e . && binaries/pretrain --x=1\n"
                                      "pip install -e \".[test]\"   # comment\n"
                                      "binaries/finetune --a=1 \\\n    --b=2\n")
    assert script.split("\n")[1:] == ["binaries/pretrain --x=1", "binaries/finetune --a=1      --b=2",
                                      ""]


def test_blocks_reads_marks_languages_and_indented_fences(tmp_path, monkeypatch):
    page = tmp_path / "p.md"
    page.write_text("text\n\n<!-- docs-test: skip (needs ImageNet) -->\n```bash\nls /data\n```\n\n"
                    "* item\n  ```text\n  out\n  ```\n\n```python\nx = 1\n```\n", encoding="utf-8")
    monkeypatch.setattr(docs_blocks, "ROOT", tmp_path)
    got = [(b.line, b.lang, b.code, b.mark) for b in docs_blocks.blocks("p.md")]
    assert got == [(4, "bash", "ls /data", "skip (needs ImageNet)"), (9, "text", "out", ""),
                   (13, "python", "x = 1", "")]


def test_workdir_paths_are_the_pages_paths(workdir):
    assert (workdir / "runs" / "quickstart" / "config.json").is_file()
    assert (workdir / "exports" / "quickstart" / "1" / "saved_model.pb").is_file()
    assert pathlib.Path(workdir / "tfcolor" / "assets" / "photos" / "gcompris_cat.jpg").is_file()
