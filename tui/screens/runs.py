"""The runs screen: past runs in a table, one reopened with Enter, several compared in one plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from tui.core.training.events import EpochEnded
from tui.format import count, format_percent
from tui.widgets.compare import ComparePlot, RunCurve
from tui.widgets.footer import FittingFooter

if TYPE_CHECKING:
    from tui.core.runs.catalog import RunSummary

MARK = "●"
"""Shown beside a run marked for comparison."""
WARNING = "⚠"
"""Starts the note of a broken run, so it stands out without colour too."""
LIVE = "● live"
"""In the time column of a run that is training now: a word, so it reads without colour."""
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "),
    ("started", "started"),
    ("preset", "preset"),
    ("epochs", "epochs"),
    ("best", "best val"),
    ("test", "test"),
    ("time", "time"),
    ("note", "note"),
)
"""(key, label) of the table's columns, left to right."""


def best_cell(summary: RunSummary) -> Text:
    """The best validation accuracy; for a run without a validation set, its best training
    accuracy, said to be that (never passed off as validation)."""
    if summary.best_val_accuracy is not None or summary.best_accuracy is None:
        return Text(format_percent(summary.best_val_accuracy), justify="right")
    return Text.assemble(
        format_percent(summary.best_accuracy), (" train", "dim italic"), justify="right"
    )


def test_cell(summary: RunSummary, mixed: bool) -> Text:
    """The test accuracy, with the size of its test set when the listed runs differ in it."""
    text = Text(format_percent(summary.test_accuracy), justify="right")
    if mixed and summary.test_accuracy is not None and summary.test_samples is not None:
        count = summary.test_samples
        size = f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"{count:,}"
        text.append(f" of {size}", "dim")
    return text


def _history(path: Path) -> list[EpochEnded]:
    """A run's epochs; none when its metrics cannot be read (it keeps its note in the list)."""
    from tui.core.runs import layout

    try:
        return layout.RunDirectory.open(path).load_history()
    except layout.RunError:
        return []


def format_duration(seconds: float) -> str:
    """`42s`, `3m 05s` or `1h 02m`: a training time at a glance."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class CompareScreen(ModalScreen[None]):
    """The accuracy curves of the marked runs overlaid; Escape (or c, q) closes it."""

    DEFAULT_CSS = """
    CompareScreen {
        align: center middle;
        & #compare-dialog {
            width: 95%; height: 90%;
            border: round $accent; background: $surface;
            border-subtitle-color: $text-muted;
        }
        & #compare-plot { height: 1fr; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,c,q", "close", "Close")]

    def __init__(self, curves: Sequence[RunCurve]) -> None:
        super().__init__()
        self.curves = tuple(curves)

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog") as dialog:
            dialog.border_title = f"Accuracy of {len(self.curves)} runs"
            dialog.border_subtitle = "Esc closes"
            yield ComparePlot(self.curves, id="compare-plot")

    @property
    def plot(self) -> ComparePlot:
        return self.query_one("#compare-plot", ComparePlot)

    def action_close(self) -> None:
        self.dismiss(None)


