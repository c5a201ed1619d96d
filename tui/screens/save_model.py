"""A dialog asking for the name to save the current model under."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label

MAX_NAME_LENGTH = 64
"""Long enough for a descriptive name, short enough to read in a file list."""
SUFFIX = ".keras"
_SAFE = re.compile(r"[A-Za-z0-9._-]")


def clean_name(text: str) -> str:
    """The name as it will be saved: surrounding spaces and a typed `.keras` suffix dropped."""
    name = text.strip()
    return name[: -len(SUFFIX)] if name.lower().endswith(SUFFIX) else name


def name_problem(text: str) -> str | None:
    """Why `text` cannot name a model file, as a sentence a person can act on; None when it can.

    Only letters, digits, `.`, `_` and `-` are allowed, so the name is one file in the models
    folder on every system: no `/` to escape the folder, no spaces to quote in a shell.
    """
    name = clean_name(text)
    if not name:
        return "Type a name for the model."
    bad = sorted({c for c in name if not _SAFE.fullmatch(c)})
    if bad:
        shown = " ".join("space" if c == " " else repr(c) for c in bad)
        return f"{shown} cannot be in the name; use letters, digits, '.', '_' and '-'."
    if name[0] in ".-":
        # A leading dot hides the file; a leading dash reads as an option on a command line.
        return "Start the name with a letter, a digit or '_'."
    if len(name) > MAX_NAME_LENGTH:
        return f"Use at most {MAX_NAME_LENGTH} characters (this is {len(name)})."
    return None


class ModelName(Validator):
    """Validates a model name with `name_problem`, whose sentence becomes the failure text."""

    def validate(self, value: str) -> ValidationResult:
        problem = name_problem(value)
        return self.success() if problem is None else self.failure(problem, value)


class SaveModelScreen(ModalScreen[str | None]):
    """Asks for a model name; dismisses with it (no `.keras` suffix), or None on Escape.

    The caller saves the model as `<folder>/<name>.keras`. A name in `existing` is only accepted
    when Enter is pressed a second time on it, so a saved model is never replaced by accident.
    """

    DEFAULT_CSS = """
    SaveModelScreen {
        align: center middle;
        & > Vertical {
            width: 60; max-width: 95%; height: auto;
            border: round $accent; background: $surface; padding: 0 1;
        }
        & Input { width: 1fr; }
        /* Full width, so that a long message or path wraps instead of being cut. */
        & Label { width: 100%; }
        & #save-model-target { color: $text-muted; }
        & #save-model-error { height: auto; color: $text-error; }
        & #save-model-error.-warning { color: $text-warning; }
        & #save-model-keys { color: $text-muted; }
    }
    """

    AUTO_FOCUS = "#save-model-name"
    """Its own, not the app's (which may name a widget of the dashboard)."""
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        default: str = "",
        *,
        existing: Collection[str] = (),
        folder: str = "models",
    ) -> None:
        """Build the dialog.

        Args:
            default: the name proposed in the field.
            existing: names (without `.keras`) already saved in `folder`.
            folder: where the model will go, shown beside the name.
        """
        super().__init__()
        self.default = default
        self.existing = frozenset(existing)
        self.folder = folder.rstrip("/") or "."
        self._confirming: str | None = None
        """The existing name Enter was pressed on once; a second Enter replaces that model."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the model as:")
            yield Input(
                self.default,
                placeholder="a name, e.g. fast-2-epochs",
                validators=[ModelName()],
                validate_on=["changed", "submitted"],
                id="save-model-name",
            )
            yield Label(id="save-model-target", markup=False)
            yield Label(id="save-model-error", markup=False)
            yield Label("Enter saves · Esc cancels", id="save-model-keys")

    def on_mount(self) -> None:
        self._show(self.default, None)

    def target(self, name: str) -> str:
        """Where a model of this name goes, as shown to the user."""
        return f"{self.folder}/{name}{SUFFIX}"

    def _show(self, value: str, problem: str | None) -> None:
        name = clean_name(value)
        self.query_one("#save-model-target", Label).update(
            f"→ {self.target(name)}" if problem is None and name else ""
        )
        error = self.query_one("#save-model-error", Label)
        error.remove_class("-warning")
        if value and problem is not None:
            error.update(problem)
        elif name in self.existing and problem is None:
            error.add_class("-warning")
            again = "again " if self._confirming == name else ""
            error.update(f"{self.target(name)} exists: press Enter {again}to replace it.")
        else:
            error.update("")

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._confirming = None
        self._show(event.value, _problem(event.validation_result))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        # An empty field says so on Enter, though not while typing, where it is just a start.
        problem = name_problem(event.value)
        if problem is not None:
            self.query_one("#save-model-error", Label).update(problem)
            return
        name = clean_name(event.value)
        if name in self.existing and self._confirming != name:
            self._confirming = name
            self._show(event.value, None)
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _problem(result: ValidationResult | None) -> str | None:
    if result is None or result.is_valid:
        return None
    return result.failure_descriptions[0] if result.failure_descriptions else "Not a valid name."
