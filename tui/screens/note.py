"""A dialog that writes a run's note and tags into its run.json, as `mnist-tui note` does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.core.experiments.compare import annotate
from tui.core.runs.layout import RunError


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags as typed: words apart by spaces or commas, a leading `#` dropped."""
    return tuple(word.removeprefix("#") for word in re.split(r"[\s,]+", text) if word.strip("#"))


class NoteScreen(ModalScreen[bool]):
    """The note and tags of one run, to edit; Enter writes both (True), Escape leaves them
    (False). A refusal (a run that is training now, a bad tag) stays on screen in one line."""

    DEFAULT_CSS = """
    NoteScreen {
        align: center middle;
        & > Vertical {
            width: 76; max-width: 95%; height: auto;
            border: round $accent; background: $surface; padding: 0 1;
            border-subtitle-color: $text-muted;
        }
        & Input { width: 1fr; }
        & Label { width: 100%; }
        & #note-error { height: auto; color: $text-error; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: Path, note: str, tags: tuple[str, ...]) -> None:
        super().__init__()
        self.run = run
        self.note = note
        self.tags = tags

    def compose(self) -> ComposeResult:
        with Vertical() as dialog:
            dialog.border_title = f"Note on {self.run.name}"
            dialog.border_subtitle = "Enter writes · Esc leaves it"
            yield Label("Note")
            yield Input(self.note, placeholder="what this run tried", id="note-text")
            yield Label("Tags (words, spaces between)")
            yield Input(" ".join(self.tags), placeholder="lr-drop baseline", id="note-tags")
            yield Label("", id="note-error", markup=False)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        text = self.query_one("#note-text", Input).value.strip()
        tags = parse_tags(self.query_one("#note-tags", Input).value)
        try:
            annotate(self.run, text, tags, replace_tags=True)
        except RunError as err:
            self.query_one("#note-error", Label).update(str(err))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
