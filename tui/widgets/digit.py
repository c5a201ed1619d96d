"""Digit widgets: a recycled card per visible test digit, the page grid, a detail pane, bars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from tui.core.inspect.predictions import top_k
from tui.core.render import render_digit

CARD_WIDTH = 16
"""A compact digit is 14 cells wide, plus the border."""
CARD_HEIGHT = 9
"""A compact digit is 7 lines tall, plus the border."""


def verdict(label: int, predicted: int) -> str:
    """ "4→9 ✗" or "7→7 ✓": the symbol tells right from wrong without colour."""
    return f"{label}→{predicted} {'✓' if label == predicted else '✗'}"


class DigitCard(Widget):
    """One cell of the grid: a compact digit, its test index above and its verdict below.

    Cards are recycled: the grid keeps one per visible slot and points them at new digits.
    """

    DEFAULT_CSS = """
    DigitCard {
        width: 16;
        height: 9;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        &.-correct { border-subtitle-color: $success; }
        &.-wrong { border-subtitle-color: $error; border-subtitle-style: bold; }
        &.-selected { border: heavy $accent; border-title-color: $accent; }
        &.-empty { border: none; }
    }
    """

    @dataclass
    class Clicked(Message):
        """The user clicked this card."""

        card: DigitCard
        slot: int
        """Position of the card on the page, 0 at the top left."""

    def __init__(self, slot: int) -> None:
        super().__init__()
        self.slot = slot
        self._digit: Content = Content("")

    def show(
        self,
        index: int,
        image: np.ndarray,
        label: int,
        predicted: int,
        confidence: float,
        note: str = "",
    ) -> None:
        """Point the card at digit `index`; `note` follows the index in the title."""
        self._digit = Content.from_rich_text(render_digit(image, compact=True))
        self.border_title = f"#{index}{note}"
        self.border_subtitle = f"{verdict(label, predicted)} {confidence:4.0%}"
        self.set_class(label == predicted, "-correct")
        self.set_class(label != predicted, "-wrong")
        self.remove_class("-empty")
        self.refresh()

    def clear(self) -> None:
        """Show nothing: the last page has fewer digits than slots."""
        self._digit = Content("")
        self.border_title = self.border_subtitle = None
        self.remove_class("-correct", "-wrong", "-selected")
        self.add_class("-empty")
        self.refresh()

    def render(self) -> Content:
        return self._digit

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self, self.slot))


class DigitGrid(Widget, can_focus=True):
    """A page of digit cards that fits the widget's size; only the visible page is rendered.

    Holds the digits in browsing order and a cursor into that order; page changes repoint the
    recycled cards, cursor moves within a page only restyle two of them.
    """

    DEFAULT_CSS = """
    DigitGrid {
        layout: grid;
        grid-columns: 16;
        grid-rows: 9;
        width: 1fr;
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(0, init=False)
    """Position of the selected digit in `order`."""

    @dataclass
    class Highlighted(Message):
        """The cursor moved to another digit, or the order changed under it."""

        grid: DigitGrid
        index: int | None
        """Test index of the selected digit; None when the order is empty."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        predicted: np.ndarray,
        confidence: np.ndarray,
        *,
        notes: Callable[[int], str] | None = None,
        id: str | None = None,
    ) -> None:
        """
        Args:
            images, labels, predicted, confidence: per digit, by index.
            notes: a few characters to show after a digit's index (its marks), by index.
            id: the widget id.
        """
        super().__init__(id=id)
        self.notes = notes
        self.images = images
        self.labels = labels
        self.predicted = predicted
        self.confidence = confidence
        self.order: np.ndarray = np.arange(len(labels))
        """Test indices in browsing order (filtered and sorted by the screen)."""
        self.columns = 1
        self.rows = 1
        self._page_start = -1
        """First position of the page the cards show; -1 forces a redraw."""
        self._selected_slot: int | None = None

    @property
    def page_size(self) -> int:
        return self.columns * self.rows

    @property
    def selected_index(self) -> int | None:
        """Test index under the cursor."""
        return int(self.order[self.cursor]) if len(self.order) else None

    def set_order(self, order: np.ndarray, keep: int | None = None) -> None:
        """Browse `order` instead; the cursor stays on test index `keep` if it is still there."""
        self.order = order
        position = 0
        if keep is not None:
            hits = np.flatnonzero(order == keep)
            position = int(hits[0]) if len(hits) else 0
        self._page_start = -1
        self.cursor = position
        self._show_page()
        self.post_message(self.Highlighted(self, self.selected_index))

    def go_to_index(self, index: int) -> bool:
        """Move the cursor to test index `index`; False if the current order does not hold it."""
        hits = np.flatnonzero(self.order == index)
        if not len(hits):
            return False
        self.cursor = int(hits[0])
        return True

    def redraw(self) -> None:
        """Show the page again: what `notes` says of its digits changed."""
        self._page_start = -1
        self._show_page()

    def on_resize(self, event: events.Resize) -> None:
        columns = max(1, self.content_size.width // CARD_WIDTH)
        rows = max(1, self.content_size.height // CARD_HEIGHT)
        if (columns, rows) == (self.columns, self.rows) and self.children:
            return
        self.columns, self.rows = columns, rows
        self.styles.grid_size_columns = columns
        self.remove_children()
        self.mount_all(DigitCard(slot) for slot in range(columns * rows))
        self._page_start = -1
        self.call_after_refresh(self._show_page)

    def watch_cursor(self) -> None:
        self._show_page()
        self.post_message(self.Highlighted(self, self.selected_index))

    def _show_page(self) -> None:
        cards = list(self.query_children(DigitCard))
        if not cards:
            return
        start = (self.cursor // self.page_size) * self.page_size if len(self.order) else 0
        if start != self._page_start:
            self._page_start = start
            self._selected_slot = None
            for card in cards:
                card.remove_class("-selected")
                position = start + card.slot
                if position < len(self.order):
                    index = int(self.order[position])
                    card.show(
                        index,
                        self.images[index],
                        int(self.labels[index]),
                        int(self.predicted[index]),
                        float(self.confidence[index]),
                        self.notes(index) if self.notes is not None else "",
                    )
                else:
                    card.clear()
        slot = self.cursor - start if len(self.order) else None
        if slot != self._selected_slot:
            if self._selected_slot is not None and self._selected_slot < len(cards):
                cards[self._selected_slot].remove_class("-selected")
            if slot is not None and slot < len(cards):
                cards[slot].add_class("-selected")
            self._selected_slot = slot

    def _clamped(self, position: int) -> int:
        return max(0, min(len(self.order) - 1, position))

    def action_move(self, dx: int, dy: int) -> None:
        if len(self.order):
            self.cursor = self._clamped(self.cursor + dx + dy * self.columns)

    def action_page(self, pages: int) -> None:
        if len(self.order):
            self.cursor = self._clamped(self.cursor + pages * self.page_size)

    def action_jump(self, position: int) -> None:
        if len(self.order):
            self.cursor = self._clamped(position if position >= 0 else len(self.order) - 1)

    @on(DigitCard.Clicked)
    def _card_clicked(self, event: DigitCard.Clicked) -> None:
        event.stop()
        position = self._page_start + event.slot
        if 0 <= position < len(self.order):
            self.focus()
            self.cursor = position


class ProbabilityBars(Widget):
    """Class probabilities as horizontal bars: all ten in class order, or the top few."""

    DEFAULT_CSS = """
    ProbabilityBars {
        height: auto;
        width: 1fr;
    }
    """

    probabilities: reactive[tuple[float, ...] | None] = reactive(None, layout=True)
    """Ten probabilities, or None before there is a prediction."""
    true_label: reactive[int | None] = reactive(None)
    """Marks the true class when it is known."""

    def __init__(self, *, top: int | None = None, id: str | None = None) -> None:
        """
        Args:
            top: show only the `top` most probable classes; None shows all ten.
            id: the widget id.
        """
        super().__init__(id=id)
        self.top = top

    def render(self) -> Content:
        if self.probabilities is None:
            return Content("")
        values = np.asarray(self.probabilities, dtype=np.float64)
        if self.top is None:
            classes = np.arange(len(values))
        else:
            classes, _ = top_k(values, self.top)
        best = int(values.argmax())
        bar_width = max(4, self.size.width - 16)
        lines: list[Content] = []
        for cls in (int(c) for c in classes):
            value = float(values[cls])
            bar = _bar(value, bar_width)
            style = "$success" if cls == self.true_label else "$primary"
            mark = "◀" if cls == best else " "
            note = " true" if cls == self.true_label else ""
            filled = bar.rstrip("·")
            line = Content.assemble(
                (f"{cls} ", "bold" if cls == best else ""),
                (filled, style),
                (bar[len(filled) :], "$text-muted"),
                f" {value:6.1%} {mark}{note}",
            )
            lines.append(line)
        return Content("\n").join(lines)


def _bar(value: float, width: int) -> str:
    """A bar of `width` cells filled in eighths; the empty part is a faint track."""
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "·")


class DigitDetail(Vertical):
    """The selected digit at full size, its verdict and its top-3 class probabilities."""

    DEFAULT_CSS = """
    DigitDetail {
        width: 32;
        height: 1fr;
        padding: 0 1;
        & > #detail-digit { width: 28; height: auto; }
        & > #detail-caption { height: auto; margin: 1 0; }
    }
    """

    FULL_HEIGHT = 14 + 3 + 4
    """Rows the full-size digit needs with its caption and bars; below it, the digit is halved."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[int | None, np.ndarray | None, int, np.ndarray | None, str] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="detail-digit")
        yield Static(id="detail-caption")
        yield ProbabilityBars(top=3, id="detail-bars")

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def show(
        self,
        index: int | None,
        image: np.ndarray | None,
        label: int,
        probabilities: np.ndarray | None,
        note: str = "",
    ) -> None:
        """Show digit `index` (with a line of `note` under its verdict), or an empty pane when
        `index` is None."""
        self._shown = (index, image, label, probabilities, note)
        digit = self.query_one("#detail-digit", Static)
        caption = self.query_one("#detail-caption", Static)
        bars = self.query_one(ProbabilityBars)
        if index is None or image is None or probabilities is None:
            digit.update("")
            caption.update("No digit matches this filter.")
            bars.probabilities = None
            return
        predicted = int(np.argmax(probabilities))
        compact = 0 < self.size.height < self.FULL_HEIGHT
        digit.update(Content.from_rich_text(render_digit(image, compact=compact)))
        style = "$success" if predicted == label else "$error bold"
        caption.update(
            Content.assemble(
                f"#{index}  true {label}  predicted ",
                (f"{predicted} {'✓' if predicted == label else '✗'}", style),
                *([(f"\n{note}", "bold")] if note else []),
            )
        )
        bars.true_label = label
        bars.probabilities = tuple(float(p) for p in probabilities)
