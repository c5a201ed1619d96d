"""Turn a hand-drawn digit into an MNIST-like 28x28 image: fit to 20x20, centre by mass."""

from __future__ import annotations

import numpy as np

SIDE = 28
"""Height and width of an MNIST image."""
BOX = 20
"""MNIST digits were scaled so that the longer side of the stroke fits this many pixels."""
CENTRE = 14.0
"""Where MNIST puts the centre of mass (row and column, 0-based); measured on the test set."""


def _resize_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix that resamples one axis: area average to shrink, linear to grow.

    Area averaging keeps thin strokes from vanishing when they shrink; linear interpolation
    avoids the blocky look of repeating pixels when a small drawing grows.
    """
    weights = np.zeros((target, source), dtype=np.float64)
    if target <= source:
        scale = source / target
        for out in range(target):
            start, end = out * scale, (out + 1) * scale
            first, last = int(np.floor(start)), int(np.ceil(end))
            for src in range(first, min(last, source)):
                weights[out, src] = min(end, src + 1) - max(start, src)
        weights /= weights.sum(axis=1, keepdims=True)
        return weights
    # Pixel centres of the output, mapped back into source coordinates.
    centres = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0.0, source - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, source - 1)
    fraction = centres - low
    rows = np.arange(target)
    np.add.at(weights, (rows, low), 1.0 - fraction)
    np.add.at(weights, (rows, high), fraction)
    return weights


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample a 2-D image to (height, width), separably along each axis."""
    rows = _resize_weights(image.shape[0], height)
    cols = _resize_weights(image.shape[1], width)
    resized: np.ndarray = rows @ image.astype(np.float64) @ cols.T
    return resized


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre; the image centre if it is blank."""
    total = float(image.sum())
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    row = float((image.sum(axis=1) * np.arange(image.shape[0])).sum()) / total
    col = float((image.sum(axis=0) * np.arange(image.shape[1])).sum()) / total
    return row, col


def preprocess_drawing(drawing: np.ndarray) -> np.ndarray:
    """Make a drawing look like an MNIST digit, as the MNIST authors did with their scans.

    Crop to the stroke, scale it so its longer side is 20 pixels (aspect ratio kept), place it
    in a 28x28 field and shift it so that its centre of mass sits where MNIST's does.

    Args:
        drawing: 2-D intensities in [0, 1] of any size (the canvas is 28x28), 0 = background;
            a trailing channel axis of 1 is accepted.

    Returns:
        (28, 28, 1) float32 in [0, 1], ready for the model; all zeros for an empty drawing.
    """
    pixels = np.asarray(drawing, dtype=np.float64)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise ValueError(f"A drawing must be a 2-D image, got shape {drawing.shape}.")
    pixels = np.clip(pixels, 0.0, 1.0)
    result = np.zeros((SIDE, SIDE, 1), dtype=np.float32)
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if len(rows) == 0:
        return result

    stroke = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(stroke.shape)
    height = max(1, min(BOX, round(stroke.shape[0] * scale)))
    width = max(1, min(BOX, round(stroke.shape[1] * scale)))
    fitted = np.clip(resize(stroke, height, width), 0.0, 1.0)

    centre_row, centre_col = centre_of_mass(fitted)
    # Integer shifts, as in MNIST, clamped so the box never leaves the field.
    top = int(np.clip(np.rint(CENTRE - centre_row), 0, SIDE - height))
    left = int(np.clip(np.rint(CENTRE - centre_col), 0, SIDE - width))
    result[top : top + height, left : left + width, 0] = fitted
    return result
