"""The curves' running segment: drawn from progress events, at most once per redraw interval."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import msgspec
import pytest
from textual.app import App, ComposeResult
from textual.reactive import var
from tiny import TINY

from tui.core.training.events import BatchProgress
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, initial_snapshot
from tui.widgets import curves
from tui.widgets.curves import CurvesPlot

BRAILLE = range(0x2801, 0x2900)
"""plotext's line marks (U+2800 itself is the blank braille cell)."""


class CurvesApp(App[None]):
    """Just the plot, bound to a snapshot as the dashboard binds it."""

    snapshot: var[Snapshot] = var(cast("Snapshot", None), always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield CurvesPlot(id="curves")


def marks(app: CurvesApp) -> int:
    """Braille cells on the plot as drawn now: the train curve's marks."""
    plot = app.query_one(CurvesPlot)
    lines = [plot.render_line(y).text for y in range(plot.size.height)]
    return sum(ord(ch) in BRAILLE for line in lines for ch in line)


def progress(step: int) -> BatchProgress:
    return BatchProgress(
        epoch=1, step=step, steps=10, loss=1.0, accuracy=0.5 + step / 40,
        samples_per_sec=1000.0, eta_seconds=1.0,
    )  # fmt: skip


async def fed(app: CurvesApp, pilot: object, steps: range) -> None:
    start = msgspec.structs.replace(initial_snapshot(TINY, "tiny"), phase=Phase.TRAINING)
    for step in steps:
        app.snapshot = msgspec.structs.replace(start, progress=progress(step))
    await pilot.pause()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("interval", "drawn"), [(0.0, True), (3600.0, False)])
async def test_running_curve_is_redrawn_by_progress_once_the_interval_has_passed(
    monkeypatch: pytest.MonkeyPatch, interval: float, drawn: bool
) -> None:
    monkeypatch.setattr(curves, "REDRAW_INTERVAL", interval)
    app = CurvesApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.snapshot = initial_snapshot(TINY, "tiny")
        await pilot.pause()
        assert marks(app) == 0, "no epoch and no progress: an empty plot"
        await fed(app, pilot, range(1, 6))
        assert len(app.query_one(CurvesPlot).running) == 5, "every progress event is kept"
        assert (marks(app) > 0) is drawn


async def test_running_curve_waits_five_seconds_between_redraws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The README's promise (a redraw with a progress event at most every 5 s), on a clock of
    # the plot's own so that the test does not wait for it.
    now = [100.0]
    monkeypatch.setattr(curves, "time", SimpleNamespace(monotonic=lambda: now[0]))
    app = CurvesApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.snapshot = initial_snapshot(TINY, "tiny")  # drawn at 100.0
        await pilot.pause()
        now[0] = 104.9
        await fed(app, pilot, range(1, 4))
        assert marks(app) == 0, "4.9 s after the last redraw: not yet"
        now[0] = 105.0
        await fed(app, pilot, range(4, 6))
        assert marks(app) > 0, "5 s after: the running curve is drawn"
