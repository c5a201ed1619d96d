"""A sweep's screen: its trials (the best marked), the objective over them, the trial in
progress's curve and the settings' importances, read again every two seconds; Enter opens a
trial's run, `s`/`S` stop the sweep. Also the list of sweeps that `W` opens, and the small app
that `mnist-tui attach SWEEP` runs.

Optuna is imported with this module, so only once a sweep screen is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from tui.core.experiments.space import show
from tui.core.experiments.study import SweepError, TrialResult
from tui.core.experiments.sweep_status import (
    DEFAULT_ROOT,
    SWEEP_JSON,
    SweepNotRunning,
    is_live,
    live_sweeps,
    read_status,
    stop_sweep,
)
from tui.core.experiments.sweep_view import EVALUATOR, SweepView, SweepWatch
from tui.engine.registry import RegistryError, state_dir
from tui.format import format_percent
from tui.screens.confirm import ConfirmScreen
from tui.widgets.compare import ComparePlot, RunCurve
from tui.widgets.footer import FittingFooter
from tui.widgets.objective import ObjectivePlot

POLL_EVERY = 2.0
"""Seconds between two readings of the store and the status: a trial lasts far longer."""
BEST = "*"
"""Marks the best trial so far, a character so that it reads without colour."""


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s" if seconds < 600 else f"{seconds / 60:.0f}m"


class SweepScreen(Screen[Path | None]):
    """One sweep, live while it runs.

    Contract: dismisses with the run directory of the trial opened with Enter, or None on
    Escape; the caller opens that run as the runs screen's Enter does.
    """

    DEFAULT_CSS = """
    SweepScreen {
        & #sweep-header { height: auto; max-height: 2; padding: 0 1; background: $panel; }
        & #sweep-trials { height: 1fr; min-height: 4; }
        & #sweep-plots { height: 1fr; min-height: 8; max-height: 16; }
        & #sweep-plots > * { width: 1fr; }
        & #sweep-importances { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    }
    """

    AUTO_FOCUS = "#sweep-trials"
    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding, so Enter opens the trial's run rather than being taken by the table.
        Binding("enter", "open", "Open run", priority=True),
        Binding("s", "stop(False)", "Stop after trial"),
        Binding("S", "stop(True)", "Stop now"),
        Binding("escape", "close", "Close"),
    ]

    @dataclass
    class SweepRead(Message):
        """The polling worker read the sweep again."""

        view: SweepView

    view: reactive[SweepView | None] = reactive(None, init=False)
    """The latest reading; every part of the screen draws from it."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.error: str | None = None
        self._watch: SweepWatch | None = None
        self._reading = False

    def compose(self) -> ComposeResult:
        yield Static(f"Sweep {self.path.name}  ·  reading…", id="sweep-header", markup=False)
        yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="sweep-plots"):
            yield ObjectivePlot(id="sweep-objective")
            yield ComparePlot(id="sweep-curve")
        yield Static(id="sweep-importances", markup=False)
        yield FittingFooter()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#sweep-trials", DataTable)

    def on_mount(self) -> None:
        self._poll()
        self.set_interval(POLL_EVERY, self._poll)

    # --- reading ------------------------------------------------------------------------------
    def _poll(self) -> None:
        if not self._reading:  # a slow store (a remote database) is never read twice at once
            self._reading = True
            self._read()

    @work(thread=True, exit_on_error=False, group="sweep")
    def _read(self) -> None:
        try:
            if self._watch is None:
                self._watch = SweepWatch(self.path)
            self.post_message(self.SweepRead(self._watch.read()))
        finally:
            self._reading = False

    @on(SweepRead)
    def _got(self, message: SweepRead) -> None:
        self.error = None
        self.view = message.view

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "sweep" or event.state != WorkerState.ERROR:
            return
        err = event.worker.error
        self.error = str(err) if isinstance(err, SweepError) else f"{type(err).__name__}: {err}"
        self._show_header()

    # --- showing ------------------------------------------------------------------------------
    def watch_view(self, old: SweepView | None, new: SweepView | None) -> None:
        if new is None:
            return
        self._show_header()
        self._show_table(old, new)
        self.query_one(ObjectivePlot).trials = new.trials
        curve = RunCurve.from_history(f"trial {new.shown}", new.curve)
        self.query_one(ComparePlot).curves = (curve,) if curve.epochs else ()
        self.query_one("#sweep-importances", Static).update(_importances(new))

    def _show_header(self) -> None:
        view = self.view
        parts = [f"Sweep {self.path.name}"]  # a long name wraps the header to a second line
        if self.error is not None:
            parts.append(f"cannot be read: {self.error}")
        elif view is not None:
            parts.append(_progress(view))
            if view.best is not None and view.best.value is not None:
                parts.append(f"best {format_percent(view.best.value)} (trial {view.best.number})")
        self.query_one("#sweep-header", Static).update(" · ".join(parts))

    def _show_table(self, old: SweepView | None, new: SweepView) -> None:
        """Add the new trials' rows and rewrite the rows that changed, in place, so that the
        cursor stays where the user put it while the sweep goes on.

        The columns get widths measured here: the table measures its own only once idle,
        after it may have painted (and cached) the new rows at the old widths.
        """
        table = self.table
        best = new.best.number if new.best is not None else None
        rows = {t.number: _cells(t, t.number == best, new.varied) for t in new.trials}
        labels = ("trial", "state", *new.varied, "best val", "epochs", "time")
        widths = [
            max([len(label), *(_width(cells[i]) for cells in rows.values())])
            for i, label in enumerate(labels)
        ]
        if old is None or [c.width for c in table.columns.values()] != widths:
            cursor = table.cursor_row
            table.clear(columns=True)
            for label, width in zip(labels, widths, strict=True):
                table.add_column(label, key=label, width=width)
            for number, cells in rows.items():
                table.add_row(*cells, key=str(number))
            if table.row_count:
                table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
            return
        before = {t.number: t for t in old.trials}
        was_best = old.best.number if old.best is not None else None
        for trial in new.trials:
            key = str(trial.number)
            if key not in table.rows:
                table.add_row(*rows[trial.number], key=key)
            elif before.get(trial.number) != trial or trial.number in (best, was_best):
                for column, cell in zip(list(table.columns), rows[trial.number], strict=True):
                    table.update_cell(key, column, cell)

    # --- actions ------------------------------------------------------------------------------
    def _highlighted(self) -> TrialResult | None:
        view, table = self.view, self.table
        if view is None or not view.trials or not table.row_count:
            return None
        return view.trials[min(max(table.cursor_row, 0), len(view.trials) - 1)]

    def action_open(self) -> None:
        trial = self._highlighted()
        if trial is None or self.view is None:
            return
        if trial.state == "running":  # its run is the sweep's to write until the trial ends
            self.notify(
                f"Trial {trial.number} is training: its curve is drawn here, and Enter opens "
                "its run once it ends.",
                severity="warning",
            )
            return
        run = self.view.runs.get(trial.number)
        if run is None:
            self.notify(f"Trial {trial.number} has no run yet.", severity="warning")
            return
        self.dismiss(run)

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        event.stop()  # only a click gets here (Enter is the screen's)
        self.action_open()

    def action_stop(self, now: bool) -> None:
        if self.view is None or not self.view.live:
            self.notify(f"The sweep {self.path.name} is not running.", severity="warning")
            return
        # No trial number in the question: the trial in progress may change while it is open.
        if now:
            question = "Stop the sweep now?"
            detail = "The trial in progress is dropped; `sweep --resume` runs it again."
        else:
            question = "Stop the sweep after the trial in progress?"
            detail = "It trains to its end and no other starts; `sweep --resume` carries on."
        self.app.push_screen(
            ConfirmScreen(question, detail, yes="Stop"), lambda yes: self._stop(yes, now)
        )

    def _stop(self, yes: bool | None, now: bool) -> None:
        if not yes:
            return
        try:
            stop_sweep(self.path, now)
        except SweepNotRunning as err:
            self.notify(str(err), severity="error")
            return
        self.notify("Stopping now." if now else "Stopping after the trial in progress.")
        self._poll()

    def action_close(self) -> None:
        self.dismiss(None)


