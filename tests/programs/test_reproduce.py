"""Tests of the reproduce program: flags -> ReproduceConfig, clear errors, a tiny run."""
import json
import os
import subprocess
import sys

import pytest
from absl import flags

from tfcolor.reproduce import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# binaries/ (the entry points) is a package at the checkout's root.
sys.path.insert(0, _ROOT)
from binaries import common  # noqa: E402
from binaries import reproduce as program  # noqa: E402

SHIM = os.path.join(ROOT, "binaries", "reproduce")
TINY = ["--fake_data", "--arms=colorization", "--evaluate_arms=", "--pretrain_seeds=0",
        "--finetune_seeds=0", "--protocols=linear_probe", "--probe_learning_rates=0.1",
        "--hidden=16", "--crop_size=32", "--batch_size=4", "--points=8", "--pretrain_steps=4",
        "--eval_every=2", "--heldout_images=2", "--ft_batch_size=8", "--ft_eval_every=2",
        "--ft_max_steps=2"]


def _config(*argv):
    fv = flags.FlagValues()
    program.define_flags(fv)
    fv(["reproduce"] + list(argv))
    return program.config_from_flags(fv)


def test_flagfile_is_the_library_defaults_plus_the_baselines():
    config = _config(f"--flagfile={os.path.join(ROOT, 'configs', 'reproduce.flags')}",
                     "--output_dir=/tmp/unused").validate()
    default = config_lib.ReproduceConfig(corpus=config.corpus, output_dir="/tmp/unused")
    differ = {k for k, v in config.to_dict().items() if default.to_dict()[k] != v}
    assert differ == {"arms", "evaluate_arms"}
    assert config.arms == ("colorization", "no_lr_drop", "l2_regression", "denoising",
                           "split_brain")
    assert len(config.inits()) == 11 and config.pretrain_seeds == (0, 1)
    assert len(config.finetune_seeds) == 5


def test_lists_parse_into_typed_fields():
    config = _config("--output_dir=/o", "--pretrain_seeds=3,4", "--lr_drops=0.25",
                     "--probe_learning_rates=1,0.5", "--arms=colorization", "--evaluate_arms=")
    assert config.pretrain_seeds == (3, 4) and config.lr_drops == (0.25,)
    assert config.probe_learning_rates == (1.0, 0.5) and config.evaluate_arms == ()
    assert config.validate().arms == ("colorization",)


def _run(*argv, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([SHIM] + list(argv), env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_values_are_errors_naming_the_flag():
    import pytest
    from tfcolor.config import ConfigError
    with pytest.raises(ConfigError) as e:
        _config("--output_dir=/o", "--arms=colorization,nope").validate()
    fv = flags.FlagValues()
    program.define_flags(fv)
    assert common.flag_error(e.value, fv).startswith("--arms has unknown names ['nope']")
    with pytest.raises(ValueError, match="--pretrain_seeds must be a comma-separated list of "
                                         "integers, got '0,x'"):
        _config("--output_dir=/o", "--pretrain_seeds=0,x")


def test_missing_corpus_is_a_clear_usage_error(tmp_path):
    proc = _run(f"--output_dir={tmp_path}/a", f"--corpus={tmp_path}/none")
    assert proc.returncode == 2 and "--corpus:" in proc.stderr
    assert "tfcolor-build-corpus --out" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "a" / "pretrain")


@pytest.mark.slow
def test_tiny_run_writes_the_report_with_its_command(tmp_path):
    proc = _run(f"--output_dir={tmp_path}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["argv"][1:] == [f"--output_dir={tmp_path}"] + TINY
    assert set(results["downstream"]["linear_probe"]["chosen"]) == {"random",
                                                                     "colorization_s0"}
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("# tfcolor reproduction\n\nCommand: `")
    assert "| colorization - random | 1 |" in text and text in proc.stdout
    # Rerunning with another setting on the same output_dir is refused, naming the flag.
    proc = _run(f"--output_dir={tmp_path}", *TINY, "--pretrain_steps=5")
    assert proc.returncode == 2 and "(pretrain_steps: 4 -> 5)" in proc.stderr
    assert "Use a new output_dir" in proc.stderr
