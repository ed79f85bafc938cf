"""Entry point of the reproduce program (tfcolor/programs/reproduce.py) for Bazel and checkouts.

    python binaries/reproduce.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import reproduce  # noqa: E402

if __name__ == "__main__":
    reproduce.run()
