"""The programs, flag-free: one module per program, its work as functions of plain values.

``pretrain``, ``export``, ``colorize``, ``evaluate``, ``finetune``, ``reproduce`` and
``build_corpus``; ``common`` holds what they share. Each takes a library config or an options
object (one attribute per setting, named as the program's flags) and returns the exit status, or
raises ``common.ProgramError`` with a one-line message. Nothing under ``tfcolor`` reads absl flags:
the programs' absl entry points, which parse the command line into these values, are
``binaries/NAME.py`` (installed as ``tfcolor_binaries.NAME``, the console script
``tfcolor-NAME``).
"""
