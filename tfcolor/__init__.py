"""tfcolor: learning visual representations without labels through automatic colorization.

Keras 3 / TensorFlow 2 implementation of Larsson, Maire & Shakhnarovich, "Learning
Representations for Automatic Colorization" (ECCV 2016) and "Colorization as a Proxy Task for
Visual Understanding" (CVPR 2017).

Submodules are imported on first use (``tfcolor.color``, ``tfcolor.layers``, ...), so that
``import tfcolor`` stays cheap and never initialises TensorFlow devices by itself.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "baselines", "bins", "color", "config", "data", "export", "histogram_transfer",
    "image_files", "layers", "losses", "metrics", "models", "predictors", "readout", "run_dir",
    "surgery", "targets", "tasks", "train", "downstream", "pretrained", "distill", "corpus",
    "reproduce", "evaluation", "prior", "paired_statistics", "image_grid", "estimates",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tfcolor' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
