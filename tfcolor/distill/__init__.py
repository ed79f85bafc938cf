"""Distillation: matching a student's activations to one or several frozen teachers.

* :mod:`tfcolor.distill.losses` -- the distillation losses: the temperature KL on logits, the
  loss on unnormalised exponentials with teacher RMS pre-normalisation, the AB divergence family
  (``ab_divergence``, ``ABDivergence``) and ``teacher_scale`` (the teacher statistics s).

This package module imports nothing heavy, so that ``tfcolor.losses`` can re-export the losses
without an import cycle; import the submodules themselves.
"""
