"""The corpus builder's program and entry point (tfcolor.programs.build_corpus,
binaries/build_corpus): flags, one-line errors, an offline run; the library is tested in
tests/corpus."""
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "tests"))
from binaries import build_corpus as program  # noqa: E402
from tfcolor import corpus  # noqa: E402

import corpus_fixtures as fx  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
_CACHE = pathlib.Path(os.path.expanduser("~/.cache/tfcolor-corpus/cache/debs"))

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def test_out_inside_a_git_tree_is_refused():
    with pytest.raises(SystemExit):
        program.parse_args(["--out", str(ROOT / "corpus")])


def test_bad_fractions_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        program.parse_args(["--out", str(tmp_path), "--val_frac", "0.6", "--holdout_frac", "0.5"])


def test_flags_keep_their_names_and_defaults(tmp_path):
    args = program.parse_args(["--out", str(tmp_path), "--manifest_dir=m", "--no_existing_sets",
                               "--min_side", "100", "--max_flat=0.5"])
    assert (args.out, args.manifest_dir, args.existing_sets) == (str(tmp_path), "m", False)
    assert (args.min_side, args.max_flat, args.max_side) == (100, 0.5, 512)
    assert args.cache == os.path.join(str(tmp_path), "cache") and not args.no_download
    defaults = program.parse_args(["--out", str(tmp_path)])
    assert defaults.existing_sets and (defaults.val_frac, defaults.holdout_frac) == (0.1, 0.15)
    assert vars(defaults) == vars(corpus.settings_from_values(out=str(tmp_path)))


def test_dashed_spellings_are_deprecated_aliases(tmp_path):
    dashed = program.parse_args(["--out", str(tmp_path), "--manifest-dir=m", "--no-existing-sets",
                                 "--min-side", "100", "--max-flat=0.5", "--label-test-frac=0.5"])
    plain = program.parse_args(["--out", str(tmp_path), "--manifest_dir=m", "--no_existing_sets",
                                "--min_side", "100", "--max_flat=0.5", "--label_test_frac=0.5"])
    assert vars(dashed) == vars(plain)
    assert set(program.DASHED) == {n for n in program.common.own_flag_names(program.define_flags)
                                   if "_" in n}


def _program(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([str(ROOT / "binaries" / "build_corpus")] + list(argv), cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_program_runs_offline_and_writes_an_empty_corpus_without_packages(tmp_path):
    # No .deb in the cache and --no_download: every package is skipped, nothing is fetched.
    out = tmp_path / "out"
    proc = _program("--out", str(out), "--no_download", "--workers=1", "--no_existing_sets",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skip mate-backgrounds: no .deb in" in proc.stdout
    assert fx.read(out / "manifest.csv") == []
    assert not (out / "labeled").exists()   # --no-existing-sets and no labelled photo


def test_program_bad_value_is_a_one_line_error(tmp_path):
    proc = _program("--out", str(tmp_path / "out"), "--val_frac=0.6", "--holdout_frac=0.5",
                    cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "error: the split fractions leave no training data (--val_frac + --holdout_frac" in line


@pytest.mark.slow
@needs_dpkg
def test_real_build_from_cached_packages(tmp_path):
    """The real corpus from the default cache (``.deb`` files, unpacked trees, measurements):
    offline; about a minute when the default build has run once, several without it."""
    if not _CACHE.is_dir() or not any(_CACHE.glob("tuxpaint-stamps-default_*.deb")):
        pytest.skip(f"the Debian packages are not cached in {_CACHE}")
    args = program.parse_args(["--out", str(tmp_path / "out"), "--cache", str(_CACHE.parent),
                            "--no_download"])
    report = corpus.build(args, log=lambda *_: None)
    assert report["corpus_photos"] >= 150
    assert report["labelled_by_split"]["test"] >= 300
    assert report["labelled_by_split"]["val"] >= 50
    assert len(report["labelled_by_class"]) >= 5
    rows = fx.read(tmp_path / "out" / "manifest.csv")
    for r in rows[::20]:   # the manifest's sha256 is the one of the file inside the package
        with open(_CACHE.parent / "root" / r["package"] / r["path"].split("!")[0], "rb") as f:
            if "!" not in r["path"]:
                assert hashlib.sha256(f.read()).hexdigest() == r["sha256"]
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in groups.values())
