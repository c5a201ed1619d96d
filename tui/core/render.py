"""Draw a 28x28 MNIST digit as rich Text made of half-block characters."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

UPPER_HALF = "▀"
SHADES = " ░▒▓█"
"""Plain characters from dark to bright, for terminals without colour."""

_DIGIT_SHAPE = (28, 28)


@lru_cache(maxsize=256)
def _grey(level: int) -> Color:
    return Color.from_rgb(level, level, level)


# At most 256 x 256 pairs, and a page only ever uses a few hundred of them.
@cache
def _cell_style(top: int, bottom: int) -> Style:
    """Style of one cell: the top pixel as foreground of "▀", the bottom one as background."""
    if top == bottom:
        # Drawn as a space, so only the background matters.
        return Style(bgcolor=_grey(bottom))
    return Style(color=_grey(top), bgcolor=_grey(bottom))


def _to_grey(image: np.ndarray) -> np.ndarray:
    """Coerce a (28, 28) or (28, 28, 1) float [0, 1] or uint8 image into (28, 28) uint8."""
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.shape != _DIGIT_SHAPE:
        raise ValueError(
            f"A digit image must be 28x28 (optionally with one channel), got shape {image.shape}."
        )
    grey: np.ndarray
    if pixels.dtype == np.uint8:
        grey = pixels
    elif np.issubdtype(pixels.dtype, np.floating):
        # Round rather than truncate so uint8 -> /255 -> here gives back the same levels.
        grey = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        grey = np.clip(pixels, 0, 255).astype(np.uint8)
    return grey


def _halve(grey: np.ndarray) -> np.ndarray:
    """Downsample by averaging each 2x2 block."""
    rows, cols = grey.shape
    blocks = grey.reshape(rows // 2, 2, cols // 2, 2).astype(np.float32)
    halved: np.ndarray = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return halved


def render_digit(image: np.ndarray, *, compact: bool = False, color: bool = True) -> Text:
    """Render a digit as Text: one cell per two stacked pixels.

    Args:
        image: (28, 28) or (28, 28, 1) pixels, float in [0, 1] or uint8.
        compact: Average 2x2 blocks first: 14 columns x 7 lines instead of 28 x 14.
        color: Grey half-blocks when True; otherwise unstyled shade characters, for
            NO_COLOR terminals and plain-text output.

    Returns:
        Text with one line per pixel-row pair, no trailing newline inside the plain text.
    """
    grey = _to_grey(image)
    if compact:
        grey = _halve(grey)
    top, bottom = grey[0::2], grey[1::2]
    if not color:
        # The brighter of the two pixels, so one-pixel-thin strokes stay visible.
        return _shades(np.maximum(top, bottom))
    return _half_blocks(top, bottom, _cell_style)


def _shades(levels: np.ndarray) -> Text:
    """Unstyled Text of SHADES characters, one per (rows, cols) uint8 level."""
    shade = levels.astype(np.intp) * len(SHADES) // 256
    lines = ["".join(SHADES[i] for i in row) for row in shade.tolist()]
    return Text("\n".join(lines), no_wrap=True, overflow="crop")


def _half_blocks(
    top: np.ndarray, bottom: np.ndarray, style_of: Callable[[int, int], Style]
) -> Text:
    """Text of "▀" cells from the colour codes of the top and bottom pixel of each cell.

    Args:
        top: (rows, cols) non-negative integer codes below 2**24 (a grey level, a packed RGB).
        bottom: The same for the lower pixel of each cell.
        style_of: The cell style for a (top, bottom) pair of codes; cached by the caller.
    """
    rows, cols = top.shape
    # One span per run of identical cells: digits are mostly flat black, so this turns
    # ~400 spans into a few dozen and keeps pages of hundreds of digits cheap to draw.
    codes = top.astype(np.int64) << 24 | bottom
    starts_mask = np.ones((rows, cols), dtype=bool)
    starts_mask[:, 1:] = codes[:, 1:] != codes[:, :-1]
    chars = np.where(top == bottom, " ", UPPER_HALF)
    line_width = cols + 1  # the "\n" between lines
    plain = "\n".join("".join(row) for row in chars.tolist())

    spans: list[Span] = []
    top_list, bottom_list = top.tolist(), bottom.tolist()
    for row, starts in enumerate(starts_mask.tolist()):
        run_starts = [col for col, is_start in enumerate(starts) if is_start]
        run_ends = [*run_starts[1:], cols]
        offset = row * line_width
        for start, end in zip(run_starts, run_ends, strict=True):
            style = style_of(top_list[row][start], bottom_list[row][start])
            spans.append(Span(offset + start, offset + end, style))
    return Text(plain, spans=spans, no_wrap=True, overflow="crop")
