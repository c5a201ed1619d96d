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


_COOL_TINT = np.array([170.0, 20.0, 0.0])
_HOT_TINT = np.array([255.0, 215.0, 0.0])
"""Heat tints from dark red (a little heat) to yellow (the most): warm hues stand apart from the
digit's greys, and the ramp rises in brightness as well as hue, so it keeps its order without
red-green colour vision."""
LEGEND_BARS = "▁▂▃▄▅▆▇█"
_HEAT_STEPS = 16
_LEGEND_LOW, _LEGEND_HIGH = "low ", " high"


def _heat_rgb(grey: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Each grey pixel tinted by its heat (both uint8): packed 0xRRGGBB codes, int64."""
    share = heat.astype(np.float64)[..., np.newaxis] / 255.0
    tint = _COOL_TINT + share * (_HOT_TINT - _COOL_TINT)
    base = grey.astype(np.float64)[..., np.newaxis]
    # Heat 0 leaves the pixel as render_digit draws it; heat 1 is the hot tint whatever is under.
    rgb = np.rint(base * (1.0 - share) + tint * share).astype(np.int64)
    packed: np.ndarray = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    return packed


@lru_cache(maxsize=256 * 256)
def _rgb(code: int) -> Color:
    return Color.from_rgb(code >> 16 & 0xFF, code >> 8 & 0xFF, code & 0xFF)


# Heat makes many more colours than greys; bounded, as a page of overlays shows a few thousand.
@lru_cache(maxsize=8192)
def _rgb_cell_style(top: int, bottom: int) -> Style:
    """As `_cell_style`, for packed 0xRRGGBB codes."""
    if top == bottom:
        return Style(bgcolor=_rgb(bottom))
    return Style(color=_rgb(top), bgcolor=_rgb(bottom))


def render_overlay(
    image: np.ndarray, heat: np.ndarray, *, compact: bool = False, color: bool = True
) -> Text:
    """Render a digit with a heat map over it (e.g. a saliency map), in `render_digit`'s cells.

    Args:
        image: (28, 28) or (28, 28, 1) pixels, float in [0, 1] or uint8.
        heat: (28, 28) or (28, 28, 1) floats in [0, 1] (clipped; NaN counts as 0).
        compact: Average 2x2 blocks first: 14 columns x 7 lines instead of 28 x 14.
        color: Grey pixels tinted from dark red to yellow as heat rises (heat 0 leaves the digit
            as `render_digit` draws it). Otherwise unstyled SHADES characters showing heat;
            stroke pixels show at least "░" so that the digit's outline stays in view.

    Returns:
        Text with one line per pixel-row pair, no trailing newline inside the plain text.
    """
    grey = _to_grey(image)
    heat_map = np.asarray(heat)
    if heat_map.ndim == 3 and heat_map.shape[-1] == 1:
        heat_map = heat_map[..., 0]
    if heat_map.shape != _DIGIT_SHAPE:
        raise ValueError(f"A heat map must be 28x28 like the digit, got shape {np.shape(heat)}.")
    levels = _to_grey(np.nan_to_num(heat_map.astype(np.float32), nan=0.0))
    if compact:
        grey, levels = _halve(grey), _halve(levels)
    # 16 steps: more than a tint separates at this size, and faint heat snaps to none, so a
    # mostly black digit stays a few long runs of one style instead of hundreds of near-blacks.
    step = 255 // (_HEAT_STEPS - 1)
    levels = (np.rint(levels / step) * step).astype(np.uint8)

    if not color:
        cells = np.maximum(levels[0::2], levels[1::2])
        stroke = np.maximum(grey[0::2], grey[1::2]) >= 128
        floor = np.uint8(-(-256 // len(SHADES)))  # the lowest level `_shades` draws as "░"
        return _shades(np.where(stroke, np.maximum(cells, floor), cells))

    rgb = _heat_rgb(grey, levels)
    return _half_blocks(rgb[0::2], rgb[1::2], _rgb_cell_style)


def heat_legend(width: int, *, color: bool = True) -> Text:
    """A one-line key to `render_overlay`'s heat: "low ▁▂▃▄▅▆▇█ high", `width` cells wide.

    The ramp takes the cells the labels leave; below 10 cells it is the ramp alone. In colour
    the bars carry the overlay's tints; without, the ramp is the SHADES the plain overlay uses.
    """
    if width < 1:
        raise ValueError(f"width = {width}; a legend needs at least one cell.")
    labelled = width >= len(_LEGEND_LOW) + len(_LEGEND_HIGH) + 1
    cells = width - len(_LEGEND_LOW) - len(_LEGEND_HIGH) if labelled else width
    levels = np.rint(np.linspace(0, 255, cells) if cells > 1 else np.array([255.0]))
    levels = levels.astype(np.uint8)[np.newaxis]

    if color:
        ramp = Text(no_wrap=True, overflow="crop")
        bars = levels.astype(np.intp) * len(LEGEND_BARS) // 256
        tints = _heat_rgb(np.zeros_like(levels), levels)
        for bar, code in zip(bars[0].tolist(), tints[0].tolist(), strict=True):
            # Tinted over black, as most of a digit is; the bar's height carries the dim end.
            ramp.append(LEGEND_BARS[bar], Style(color=_rgb(code)))
    else:
        ramp = _shades(levels)
    if not labelled:
        return ramp
    return Text.assemble(_LEGEND_LOW, ramp, _LEGEND_HIGH, no_wrap=True, overflow="crop")


def render_map(values: np.ndarray, *, color: bool = True) -> Text:
    """Render any (height, width) map of values in [0, 1] (a feature map) as `render_digit`
    renders a digit: grey half-blocks, or shade characters without colour. An odd height gets
    a black row below."""
    grey = np.rint(np.clip(np.asarray(values, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    if grey.ndim != 2:
        raise ValueError(f"A map must be 2-D, got shape {grey.shape}.")
    if len(grey) % 2:
        grey = np.vstack([grey, np.zeros((1, grey.shape[1]), np.uint8)])
    top, bottom = grey[0::2], grey[1::2]
    if not color:
        return _shades(np.maximum(top, bottom))
    return _half_blocks(top, bottom, _cell_style)
