"""Test-time augmentation: a model's answer for a digit averaged over the digit and its shifts.

A model trained on shifted digits is still not quite shift-invariant: the same digit one pixel
to the left can tip an uncertain answer either way. Averaging the probabilities over the digit
and its eight neighbours one pixel away smooths that out, for nine predictions a digit instead
of one. It is an evaluation option (`evaluate --tta`, `train --tta`), never in a preset's figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tui.core.inspect.predictions import Predictions

SHIFTS: tuple[tuple[int, int], ...] = tuple(
    (dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)
)
"""(right, down) pixel offsets of the shifted copies, beside the digit as it is."""


def shift_images(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`images` ((n, height, width, ...)) moved `dx` pixels right and `dy` down; what moves out
    is dropped and what comes in is black (0), as the background of an MNIST digit is."""
    height, width = images.shape[1:3]
    if abs(dx) >= width or abs(dy) >= height:
        return np.zeros_like(images)
    moved = np.zeros_like(images)
    rows_to = slice(max(dy, 0), height + min(dy, 0))
    rows_from = slice(max(-dy, 0), height + min(-dy, 0))
    cols_to = slice(max(dx, 0), width + min(dx, 0))
    cols_from = slice(max(-dx, 0), width + min(-dx, 0))
    moved[:, rows_to, cols_to] = images[:, rows_from, cols_from]
    return moved


def predict_shifted(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    shifts: Sequence[tuple[int, int]] = SHIFTS,
    *,
    base: np.ndarray | None = None,
) -> Predictions:
    """The mean of the probabilities `predict` gives for `images` and for each shifted copy.

    Args:
        predict: (n, 28, 28, 1) float images -> (n, 10) probabilities (rows summing to 1).
        images: the test images, (n, 28, 28, 1) floats in [0, 1].
        labels: their true labels.
        shifts: the offsets of the copies (the images as they are always count once).
        base: what `predict` gives for `images` as they are, when that is known already.
    """
    total = np.asarray(predict(images) if base is None else base, np.float64)
    for dx, dy in shifts:
        total += predict(shift_images(images, dx, dy))
    return Predictions((total / (1 + len(shifts))).astype(np.float32), labels)