class RunsScreen(Screen[Path | None]):
    """Every run under a runs folder, newest first, including broken ones with a note.

    Contract: the screen dismisses with the path of the run opened with Enter (or a click on
    the highlighted row), or with None on Escape. Opening does not check that the run can be
    resumed: the caller resumes it, or attaches to the engine training it when it is live.
    Space marks runs; `c` overlays the accuracy curves of the marked runs; `r` lists again.
    """

    DEFAULT_CSS = """
    RunsScreen {
        & #runs-header { height: 1; padding: 0 1; background: $panel; }
        /* A long note is cut at the edge: #runs-detail shows it in full, no scrollbar needed. */
        & #runs-table { height: 1fr; overflow-x: hidden; }
        & #runs-detail {
            height: auto; max-height: 5; padding: 0 1;
            border-top: solid $primary 40%; color: $text-muted;
        }
        & #runs-detail.-broken { color: $text-warning; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding, so Enter opens the run rather than being taken by the table.
        Binding("enter", "open", "Open", priority=True),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "close", "Close"),
    ]

    @dataclass
    class RunsListed(Message):
        """The loading worker read the runs folder."""

        root: Path
        summaries: tuple[RunSummary, ...]
        """Newest first, as `list_runs` returned them."""

    summaries: reactive[tuple[RunSummary, ...]] = reactive(tuple, init=False)
    """The listed runs, in table order."""
    marked: reactive[frozenset[Path]] = reactive(frozenset, init=False)
    """Runs marked with space for comparison."""
    loading: reactive[bool] = reactive(True, init=False)
    """The folder is being read."""

    def __init__(self, root: str | Path | None = None) -> None:
        """Build the screen; the runs are read once it is mounted.

        Args:
            root: the folder holding the runs; None means `$MNIST_TUI_RUNS`, else `./runs`.
        """
        super().__init__()
        self.root = root
        self.resolved_root: Path | None = None
        """The folder actually read, once the worker has resolved `root`."""
        self.error: str | None = None
        """Why the folder could not be listed at all, if it could not."""

    def compose(self) -> ComposeResult:
        yield Static(id="runs-header", markup=False)
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-detail", markup=False)
        yield FittingFooter()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#runs-table", DataTable)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.table.add_column(label, key=key)
        self.table.focus()
        self._show_header()
        self._load()

    # --- loading ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="runs")
    def _load(self) -> None:
        from tui.core.runs import catalog, layout

        # The epochs themselves are read only for the runs compared (`c`): a thousand runs'
        # metrics would double the time to a full list.
        root = layout.runs_root(self.root)
        self.post_message(self.RunsListed(root, tuple(catalog.list_runs(root))))

    @on(RunsListed)
    def _listed(self, message: RunsListed) -> None:
        self.resolved_root = message.root
        self.error = None
        present = {s.path for s in message.summaries}
        self.marked = frozenset(p for p in self.marked if p in present)
        self.loading = False
        self.summaries = message.summaries

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "runs" or event.state != WorkerState.ERROR:
            return
        err = event.worker.error
        self.error = f"{type(err).__name__}: {err}" if err else "unknown error"
        self.loading = False
        self._show_header()
        self._show_detail()

    def action_reload(self) -> None:
        self.loading = True
        self._load()

    # --- showing ------------------------------------------------------------------------------
    def watch_summaries(self, old: tuple[RunSummary, ...], new: tuple[RunSummary, ...]) -> None:
        table = self.table
        # Keep the cursor on the same run across a reload, wherever that run now sits.
        row = table.cursor_row
        kept = str(old[row].path) if old and 0 <= row < len(old) else None
        table.clear()
        colors = self.app.get_css_variables()
        warning = f"bold {colors.get('text-warning', 'yellow')}"
        success = colors.get("text-success", "green")
        # Accuracies measured on test sets of different sizes are not put side by side bare.
        mixed = len({s.test_samples for s in new if s.test_accuracy is not None}) > 1
        for summary in new:
            started = "?" if summary.started is None else f"{summary.started:%Y-%m-%d %H:%M}"
            table.add_row(
                MARK if summary.path in self.marked else " ",
                started,
                summary.preset,
                Text(str(summary.epochs_done), justify="right"),
                best_cell(summary),
                test_cell(summary, mixed),
                Text(LIVE, style=f"bold {success}")
                if summary.live
                else Text(format_duration(summary.duration_seconds), justify="right"),
                Text(f"{WARNING} {summary.problem}", style=warning) if summary.problem else "",
                key=str(summary.path),
            )
        if kept is not None and kept in table.rows:
            table.move_cursor(row=table.get_row_index(kept))
        self._show_header()
        self._show_detail()

    def watch_marked(self, old: frozenset[Path], new: frozenset[Path]) -> None:
        for path in old ^ new:
            if str(path) in self.table.rows:
                self.table.update_cell(str(path), "mark", MARK if path in new else " ")
        self._show_header()

    def watch_loading(self) -> None:
        self._show_header()
        self._show_detail()

    def _show_header(self) -> None:
        root = self.resolved_root if self.resolved_root is not None else self.root
        where = f"Runs in {root}" if root is not None else "Runs"
        if self.error is not None:
            text = f"{where}  ·  cannot be listed: {self.error}"
        elif self.loading:
            text = f"{where}  ·  loading…"
        else:
            broken = sum(1 for s in self.summaries if s.problem)
            parts = [where, count(len(self.summaries), "run")]
            if live := sum(1 for s in self.summaries if s.live):
                parts.append(f"{live} live")
            if broken:
                parts.append(f"{broken} with problems")
            if self.marked:
                parts.append(f"{len(self.marked)} marked")
            text = "  ·  ".join(parts)
        self.query_one("#runs-header", Static).update(text)

    def _highlighted(self) -> RunSummary | None:
        table = self.table
        if not self.summaries or not table.row_count:
            return None
        row = min(max(table.cursor_row, 0), len(self.summaries) - 1)
        return self.summaries[row]

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#runs-detail", Static)
        summary = self._highlighted()
        detail.set_class(summary is not None and summary.problem is not None, "-broken")
        if self.error is not None:
            text = "Check the folder and press r to list again."
        elif summary is None:
            text = "" if self.loading else "No runs yet: runs appear here once training starts."
        elif summary.problem:
            text = f"{summary.name}\n{WARNING} {summary.problem}"
        elif summary.live:
            text = (
                f"{summary.name}\nAn engine holds it: Enter watches it · space marks · c compares"
            )
        else:
            text = f"{summary.name}\nEnter opens · space marks · c compares the marked runs"
        detail.update(text)

    # --- actions ------------------------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        summary = self._highlighted()
        if summary is not None:
            self.marked = self.marked ^ {summary.path}

    def action_compare(self) -> None:
        chosen = [s for s in self.summaries if s.path in self.marked]
        if len(chosen) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        curves = [RunCurve.from_history(s.name, _history(s.path)) for s in chosen]
        drawable = [c for c in curves if c.epochs]
        left_out = [c.name for c in curves if not c.epochs]
        if len(drawable) < 2:
            self.notify(
                "Fewer than two of the marked runs have readable epochs; mark others.",
                severity="warning",
            )
            return
        if left_out:
            self.notify(f"Left out, no readable epochs: {', '.join(left_out)}", severity="warning")
        self.app.push_screen(CompareScreen(drawable))

    def action_open(self) -> None:
        summary = self._highlighted()
        if summary is not None:
            self.dismiss(summary.path)

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        # Only a click gets here (Enter is the screen's): a click on the highlighted row opens it.
        event.stop()
        self.action_open()

    def action_close(self) -> None:
        self.dismiss(None)
