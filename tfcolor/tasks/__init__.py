"""Training objectives as tasks on one generic trainer (:mod:`tfcolor.train.trainer`).

* :class:`~tfcolor.tasks.base.Task` (:mod:`tfcolor.tasks.base`): the contract.
* :class:`~tfcolor.tasks.colorization.ColorizationTask`: the paper's pretraining objective.
* :class:`~tfcolor.tasks.denoising.DenoisingTask`,
  :class:`~tfcolor.tasks.split_brain.SplitBrainTask`: the baselines' pretraining objectives.
* :class:`~tfcolor.tasks.jigsaw.JigsawTask`: the jigsaw 2x2 proxy task.
* :class:`~tfcolor.tasks.scaled.ScaledTask`: a task with its loss multiplied by a constant.
* :class:`~tfcolor.tasks.video.VideoTask`: the video proxy task (relative optical-flow amplitude).
* :class:`~tfcolor.tasks.distillation.DistillationTask`: distillation from frozen teachers.
* :class:`~tfcolor.tasks.downstream.ClassificationTask`,
  :class:`~tfcolor.tasks.downstream.MultiLabelTask`,
  :class:`~tfcolor.tasks.downstream.SegmentationTask`: fine-tuning on labelled tasks.

Submodules are imported on first use, so importing the contract never imports every task's
dependencies.
"""
import importlib

_EXPORTS = {
    "Task": "base",
    "ColorizationTask": "colorization",
    "DenoisingTask": "denoising",
    "SplitBrainTask": "split_brain",
    "JigsawTask": "jigsaw",
    "ScaledTask": "scaled",
    "VideoTask": "video",
    "DistillationTask": "distillation",
    "ClassificationTask": "downstream",
    "MultiLabelTask": "downstream",
    "SegmentationTask": "downstream",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tfcolor.tasks' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
