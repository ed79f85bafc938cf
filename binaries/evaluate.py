"""Entry point of the evaluate program (tfcolor/programs/evaluate.py) for Bazel and checkouts.

    python binaries/evaluate.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import evaluate  # noqa: E402

if __name__ == "__main__":
    evaluate.run()
