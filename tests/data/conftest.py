"""Fixtures of the data tests: a folder of deliberately bad and unusual image files."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import data_testlib  # noqa: E402


@pytest.fixture(scope="session")
def bad_image_folder(tmp_path_factory):
    """(folder, arrays): see data_testlib.write_bad_image_folder."""
    return data_testlib.write_bad_image_folder(tmp_path_factory.mktemp("bad_images"))
