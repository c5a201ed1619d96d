"""The progress line: what its bar draws for a step, that it repaints only for a change, and
that it and the status bar do not count epochs two ways without saying so."""

from __future__ import annotations

from typing import cast

import msgspec
import pytest
from textual.app import App, ComposeResult
from textual.reactive import var
from tiny import TINY

from tui.core.training.events import BatchProgress
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, initial_snapshot
from tui.widgets.progress import EpochBar, EpochProgress
from tui.widgets.status import StatusBar


class ProgressApp(App[None]):
    """Just the progress line, bound to a snapshot as the dashboard binds it."""

    snapshot: var[Snapshot] = var(cast("Snapshot", None), always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield EpochProgress(id="progress")
        yield StatusBar(id="status")


def training(step: int, steps: int = 10, *, epoch: int = 1) -> Snapshot:
    event = BatchProgress(
        epoch=epoch, step=step, steps=steps, loss=1.0, accuracy=0.5,
        samples_per_sec=1000.0, eta_seconds=1.0,
    )  # fmt: skip
    start = initial_snapshot(TINY, "tiny")
    return msgspec.structs.replace(
        start, phase=Phase.TRAINING, progress=event, epochs_done=epoch - 1
    )


def bar_line(app: ProgressApp) -> tuple[str, int]:
    """The bar's line as drawn, and how many of its cells are in the 'done' colour."""
    bar = app.query_one(EpochBar)
    done = bar.get_component_rich_style("epoch-bar--bar").color
    segments = list(bar.render_line(0))
    text = "".join(s.text for s in segments)
    filled = sum(len(s.text) for s in segments if s.style is not None and s.style.color == done)
    return text, filled


@pytest.mark.parametrize(("step", "percent"), [(0, "0%"), (3, "30%"), (5, "50%"), (10, "100%")])
async def test_the_bar_fills_in_proportion_and_ends_with_its_percentage(
    step: int, percent: str
) -> None:
    app = ProgressApp()
    async with app.run_test(size=(80, 6)) as pilot:
        app.snapshot = training(step)
        await pilot.pause()
        text, filled = bar_line(app)
        width = app.query_one(EpochBar).size.width - EpochBar.PERCENT_WIDTH
        assert text.endswith(f" {percent}") and len(text) == width + EpochBar.PERCENT_WIDTH
        if step < 10:  # a full bar takes the 'complete' colour instead
            halves = 2 * step * width // 10  # the fill, floored to a half cell
            assert filled == -(-halves // 2), text  # whole cells, the half one included
        assert set(text[:width]) <= {"━", "╸", "╺"}


async def test_the_bar_repaints_only_when_what_it_draws_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = ProgressApp()
    async with app.run_test(size=(80, 6)) as pilot:
        app.snapshot = training(1, steps=1000)
        await pilot.pause()
        repaints: list[int] = []
        monkeypatch.setattr(EpochBar, "refresh", lambda self, *a, **k: repaints.append(1))
        app.snapshot = training(2, steps=1000)  # 0.2%: not a half cell at 80 columns
        await pilot.pause()
        assert repaints == []
        app.snapshot = training(500, steps=1000)
        await pilot.pause()
        assert repaints == [1]


@pytest.mark.parametrize("width", [80, 120])
async def test_the_status_bar_counts_epochs_done_where_the_line_counts_the_one_in_progress(
    width: int,
) -> None:
    """Mid-way through epoch 2 of 3: "epoch 2/3" on the progress line, and the status bar's
    1 said as done (it read "epoch 1 of 3" beside "epoch 2/3")."""
    app = ProgressApp()
    async with app.run_test(size=(width, 6)) as pilot:
        app.snapshot = msgspec.structs.replace(training(5, epoch=2), target=3)
        await pilot.pause()
        assert str(app.query_one("#progress-epoch").render()) == "epoch 2/3"
        status = str(app.query_one(StatusBar).render())
        assert "1 of 3 epochs done" in status or "done 1/3" in status, status
        assert "epoch 1" not in status and "ep 1/3" not in status
