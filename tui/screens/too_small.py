"""Said instead of a garbled screen when the terminal is smaller than the app can lay out."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 60, 18
"""The smallest terminal every screen has a layout for."""


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


class TooSmallScreen(Screen[None]):
    """Covers everything until the terminal is big enough again; training goes on meanwhile."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; }
    TooSmallScreen > Static { width: auto; max-width: 100%; height: auto; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,ctrl+c", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self._say(self.app.size.width, self.app.size.height)

    def on_resize(self, event: Resize) -> None:
        width, height = event.size
        if not too_small(width, height):
            if self.is_current:  # several resizes can arrive before it is gone
                self.dismiss(None)
            return
        self._say(width, height)

    def _say(self, width: int, height: int) -> None:
        self.query_one(Static).update(
            f"mnist-tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is "
            f"{width}x{height}. Make it bigger (training goes on), or press q."
        )
