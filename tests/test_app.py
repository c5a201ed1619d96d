"""Pilot tests of the app training for real on a small MNIST slice, driven by key presses."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tiny import TINY

from tui import messages
from tui.app import MnistApp, create_app
from tui.core.data import MnistData
from tui.core.events import BatchProgress, StopReason
from tui.screens.confirm import ConfirmScreen

SIZE = (120, 40)


def make_app(data: MnistData, **changes: object) -> MnistApp:
    return create_app(TINY.with_changes(**changes), data=data, progress_interval=0.0)


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 90
) -> None:
    """Let the app run until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.02)


def log_text(app: MnistApp) -> str:
    return "\n".join(line.text for line in app.training_log.lines)


async def start_training(pilot: Pilot[None], app: MnistApp) -> None:
    """Press t once TensorFlow is in, then wait for the first progress figures of epoch 1."""
    await wait_until(pilot, lambda: app.backend_ready and app.data is not None)
    await pilot.press("t")
    await wait_until(pilot, lambda: bool(app.curves.running) or bool(app.curves.epochs))


def is_idle(app: MnistApp) -> bool:
    return app.state in ("finished", "stopped", "error") and not app._training_running()


async def test_training_streams_epochs_curves_and_predictions(mnist_small: MnistData) -> None:
    app = make_app(mnist_small)
    async with app.run_test(size=SIZE) as pilot:
        assert app.state == "loading"
        plotted: list[tuple[float, int]] = []
        add_progress = app.curves.add_progress

        def spy(event: BatchProgress) -> None:
            add_progress(event)
            plotted.append((app.curves.running[-1][0], len(app.curves.epochs)))

        app.curves.add_progress = spy  # type: ignore[method-assign]
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "finished"
        text = log_text(app)
        assert "epoch 1/2" in text and "epoch 2/2" in text
        assert "test accuracy" in text
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        # The running accuracy was on the plot inside the very first epoch.
        assert any(x < 1.0 and done == 0 for x, done in plotted)
        assert app.status.epoch == 2 and app.status.test_accuracy is not None
        assert app.predictions is not None
        assert app.predictions.probabilities.shape == (len(mnist_small.y_test), 10)
        assert app.panel.mode == "model"
        assert app.panel.query_one("#hp-conv_filters", Input).disabled


async def test_pause_raise_target_and_live_learning_rate(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.backend_ready)
        # t and p in one go, before the worker thread starts: training holds at its first
        # batch, so the test cannot race a one-epoch run (two key presses could).
        app.action_train()
        app.action_pause()
        assert app.state == "paused"
        await wait_until(pilot, lambda: "paused in epoch 1" in log_text(app))
        await pilot.press("plus")
        assert app.status.target == 2
        assert app.panel.query_one("#hp-epochs", Input).value == "2"
        # A live edit of the learning rate, applied when the field is confirmed.
        lr = app.panel.query_one("#hp-learning_rate", Input)
        lr.focus()
        lr.value = "0.005"
        await pilot.press("enter")
        await pilot.press("escape")
        await pilot.press("p")
        await wait_until(pilot, lambda: is_idle(app))
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        text = log_text(app)
        assert "resumed after" in text
        assert "epoch target is now 2" in text
        assert "learning rate is now 0.005" in text
        assert app.curves.epochs[-1].learning_rate == pytest.approx(0.005)


async def test_stop_now_ends_within_the_epoch(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=50)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        # Park the trainer between two batches first, so the test knows which epoch is in
        # progress: stop now must leave it uncounted rather than finish it.
        await pilot.press("p")
        await wait_until(pilot, lambda: "⏸ paused in epoch" in log_text(app))
        # Epoch events are handled in order, so the curves hold every epoch finished so far.
        done = len(app.curves.epochs)
        await pilot.press("s")
        await wait_until(pilot, lambda: is_idle(app))
        assert app._stop_reason is StopReason.USER
        assert app.state == "stopped"
        assert app.session is not None and app.session.epochs_done == done
        assert [e.epoch for e in app.curves.epochs] == list(range(1, done + 1))
        assert "stopped by user" in log_text(app)
        # A stop still evaluates what was learnt so far.
        assert app.status.test_accuracy is not None


