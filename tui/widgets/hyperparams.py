"""The hyperparameter panel: a preset picker and one validated control per Hyperparams field."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from tui.core.experiments.branch import Lineage, lineage_of
from tui.core.settings.hyperparams import LIVE_FIELDS, SETTINGS, Hyperparams
from tui.core.settings.presets import PRESETS, preset
from tui.core.training.snapshot import Snapshot

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Hyperparams))
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Hyperparams)}

LOCKED_WITH_MODEL: frozenset[str] = frozenset(
    name for name, spec in SETTINGS.items() if spec.locked_with_model
)
"""Fields baked into a built model and its optimizer: they change only through a reset."""
_LIVE_LABELS = " and ".join(SETTINGS[name].label for name in FIELD_NAMES if name in LIVE_FIELDS)
"""How the note says which fields apply while training, e.g. "epochs and learning rate"."""

_MAX_SHOWN = 24
"""Longest raw text quoted back in an error message."""
_CHANGED = (Input.Changed, Select.Changed, Checkbox.Changed)
"""The messages the panel's controls post when their value changes."""


def parse_field(name: str, text: str) -> Any:
    """Turn the text of a field into the value the core expects.

    Text that does not parse is passed through (shortened) so that the core's own check rejects
    it with its own sentence, e.g. "epochs = 'abc' must be a whole number."
    """
    kind = _FIELD_TYPES[name]
    stripped = text.strip()
    try:
        if kind.startswith("tuple"):
            parts = [p for p in re.split(r"[\s,]+", stripped) if p]
            if parts:
                return tuple(int(p) for p in parts)
        elif kind == "int":
            return int(stripped)
        elif kind == "float":
            return float(stripped)
        else:
            return text
    except ValueError:
        pass
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def format_field(name: str, value: Any) -> str:
    """The text a field shows for a value."""
    if isinstance(value, tuple):
        return ",".join(str(n) for n in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _names_field(message: str, name: str) -> bool:
    """Whether a core error message is about `name` (they all start with the field's name)."""
    return message.startswith((f"{name} ", f"{name}:"))


class FieldValidator(Validator):
    """Validates one field by building Hyperparams with it, so the rules are the core's."""

    def __init__(self, panel: HyperparamsPanel, name: str) -> None:
        super().__init__()
        self.panel = panel
        self.name = name

    def validate(self, value: str) -> ValidationResult:
        error = self.panel.check(self.name, value)
        return self.success() if error is None else self.failure(error)


class OnOffCheckbox(Checkbox):
    """A compact checkbox that also says "on" or "off": its mark alone differs only in colour."""

    def __init__(self, value: bool, *, id: str) -> None:
        super().__init__(_on_off(value), value, compact=True, id=id)

    def watch_value(self) -> None:
        super().watch_value()
        self.label = _on_off(self.value)


def _on_off(value: bool) -> str:
    return "on" if value else "off"


class HyperparamsPanel(VerticalScroll):
    """Preset picker plus every hyperparameter, validated inline with the core's messages."""

    @dataclass
    class LiveValueSubmitted(Message):
        """A live field (epochs, learning rate) was confirmed with a valid value."""

        panel: HyperparamsPanel
        name: str
        value: Any
        submitted: bool = False
        """Confirmed with Enter (rather than by leaving the field)."""

    mode: reactive[str] = reactive("free")
    """"free" (no model yet), "training" (only live fields) or "model" (architecture locked)."""
    branch: reactive[Lineage | None] = reactive(None)
    """Where the run the panel's settings belong to branches from; None for a run of its own."""

    def __init__(
        self, hparams: Hyperparams, preset_name: str = "default", *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._fallback = hparams
        """The last complete, valid set: stands in for other fields while checking one."""
        self._initial = hparams
        matches = preset_name in PRESETS and preset(preset_name) == hparams
        self._preset_name = preset_name if matches else Select.NULL
        self._checked: dict[str, Any] = {name: getattr(hparams, name) for name in FIELD_NAMES}
        """The field values the errors on show were worked out for."""
        self._run = ""
        """The run whose lineage `branch` holds."""

    # --- building -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="hp-note")
        with Horizontal(classes="hp-row"):
            yield Label("preset", classes="hp-label")
            yield Select(
                [(name, name) for name in PRESETS],
                value=self._preset_name,
                allow_blank=True,
                prompt="custom",
                compact=True,
                id="hp-preset",
            )
        for name in FIELD_NAMES:
            value = getattr(self._initial, name)
            with Horizontal(classes="hp-row"):
                yield Label(SETTINGS[name].label, classes="hp-label")
                yield self._control(name, value)
            yield Static("", id=f"hp-{name}-error", classes="hp-error")

    def _control(self, name: str, value: Any) -> Widget:
        widget: Widget
        spec = SETTINGS[name]
        if spec.choices:
            widget = Select(
                [(choice, choice) for choice in spec.choices],
                value=value,
                allow_blank=False,
                compact=True,
                id=f"hp-{name}",
            )
        elif isinstance(value, bool):
            widget = OnOffCheckbox(value, id=f"hp-{name}")
        else:
            widget = Input(
                format_field(name, value),
                validators=[FieldValidator(self, name)],
                compact=True,
                id=f"hp-{name}",
            )
        widget.tooltip = spec.help
        return widget

    def on_mount(self) -> None:
        self.watch_mode(self.mode)
        if isinstance(getattr(self.app, "snapshot", None), Snapshot):
            self.watch(self.app, "snapshot", self._follow_run)

    def _follow_run(self, snapshot: Snapshot) -> None:
        """Read the lineage of the run the engine holds, once per run (a small file)."""
        if snapshot.run != self._run:
            self._run = snapshot.run
            self.branch = lineage_of(snapshot.run) if snapshot.run else None

    # --- reading values -----------------------------------------------------------------------
    def _raw(self, name: str) -> Any:
        widget = self.query_one(f"#hp-{name}")
        if isinstance(widget, Input):
            return parse_field(name, widget.value)
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            return widget.value
        raise TypeError(name)  # pragma: no cover - every field has one of the above

    def raw_values(self) -> dict[str, Any]:
        """Every field's value as typed, parsed where it parses."""
        return {name: self._raw(name) for name in FIELD_NAMES}

    def check(self, name: str, text: str) -> str | None:
        """The core's complaint about field `name` holding `text`, or None when it is fine."""
        return self.check_value(name, parse_field(name, text))

    def check_value(self, name: str, value: Any) -> str | None:
        """The core's complaint about field `name` holding `value`, or None when it is fine.

        Other fields keep their current values, except ones that are themselves invalid: those
        borrow the last valid value so that each error shows on the field it belongs to.
        """
        if not self.is_mounted:
            return None
        values = self.raw_values()
        values[name] = value
        for _ in FIELD_NAMES:
            try:
                Hyperparams(**values)
            except ValueError as err:
                message = str(err)
                if _names_field(message, name):
                    return message
                culprit = next((n for n in FIELD_NAMES if _names_field(message, n)), None)
                if culprit is None or values[culprit] == getattr(self._fallback, culprit):
                    return None
                values[culprit] = getattr(self._fallback, culprit)
            except TypeError as err:  # pragma: no cover - only if a field is missing
                return str(err)
            else:
                return None
        return None

    def first_invalid(self) -> tuple[str, str] | None:
        """Revalidate every field; the first invalid one and its message, if any."""
        found: tuple[str, str] | None = None
        self._checked = self.raw_values()
        for name in FIELD_NAMES:
            error = self._revalidate(name)
            if error and found is None:
                found = (name, error)
        return found

    @property
    def preset_name(self) -> str | None:
        """The preset picked, or None when the fields are custom."""
        value = self.query_one("#hp-preset", Select).value
        return None if value is Select.NULL else str(value)

    def hyperparams(self) -> Hyperparams:
        """The panel's values as Hyperparams.

        Raises:
            ValueError: with the core's message when a field is invalid.
        """
        result = Hyperparams(**self.raw_values())
        self._fallback = result
        return result

    # --- writing values -----------------------------------------------------------------------
    def set_value(self, name: str, value: Any) -> None:
        """Show `value` in field `name` (no message about it is posted back)."""
        widget = self.query_one(f"#hp-{name}")
        if isinstance(widget, Input):
            text = format_field(name, value)
            if widget.value != text:
                widget.value = text
        elif isinstance(widget, Checkbox | Select):
            widget.value = value

    def show_live(self, name: str, value: Any) -> None:
        """`set_value`, unless the field is being edited: what a person is typing is theirs
        until they confirm it (Enter) or leave the field."""
        if not self.query_one(f"#hp-{name}").has_focus:
            self.set_value(name, value)

    def load(self, hparams: Hyperparams) -> None:
        """Show every field of `hparams`, then check them all once.

        No change message is posted for the fields filled here: each would revalidate every
        field (and Textual delivers them only after this returns, so no flag set around the
        loop could tell them from the user's edits).
        """
        self._fallback = hparams
        with self.prevent(*_CHANGED):
            for name in FIELD_NAMES:
                self.set_value(name, getattr(hparams, name))
            if self._matches_preset() is False:
                self.query_one("#hp-preset", Select).clear()
        self.call_after_refresh(self.first_invalid)

    def focus_field(self, name: str) -> None:
        widget = self.query_one(f"#hp-{name}")
        widget.focus()
        self.scroll_to_widget(widget)

    # --- reacting -----------------------------------------------------------------------------
    def _revalidate(self, name: str) -> str | None:
        widget = self.query_one(f"#hp-{name}")
        error: str | None = None
        if isinstance(widget, Input):
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                error = " ".join(result.failure_descriptions)
        else:
            error = self.check_value(name, self._raw(name))
        self._show_error(name, error)
        return error

    def _show_error(self, name: str, error: str | None) -> None:
        label = self.query_one(f"#hp-{name}-error", Static)
        label.update(error or "")
        label.set_class(bool(error), "-shown")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _field_changed(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        event.stop()
        if event.control.id == "hp-preset":
            return  # not a field: `_preset_chosen` handles it
        if self.raw_values() == self._checked:
            # Nothing new: each control reports its first value as it mounts (a check of every
            # field per control, a sixth of the first frame), and an edit can restore a value.
            return
        # A change can make another field valid or invalid (e.g. padding vs conv_filters).
        self.first_invalid()
        if self._matches_preset() is False:
            with self.prevent(Select.Changed):
                self.query_one("#hp-preset", Select).clear()

    def _matches_preset(self) -> bool | None:
        select = self.query_one("#hp-preset", Select)
        if select.value is Select.NULL:
            return None
        try:
            current = Hyperparams(**self.raw_values())
        except ValueError:
            return False
        return current == preset(str(select.value))

    @on(Select.Changed, "#hp-preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL or self._matches_preset():
            # Select reports its first value too; the fields already show it.
            return
        self.load(preset(str(event.value)))

    @on(Input.Submitted)
    @on(Input.Blurred)
    def _maybe_live(self, event: Input.Submitted | Input.Blurred) -> None:
        name = (event.input.id or "").removeprefix("hp-")
        if name not in LIVE_FIELDS:
            return
        if self.check(name, event.value) is None:
            value = parse_field(name, event.value)
            submitted = isinstance(event, Input.Submitted)
            self.post_message(self.LiveValueSubmitted(self, name, value, submitted))

    def watch_mode(self, mode: str) -> None:
        if not self.is_mounted:
            return
        for name in FIELD_NAMES:
            if mode == "training":
                locked = name not in LIVE_FIELDS
            elif mode == "model":
                locked = name in LOCKED_WITH_MODEL
            else:
                locked = False
            self.query_one(f"#hp-{name}").disabled = locked
        self.query_one("#hp-preset", Select).disabled = mode != "free"
        self._show_note()

    def watch_branch(self) -> None:
        if self.is_mounted:
            self._show_note()

    def _show_note(self) -> None:
        note = self.query_one("#hp-note", Static)
        mode, branch = self.mode, self.branch
        if mode == "training":
            text = f"Training: {_LIVE_LABELS} apply live (Enter)."
        elif mode == "model" and branch is not None:
            text = (
                f"Branch of {branch.label}: network and optimizer fields are locked, "
                "its checkpoint holds them; t trains it."
            )
        elif mode == "model":
            text = "Network fields are locked to the trained model; r resets it."
        else:
            text = ""
        note.update(text)
        note.set_class(bool(text), "-shown")
