"""One spec per setting: every Hyperparams field carries a Setting, and the command line, its
help, the panel (label, tooltip, checks, locking) and the training controls all say what it says.
A field added without a spec, or a spec that one of them ignores, fails here."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Checkbox, Input, Label, Select, Static

from tui.cli import main
from tui.core.settings.hyperparams import SETTINGS, Hyperparams, spec_of
from tui.core.training.controls import TrainingControls
from tui.widgets.hyperparams import HyperparamsPanel, format_field

FIELDS = [f.name for f in fields(Hyperparams)]


def test_every_field_is_declared_with_its_setting() -> None:
    for f in fields(Hyperparams):
        spec = spec_of(f)
        assert spec is SETTINGS[f.name]
        assert spec.label and spec.help.endswith("."), f.name
        kind = str(f.type)
        if kind in ("int", "float") or kind.startswith("tuple"):
            assert spec.bounds is not None, f"{f.name} has no bounds"
        if kind == "str":
            assert f.default in spec.choices, f"{f.name}'s default is not one of its choices"
    assert list(SETTINGS) == FIELDS


def test_a_field_without_a_setting_is_named() -> None:
    bare = fields(dataclasses.make_dataclass("Bare", [("warp_speed", int, dataclasses.field())]))
    with pytest.raises(TypeError, match=r"warp_speed has no Setting"):
        spec_of(bare[0])


# --- the command line -----------------------------------------------------------------------------
def _help_of_each_flag(text: str) -> dict[str, str]:
    """Each option's help in `--help` output, keyed by its flag, whitespace made single."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if line.startswith("  -") and words:
            current = entries.setdefault(words[0].rstrip(","), [])
            current.extend(words[1:])
        elif line.startswith("    ") and words:
            current.extend(words)
        else:
            current = []
    return {flag: " ".join(words) for flag, words in entries.items()}


@pytest.mark.parametrize("command", [[], ["train"]], ids=["app", "train"])
def test_every_field_is_a_flag_with_its_help(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main([*command, "--help"]) == 0
    helps = _help_of_each_flag(capsys.readouterr().out)
    for name, spec in SETTINGS.items():
        flag = "--" + name.replace("_", "-")
        assert flag in helps, f"{flag} is not in --help"
        assert " ".join(spec.help.split()) in helps[flag], flag
        if spec.choices:
            assert "{" + ",".join(spec.choices) + "}" in helps[flag]


# --- the panel --------------------------------------------------------------------------------
class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield HyperparamsPanel(Hyperparams(), id="panel")


def _beyond(name: str) -> str:
    """Text just above the field's highest value (for a list: one block of it)."""
    bounds = SETTINGS[name].bounds
    assert bounds is not None
    high = bounds.high + 1
    return str(int(high)) if isinstance(bounds.high, int) else str(high)


async def test_every_field_has_a_panel_row_with_its_label_tooltip_and_checks() -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 80)) as pilot:
        panel = app.query_one(HyperparamsPanel)
        for name, spec in SETTINGS.items():
            control = panel.query_one(f"#hp-{name}")
            assert control.parent is not None
            assert str(control.parent.query_one(Label).render()) == spec.label
            assert control.tooltip == spec.help
            if spec.choices:
                assert isinstance(control, Select)
                for choice in spec.choices:
                    control.value = choice  # each is an option (another would raise)
                control.value = getattr(Hyperparams(), name)
            elif isinstance(control, Input):
                control.value = _beyond(name)
                await pilot.pause()
                error = str(panel.query_one(f"#hp-{name}-error", Static).render())
                assert error.startswith(f"{name} = ") and "out of range" in error, error
                with pytest.raises(ValueError) as core:
                    Hyperparams(**{name: panel.raw_values()[name]})
                assert error == str(core.value)
                control.value = format_field(name, getattr(Hyperparams(), name))
                await pilot.pause()
            else:
                assert isinstance(control, Checkbox)
        assert panel.first_invalid() is None


@pytest.mark.parametrize("mode", ["free", "training", "model"])
async def test_the_panel_locks_what_each_setting_says(mode: str) -> None:
    app = PanelApp()
    async with app.run_test(size=(120, 80)) as pilot:
        panel = app.query_one(HyperparamsPanel)
        panel.mode = mode
        await pilot.pause()
        for name, spec in SETTINGS.items():
            locked = {
                "free": False,
                "training": not spec.live,
                "model": spec.locked_with_model,
            }[mode]
            assert panel.query_one(f"#hp-{name}").disabled is locked, name


# --- the controls ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 0.0, -1e-3, 1.5, math.nan, math.inf, True, "0.1"])
def test_the_controls_refuse_a_learning_rate_in_the_settings_words(value: Any) -> None:
    controls = TrainingControls(5, 1e-3)
    with pytest.raises(ValueError) as live:
        controls.set_learning_rate(value)
    with pytest.raises(ValueError) as core:
        Hyperparams(learning_rate=value)
    assert str(live.value) == str(core.value)
    assert controls.take_learning_rate_change() is None


def test_the_controls_take_the_whole_learning_rate_range() -> None:
    bounds = SETTINGS["learning_rate"].bounds
    assert bounds is not None and not bounds.high_open
    controls = TrainingControls(5, 1e-3)
    controls.set_learning_rate(int(bounds.high))
    assert controls.take_learning_rate_change() == bounds.high


def test_the_epoch_target_stays_within_the_epochs_bounds() -> None:
    bounds = SETTINGS["epochs"].bounds
    assert bounds is not None
    controls = TrainingControls(5, 1e-3)
    assert controls.set_epoch_target(int(bounds.high) + 50) == bounds.high
    assert controls.set_epoch_target(int(bounds.low) - 5) == bounds.low
