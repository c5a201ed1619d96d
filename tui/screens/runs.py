"""The runs screen: past runs in a table, branches under their parent, with notes and tags; one
reopened with Enter or branched with b, several compared with c, the list filtered with /."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import Worker, WorkerState

from tui.core.runs.catalog import as_tree
from tui.core.training.events import EpochEnded
from tui.format import count
from tui.screens.branch import Brancher, pick_and_branch
from tui.screens.compare import CompareScreen
from tui.screens.run_cells import (
    COLUMNS,
    LIVE,
    MARK,
    WARNING,
    best_cell,
    format_duration,
    matches,
    note_cell,
    started_cell,
    test_cell,
)
from tui.widgets.compare import RunCurve
from tui.widgets.footer import FittingFooter

if TYPE_CHECKING:
    from tui.core.runs.catalog import RunSummary

__all__ = ["LIVE", "MARK", "WARNING", "CompareScreen", "RunsScreen"]


def _history(path: Path) -> list[EpochEnded]:
    """A run's epochs; none when its metrics cannot be read (it keeps its note in the list)."""
    from tui.core.runs import layout

    try:
        return layout.RunDirectory.open(path).load_history()
    except layout.RunError:
        return []


class RunsScreen(Screen[Path | None]):
    """Every run under a runs folder, newest first, each branch under its parent, including
    broken ones with a note.

    Contract: the screen dismisses with the path of the run opened with Enter (or a click on
    the highlighted row), or with None on Escape. Opening does not check that the run can be
    resumed: the caller resumes it, or attaches to the engine training it when it is live.
    Space marks runs; `c` compares the marked runs; `b` picks a kept epoch of the highlighted
    run and hands it to `branch` (then the screen dismisses with None); `n` writes its note
    and tags; `/` filters the list; `r` lists again.
    """

    DEFAULT_CSS = """
    RunsScreen {
        & #runs-header { height: 1; padding: 0 1; background: $panel; }
        /* A long note is cut at the edge: #runs-detail shows it in full, no scrollbar needed. */
        & #runs-table { height: 1fr; overflow-x: hidden; }
        & #runs-filter-bar { height: 1; display: none; padding: 0 0 0 1; }
        & #runs-filter-bar.-shown { display: block; }
        & #runs-filter-bar Label { width: auto; color: $text-muted; }
        & #runs-filter { width: 1fr; }
        & #runs-detail {
            height: auto; max-height: 6; padding: 0 1;
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
        Binding("b", "branch", "Branch"),
        Binding("n", "note", "Note"),
        Binding("slash", "filter", "Filter", key_display="/"),
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
    """The listed runs, newest first."""
    marked: reactive[frozenset[Path]] = reactive(frozenset, init=False)
    """Runs marked with space for comparison."""
    loading: reactive[bool] = reactive(True, init=False)
    """The folder is being read."""
    filter_text: reactive[str] = reactive("", init=False)
    """The words every shown run holds (in its name, preset, note or tags); empty: all."""

    def __init__(self, root: str | Path | None = None, *, branch: Brancher | None = None) -> None:
        """Build the screen; the runs are read once it is mounted.

        Args:
            root: the folder holding the runs; None means `$MNIST_TUI_RUNS`, else `./runs`.
            branch: opens a run's epoch as a branch (the app's engine); None: `b` says why not.
        """
        super().__init__()
        self.root = root
        self.branch = branch
        self.resolved_root: Path | None = None
        """The folder actually read, once the worker has resolved `root`."""
        self.error: str | None = None
        """Why the folder could not be listed at all, if it could not."""
        self.shown: tuple[tuple[RunSummary, int], ...] = ()
        """The rows of the table: each run shown and its depth in the tree of branches."""

    def compose(self) -> ComposeResult:
        yield Static(id="runs-header", markup=False)
        with Horizontal(id="runs-filter-bar"):
            # Said in words, so the bar reads as a filter without colour too.
            yield Label("filter: ")
            yield Input(
                compact=True,
                placeholder="words or #tags; Enter keeps it, Esc clears it",
                id="runs-filter",
            )
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-detail", markup=False)
        yield FittingFooter()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#runs-table", DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#runs-filter", Input)

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
    def watch_summaries(self) -> None:
        self._fill()

    def watch_filter_text(self) -> None:
        self._fill()

    def _fill(self) -> None:
        table = self.table
        # Keep the cursor on the same run across a reload, wherever that run now sits.
        highlighted = self._highlighted()
        kept = str(highlighted.path) if highlighted is not None else None
        table.clear()
        colors = self.app.get_css_variables()
        warning = f"bold {colors.get('text-warning', 'yellow')}"
        success = colors.get("text-success", "green")
        words = self.filter_text.split()
        listed = [s for s in self.summaries if matches(s, words)]
        self.shown = tuple(as_tree(listed))
        # Accuracies measured on test sets of different sizes are not put side by side bare.
        mixed = len({s.test_samples for s in listed if s.test_accuracy is not None}) > 1
        for summary, depth in self.shown:
            table.add_row(
                MARK if summary.path in self.marked else " ",
                started_cell(summary, depth),
                summary.preset,
                Text(str(summary.epochs_done), justify="right"),
                best_cell(summary),
                test_cell(summary, mixed),
                Text(LIVE, style=f"bold {success}")
                if summary.live
                else Text(format_duration(summary.duration_seconds), justify="right"),
                note_cell(summary, warning),
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
            if self.filter_text.strip():
                parts[1] = f"{len(self.shown)} of {parts[1]} match {self.filter_text.strip()!r}"
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
        if not self.shown or not table.row_count:
            return None
        row = min(max(table.cursor_row, 0), len(self.shown) - 1)
        return self.shown[row][0]

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#runs-detail", Static)
        summary = self._highlighted()
        detail.set_class(summary is not None and summary.problem is not None, "-broken")
        if self.error is not None:
            text = "Check the folder and press r to list again."
        elif summary is None:
            if self.loading:
                text = ""
            elif self.summaries:
                text = "No run matches the filter: / changes it, Esc clears it."
            else:
                text = "No runs yet: runs appear here once training starts."
        elif summary.problem:
            text = f"{summary.name}\n{WARNING} {summary.problem}"
        else:
            lines = [summary.name]
            if summary.parent is not None:
                lines[0] += (
                    f"  ·  branch of {Path(summary.parent).name} at epoch {summary.parent_epoch}"
                )
            if summary.note:
                lines.append(summary.note)
            if summary.tags:
                lines.append("tags: " + " ".join(f"#{tag}" for tag in summary.tags))
            if summary.live:
                lines.append("An engine holds it: Enter watches it · space marks · c compares")
            else:
                lines.append("Enter opens · b branches · n notes · space marks · c compares")
            text = "\n".join(lines)
        detail.update(text)

    # --- actions ------------------------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        summary = self._highlighted()
        if summary is not None:
            self.marked = self.marked ^ {summary.path}

    def action_compare(self) -> None:
        from tui.core.experiments.compare import compare
        from tui.core.runs.layout import RunError

        # Tree order, so a parent's curve (and marker) is drawn before its branches'.
        chosen = [s for s, _ in as_tree(self.summaries) if s.path in self.marked]
        if len(chosen) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        names = {s.name for s in chosen}
        curves = [
            RunCurve.from_history(s.name, _history(s.path), since=_drawn_from(s, names))
            for s in chosen
        ]
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
        try:
            comparison = compare([s.path for s in chosen if s.name not in left_out])
        except RunError as err:
            self.notify(str(err), severity="warning")
            comparison = None
        self.app.push_screen(CompareScreen(drawable, comparison))

    def action_branch(self) -> None:
        summary = self._highlighted()
        if summary is None:
            return
        if self.branch is None:
            self.notify("Branching needs the app's engine.", severity="warning")
            return
        pick_and_branch(
            self.app, summary.path, _history(summary.path), self.branch, lambda: self.dismiss(None)
        )

    def action_note(self) -> None:
        from tui.core.experiments.compare import training_refusal
        from tui.screens.note import NoteScreen

        summary = self._highlighted()
        if summary is None:
            return
        refused = training_refusal(summary.path)
        if refused is not None:
            self.notify(refused[:1].upper() + refused[1:], severity="warning")
            return

        def written(done: bool | None) -> None:
            if done:
                self.action_reload()

        self.app.push_screen(NoteScreen(summary.path, summary.note, summary.tags), written)

    def action_filter(self) -> None:
        self.query_one("#runs-filter-bar").add_class("-shown")
        self.filter_input.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        self.filter_text = event.value

    def _leave_filter(self, *, clear: bool) -> None:
        if clear:
            self.filter_input.value = ""
            self.filter_text = ""
        if not self.filter_text:
            self.query_one("#runs-filter-bar").remove_class("-shown")
        self.table.focus()

    def action_open(self) -> None:
        if self.filter_input.has_focus:
            self._leave_filter(clear=False)  # Enter keeps the filter and gives the list back
            return
        summary = self._highlighted()
        if summary is not None:
            self.dismiss(summary.path)

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        # Only a click gets here (Enter is the screen's): a click on the highlighted row opens it.
        event.stop()
        self.action_open()

    def action_close(self) -> None:
        if self.filter_input.has_focus or self.filter_text:
            self._leave_filter(clear=True)
            return
        self.dismiss(None)


def _drawn_from(summary: RunSummary, compared: set[str]) -> int:
    """The first epoch a run's curve shows: a branch compared with its parent is drawn from its
    branch point, where it leaves the parent's curve; any other run from its first epoch."""
    if summary.parent is not None and Path(summary.parent).name in compared:
        return summary.parent_epoch or 1
    return 1
