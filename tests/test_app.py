"""Pilot tests of the app steering a real training on a small MNIST slice, by key presses.

The engine runs in this process (the real server, protocol and socket; see local_engine.py);
the tests assert on what the screen shows and on what the engine's controller reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest
from app_helpers import (
    app_on_engine,
    idle,
    log_text,
    round_over,
    shows_epoch,
    status_line,
    toasts,
    train,
    until,
)
from textual.widgets import Input
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.training.events import BatchProgress, StopReason
from tui.core.training.phase import Phase
from tui.screens.confirm import ConfirmScreen
from tui.screens.quit import QuitScreen


async def test_training_streams_epochs_curves_and_predictions(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY, mnist_small) as (app, pilot, engine):
        plotted: list[tuple[float, int]] = []
        add_progress = app.dashboard.curves.add_progress

        def spy(event: BatchProgress) -> None:
            add_progress(event)
            plotted.append((app.dashboard.curves.running[-1][0], len(app.dashboard.curves.epochs)))

        app.dashboard.curves.add_progress = spy  # type: ignore[method-assign]
        await train(pilot, app)
        assert app.phase is Phase.FINISHED
        text = log_text(app)
        assert "epoch 1/2" in text and "epoch 2/2" in text and "test accuracy" in text
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1, 2]
        # The running accuracy was on the plot inside the very first epoch.
        assert any(x < 1.0 and done == 0 for x, done in plotted)
        assert shows_epoch(app, 2, 2) and "finished" in status_line(app)
        evaluation = engine.controller.snapshot.evaluation
        assert evaluation is not None and f"test {evaluation.accuracy:.1%}" in status_line(app)
        await until(pilot, lambda: app.predictions is not None)
        assert app.predictions is not None
        assert app.predictions.probabilities.shape == (len(mnist_small.y_test), 10)
        assert app.dashboard.panel.mode == "model"
        assert app.dashboard.panel.query_one("#hp-conv_filters", Input).disabled
        assert app.snapshot == engine.controller.snapshot, "the viewer shows the engine's state"


@pytest.mark.parametrize(("split", "named"), [(0.1, True), (0.0, False)])
async def test_the_curves_legend_names_validation_only_when_there_is_one(
    mnist_small: MnistData, split: float, named: bool
) -> None:
    async with app_on_engine(TINY.with_changes(validation_split=split), mnist_small) as (
        app,
        pilot,
        _,
    ):
        await until(pilot, lambda: app.phase is Phase.READY)
        legend = str(app.dashboard.curves.border_subtitle)
        assert "train" in legend
        assert ("validation" in legend) is named


async def test_pause_raise_target_and_live_learning_rate(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=1), mnist_small) as (app, pilot, engine):
        # t and p in one go, as the keys' actions: the engine has claimed the round but not begun
        # it, so training holds at its first batch and the test cannot race a one-epoch run.
        # (Pilot waits for the process to go idle between two keys, which an engine training
        # in this very process only does once it is done.)
        await app.dashboard.action_train()
        await app.dashboard.action_pause()
        await until(pilot, lambda: app.phase is Phase.PAUSED)
        assert "paused in epoch 1" in log_text(app)
        await pilot.press("plus")
        await until(pilot, lambda: engine.controller.snapshot.target == 2)
        await until(pilot, lambda: app.dashboard.panel.query_one("#hp-epochs", Input).value == "2")
        assert shows_epoch(app, 0, 2)
        # A live edit of the learning rate, applied when the field is confirmed with Enter,
        # which also hands the keys back: q after it quits rather than typing into the field.
        lr = app.dashboard.panel.query_one("#hp-learning_rate", Input)
        lr.focus()
        lr.value = "0.005"
        await pilot.press("enter")
        await until(pilot, lambda: engine.controller.snapshot.learning_rate == 0.005)
        assert not lr.has_focus
        await pilot.press("p")
        await until(pilot, lambda: round_over(app))
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1, 2]
        text = log_text(app)
        assert "resumed after" in text
        assert "epoch target is now 2" in text
        assert "learning rate is now 0.005" in text
        assert app.dashboard.curves.epochs[-1].learning_rate == pytest.approx(0.005)
        assert lr.value == "0.005"


async def test_a_field_being_edited_is_not_overwritten_by_the_engine(
    mnist_small: MnistData,
) -> None:
    async with app_on_engine(TINY.with_changes(epochs=1), mnist_small) as (app, pilot, engine):
        await app.dashboard.action_train()
        await app.dashboard.action_pause()
        await until(pilot, lambda: app.phase is Phase.PAUSED)
        lr = app.dashboard.panel.query_one("#hp-learning_rate", Input)
        lr.focus()
        lr.value = "0.00"  # half typed, not yet confirmed
        engine.controller.change_target(1)  # another viewer's +: an event that refreshes the panel
        await until(pilot, lambda: app.dashboard.panel.query_one("#hp-epochs", Input).value == "2")
        assert lr.value == "0.00"
        engine.controller.stop_now()
        await until(pilot, lambda: round_over(app))


async def test_stop_now_ends_within_the_epoch_and_rolls_it_back(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=50), mnist_small) as (app, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: len(app.dashboard.curves.epochs) >= 1)
        await pilot.press("p")
        await until(pilot, lambda: app.phase is Phase.PAUSED)
        done = len(app.dashboard.curves.epochs)
        await pilot.press("s")
        await until(pilot, lambda: round_over(app))
        stopped = app.snapshot.stopped
        assert stopped is not None and stopped.reason is StopReason.USER
        assert app.phase is Phase.STOPPED
        assert engine.controller.snapshot.epochs_done == done
        assert [e.epoch for e in app.dashboard.curves.epochs] == list(range(1, done + 1))
        assert f"stopped by user in epoch {done + 1}" in log_text(app)
        # A stop still evaluates, and says which epoch's model it evaluated.
        assert f"after epoch {done})" in log_text(app)
        # The progress line shows the last epoch done, not the abandoned one at 0%.
        progress = app.dashboard.progress.query_one("#progress-epoch").render()
        assert f"epoch {done}/50" in str(progress)


async def test_stop_after_epoch_finishes_the_epoch(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=50), mnist_small) as (app, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: app.phase is Phase.TRAINING)
        await pilot.press("e")
        await until(pilot, lambda: round_over(app))
        assert app.snapshot.stopped is not None
        assert app.snapshot.stopped.reason is StopReason.AFTER_EPOCH
        done = engine.controller.snapshot.epochs_done
        assert 1 <= done < 50
        assert [e.epoch for e in app.dashboard.curves.epochs] == list(range(1, done + 1))
        assert "stopped after epoch" in log_text(app)
        assert "will stop when this epoch ends" in log_text(app)
        progress = str(app.dashboard.progress.query_one("#progress-epoch").render())
        assert progress == f"epoch {done}/50", "not the next epoch at 0%"


async def test_continue_after_a_finished_run_then_reset(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=1), mnist_small) as (app, pilot, engine):
        await train(pilot, app)
        assert app.phase is Phase.FINISHED and app.snapshot.epochs_done == 1
        run = app.snapshot.run
        await train(pilot, app)
        assert app.snapshot.epochs_done == 2 and app.snapshot.run == run
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1, 2]
        assert "Continuing: epoch 2" in log_text(app)
        # Reset asks first; "n" keeps the model, "y" drops it.
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.snapshot.model is not None
        await pilot.press("r", "y")
        await until(pilot, lambda: app.snapshot.model is None)
        assert app.dashboard.curves.epochs == [] and engine.controller.model is None
        assert app.dashboard.panel.mode == "free" and app.phase is Phase.READY
        assert not app.dashboard.panel.query_one("#hp-conv_filters", Input).disabled


async def test_continue_with_a_new_batch_size_keeps_the_model(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=1), mnist_small) as (app, pilot, engine):
        await train(pilot, app)
        model = engine.controller.model
        assert app.dashboard.panel.query_one("#hp-conv_filters", Input).disabled
        batch = app.dashboard.panel.query_one("#hp-batch_size", Input)
        assert not batch.disabled
        batch.value = "32"
        await train(pilot, app)
        assert engine.controller.model is model
        assert engine.controller.snapshot.epochs_done == 2
        assert engine.controller.snapshot.hparams.batch_size == 32
        assert "Continuing: epoch 2" in log_text(app) and "batch 32" in log_text(app)


async def test_nan_loss_is_reported_and_the_app_recovers(mnist_small: MnistData) -> None:
    # Pixels near the float32 limit overflow the first layer, so the loss is not finite at once.
    poisoned = dataclasses.replace(mnist_small, x_train=mnist_small.x_train * np.float32(3e38))
    async with app_on_engine(TINY, poisoned) as (app, pilot, _engine):
        await train(pilot, app)
        assert app.phase is Phase.FAILED
        assert "loss became NaN" in log_text(app)
        assert app.is_running
        assert "failed" in status_line(app)
        # Still usable: t tries again (and fails the same way, saying so again).
        await train(pilot, app)
        assert log_text(app).count("loss became NaN") == 2


async def test_a_failure_after_training_is_shown(
    mnist_small: MnistData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.core.training.session import TrainingSession

    def broken(self: TrainingSession, batch_size: int = 1024) -> None:
        raise MemoryError("out of memory while predicting")

    # The one mock here: the real failure (a full GPU at evaluation) cannot be made on a CPU.
    monkeypatch.setattr(TrainingSession, "predict", broken)
    async with app_on_engine(TINY.with_changes(epochs=1), mnist_small) as (app, pilot, _engine):
        await pilot.press("t")
        await until(pilot, lambda: app.phase is Phase.FAILED)
        assert "MemoryError: out of memory while predicting" in log_text(app)
        await until(pilot, lambda: any("out of memory" in t for t in toasts(app)))
        assert app.is_running


async def test_quit_while_training_asks_and_stop_ends_the_round(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=50), mnist_small) as (app, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: app.phase is Phase.TRAINING)
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("q", "s")
        await until(pilot, lambda: not app.is_running)
        # Stopping is the engine's to finish: the round ends within a group of batches.
        controller = engine.controller
        deadline = time.monotonic() + 60
        while controller.snapshot.stopped is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert controller.snapshot.stopped is not None
    assert controller.snapshot.stopped.reason is StopReason.USER
    assert controller.snapshot.epochs_done < 50
    assert app.return_code == 0


async def test_quit_while_idle_exits_at_once(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY, mnist_small) as (app, pilot, _engine):
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0 and not app.farewell


async def test_a_second_viewer_sees_and_steers_the_same_training(mnist_small: MnistData) -> None:
    from tui.app import create_app

    async with app_on_engine(TINY.with_changes(epochs=30), mnist_small) as (first, pilot, engine):
        await pilot.press("t")
        await until(pilot, lambda: first.phase is Phase.TRAINING)
        second = create_app(engine.options, engine.connector())
        async with second.run_test(size=(100, 30)) as other:
            await until(other, lambda: second.handle.client is not None)
            assert second.snapshot.phase is Phase.TRAINING
            target = second.snapshot.target
            await other.press("plus")
            await until(pilot, lambda: first.snapshot.target == target + 1)
            await until(other, lambda: second.snapshot.target == target + 1)
            await pilot.press("e")
            await until(other, lambda: idle(second))
            await until(pilot, lambda: idle(first))
            assert first.snapshot == second.snapshot == engine.controller.snapshot
            assert idle(first)
