"""App tests on a scripted engine (no TensorFlow): start-up, the panel, help and keys."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import msgspec
import pytest
from app_helpers import SIZE, logged, toasts, until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_engine import ScriptedEngine
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select, Static

from tui.app import MnistApp, create_app
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.presets import preset
from tui.core.training.events import LoadFailed, PhaseChanged
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, initial_snapshot
from tui.engine import protocol as p
from tui.screens.help import HelpScreen
from tui.screens.quit import QuitScreen
from tui.widgets.hyperparams import FIELD_NAMES, parse_field

INPUT_FIELDS = [
    f.name for f in fields(Hyperparams) if f.type in ("int", "float", "tuple[int, ...]")
]


def ready(hparams: Hyperparams | None = None, preset_name: str = "default") -> Snapshot:
    snapshot = initial_snapshot(hparams or preset(preset_name), preset_name)
    return msgspec.structs.replace(snapshot, phase=Phase.READY)


@contextlib.asynccontextmanager
async def scripted(
    snapshot: Snapshot | None = None, *, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[MnistApp, Pilot[None], ScriptedEngine]]:
    with ScriptedEngine(snapshot or ready()) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=size, notifications=True) as pilot:
            await until(pilot, lambda: app.handle.client is not None)
            yield app, pilot, engine


def sent(engine: ScriptedEngine, kind: type) -> list[Any]:
    return [c for c in engine.commands if isinstance(c, kind)]


def error_text(app: MnistApp, name: str) -> str:
    return str(app.dashboard.panel.query_one(f"#hp-{name}-error", Static).render())


async def test_t_while_loading_is_kept_and_trains_once_ready() -> None:
    loading = initial_snapshot(preset("default"), "default")
    async with scripted(loading) as (app, pilot, engine):
        assert app.phase is Phase.LOADING
        assert "loading" in str(app.dashboard.status.render())
        await pilot.press("t")
        await until(pilot, lambda: any("once the model is ready" in t for t in toasts(app)))
        assert not sent(engine, p.Train)
        engine.emit(PhaseChanged(Phase.OPENING))
        await until(pilot, lambda: app.phase is Phase.OPENING)
        assert not sent(engine, p.Train), "still not ready while a run opens"
        engine.emit(PhaseChanged(Phase.READY))
        await until(pilot, lambda: bool(sent(engine, p.Train)))
        assert sent(engine, p.Train)[0].hparams == preset("default")


async def test_t_while_loading_is_dropped_when_loading_fails() -> None:
    loading = initial_snapshot(preset("default"), "default")
    async with scripted(loading) as (app, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: app.dashboard.train_when_ready)
        engine.emit(LoadFailed("data", "No MNIST here."), PhaseChanged(Phase.BROKEN))
        await until(pilot, lambda: app.phase is Phase.BROKEN)
        assert not app.dashboard.train_when_ready and not sent(engine, p.Train)


async def test_the_quit_dialog_follows_a_round_that_ends_under_it() -> None:
    training = msgspec.structs.replace(ready(), phase=Phase.TRAINING)
    async with scripted(training) as (app, pilot, engine):
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        question = app.screen.query_one("#confirm-question", Static)
        assert "Leave it training" in str(question.render())
        engine.emit(PhaseChanged(Phase.FINISHED))
        await until(pilot, lambda: "Training has ended" in str(question.render()))
        assert not app.screen.query_one("#quit-stop").display
        await pilot.press("l")  # meant "leave it training": nothing is left, so it quits
        await until(pilot, lambda: not app.is_running)
        assert not app.farewell, "no 'training goes on in the background' for a finished run"
        assert not sent(engine, p.Shutdown)


async def test_t_sends_the_panel_settings_and_preset() -> None:
    async with scripted(ready(preset_name="seed"), size=(120, 40)) as (_app, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: bool(sent(engine, p.Train)))
        train = sent(engine, p.Train)[0]
        assert train.hparams == preset("seed") and train.preset == "seed"


async def test_a_refusal_from_the_engine_is_a_notification() -> None:
    def refuse(command: p.Command) -> p.Reply:
        return p.Reply(command.id, error="These settings do not fit: 9 GiB.")

    with ScriptedEngine(ready(), refuse) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: app.handle.client is not None)
            await pilot.press("t")
            await until(pilot, lambda: any("do not fit" in t for t in toasts(app)))
            assert app.is_running


async def test_panel_shows_every_field_and_the_preset() -> None:
    async with scripted(ready(preset_name="seed")) as (app, _pilot, _engine):
        assert app.dashboard.panel.query_one("#hp-preset", Select).value == "seed"
        assert app.dashboard.panel.hyperparams() == preset("seed")
        for name in FIELD_NAMES:
            assert app.dashboard.panel.query_one(f"#hp-{name}").display


async def test_choosing_a_preset_fills_the_fields() -> None:
    async with scripted() as (app, pilot, _engine):
        app.dashboard.panel.query_one("#hp-preset", Select).value = "fast"
        await pilot.pause()
        assert app.dashboard.panel.hyperparams() == preset("fast")
        assert app.dashboard.panel.query_one("#hp-padding", Select).value == "same"
        # A switch says on or off in words, so it reads without colour (fast: BN on, no augment).
        assert str(app.dashboard.panel.query_one("#hp-batch_norm", Checkbox).label) == "on"
        assert str(app.dashboard.panel.query_one("#hp-augment", Checkbox).label) == "off"
        # Editing a field makes it a custom set (fast has batch 32).
        app.dashboard.panel.query_one("#hp-batch_size", Input).value = "64"
        await pilot.pause()
        assert app.dashboard.panel.query_one("#hp-preset", Select).value is Select.NULL


async def test_loading_a_preset_checks_the_fields_once() -> None:
    async with scripted() as (app, pilot, _engine):
        await pilot.pause()
        panel = app.dashboard.panel
        checks: list[tuple[str, str] | None] = []
        first_invalid = panel.first_invalid

        def counted() -> tuple[str, str] | None:
            checks.append(first_invalid())
            return checks[-1]

        panel.first_invalid = counted  # type: ignore[method-assign]
        picker = panel.query_one("#hp-preset", Select)
        picker.value = "fast"
        # Twice: the changes of the filled fields, had any been posted, would be handled by now.
        await pilot.pause()
        await pilot.pause()
        assert panel.hyperparams() == preset("fast")
        # Filling the fields is not an edit: one check of them all, and the picker keeps "fast".
        assert checks == [None]
        assert picker.value == "fast"
        # Loading settings that are no preset (a resumed run) shows "custom", again in one check.
        panel.load(preset("fast").with_changes(batch_size=64))
        await pilot.pause()
        await pilot.pause()
        assert checks == [None, None]
        assert picker.value is Select.NULL
        # An edit by hand still checks the fields.
        panel.query_one("#hp-batch_size", Input).value = "0"
        await pilot.pause()
        assert checks[-1] is not None and checks[-1][0] == "batch_size"


async def test_invalid_field_blocks_training_and_is_focused() -> None:
    async with scripted() as (app, pilot, engine):
        field = app.dashboard.panel.query_one("#hp-epochs", Input)
        field.value = "abc"
        await pilot.pause()
        assert error_text(app, "epochs") == "epochs = 'abc' must be a whole number."
        await pilot.press("escape", "t")
        assert not sent(engine, p.Train)
        assert app.focused is field
        await until(pilot, lambda: any("must be a whole number" in t for t in toasts(app)))


async def test_cross_field_error_lands_on_conv_filters_and_clears() -> None:
    async with scripted() as (app, pilot, _engine):
        app.dashboard.panel.query_one("#hp-conv_filters", Input).value = "8,8,8,8"
        await pilot.pause()
        assert "shrink the 28x28 image to nothing" in error_text(app, "conv_filters")
        assert error_text(app, "kernel_size") == ""
        app.dashboard.panel.query_one("#hp-padding", Select).value = "same"
        await pilot.pause()
        assert error_text(app, "conv_filters") == ""
        assert app.dashboard.panel.hyperparams().conv_filters == (8, 8, 8, 8)


async def test_narrow_terminal_hides_the_panel_until_h() -> None:
    async with scripted(size=(80, 24)) as (app, pilot, _engine):
        assert not app.dashboard.panel.display
        assert app.dashboard.curves.display and app.dashboard.training_log.display
        await pilot.press("h")
        assert app.dashboard.panel.display and not app.query_one("#main").display
        await pilot.press("escape")
        assert not app.dashboard.panel.display
        # An invalid field brings the panel back, focused.
        app.dashboard.panel.query_one("#hp-dropout", Input).value = "2"
        await pilot.press("t")
        assert app.dashboard.panel.display
        assert app.focused is app.dashboard.panel.query_one("#hp-dropout", Input)


async def test_help_lists_the_keys_and_closes() -> None:
    async with scripted() as (app, pilot, _engine):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_plus_and_minus_move_the_epochs_field_when_idle() -> None:
    async with scripted() as (app, pilot, _engine):
        await pilot.press("plus", "plus", "minus")
        assert app.dashboard.panel.query_one("#hp-epochs", Input).value == "6"


async def test_quit_while_idle_exits_without_asking() -> None:
    async with scripted() as (app, pilot, engine):
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    assert not sent(engine, p.Shutdown), "an idle engine ends by itself once its viewer leaves"


# --- hypothesis: bad strings in every field -----------------------------------------------
JUNK = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", " ", "nan", "inf", "-inf", "-1", "0", "1e999", "1.5", "1,5", "32,,64", "١٢", "0x10"]
    ),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


def core_error(name: str, text: str) -> str | None:
    """The core's verdict on one field, the others at their defaults."""
    try:
        Hyperparams().with_changes(**{name: parse_field(name, text)})
    except ValueError as err:
        return str(err)
    return None


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(st.tuples(st.sampled_from(INPUT_FIELDS), JUNK), min_size=1, max_size=8))
async def test_bad_strings_never_crash_and_never_train(edits: list[tuple[str, str]]) -> None:
    defaults = Hyperparams()
    async with scripted(ready(defaults)) as (app, pilot, engine):
        for index, (name, text) in enumerate(edits):
            field = app.dashboard.panel.query_one(f"#hp-{name}", Input)
            field.value = text
            await pilot.pause()
            expected = core_error(name, text)
            assert error_text(app, name) == (expected or "")
            if index < len(edits) - 1:
                # Put the field back so that the next edit is judged on its own.
                field.value = _text_of(defaults, name)
                await pilot.pause()
                assert error_text(app, name) == ""
        # The last edit stays: t must refuse it (and could not train without TensorFlow anyway).
        await pilot.press("escape", "t")
        if expected is not None:
            assert app.focused is field
            assert not sent(engine, p.Train)
            await until(pilot, lambda: any(expected in t for t in toasts(app)))
        else:
            await until(pilot, lambda: bool(sent(engine, p.Train)))
        assert app.is_running


def _text_of(hparams: Hyperparams, name: str) -> str:
    value = getattr(hparams, name)
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("name", INPUT_FIELDS)
async def test_each_field_rejects_words(name: str) -> None:
    async with scripted() as (app, pilot, _engine):
        app.dashboard.panel.query_one(f"#hp-{name}", Input).value = "lots"
        await pilot.pause()
        assert error_text(app, name).startswith(name)
        assert app.dashboard.panel.first_invalid() == (name, error_text(app, name))


async def test_data_that_cannot_be_loaded_is_one_clear_line_and_t_says_why() -> None:
    reason = "/x/mnist.npz is not a readable .npz archive (not a zip file); pass a mnist.npz."
    async with scripted(initial_snapshot(preset("default"), "default")) as (app, pilot, engine):
        engine.emit(LoadFailed("data", reason), PhaseChanged(Phase.BROKEN))
        await until(pilot, lambda: app.phase is Phase.BROKEN)
        assert "no data" in str(app.dashboard.status.render())
        assert logged(app, reason.split(";")[0]) and not logged(app, "Traceback")
        await pilot.press("t")
        await until(pilot, lambda: any("not a readable" in t for t in toasts(app)))
        assert not sent(engine, p.Train)
