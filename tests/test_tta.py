"""Test-time augmentation on real digits and plain numpy stand-ins for a model (no TensorFlow)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from views import nine_views

from tui.core.data.mnist import MnistData
from tui.core.inspect.tta import SHIFTS, predict_shifted, shift_images


def test_the_shifts_are_the_eight_neighbours_one_pixel_away() -> None:
    assert len(set(SHIFTS)) == 8
    assert all(max(abs(dx), abs(dy)) == 1 for dx, dy in SHIFTS)


@given(
    dx=st.integers(-30, 30),
    dy=st.integers(-30, 30),
    row=st.integers(0, 27),
    col=st.integers(0, 27),
)
def test_a_pixel_moves_right_and_down_or_falls_off(dx: int, dy: int, row: int, col: int) -> None:
    images = np.zeros((2, 28, 28, 1), np.float32)
    images[1, row, col, 0] = 1.0
    moved = shift_images(images, dx, dy)
    assert moved.shape == images.shape and moved.dtype == images.dtype
    assert not moved[0].any()
    if 0 <= row + dy < 28 and 0 <= col + dx < 28:
        assert np.flatnonzero(moved[1]).tolist() == [(row + dy) * 28 + col + dx]
    else:
        assert not moved[1].any()


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def _by_rows(images: np.ndarray) -> np.ndarray:
    """A position-sensitive stand-in for a model: the ink in ten bands of rows."""
    return _softmax(images[:, 4:24, :, 0].reshape(len(images), 10, -1).sum(axis=2) / 4)


def test_the_answer_is_the_mean_over_the_digit_and_its_shifts(mnist_small: MnistData) -> None:
    images, labels = mnist_small.x_test[:200], mnist_small.y_test[:200]
    averaged = predict_shifted(_by_rows, images, labels)
    expected = np.mean([_by_rows(view) for view in nine_views(images)], axis=0)
    np.testing.assert_allclose(averaged.probabilities, expected, rtol=1e-5)
    np.testing.assert_array_equal(averaged.labels, labels)
    assert not np.allclose(averaged.probabilities, _by_rows(images))
    # Given the plain answer already, it is used, not asked again.
    asked: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        asked.append(len(batch))
        return _by_rows(batch)

    again = predict_shifted(counting, images, labels, base=_by_rows(images))
    np.testing.assert_allclose(again.probabilities, expected, rtol=1e-5)
    assert len(asked) == len(SHIFTS)


def test_a_model_that_ignores_position_answers_as_without(mnist_small: MnistData) -> None:
    """A digit with a black margin loses no ink to a one-pixel shift, so a model that only
    counts ink gives the same answer for every view (a few MNIST digits touch the edge)."""
    images, labels = mnist_small.x_test, mnist_small.y_test
    inner = np.ones((28, 28), bool)
    inner[1:-1, 1:-1] = False
    margined = ~images[..., 0][:, inner].any(axis=1)
    assert margined.mean() > 0.9
    images, labels = images[margined], labels[margined]

    def by_ink(batch: np.ndarray) -> np.ndarray:
        ink = batch.sum(axis=(1, 2, 3))
        return _softmax(np.outer(ink, np.linspace(-1, 1, 10)) / 50)

    averaged = predict_shifted(by_ink, images, labels)
    np.testing.assert_allclose(averaged.probabilities, by_ink(images), rtol=1e-5)
