"""Installs tfcolor: the library, its absl programs and their console scripts.

TensorFlow comes in two builds that both provide the ``tensorflow`` module and must not be
installed side by side. The default is the CPU build (no CUDA wheels)::

    pip install -e ".[test]"

For a GPU machine pick the CUDA build at install time::

    TFCOLOR_TF_PACKAGE="tensorflow[and-cuda]" pip install -e .

``TFCOLOR_TF_PACKAGE=none`` installs no TensorFlow at all (bring your own build).
"""
import os

from setuptools import find_packages, setup

TF_RANGE = ">=2.21,<2.22"
_tf_package = os.environ.get("TFCOLOR_TF_PACKAGE", "tensorflow-cpu").strip()
TENSORFLOW = [] if _tf_package.lower() == "none" else [_tf_package + TF_RANGE]

# The programs: the flag-free tfcolor/programs/NAME.py and its absl entry point binaries/NAME.py.
# binaries/ is installed as the package tfcolor_binaries (its modules import each other
# relatively), and each entry point as the console script tfcolor-NAME (underscores as dashes:
# tfcolor-build-corpus), so the scripts work from any directory after a plain `pip install .`.
PROGRAMS = ["pretrain", "export", "colorize", "evaluate", "finetune", "reproduce", "build_corpus",
            "distill"]

setup(
    name="tfcolor",
    version="0.1.0",
    description=("Learning representations without labels through automatic colorization "
                 "(Larsson, Maire & Shakhnarovich 2016, 2017) in TensorFlow 2 / Keras 3."),
    long_description=open(os.path.join(os.path.dirname(__file__), "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfcolor", "tfcolor.*"]) + ["tfcolor_binaries"],
    package_dir={"tfcolor_binaries": "binaries"},
    include_package_data=True,
    package_data={"tfcolor": ["assets/photos/*.jpg", "assets/photos/*.png", "assets/photos/*.txt",
                              "assets/photos/*.csv", "assets/models/*/*"]},
    install_requires=TENSORFLOW + [
        "keras>=3.15,<3.16",          # trained against this Keras; saved-model formats move
        "absl-py>=2.1,<3",            # absl.flags / absl.app in binaries/, absl.logging
        "tensorboard>=2.21,<2.22",    # `tensorboard --logdir`: the release matching TensorFlow
        "numpy>=1.26,<3",             # TensorFlow 2.21's own range
        "h5py>=3.11,<4",              # tfcolor.models.imagenet_weights reads Keras HDF5 files
        "Pillow>=10,<14",             # writing PNG grids and colorized images from the programs
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            # The colour tests compare against scikit-image at 1e-9: a new minor release is
            # checked before it is allowed in.
            "scikit-image>=0.24,<0.27",
            "opencv-python-headless>=4.9,<6",
            "packaging>=22",          # tests/test_packaging.py: version ranges and markers
        ],
        "tfds": ["tensorflow-datasets>=4.9,<5"],
        # tfcolor.data.video computes optical flow (Farnebäck) when a video corpus is built
        "video": ["opencv-python-headless>=4.9,<6"],
        "bench": ["torch==2.13.0", "scikit-image>=0.24,<0.27", "opencv-python-headless>=4.9,<6"],
    },
    entry_points={
        "console_scripts": [f"tfcolor-{p.replace('_', '-')}=tfcolor_binaries.{p}:run"
                            for p in PROGRAMS],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
