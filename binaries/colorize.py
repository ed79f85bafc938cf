"""Entry point of the colorize program (tfcolor/programs/colorize.py) for Bazel and checkouts.

    python binaries/colorize.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import colorize  # noqa: E402

if __name__ == "__main__":
    colorize.run()
