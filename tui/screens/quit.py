"""Quitting while training: leave the run going in the background, or stop it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tui.core.training.phase import FITTING, Phase

if TYPE_CHECKING:
    from tui.core.training.snapshot import Snapshot

DETACH = "detach"
STOP = "stop"
QUIT = "quit"
"""Training ended while the dialog was open: nothing is left to leave or stop."""
RUNNING = FITTING | {Phase.EVALUATING}
"""The phases in which quitting has something to leave running."""


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with DETACH, STOP, QUIT (once training has ended), or None to stay.

    It follows the engine: when training ends while it is open, the question becomes a plain
    "quit?", and any answer but "stay" quits.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l,d", "answer('detach')", "Leave it training"),
        Binding("s", "answer('stop')", "Stop and quit"),
        Binding("q", "answer('quit')", "Quit", show=False),
        Binding("escape,n", "answer(None)", "Stay"),
    ]

    def __init__(self, run: str) -> None:
        super().__init__()
        self.run = run
        self.running = True
        """Whether training still runs (the dialog's question depends on it)."""

    def compose(self) -> ComposeResult:
        name = Path(self.run).name if self.run else ""
        back = f"mnist-tui attach {name}".strip()
        with Vertical(id="confirm-dialog"):
            yield Label(
                "Training is running. Leave it training in the background, or stop it?",
                id="confirm-question",
            )
            yield Label(
                f"Left running, it goes on in the background; `{back}` comes back to it, "
                "`mnist-tui ps` lists it.",
                id="confirm-detail",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Leave it (l)", variant="primary", id="quit-detach")
                yield Button("Stop (s)", variant="error", id="quit-stop")
                yield Button("Stay (esc)", id="quit-stay")

    def on_mount(self) -> None:
        self.query_one("#quit-detach", Button).focus()
        self.watch(self.app, "snapshot", self._follow, init=False)

    def _follow(self, snapshot: Snapshot) -> None:
        running = snapshot.phase in RUNNING
        if running == self.running:
            return
        self.running = running
        question = self.query_one("#confirm-question", Label)
        detail = self.query_one("#confirm-detail", Label)
        detach = self.query_one("#quit-detach", Button)
        if running:
            question.update("Training is running again. Leave it in the background, or stop it?")
            detail.update("`mnist-tui ps` lists it once it runs in the background.")
            detach.label = "Leave it (l)"
        else:
            question.update(f"Training has ended ({snapshot.phase.label}). Quit now?")
            detail.update("Nothing is left running; the run is recorded.")
            detach.label = "Quit (q)"
        self.query_one("#quit-stop", Button).display = running

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choice = {"quit-detach": DETACH, "quit-stop": STOP}.get(event.button.id or "")
        self.action_answer(choice)

    def action_answer(self, answer: str | None) -> None:
        if answer == QUIT and self.running:
            return  # q again while training: the question stands
        if answer is not None and not self.running:
            answer = QUIT  # leave or stop: with nothing running, both mean quit
        self.dismiss(answer)
