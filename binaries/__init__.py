"""The programs' absl entry points: one module per program (``pretrain``, ``export``,
``colorize``, ``evaluate``, ``finetune``, ``reproduce``, ``build_corpus``), each parsing its
flags into the plain values of the flag-free program ``tfcolor.programs.NAME`` and calling it.

Installed as the package ``tfcolor_binaries`` (console scripts ``tfcolor-NAME``); in a checkout
also run as ``binaries/NAME``, ``python binaries/NAME.py`` and ``python -m binaries.NAME``.
"""
