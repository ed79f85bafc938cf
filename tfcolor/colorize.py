"""Temporary (#13): ``tfcolor.colorize`` is split into ``tfcolor.readout`` (histograms -> colours),
``tfcolor.predictors`` (predictors, running a colorizer on images) and ``tfcolor.image_files``
(file I/O). Only ``colorize_batch`` is left here, for the two callers that have not moved yet
(``tfcolor/tasks/colorization.py``, ``binaries/reproduce.py``); this file is deleted as soon as
they import ``tfcolor.predictors.colorize_batch``. Do not add callers.
"""
from tfcolor.predictors import colorize_batch  # noqa: F401
