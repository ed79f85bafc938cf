"""Old name of :mod:`tfcolor.downstream` (issue #13), importable only until the callers owned by
other engineers have moved; then this package is deleted. Do not use it in new code."""
from tfcolor.downstream import datasets as data  # noqa: F401  (load, load_npz, LabeledData)
from tfcolor.downstream import initialization as init  # noqa: F401
