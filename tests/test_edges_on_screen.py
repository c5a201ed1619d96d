"""Cut and stale on screen (issue 29, case 16): the log stays at its end through a resize and its
epoch lines fit; the model screen's columns and the saliency maps are whole at 80x24. Scripted
engine states, no TensorFlow."""

from __future__ import annotations

import msgspec
from app_helpers import until
from test_screens_fit import LOADED, showing, state
from test_snapshots_app import STARTED

from tui.core.training.events import EpochEnded, PhaseChanged, TrainingEvent
from tui.core.training.phase import Phase


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
