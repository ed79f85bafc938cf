"""Entry point of the pretrain program (tfcolor/programs/pretrain.py) for Bazel and checkouts.

    python binaries/pretrain.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import pretrain  # noqa: E402

if __name__ == "__main__":
    pretrain.run()
