"""The confusion matrix: which classes the model mixes up; a cell opens the digits behind it."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.core.inspect.predictions import (
    NUM_CLASSES,
    PredictionFilter,
    Predictions,
    accuracy,
    confusion_matrix,
    precision_recall,
)
from tui.format import format_percent
from tui.screens.browser import NO_MODEL, PredictionBrowser
from tui.widgets.footer import FittingFooter

CELL_WIDTH = 7
"""Room for a bracketed count of up to 9,999 (a class of the full test set has 1,135) and a space
before it, so that neighbouring counts and tints stay apart; with one-character row labels and no
padding, the ten columns and recall fit 80 columns exactly."""
RECALL_WIDTH = 7


def _right(text: str, width: int = CELL_WIDTH) -> str:
    """Right-aligned in a cell, leaving a space on the left so neighbouring tints stay apart."""
    return text.rjust(width)


class ConfusionScreen(Screen[None]):
    """A 10x10 heat-map of counts (rows: true class, columns: predicted) with per-class scores.

    Counts are always printed and correct predictions are bracketed, so the table reads without
    colour; colour adds intensity: green for the diagonal by recall, red for errors by count.
    Enter on a count opens the browser on that (true, predicted) pair, on a recall the true class,
    on a precision the predicted class.
    """

    DEFAULT_CSS = """
    ConfusionScreen {
        & #confusion-header { height: auto; padding: 0 1; background: $panel; }
        & #confusion-table {
            height: auto; max-height: 1fr; margin: 1 0 0 0; width: auto; max-width: 100%;
        }
        /* The cursor in reverse video: visible on every tint, and without colour (NO_COLOR). */
        & #confusion-table > .datatable--cursor { text-style: reverse bold; }
        & #confusion-help { height: auto; padding: 1 1 0 1; color: $text-muted; }
        & #confusion-empty { width: 1fr; height: 1fr; content-align: center middle; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, predictions: Predictions | None, images: np.ndarray | None) -> None:
        """
        Args:
            predictions: test-set probabilities and labels, or None before there is a model.
            images: the test images, for the browser a cell opens.
        """
        super().__init__()
        self.predictions = predictions if images is not None else None
        self.images = images
        self.matrix = (
            confusion_matrix(predictions.labels, predictions.predicted)
            if predictions is not None
            else np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        )

    def compose(self) -> ComposeResult:
        yield Static(id="confusion-header")
        if self.predictions is None:
            yield Static(NO_MODEL, id="confusion-empty")
        else:
            yield DataTable(id="confusion-table", cursor_type="cell", cell_padding=0)
            yield Static(
                "Rows: true class (P: precision) · columns: predicted class · [n] = correct.\n"
                "Enter opens the digits in a cell "
                "(recall: a whole true class; precision: a predicted one).",
                id="confusion-help",
                markup=False,
            )
        yield FittingFooter()

    def on_mount(self) -> None:
        header = self.query_one("#confusion-header", Static)
        if self.predictions is None:
            header.update("Confusion matrix")
            return
        total = int(self.matrix.sum())
        header.update(
            f"Confusion matrix  ·  {total:,} test digits  ·  "
            f"accuracy {accuracy(self.matrix):.1%}  ·  {total - int(np.trace(self.matrix)):,} wrong"
        )
        self._fill_table()
        table = self.query_one(DataTable)
        # Start on the most frequent mistake: usually the first thing worth looking at.
        off_diagonal = self.matrix - np.diag(np.diag(self.matrix))
        if off_diagonal.any():
            true, predicted = np.unravel_index(int(off_diagonal.argmax()), off_diagonal.shape)
            table.cursor_coordinate = Coordinate(int(true), int(predicted))
        table.focus()

    def _fill_table(self) -> None:
        table = self.query_one(DataTable)
        variables = self.app.get_css_variables()
        base = Color.parse(variables.get("surface", "#1e1e1e"))
        good = Color.parse(variables.get("success", "#4ebf71"))
        bad = Color.parse(variables.get("error", "#ba3c5b"))
        precision, recall = precision_recall(self.matrix)
        row_totals = self.matrix.sum(axis=1)
        errors = self.matrix - np.diag(np.diag(self.matrix))
        worst = max(1, int(errors.max()))

        for predicted in range(NUM_CLASSES):
            table.add_column(_right(str(predicted)), key=str(predicted), width=CELL_WIDTH)
        table.add_column(_right("recall", RECALL_WIDTH), key="recall", width=RECALL_WIDTH)

        def cell(text: str, tint: Color | None, amount: float) -> Text:
            if tint is None or amount <= 0:
                return Text(_right(text))
            background = base.blend(tint, min(1.0, amount))
            style = Style(
                bgcolor=background.rich_color, color=background.get_contrast_text().rich_color
            )
            return Text(_right(text), style=style)

        for true in range(NUM_CLASSES):
            cells: list[Text] = []
            for predicted in range(NUM_CLASSES):
                count = int(self.matrix[true, predicted])
                if true == predicted:
                    share = count / row_totals[true] if row_totals[true] else 0.0
                    cells.append(cell(f"[{count}]", good, 0.2 + 0.6 * share))
                else:
                    # Square root so that a handful of mistakes is still visible beside the worst.
                    cells.append(cell(f"{count}", bad, 0.85 * math.sqrt(count / worst)))
            cells.append(Text(_right(format_percent(float(recall[true]), 0), RECALL_WIDTH)))
            table.add_row(*cells, key=str(true), label=Text(str(true), style="bold"))
        table.add_row(
            *(Text(_right(format_percent(float(p), 0))) for p in precision),
            Text(_right(f"{accuracy(self.matrix):.0%}", RECALL_WIDTH), style="bold"),
            key="precision",
            label=Text("P", style="bold"),
        )

    def filter_at(self, coordinate: Coordinate) -> PredictionFilter:
        """What the browser should show for a table cell."""
        row, column = coordinate.row, coordinate.column
        if row < NUM_CLASSES and column < NUM_CLASSES:
            return PredictionFilter.pair(row, column)
        if row < NUM_CLASSES:
            return PredictionFilter(true=row)
        if column < NUM_CLASSES:
            return PredictionFilter(predicted=column)
        return PredictionFilter()

    @on(DataTable.CellSelected)
    def _open_cell(self, event: DataTable.CellSelected) -> None:
        event.stop()
        chosen = self.filter_at(event.coordinate)
        if self.predictions is None:
            return
        self.app.push_screen(PredictionBrowser(self.predictions, self.images, filter=chosen))

    def action_close(self) -> None:
        self.dismiss(None)
