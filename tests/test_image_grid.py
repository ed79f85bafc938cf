"""Tests of tfcolor.image_grid: image batches side by side, one row per image."""
import numpy as np
import pytest
import tensorflow as tf

from tfcolor.image_grid import image_grid


def test_image_grid_places_columns_and_rows():
    a = tf.zeros([2, 3, 4, 1])
    b = tf.fill([2, 3, 4, 3], 0.5)
    grid = image_grid([a, b], pad=1).numpy()
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    np.testing.assert_array_equal(grid[:3, :4], 0.0)          # row 0, column a
    np.testing.assert_array_equal(grid[:3, 5:], 0.5)          # row 0, column b
    np.testing.assert_array_equal(grid[3, :], 1.0)            # horizontal white gap
    np.testing.assert_array_equal(grid[:3, 4], 1.0)           # vertical white gap
    with pytest.raises(ValueError, match="same N, H, W|shape"):
        image_grid([a, tf.zeros([2, 3, 5, 3])])
