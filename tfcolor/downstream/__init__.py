"""Downstream: fine-tuning pretrained trunks on labelled tasks, the paper's protocol, analysis.

Colorization is a *proxy task*: its value is measured by fine-tuning the pretrained trunk on
labelled tasks (Larsson, Maire & Shakhnarovich, CVPR 2017). This package holds (colour
*transfer* to a reference image is another thing: :mod:`tfcolor.histogram_transfer`):

* :mod:`tfcolor.downstream.datasets` -- labelled sets
  (:class:`~tfcolor.downstream.datasets.LabeledData`: NumPy arrays / ``.npz``, class-per-folder
  trees, VOC-style segmentation folders, TFDS builders) and the protocol's 90/10 split;
* :mod:`tfcolor.downstream.pipelines` -- the fine-tuning and evaluation tf.data pipelines;
* :mod:`tfcolor.downstream.model` -- :class:`~tfcolor.downstream.model.DownstreamModel`:
  single-label and multi-label classification and semantic segmentation heads on a trunk, and
  their per-point losses;
* :mod:`tfcolor.downstream.scoring` -- the task names and their scores (top-k accuracy, VOC mAP
  with tie perturbation, mean IU with ignore label 255);
* :mod:`tfcolor.downstream.initialization` -- trunks from an initialisation: random, a
  colorization checkpoint or export, ImageNet VGG-16 weights (re-balanced), the baselines of
  :mod:`tfcolor.baselines`; +FoV blocks, BN absorption, grey -> RGB conv1 and freezing below a
  layer;
* :mod:`tfcolor.downstream.protocol` -- the paper's protocol: 90/10 split, learning rate dropped
  whenever the validation *score* stops improving, stop after two drops, optional retraining
  on 100% of the data for the same number of steps (:func:`~tfcolor.downstream.protocol.score`
  measures a model on a labelled set);
* :mod:`tfcolor.downstream.analysis` -- feature shift (per-layer correlation of activations
  before and after fine-tuning) and top-activation patch grids.

Submodules load on first use.
"""
import importlib

_SUBMODULES = ("analysis", "datasets", "initialization", "model", "pipelines", "protocol",
               "scoring")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
