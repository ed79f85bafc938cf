"""Transfer: fine-tuning pretrained trunks on downstream tasks, the paper's protocol, analysis.

Colorization is a *proxy task*: its value is measured by fine-tuning the pretrained trunk on
labelled tasks (Larsson, Maire & Shakhnarovich, CVPR 2017). This package holds:

* :mod:`tfcolor.transfer.tasks` -- single-label and multi-label classification and semantic
  segmentation heads (:class:`~tfcolor.transfer.tasks.TransferModel`), their per-point losses
  and metrics (top-k accuracy, VOC mAP, mean IU with ignore label 255);
* :mod:`tfcolor.transfer.data` -- labelled data (NumPy arrays / ``.npz``, class-per-folder trees,
  VOC-style segmentation folders, TFDS builders) and the fine-tuning / evaluation pipelines;
* :mod:`tfcolor.transfer.init` -- initialisations: random, a colorization checkpoint or export,
  ImageNet VGG-16 weights, the baselines of :mod:`tfcolor.baselines`; BN absorption, grey -> RGB
  conv1 and freezing below a layer;
* :mod:`tfcolor.transfer.protocol` -- the paper's protocol: 90/10 split, learning rate dropped
  whenever the validation *score* stops improving, stop after two drops, optional retraining
  on 100% of the data for the same number of steps;
* :mod:`tfcolor.transfer.analysis` -- feature shift (per-layer correlation of activations before
  and after fine-tuning) and top-activation patch grids.

Submodules load on first use.

Compatibility note: the histogram colour transfer of :mod:`tfcolor.colorize` (quantile matching
and global-bias energy minimisation) was first written as the module ``tfcolor/transfer.py``,
which this package shadows. Attributes this package does not define (``quantile_transfer``,
``fit_global_bias``, ``target_histogram``, ...) are looked up in
``tfcolor.transfer.histogram`` if that module exists, else in the old file, so
``from tfcolor import transfer; transfer.fit_global_bias(...)`` keeps working.
"""
import importlib
import importlib.util
import os
import sys

_SUBMODULES = ("analysis", "data", "init", "protocol", "tasks", "histogram")
_LEGACY_NAME = "tfcolor._histogram_transfer"


def _histogram_module():
    """The histogram-transfer module (``tfcolor.transfer.histogram`` or the legacy file)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(here, "histogram.py")):
        return importlib.import_module(f"{__name__}.histogram")
    if _LEGACY_NAME in sys.modules:
        return sys.modules[_LEGACY_NAME]
    legacy = os.path.join(os.path.dirname(here), "transfer.py")
    if not os.path.exists(legacy):
        return None
    spec = importlib.util.spec_from_file_location(_LEGACY_NAME, legacy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_LEGACY_NAME] = module
    spec.loader.exec_module(module)
    return module


def __getattr__(name):
    if name in _SUBMODULES and name != "histogram":
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("__"):
        raise AttributeError(name)
    module = _histogram_module()
    if module is not None and hasattr(module, name):
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    module = _histogram_module()
    extra = [n for n in dir(module) if not n.startswith("_")] if module is not None else []
    return sorted(set(list(globals()) + list(_SUBMODULES) + extra))
