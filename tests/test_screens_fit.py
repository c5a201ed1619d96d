"""What the screens say is true and whole, at every size: no stale figure, no cut sentence, no
key lost to a field, a notice below the smallest size. Scripted engine states, no TensorFlow."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest
from app_helpers import until
from scripted_engine import ScriptedEngine
from test_snapshots_app import CPU_REPORT, DATA, STARTED, epoch, progress
from textual.pilot import Pilot
from textual.widgets import Input, Label

from tui.app import MnistApp, create_app
from tui.core.data.info import DataInfo
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.presets import preset
from tui.core.training.events import (
    BackendLoaded,
    DataLoaded,
    PhaseChanged,
    StopReason,
    TrainingEvent,
    TrainingStopped,
)
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, advance, initial_snapshot
from tui.engine import protocol as p
from tui.screens.save_model import SaveModelScreen
from tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen

LOADED: list[TrainingEvent] = [
    DataLoaded(DATA),
    BackendLoaded("CPU (2 cores)", CPU_REPORT),
    PhaseChanged(Phase.READY),
]


def state(events: list[TrainingEvent], hparams: Hyperparams | None = None) -> Snapshot:
    snapshot = initial_snapshot(hparams or preset("default"), "default")
    for event in events:
        snapshot = advance(snapshot, event)
    return snapshot


@contextlib.asynccontextmanager
async def showing(
    snapshot: Snapshot, size: tuple[int, int] = (120, 40)
) -> AsyncIterator[tuple[MnistApp, Pilot[None], ScriptedEngine]]:
    with ScriptedEngine(snapshot) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=size, notifications=True) as pilot:
            await until(pilot, lambda: app.handle.client is not None)
            await pilot.pause()
            yield app, pilot, engine


def label(app: MnistApp, selector: str) -> str:
    return str(app.query_one(selector, Label).render())


def training(target: int, done: int) -> list[TrainingEvent]:
    started = msgspec.structs.replace(STARTED, target=target, steps_per_epoch=43)
    return [
        *LOADED,
        PhaseChanged(Phase.STARTING),
        started,
        PhaseChanged(Phase.TRAINING),
        *(epoch(n, target) for n in range(1, done + 1)),
    ]


# --- 1. the progress line describes one epoch, the right one --------------------------------------
async def test_after_stop_after_epoch_the_bar_shows_the_last_epoch_done() -> None:
    events = [
        *training(14, 5),
        TrainingStopped(StopReason.AFTER_EPOCH, 5),
        PhaseChanged(Phase.EVALUATING),
        PhaseChanged(Phase.STOPPED),
    ]
    async with showing(state(events)) as (app, _pilot, _engine):
        assert label(app, "#progress-epoch") == "epoch 5/14"
        assert "stopped after epoch" in label(app, "#progress-figures")
        assert "6/14" not in str(app.dashboard.status.render())


async def test_between_two_epochs_no_figure_of_the_last_one_stays() -> None:
    events = [*training(7, 5)[:-1], *progress(5, [40]), epoch(5, 7)]
    async with showing(state(events)) as (app, _pilot, _engine):
        assert label(app, "#progress-epoch") == "epoch 6/7"
        figures = label(app, "#progress-figures")
        assert "step 40" not in figures and "epoch 6 starting" in figures


async def test_while_evaluating_the_status_says_so_and_shows_no_old_test_figure() -> None:
    events = [
        *training(3, 3),
        TrainingStopped(StopReason.FINISHED, 3),
        PhaseChanged(Phase.EVALUATING),
    ]
    async with showing(state(events)) as (app, _pilot, _engine):
        status = str(app.dashboard.status.render())
        assert "evaluating" in status and "test -" in status
        assert "evaluating on the test set" in label(app, "#progress-figures")


# --- 2. the data the status bar names is the data in use ------------------------------------------
async def test_the_status_bar_names_the_training_subset() -> None:
    hparams = preset("default").with_changes(train_size=6000)
    async with showing(state(LOADED, hparams)) as (app, _pilot, _engine):
        assert "6,000 of 60,000 train" in str(app.dashboard.status.render())


async def test_the_sample_is_named_once() -> None:
    sample = DataInfo("sample", "bundled sample", "1" * 64, 6000, 1000)
    async with showing(state([DataLoaded(sample, "This is a sample.")])) as (app, _pilot, _e):
        log = "\n".join(line.text for line in app.dashboard.training_log.lines)
        assert "bundled sample · 6,000 train / 1,000 test (sample)" in log
        assert "from bundled sample" not in log


# --- 3. Enter in a live field gives the keys back -------------------------------------------------
async def test_enter_in_the_learning_rate_field_while_training_gives_back_the_keys() -> None:
    async with showing(state(training(5, 1))) as (app, pilot, engine):
        field = app.dashboard.panel.query_one("#hp-learning_rate", Input)
        field.focus()
        field.value = "0.0001"
        await pilot.press("enter")
        await until(pilot, lambda: any(isinstance(c, p.SetLearningRate) for c in engine.commands))
        assert not field.has_focus
        await pilot.press("q")
        assert field.value == "0.0001", "q went to the app, not into the field"


# --- 4. the log wraps again when its width changes ------------------------------------------------
async def test_log_lines_wrap_again_when_the_log_gets_wider() -> None:
    async with showing(state(training(5, 2)), size=(100, 30)) as (app, pilot, _engine):
        narrow = len(app.dashboard.training_log.lines)  # beside the panel
        await pilot.press("h")
        await pilot.pause()
        wider = len(app.dashboard.training_log.lines)
        assert wider < narrow
        lines = [line.text for line in app.dashboard.training_log.lines]
        assert any("epoch 1/5  loss 0.2629 acc 92.03% │ val 0.0586" in line for line in lines)


# --- 5. the save dialog never cuts its own sentences ----------------------------------------------
async def test_the_save_dialog_wraps_its_messages() -> None:
    from textual.app import App

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(SaveModelScreen("default", existing={"mine"}, folder="models"))

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.screen.query_one(Input)
        error = app.screen.query_one("#save-model-error", Label)
        for typed, sentence in (
            ("my model", "space cannot be in the name; use letters, digits, '.', '_' and '-'."),
            ("mine", "models/mine.keras exists: press Enter to replace it."),
        ):
            field.value = typed
            await pilot.pause()
            assert str(error.render()) == sentence
            assert error.size.width * error.size.height >= len(sentence)


# --- 6. every size has a layout, and below the smallest a notice ----------------------------------
@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40), (200, 60)])
async def test_the_dashboard_fits_every_size(size: tuple[int, int]) -> None:
    events = [*training(5, 2), *progress(3, [200])]
    async with showing(state(events), size) as (app, _pilot, _engine):
        status = str(app.dashboard.status.render())
        assert app.dashboard.status.render().cell_len <= size[0] - 2
        assert "training" in status and "val 98.6" in status
        footer = app.query_one("FittingFooter")
        used = sum(key.region.width for key in footer.query("FooterKey"))
        assert used <= size[0]
        keys = {key.key for key in footer.query("FooterKey")}
        assert {"s", "e", "p", "question_mark", "q"} <= keys


async def test_below_the_smallest_size_a_notice_says_so_and_goes_when_it_fits() -> None:
    async with showing(state(LOADED), (MIN_WIDTH - 10, MIN_HEIGHT)) as (app, pilot, _engine):
        assert isinstance(app.screen, TooSmallScreen)
        notice = str(app.screen.query_one("#too-small").render())
        assert f"at least {MIN_WIDTH}x{MIN_HEIGHT}" in notice and f"{MIN_WIDTH - 10}x" in notice
        await pilot.resize_terminal(MIN_WIDTH, MIN_HEIGHT)
        await until(pilot, lambda: not isinstance(app.screen, TooSmallScreen))


async def test_the_confusion_matrix_scrolls_at_the_smallest_size() -> None:
    import numpy as np
    from textual.app import App

    from tui.core.inspect.predictions import Predictions
    from tui.screens.confusion import ConfusionScreen

    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the full test set's
    labels = np.repeat(np.arange(10), counts).astype(np.uint8)
    probabilities = np.eye(10, dtype=np.float32)[labels]

    class Host(App[None]):
        def on_mount(self) -> None:
            images = np.zeros((len(labels), 28, 28), np.uint8)
            self.push_screen(ConfusionScreen(Predictions(probabilities, labels), images))

    app = Host()
    async with app.run_test(size=(MIN_WIDTH, 20)) as pilot:
        table = app.screen.query_one("DataTable")
        assert table.size.width <= MIN_WIDTH
        assert table.max_scroll_x > 0, "the columns that do not fit are reached by scrolling"
        await pilot.press(*["right"] * 10)
        await pilot.pause()
        assert table.scroll_x > 0
        # Four-digit counts keep a space from their neighbour.
        row = [str(cell) for cell in table.get_row_at(1)]
        assert row[1] == " [1135]"
        assert all(cell.startswith(" ") for cell in row)


async def test_progress_alone_repaints_the_progress_line_not_the_status_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Progress changes nothing the status line shows; repainting it at every update was part
    of what a viewer cost the core its engine trains on (README, Performance)."""
    from tui.widgets.status import StatusBar

    painted: list[str] = []
    render = StatusBar.render

    def counted(self: StatusBar) -> object:
        painted.append("status")
        return render(self)

    monkeypatch.setattr(StatusBar, "render", counted)
    events = [*training(5, 2), *progress(3, [100])]
    async with showing(state(events)) as (app, pilot, engine):
        before = len(painted)
        engine.emit(*progress(3, [200, 300, 400]))
        await until(pilot, lambda: "step 400/422" in label(app, "#progress-figures"))
        await pilot.pause()
        assert len(painted) == before
