"""Entry point of the finetune program (tfcolor/programs/finetune.py) for Bazel and checkouts.

    python binaries/finetune.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import finetune  # noqa: E402

if __name__ == "__main__":
    finetune.run()
