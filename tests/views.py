"""The nine views test-time augmentation averages over, made here independently of
`tui.core.inspect.tta` (np.roll over a black margin) so that tests can check it against them."""

from __future__ import annotations

import numpy as np


def nine_views(images: np.ndarray) -> list[np.ndarray]:
    """(n, 28, 28, 1) images as they are and moved one pixel each way, black coming in."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return [
        np.roll(padded, (dy, dx), axis=(1, 2))[:, 1:-1, 1:-1]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    ]
