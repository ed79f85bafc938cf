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
"""
import importlib

_SUBMODULES = ("analysis", "data", "init", "protocol", "tasks")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
