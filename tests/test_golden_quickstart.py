"""Golden test: the quick-start recipe's deterministic trajectory, pinned.

Written before the task/trainer redesign (issue #13) and kept through it: a refactor of the
training loop, the configs or the model factory must reproduce the same loss trajectory and the
same final weights, bit for bit, on the same machine type. The recipe is
``configs/quickstart.flags`` (through the ``binaries/pretrain`` program, the public contract)
shortened to 50 steps with ``--deterministic``.

The reference values are in ``tests/golden/quickstart.json``. They depend on TensorFlow's CPU
kernels: regenerate them (``TFCOLOR_REGENERATE_GOLDEN=1 python -m pytest
tests/test_golden_quickstart.py``) only after a TensorFlow/Keras upgrade or a deliberate change
of the recipe, and say why in the commit.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "quickstart.json")
STEPS = 50


def _scalars(event_dir, tag):
    out = {}
    for name in sorted(os.listdir(event_dir)):
        for record in tf.data.TFRecordDataset(os.path.join(event_dir, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    out[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return out


def _weights_digest(model):
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("golden") / "quickstart")
    cmd = [sys.executable, "-m", "tfcolor.programs.pretrain",
           "--flagfile=" + os.path.join(ROOT, "configs", "quickstart.flags"),
           f"--model_dir={model_dir}", f"--train_steps={STEPS}", "--steps_per_loop=10",
           "--summary_every=10", f"--checkpoint_every={STEPS}", "--eval_every=25",
           "--image_every=0", "--deterministic", "--export=false"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from tfcolor.run_dir import load_model  # pylint: disable=import-outside-toplevel
    model, _ = load_model(model_dir)
    with open(os.path.join(model_dir, "heldout.jsonl")) as f:
        heldout = [json.loads(line) for line in f]
    return {
        "train_loss": {str(k): v for k, v in
                       sorted(_scalars(os.path.join(model_dir, "train"), "loss/loss").items())},
        "heldout_loss": {str(r["step"]): r["loss"] for r in heldout},
        "weights_sha256": _weights_digest(model),
        "num_weights": int(sum(w.size for w in model.get_weights())),
    }


def test_quickstart_trajectory_matches_golden(run):
    if os.environ.get("TFCOLOR_REGENERATE_GOLDEN"):
        with open(GOLDEN, "w") as f:
            json.dump(run, f, indent=2, sort_keys=True)
            f.write("\n")
        pytest.skip(f"regenerated {GOLDEN}")
    with open(GOLDEN) as f:
        golden = json.load(f)
    assert sorted(run["train_loss"], key=int) == sorted(golden["train_loss"], key=int)
    for step, loss in golden["train_loss"].items():
        assert run["train_loss"][step] == pytest.approx(loss, rel=1e-6), step
    assert run["heldout_loss"] == pytest.approx(golden["heldout_loss"], rel=1e-6)
    assert run["num_weights"] == golden["num_weights"]
    assert run["weights_sha256"] == golden["weights_sha256"]
