"""The command-line programs: one module per program, each an absl app.

``pretrain``, ``export``, ``colorize``, ``evaluate``, ``finetune`` and ``reproduce``; each is
installed as the console script ``tfcolor-NAME`` and runs as ``python -m tfcolor.programs.NAME``
(in a checkout also as ``binaries/NAME``). ``common`` holds what they share. The library
(everything else under ``tfcolor``) never reads flags: the programs parse them into its config
objects.
"""
