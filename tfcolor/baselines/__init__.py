"""Self-supervised baselines in the colorizer's framework (same trunks, trainer and protocol).

* :mod:`tfcolor.baselines.denoising` -- denoising autoencoder (salt-and-pepper 5%); its
  objective is :class:`tfcolor.tasks.denoising.DenoisingTask`.
* :mod:`tfcolor.baselines.split_brain` -- split-brain autoencoder (Zhang et al. 2017); its
  objective is :class:`tfcolor.tasks.split_brain.SplitBrainTask`.
* :mod:`tfcolor.baselines.runs` -- :func:`build`, :func:`pretrain` and :func:`load` (re-exported
  here).
* Lab L2 regression colorization is the colorizer's loss kind ``"lab_regression"``.
* Random initialisation is ``init="random"`` of :mod:`tfcolor.downstream.initialization`.
"""
from tfcolor.baselines.runs import BASELINES, build, load, make_task, pretrain

__all__ = ["BASELINES", "build", "load", "make_task", "pretrain"]
