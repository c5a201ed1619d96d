"""MNIST-style preprocessing of drawings, checked on real test digits moved and resized."""

from __future__ import annotations

import numpy as np
import pytest

from tui.core.data.mnist import MnistData
from tui.core.data.preprocess import centre_of_mass, preprocess_drawing, resize


def bbox(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_empty_drawing_gives_zeros() -> None:
    out = preprocess_drawing(np.zeros((28, 28)))
    assert out.shape == (28, 28, 1) and out.dtype == np.float32 and not out.any()


def test_resize_keeps_mean_when_shrinking_and_interpolates_when_growing() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((40, 30))
    small = resize(image, 20, 15)
    assert small.shape == (20, 15)
    assert small.mean() == pytest.approx(image.mean())
    ramp = np.array([[0.0, 1.0]])
    grown = resize(ramp, 1, 4)
    assert grown[0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])


@pytest.mark.parametrize("index", range(0, 40, 4))
def test_a_shrunk_digit_in_a_corner_comes_back(mnist_small: MnistData, index: int) -> None:
    digit = mnist_small.x_test[index, :, :, 0]
    # Draw it at half size in the top-left corner, as a careless user might.
    corner = np.zeros((28, 28))
    corner[:14, :14] = resize(digit, 14, 14)
    out = preprocess_drawing(corner)[:, :, 0]

    assert max(bbox(out)) == 20 and min(bbox(out)) <= 20
    row, col = centre_of_mass(out)
    assert abs(row - 14) <= 1.0 and abs(col - 14) <= 1.0
    # Close to the original pixel for pixel (two unrelated digits are ~0.16 apart), and
    # closer to it than to any of 50 digits of other classes.
    distance = np.abs(out - digit).mean()
    assert distance < 0.12
    others = mnist_small.x_test[mnist_small.y_test != mnist_small.y_test[index]][:50, :, :, 0]
    assert distance < np.abs(others - out).mean(axis=(1, 2)).min()


def test_a_thin_stroke_keeps_its_aspect_ratio() -> None:
    drawing = np.zeros((28, 28))
    drawing[3:25, 20] = 1.0  # a "1": 22 rows by 1 column
    out = preprocess_drawing(drawing)[:, :, 0]
    assert bbox(out) == (20, 1)
    row, col = centre_of_mass(out)
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5


def test_preprocess_accepts_a_channel_axis_and_rejects_other_shapes() -> None:
    drawing = np.zeros((28, 28, 1))
    drawing[10:12, 10:12] = 1.0
    assert preprocess_drawing(drawing).any()
    with pytest.raises(ValueError, match="2-D"):
        preprocess_drawing(np.zeros((2, 28, 28)))
