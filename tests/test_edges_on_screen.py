"""Cut and stale on screen (issue 29, case 16): the log stays at its end through a resize and its
epoch lines fit; the model screen's columns and the saliency maps are whole at 80x24. Scripted
engine states, no TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import test_snapshots_app
from app_helpers import until
from scripted_engine import ScriptedEngine
from test_screens_fit import LOADED, showing, state
from test_snapshots_app import STARTED
from test_snapshots_inspect import INSIDE, answer, health, ready
from textual.containers import VerticalScroll
from textual.widgets import DataTable

from tui.app import MnistApp, create_app
from tui.core.training.events import EpochEnded, PhaseChanged, TrainingEvent
from tui.core.training.phase import Phase
from tui.screens.inspect import InspectScreen


def slow_round(target: int, done: int, seconds: float = 15.5) -> list[TrainingEvent]:
    """`done` epochs of a round of `target`, each `seconds` long."""
    return [
        *LOADED,
        PhaseChanged(Phase.STARTING),
        msgspec.structs.replace(STARTED, target=target),
        PhaseChanged(Phase.TRAINING),
        *(
            EpochEnded(n, target, 0.0421, 0.9871, 0.0352, 0.9902, seconds, 54_000 / seconds, 1e-3)
            for n in range(1, done + 1)
        ),
    ]


async def test_the_log_stays_at_its_newest_line_through_a_resize() -> None:
    async with showing(state(slow_round(80, 60)), size=(120, 40)) as (app, pilot, _engine):
        log = app.dashboard.training_log
        await until(pilot, lambda: log.max_scroll_y > 0 and log.is_vertical_scroll_end)
        for size in ((80, 24), (160, 50), (100, 30)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            assert log.is_vertical_scroll_end, (size, log.scroll_y, log.max_scroll_y)


async def test_epoch_lines_fit_the_log_at_120_columns_however_slow() -> None:
    """Beside the panel at 120 columns, three-digit epochs of twenty minutes: one line each."""
    async with showing(state(slow_round(100, 100, seconds=1234.5)), size=(120, 40)) as (
        app,
        _p,
        _e,
    ):
        lines = [line.text for line in app.dashboard.training_log.lines]
        epochs = [line for line in lines if line.startswith("epoch ")]
        assert len(epochs) == 100 and all(line.rstrip().endswith("44/s") for line in epochs)
        assert (
            "epoch 100/100  loss 0.0421 acc 98.71% │ val 0.0352 acc 99.02% │ 20:34 44/s"
            in (lines[-1])
        )


@pytest.fixture
def no_color(monkeypatch: pytest.MonkeyPatch) -> Iterator[MnistApp]:
    """The app on the scripted engine's trained model, with NO_COLOR set."""
    monkeypatch.setenv("NO_COLOR", "1")
    more = [health(n) for n in range(6, 21)]
    with ScriptedEngine(test_snapshots_app.state([*INSIDE, *more]), answer) as engine:
        app = create_app(engine.options, engine.connector())
        assert app.no_color
        yield app


async def test_the_feature_maps_can_be_scrolled_to_at_80x24(no_color: MnistApp) -> None:
    async with no_color.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("v", "w")
        screen = no_color.screen
        assert isinstance(screen, InspectScreen)
        await until(pilot, lambda: screen.seen is not None and bool(screen.query(".inspect-tile")))
        await pilot.pause()
        scroll = screen.query_one(VerticalScroll)
        last = list(screen.query(".inspect-tile"))[-1]
        assert scroll.max_scroll_x == 0, "nothing is cut at the side"
        assert not scroll.region.contains_region(last.region), "they do not fit: scrolling needed"
        await pilot.press("end")
        await pilot.pause()
        assert scroll.region.contains_region(last.region)
        await pilot.press("3")  # the keys of the screen still work with the maps in focus
        assert screen.class_index == 3


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_model_screens_columns_are_whole(
    no_color: MnistApp, size: tuple[int, int]
) -> None:
    async with no_color.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("m")
        await pilot.pause()
        table = no_color.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count > 0)
        await pilot.pause()
        assert table.virtual_size.width <= table.scrollable_content_region.width
        labels = [str(column.label) for column in table.columns.values()]
        assert labels[-2] == "dead"
        row = table.get_row_at(0)
        trend = str(row[4]).split(" ")[-1]
        assert len(trend) >= (3 if size[0] == 80 else 16), trend
