"""Entry point that lets Bazel's py_test run a pytest file: ``main`` of every py_test target."""
import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main(["-p", "no:cacheprovider"] + sys.argv[1:]))
