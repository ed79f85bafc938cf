"""Entry point of the export program (tfcolor/programs/export.py) for Bazel and checkouts.

    python binaries/export.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import export  # noqa: E402

if __name__ == "__main__":
    export.run()