async def test_stop_after_epoch_finishes_the_epoch(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=50)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await pilot.press("e")
        await wait_until(pilot, lambda: is_idle(app))
        assert app._stop_reason is StopReason.AFTER_EPOCH
        assert app.session is not None
        done = app.session.epochs_done
        assert 1 <= done < 50
        assert [e.epoch for e in app.curves.epochs] == list(range(1, done + 1))
        assert "stopped after epoch" in log_text(app)


async def test_continue_after_a_finished_run_then_reset(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=1)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        first = app.session
        assert app.state == "finished" and first is not None and first.epochs_done == 1
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.session is first and first.epochs_done == 2
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        assert "Continuing: epoch 2" in log_text(app)
        # Reset asks first; "n" keeps the model, "y" drops it.
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.session is first
        await pilot.press("r")
        await pilot.press("y")
        assert app.session is None and app.curves.epochs == []
        assert app.panel.mode == "free" and app.state == "ready"
        assert not app.panel.query_one("#hp-conv_filters", Input).disabled


async def test_nan_loss_is_reported_and_the_app_recovers(mnist_small: MnistData) -> None:
    # Pixels near the float32 limit overflow the first layer, so the loss is not finite at once.
    poisoned = dataclasses.replace(mnist_small, x_train=mnist_small.x_train * np.float32(3e38))
    app = make_app(poisoned)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.backend_ready)
        await pilot.press("t")
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "error"
        assert "loss became NaN" in log_text(app)
        assert any("NaN" in n.message for n in app._notifications)
        assert app.is_running
        # Still alive: after a reset and with clean data, a new run trains normally.
        await pilot.press("r", "y")
        assert app.session is None and app.state == "ready"
        app.post_message(messages.DataLoaded(mnist_small))
        await wait_until(pilot, lambda: app.data is mnist_small)
        await pilot.press("t")
        await wait_until(pilot, lambda: app.session is not None and is_idle(app))
        assert app.state == "finished"
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        assert all(np.isfinite(e.loss) for e in app.curves.epochs)
        # It learnt: two short epochs reach about 50% here, where guessing gets 10%.
        assert app.status.test_accuracy is not None and app.status.test_accuracy > 0.25


async def test_an_exception_in_the_worker_is_shown(
    mnist_small: MnistData, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(mnist_small, epochs=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.backend_ready)
        from tui.core.session import TrainingSession

        def broken(self: TrainingSession, batch_size: int = 1024) -> None:
            raise MemoryError("out of memory while evaluating")

        monkeypatch.setattr(TrainingSession, "evaluate", broken)
        await pilot.press("t")
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "error"
        assert "MemoryError: out of memory while evaluating" in log_text(app)
        assert app.is_running


def training_frames() -> list[str]:
    """Threads whose stack is inside `TrainingSession.train` or Keras `fit`."""
    found = []
    for thread_id, frame in sys._current_frames().items():
        f = frame
        while f is not None:
            code = f.f_code
            if (code.co_name == "train" and code.co_filename.endswith("session.py")) or (
                code.co_name == "fit" and "keras" in code.co_filename
            ):
                found.append(f"{thread_id}: {code.co_filename}:{code.co_name}")
                break
            f = f.f_back
    return found


async def test_quit_during_training_stops_and_waits(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=50)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        assert training_frames()
        await pilot.press("p")
        await wait_until(pilot, lambda: "⏸ paused in epoch" in log_text(app))
        done = len(app.curves.epochs)
        workers = [w for w in app.workers if w.group == "training"]
        await pilot.press("q")
        # Wait for the worker itself: leaving this block early would make the test harness
        # shut the app down instead of the app doing it once training has stopped.
        await app.workers.wait_for_complete(workers)
    assert workers and all(w.is_finished for w in workers)
    # Quit stopped within the paused epoch instead of finishing it.
    assert app.session is not None and app.session.epochs_done == done
    assert training_frames() == []
    assert app.return_code == 0


async def test_continue_with_a_new_batch_size_keeps_the_model(mnist_small: MnistData) -> None:
    app = make_app(mnist_small, epochs=1)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        first = app.session
        assert first is not None
        assert app.panel.query_one("#hp-conv_filters", Input).disabled
        batch = app.panel.query_one("#hp-batch_size", Input)
        assert not batch.disabled
        batch.value = "32"
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.session is not first and app.session is not None
        assert app.session.model is first.model
        assert app.session.epochs_done == 2
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        assert "Continuing: epoch 2" in log_text(app) and "batch 32" in log_text(app)
