"""The compare screen: the marked runs' curves in one plot (a branch drawn from its branch point
on its parent's curve) and, below, the table `mnist-tui compare` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.widgets.compare import ComparePlot, RunCurve, marker_for

if TYPE_CHECKING:
    from tui.core.experiments.compare import Comparison

FIGURES = 4
"""The table's last columns (best val acc, test acc, epochs, time): figures, aligned right."""
WIDE = 100
"""From this width on, the table names each run; narrower, its marker in the plot stands in."""
SHORT_TITLES = {"best val acc": "best val", "test acc": "test"}
"""The figures' titles as the runs table words them, so the table fits 80 columns."""


class CompareScreen(ModalScreen[None]):
    """The accuracy curves of the marked runs overlaid, what differed between them below;
    Escape (or c, q) closes it."""

    DEFAULT_CSS = """
    CompareScreen {
        align: center middle;
        & #compare-dialog {
            width: 95%; height: 90%;
            border: round $accent; background: $surface;
            border-subtitle-color: $text-muted;
        }
        & #compare-plot { height: 1fr; min-height: 8; }
        & #compare-table { height: auto; max-height: 10; }
        & #compare-same { height: auto; padding: 0 1; color: $text-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,c,q", "close", "Close")]

    def __init__(self, curves: Sequence[RunCurve], comparison: Comparison | None = None) -> None:
        super().__init__()
        self.curves = tuple(curves)
        self.comparison = comparison
        self.markers = {curve.name: marker_for(i) for i, curve in enumerate(self.curves)}
        """Each plotted run's marker, which the table's rows start with too."""
        self._named: bool | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog") as dialog:
            dialog.border_title = f"Accuracy of {len(self.curves)} runs"
            dialog.border_subtitle = "Esc closes"
            yield ComparePlot(self.curves, id="compare-plot")
            if self.comparison is not None:
                # Wider than the screen, it scrolls sideways (arrows) rather than wrap or hide.
                yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)
                if not self.comparison.settings:
                    yield Static("No setting differs between these runs.", id="compare-same")

    def on_resize(self, event: Resize) -> None:
        named = event.size.width >= WIDE
        if self.comparison is not None and named != self._named:
            self._named = named
            self._fill(self.comparison, named)

    def _fill(self, comparison: Comparison, named: bool) -> None:
        """The rows `mnist-tui compare` prints, each run (and a branch's parent, when it is
        plotted too) shown by its plot marker; the name beside it when `named`."""
        table = self.table
        table.clear(columns=True)
        header = comparison.header()
        for title in header:  # not keyed: the `epochs` setting and the epochs trained share one
            table.add_column(SHORT_TITLES.get(title, title))
        first_figure = len(header) - FIGURES
        for run, row in zip(comparison.runs, comparison.rows(), strict=True):
            marker = self.markers.get(run.name, " ")
            row[0] = f"{marker} {run.name}" if named else marker
            parent = Path(run.parent).name if run.parent is not None else None
            if parent in self.markers and (parent_marker := self.markers[parent]):
                row[1] = f"{parent_marker}@{run.parent_epoch}"
            table.add_row(
                *(
                    Text(cell, justify="right" if i >= first_figure else "left")
                    for i, cell in enumerate(row)
                )
            )

    @property
    def plot(self) -> ComparePlot:
        return self.query_one("#compare-plot", ComparePlot)

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#compare-table", DataTable)

    def action_close(self) -> None:
        self.dismiss(None)
