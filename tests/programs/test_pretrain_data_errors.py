"""binaries/pretrain with --data that holds no usable image: a one-line error naming --data.

(The program's other tests are in test_pretrain.py; these cover the data-layer failures that
surface only once the input pipeline is built or read.)
"""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.path.join(ROOT, "binaries", "pretrain")


@pytest.mark.slow  # several program runs (about 25-40 s); the pipeline's no-decodable-image error
# is in tests/data
def test_folders_without_a_usable_image_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    for i in range(3):
        (tmp_path / "bad" / f"{i}.jpg").write_text(f"<html>{i}</html>")
    # (folder, extra flags, the error): with the quick start's --prior_bias the marginal prior
    # reads the data first; without it, the training pipeline finds the bad records.
    cases = {"empty": ("empty", [], "--data='.*empty': no image file .* found under"),
             "bad, prior": ("bad", [], "--data='.*bad': no decodable image in .*: cannot compute "
                                       "a marginal prior"),
             "bad, pipeline": ("bad", ["--noprior_bias"],
                               "--data='.*bad': no decodable image: 6 bad records in a row")}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {name: subprocess.Popen(
        [SHIM, "--flagfile=" + os.path.join(ROOT, "configs", "quickstart.flags"),
         f"--data={tmp_path / folder}", f"--model_dir={tmp_path / ('run_' + str(i))}",
         "--train_steps=4", "--steps_per_loop=1", "--lr_drops=2", "--batch_size=2"] + extra,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, (name, (folder, extra, _)) in enumerate(cases.items())}
    import re  # pylint: disable=import-outside-toplevel
    for name, proc in procs.items():
        try:
            _, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:  # e.g. an exit that hangs on a failed tf.data iterator
            proc.kill()
            _, stderr = proc.communicate()
            raise AssertionError(f"{name}: the program did not exit within 240 s; stderr:\n"
                                 f"{stderr[-2000:]}") from None
        assert proc.returncode == 2, (name, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1 and re.search(cases[name][2], errors[0]), (name, stderr[-2000:])
        assert "Traceback" not in stderr, (name, stderr[-2000:])
