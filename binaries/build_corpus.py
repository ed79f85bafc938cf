"""Entry point of the corpus builder (tfcolor/programs/build_corpus.py) for Bazel and checkouts.

    python binaries/build_corpus.py --help
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor.programs import build_corpus  # noqa: E402

if __name__ == "__main__":
    build_corpus.run()
