"""A 28x28 drawing canvas for the mouse and the keyboard, shown with block characters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Offset
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

SIDE = 28
"""Pixels per side, as in MNIST."""
MAX_BRUSH = 4
"""Widest brush, in pixels; MNIST strokes are 2 to 3 pixels wide."""


def _grey(value: float) -> RichColor:
    level = round(max(0.0, min(1.0, value)) * 255)
    return RichColor.from_rgb(level, level, level)


class Canvas(Widget, can_focus=True):
    """Draw a digit: click or drag with the mouse, or move a cursor with arrows and press space.

    Zoom 1 draws two pixels per cell with half blocks (28x14 cells, fits 80x24); zoom 2 draws a
    pixel as two cells side by side (56x28 cells), easier to hit with the mouse.
    """

    DEFAULT_CSS = """
    Canvas {
        width: 28;
        height: 14;
        box-sizing: content-box;
        border: round $primary-muted;
        &:focus { border: round $primary; }
        & > .canvas--cursor { background: $accent; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"canvas--cursor"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("shift+up", "move(0, -1, True)", "Draw up", show=False),
        Binding("shift+down", "move(0, 1, True)", "Draw down", show=False),
        Binding("shift+left", "move(-1, 0, True)", "Draw left", show=False),
        Binding("shift+right", "move(1, 0, True)", "Draw right", show=False),
        Binding("space", "paint", "Paint"),
        Binding("x", "erase", "Erase"),
        Binding("c", "clear", "Clear"),
        Binding("left_square_bracket", "brush(-1)", "Brush -", key_display="["),
        Binding("right_square_bracket", "brush(1)", "Brush +", key_display="]"),
    ]

    cursor: reactive[tuple[int, int]] = reactive((SIDE // 2, SIDE // 2))
    """(row, column) of the keyboard cursor."""
    brush: reactive[int] = reactive(2)
    """Brush width in pixels, 1 to `MAX_BRUSH`."""
    zoom: reactive[int] = reactive(1)
    """Terminal cells per pixel across: 1 (half blocks) or 2."""

    @dataclass
    class Changed(Message):
        """Pixels were painted, erased or cleared."""

        canvas: Canvas
        pixels: np.ndarray
        """A copy of the (28, 28) float32 pixels in [0, 1]."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pixels = np.zeros((SIDE, SIDE), dtype=np.float32)
        self._last_drag: tuple[int, int] | None = None

    @property
    def pixels(self) -> np.ndarray:
        """A copy of the (28, 28) float32 pixels in [0, 1]."""
        return self._pixels.copy()

    # --- the public painting API: keys and the mouse both end up here ----------------------------
    def paint(self, row: int, column: int, value: float = 1.0, *, tall: bool = False) -> None:
        """Paint a brush-sized square whose top-left corner is nearest (row, column).

        Args:
            row: pixel row, 0 at the top.
            column: pixel column, 0 at the left.
            value: the intensity to paint; 0 erases.
            tall: also paint the row below, for a mouse cell that covers two pixels.
        """
        offset = (self.brush - 1) // 2
        top, left = row - offset, column - offset
        bottom = top + self.brush + (1 if tall and self.brush == 1 else 0)
        right = left + self.brush
        area = self._pixels[max(0, top) : max(0, bottom), max(0, left) : max(0, right)]
        if area.size and not np.all(area == value):
            area[...] = value
            self._changed()

    def clear(self) -> None:
        """Erase everything."""
        if self._pixels.any():
            self._pixels[...] = 0.0
            self._changed()

    def _changed(self) -> None:
        self.refresh()
        self.post_message(self.Changed(self, self.pixels))

    # --- keyboard --------------------------------------------------------------------------------
    def action_move(self, dx: int, dy: int, draw: bool = False) -> None:
        row, column = self.cursor
        self.cursor = (max(0, min(SIDE - 1, row + dy)), max(0, min(SIDE - 1, column + dx)))
        if draw:
            self.paint(*self.cursor)

    def action_paint(self) -> None:
        self.paint(*self.cursor)

    def action_erase(self) -> None:
        self.paint(*self.cursor, value=0.0)

    def action_clear(self) -> None:
        self.clear()

    def action_brush(self, step: int) -> None:
        self.brush = max(1, min(MAX_BRUSH, self.brush + step))

    # --- mouse -----------------------------------------------------------------------------------
    def pixel_at(self, offset: Offset) -> tuple[int, int] | None:
        """The (row, column) pixel under a content offset, None outside the canvas."""
        if self.zoom == 2:
            row, column = offset.y, offset.x // 2
        else:
            row, column = offset.y * 2, offset.x
        if 0 <= row < SIDE and 0 <= column < SIDE:
            return row, column
        return None

    def _paint_at(self, event: events.MouseEvent) -> None:
        offset = event.get_content_offset(self)
        pixel = self.pixel_at(offset) if offset is not None else None
        if pixel is None:
            return
        # Fast drags skip cells: fill the gap with a straight line.
        points = [pixel] if self._last_drag is None else _line(self._last_drag, pixel)
        for row, column in points:
            self.paint(row, column, tall=self.zoom == 1)
        self._last_drag = pixel
        self.cursor = pixel

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.focus()
        self.capture_mouse()
        self._last_drag = None
        self._paint_at(event)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if event.button and self._last_drag is not None:
            self._paint_at(event)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self.capture_mouse(False)
        self._last_drag = None

    # --- drawing ---------------------------------------------------------------------------------
    def watch_zoom(self, zoom: int) -> None:
        self.styles.width = SIDE * zoom
        self.styles.height = SIDE // 2 * zoom

    def watch_cursor(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        cursor_colour = self.get_component_rich_style("canvas--cursor").bgcolor
        cursor_row, cursor_column = self.cursor if self.has_focus else (-1, -1)
        pixels = self._pixels
        segments: list[Segment] = []
        if self.zoom == 2:
            if y >= SIDE:
                return Strip.blank(self.size.width)
            for column in range(SIDE):
                colour = _grey(float(pixels[y, column]))
                if (y, column) == (cursor_row, cursor_column) and cursor_colour is not None:
                    colour = cursor_colour
                segments.append(Segment("  ", Style(bgcolor=colour)))
        else:
            top_row, bottom_row = 2 * y, 2 * y + 1
            if bottom_row >= SIDE:
                return Strip.blank(self.size.width)
            for column in range(SIDE):
                top = _grey(float(pixels[top_row, column]))
                bottom = _grey(float(pixels[bottom_row, column]))
                if cursor_column == column and cursor_colour is not None:
                    if cursor_row == top_row:
                        top = cursor_colour
                    elif cursor_row == bottom_row:
                        bottom = cursor_colour
                segments.append(Segment("▀", Style(color=top, bgcolor=bottom)))
        return Strip(segments).simplify()


def _line(start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int]]:
    """Pixels on the straight line from `start` to `end`, both included."""
    steps = max(abs(end[0] - start[0]), abs(end[1] - start[1]), 1)
    rows = np.rint(np.linspace(start[0], end[0], steps + 1)).astype(int)
    columns = np.rint(np.linspace(start[1], end[1], steps + 1)).astype(int)
    return list(dict.fromkeys(zip(rows.tolist(), columns.tolist(), strict=True)))