def _progress(view: SweepView) -> str:
    """ "running, 3 of 10 trials finished, trial 3 in progress": numbers as the table's."""
    finished = sum(t.state in ("complete", "pruned") for t in view.trials)
    target = f" of {view.target}" if view.target is not None else ""
    if not view.live:
        return f"not running, {finished}{target} trials finished"
    phase = view.status.phase if view.status is not None else "running"
    text = f"{phase}, {finished}{target} trials finished"
    running = [str(t.number) for t in view.trials if t.state == "running"]
    if running:
        text += f", trial {', '.join(running)} in progress"
    return text


def _cells(trial: TrialResult, best: bool, varied: tuple[str, ...]) -> list[str | Text]:
    """A trial's row: the best one's number marked, the settings that vary, its outcome."""
    return [
        Text(f"{BEST if best else ' '}{trial.number:>4}", justify="right"),
        _state(trial),
        *(show(trial.params[n]) if n in trial.params else "-" for n in varied),
        Text(format_percent(trial.value, missing="-"), justify="right"),
        Text(str(trial.epochs) if trial.state != "running" else "-", justify="right"),
        Text(format_seconds(trial.seconds), justify="right"),
    ]


def _width(cell: str | Text) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len


def _state(trial: TrialResult) -> Text:
    # The words carry the meaning; the colours only help.
    style = {"complete": "", "pruned": "yellow", "failed": "red", "running": "bold cyan"}
    return Text(trial.state, style=style.get(trial.state, "dim"))


