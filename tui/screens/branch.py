"""Branching in the app: the epoch picker (a run's kept epochs with their figures) and the
request that opens the chosen epoch as a new run: in the app's engine, or, while that engine
trains, in an engine of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.core.experiments.branch import branch_point, create_branch
from tui.core.runs.checkpoints import Checkpoint, list_checkpoints
from tui.core.runs.layout import RunError
from tui.core.training.phase import FITTING, Phase
from tui.engine import protocol as p
from tui.format import format_percent

if TYPE_CHECKING:
    from tui.app import MnistApp
    from tui.core.training.events import EpochEnded


@dataclass(frozen=True)
class KeptEpoch:
    """One epoch a branch can start from: its checkpoint and what the epoch reached."""

    epoch: int
    size: int
    """The checkpoint's bytes on disk."""
    val_accuracy: float | None = None
    val_loss: float | None = None
    accuracy: float | None = None
    loss: float | None = None


def kept_epochs(
    checkpoints: Sequence[Checkpoint], history: Sequence[EpochEnded]
) -> list[KeptEpoch]:
    """The epochs with a kept checkpoint, with their figures where the history has them."""
    figures = {e.epoch: e for e in history}
    kept: list[KeptEpoch] = []
    for checkpoint in checkpoints:
        e = figures.get(checkpoint.epoch)
        if e is None:
            kept.append(KeptEpoch(checkpoint.epoch, checkpoint.size))
        else:
            kept.append(
                KeptEpoch(
                    checkpoint.epoch,
                    checkpoint.size,
                    e.val_accuracy,
                    e.val_loss,
                    e.accuracy,
                    e.loss,
                )
            )
    return kept


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


class EpochPicker(ModalScreen[int | None]):
    """A run's kept epochs, newest last and highlighted; Enter dismisses with the highlighted
    epoch, Escape with None."""

    DEFAULT_CSS = """
    EpochPicker {
        align: center middle;
        & #picker-dialog {
            width: 72; max-width: 95%; height: auto; max-height: 90%;
            border: round $accent; background: $surface; padding: 0 1;
            border-subtitle-color: $text-muted;
        }
        & #picker-table { height: auto; max-height: 14; }
        & #picker-help { color: $text-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Branch", priority=True),
        Binding("escape,q", "close", "Close"),
    ]

    def __init__(self, run: str, epochs: Sequence[KeptEpoch]) -> None:
        super().__init__()
        self.run = run
        self.epochs = tuple(epochs)

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog") as dialog:
            dialog.border_title = f"Branch {self.run} from epoch…"
            dialog.border_subtitle = "Enter branches · Esc closes"
            yield DataTable(id="picker-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "A new run starts from the epoch's checkpoint with its settings; change what a "
                "branch may change in the panel, then t trains it.",
                id="picker-help",
                markup=False,
            )

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#picker-table", DataTable)

    def on_mount(self) -> None:
        table = self.table
        for label in ("epoch", "val acc", "val loss", "train acc", "checkpoint"):
            table.add_column(label, key=label)
        for kept in self.epochs:
            table.add_row(
                Text(str(kept.epoch), justify="right"),
                Text(format_percent(kept.val_accuracy, missing="-"), justify="right"),
                Text(_loss(kept.val_loss), justify="right"),
                Text(format_percent(kept.accuracy, missing="-"), justify="right"),
                Text(_size(kept.size), justify="right"),
                key=str(kept.epoch),
            )
        table.move_cursor(row=len(self.epochs) - 1)
        table.focus()

    @property
    def highlighted(self) -> int | None:
        row = self.table.cursor_row
        return self.epochs[row].epoch if 0 <= row < len(self.epochs) else None

    def action_choose(self) -> None:
        self.dismiss(self.highlighted)

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    def action_close(self) -> None:
        self.dismiss(None)


def no_epochs_line(run: str) -> str:
    """Why a run offers no epoch to branch from."""
    return (
        f"Run {run} kept no checkpoint to branch from (it was made before checkpoints were kept, "
        "or has saved no epoch yet)."
    )


Brancher: TypeAlias = Callable[[Path, int], Awaitable[bool]]
"""Opens epoch `int` of the run at `Path` as a branch; True when the engine took it."""


def pick_and_branch(
    app: App[Any],
    run: Path,
    history: Sequence[EpochEnded],
    branch: Brancher,
    done: Callable[[], object] | None = None,
) -> None:
    """The picker of `run`'s kept epochs; the epoch chosen is handed to `branch` (and `done`
    is called once the engine took it). A run with no kept epoch is one line instead."""
    epochs = kept_epochs(list_checkpoints(run), history)
    if not epochs:
        app.notify(no_epochs_line(run.name), severity="warning")
        return

    async def chosen(epoch: int | None) -> None:
        if epoch is not None and await branch(run, epoch) and done is not None:
            done()

    app.push_screen(EpochPicker(run.name, epochs), chosen)


def branch_held_run(app: MnistApp) -> None:
    """The dashboard's `b`: the picker for the run the app holds."""
    s = app.snapshot
    if not s.run:
        app.notify("No run to branch from yet: train one (t) or open one (R).", severity="warning")
    else:
        pick_and_branch(app, Path(s.run), s.history, lambda run, e: request_branch(app, run, e))


async def request_branch(app: MnistApp, parent: Path, epoch: int) -> bool:
    """Open epoch `epoch` of `parent` as a new run; True when that is under way (the branch then
    opens, or a notice says why not and nothing is left)."""
    if app.snapshot.phase in FITTING | {Phase.EVALUATING}:
        return await _branch_in_own_engine(app, parent, epoch)
    reply = await app.handle.command(p.Branch, path=str(parent), epoch=epoch)
    if reply is None:
        return False
    app.notify(
        f"Branch of {parent.name} at epoch {epoch}: change what it may in the panel; t trains it.",
        title="Branch",
    )
    return True


async def _branch_in_own_engine(app: MnistApp, parent: Path, epoch: int) -> bool:
    """While the app's engine trains, the branch is made from the run's files here (as `train
    --from` makes it) and opened in a new engine; the training goes on in the background."""
    setup = app.options.setup

    def make() -> str:
        point = branch_point(parent, epoch)
        run = create_branch(
            point, point.parent.hparams, setup.runs_dir, keep_checkpoints=setup.keep_checkpoints
        )
        return str(run.path)

    try:
        run = await asyncio.to_thread(make)
    except RunError as err:
        app.notify(str(err), title="No branch", severity="error")
        return False
    await app.open_in_new_engine(run)
    app.notify(
        f"Branch of {parent.name} at epoch {epoch}, in an engine of its own: change what it may "
        "in the panel; t trains it.",
        title="Branch",
    )
    return True
