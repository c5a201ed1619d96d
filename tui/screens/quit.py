"""Quitting while training: leave the run going in the background, or stop it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

DETACH = "detach"
STOP = "stop"


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with DETACH, STOP, or None to stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l,d", "answer('detach')", "Leave it training"),
        Binding("s", "answer('stop')", "Stop and quit"),
        Binding("escape,n", "answer(None)", "Stay"),
    ]

    def __init__(self, run: str) -> None:
        super().__init__()
        self.run = run

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

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choice = {"quit-detach": DETACH, "quit-stop": STOP}.get(event.button.id or "")
        self.dismiss(choice)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