def _importances(view: SweepView) -> str:
    if not view.importances:
        return view.importance_note
    complete = sum(t.state == "complete" for t in view.trials)
    shares = "  ".join(f"{name} {share:.0%}" for name, share in view.importances)
    return f"Importance ({EVALUATOR}, {complete} complete trials): {shares}"


class SweepListScreen(Screen[Path | None]):
    """The sweeps under ./sweeps, newest first, after the live sweeps kept elsewhere (`--out`,
    or started from another folder); Enter opens one's screen. Dismisses with the run
    directory of the trial opened there, or None."""

    DEFAULT_CSS = """
    SweepListScreen #sweep-list-header { height: 1; padding: 0 1; background: $panel; }
    """
    AUTO_FOCUS = "#sweep-list"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        here = sorted((p for p in self.root.glob("*") if (p / SWEEP_JSON).is_file()), reverse=True)
        known = {p.resolve() for p in here}
        elsewhere = [p for p in _live_sweeps() if p.resolve() not in known]
        header = f"Sweeps in {self.root.resolve()}"
        if elsewhere:
            header = f"Live sweeps elsewhere, then sweeps in {self.root.resolve()}"
        yield Static(header, id="sweep-list-header", markup=False)
        if here or elsewhere:
            options = [Option(_summary(p, where=True), id=str(p)) for p in elsewhere]
            options += [Option(_summary(p), id=str(p)) for p in here]
            yield OptionList(*options, id="sweep-list")
        else:
            yield Static("No sweeps here yet: `mnist-tui sweep --detach` starts one.", markup=False)
        yield FittingFooter()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.app.push_screen(SweepScreen(event.option.id), self._trial_chosen)

    def _trial_chosen(self, run: Path | None) -> None:
        if run is not None:
            self.dismiss(run)

    def action_close(self) -> None:
        self.dismiss(None)


def _live_sweeps() -> list[Path]:
    """This user's live sweeps wherever their folders are (none when the state directory
    cannot be trusted: `ps` says why)."""
    try:
        return live_sweeps(state_dir(create=False))
    except RegistryError:
        return []


def _summary(folder: Path, *, where: bool = False) -> Text:
    """A sweep's name and where it stands, from its status file (the study is read only once
    the sweep is opened); with `where`, the folder it is in."""
    status = read_status(folder)
    parts: list[str | tuple[str, str]] = [(folder.name, "bold")]
    if status is not None:
        if is_live(folder):
            said = f"running, {status.progress}, best {status.best}"
        else:
            target = f" of {status.trials}" if status.trials is not None else ""
            said = f"{status.finished}{target} trials finished, best {status.best}"
        parts += ["  ", (said, "dim")]
    if where:
        parts += ["  ", (f"in {folder.parent}", "dim")]
    return Text.assemble(*parts)


class SweepApp(App[Path | None]):
    """`mnist-tui attach SWEEP`: the sweep's screen alone; it returns the run of the trial
    opened with Enter, which the app then opens as `--resume` does."""

    CSS_PATH = str(Path(__file__).resolve().parents[1] / "app.tcss")
    TITLE = "mnist-tui"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def on_mount(self) -> None:
        self.push_screen(SweepScreen(self.path), self.exit)
