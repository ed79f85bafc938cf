"""Golden test: the quick-start recipe's first 50 steps stay where its recording put them.

The recipe is ``configs/quickstart.flags`` (through the pretraining program, the public contract)
shortened to 50 steps with ``--deterministic``. A refactor of the training loop, the losses, the
configs or the model factory must keep its loss trajectory; a change of the recipe must come with
a new recording. The recording, ``tests/golden/quickstart.json``, is written by one command::

    python tools/golden_quickstart.py

which runs the recipe with several seeds and stores, besides the recipe seed's trajectory, the
seed-to-seed spread, the machine and the package versions. CPU kernels differ between machines
(oneDNN or Eigen, AVX-512 or AVX2, thread count) and a 50-step run amplifies their rounding
differences, so no loss value is pinned: the rule (``tools/golden_quickstart.py``'s ``check``) is
that every recorded loss lies within ``k_std`` seed-to-seed standard deviations of the recorded
run, the parameter count is exact and both losses fall from step 10 to step 50. The recording
also holds the recipe seed run under this machine's other kernel paths (which must lie inside the
band) and runs with deliberate recipe regressions (which must lie outside it), so the tolerance
is shown to be neither too tight for another machine nor too loose to catch a changed recipe.
"""
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_TOOL = ROOT / "tools" / "golden_quickstart.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("golden_quickstart", _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def golden():
    return json.loads(tool.GOLDEN.read_text())


def test_the_recording_is_of_the_current_recipe(golden):
    recipe = tool.recipe_flags()
    added = [f for f in recipe if f not in golden["recipe"]]
    removed = [f for f in golden["recipe"] if f not in recipe]
    assert recipe == golden["recipe"], (
        f"configs/quickstart.flags is not the recipe recorded in {tool.GOLDEN.name} (now "
        f"{' '.join(added) or 'reordered'}; recorded {' '.join(removed) or '-'}): after a "
        "deliberate change, rerun `python tools/golden_quickstart.py` and commit the recording")
    assert golden["overrides"] == list(tool.OVERRIDES)
    assert golden["recipe_seed"] in golden["seeds"] and len(golden["seeds"]) >= 4


def test_the_band_holds_other_kernel_paths_and_excludes_recipe_regressions(golden):
    """The recorded evidence for the tolerance (no training here)."""
    assert golden["kernel_variants"], "the recording holds no run on another kernel path"
    for name, variant in golden["kernel_variants"].items():
        assert tool.check(variant, golden) == [], name
    assert golden["regressions"], "the recording holds no regression run"
    for flags, regression in golden["regressions"].items():
        assert tool.check(regression, golden), f"{flags} stays inside the golden band"


def test_recipe_seed_stays_in_the_golden_band(golden, tmp_path):
    result = tool.run(str(tmp_path / "quickstart"))
    failures = tool.check(result, golden)
    assert not failures, (
        f"{len(failures)} departures from {tool.GOLDEN.name} (recorded on "
        f"{golden['machine']}):\n" + "\n".join(failures))
