"""Snapshots of the dashboard idle, training and finished, fed fixed events, at two sizes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from textual.pilot import Pilot

from tui import messages
from tui.app import MnistApp, create_app
from tui.core.config import Hyperparams
from tui.core.data import MnistData
from tui.core.events import (
    BatchProgress,
    EpochEnded,
    Evaluated,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.runtime import DeviceReport

SIZES = [(80, 24), (120, 40)]
HPARAMS = Hyperparams()
CPU_REPORT = DeviceReport("tensorflow", ("CPU:0",), "CPU (2 cores)", cpu_cores=2)
ACCURACY = [
    (0.9203, 0.9833),
    (0.9741, 0.9862),
    (0.9812, 0.9880),
    (0.9846, 0.9893),
    (0.9871, 0.9902),
]
LOSS = [(0.2629, 0.0586), (0.0853, 0.0451), (0.0617, 0.0398), (0.0502, 0.0371), (0.0421, 0.0352)]


def fixed_data() -> MnistData:
    """Blank images with the sizes of full MNIST, so the snapshots need no data files."""
    return MnistData(
        x_train=np.zeros((60_000, 28, 28, 1), dtype=np.float32),
        y_train=np.zeros(60_000, dtype=np.uint8),
        x_test=np.zeros((10, 28, 28, 1), dtype=np.float32),
        y_test=np.zeros(10, dtype=np.uint8),
        source="/data/mnist.npz",
        kind="path",
    )


def make_app() -> MnistApp:
    return create_app(HPARAMS, data=fixed_data(), load_tensorflow=False)


def epoch(n: int, target: int = 5) -> EpochEnded:
    (acc, val_acc), (loss, val_loss) = ACCURACY[n - 1], LOSS[n - 1]
    return EpochEnded(n, target, loss, acc, val_loss, val_acc, 15.5, 3484.0, 0.001)


STARTED = TrainingStarted(
    first_epoch=1,
    target=5,
    steps_per_epoch=422,
    train_samples=54_000,
    val_samples=6_000,
    params=225_034,
    device="CPU (2 cores)",
    hparams=HPARAMS,
)


def progress(epoch: int, steps: Sequence[int]) -> list[BatchProgress]:
    return [
        BatchProgress(epoch, step, 422, 0.09 - step / 10_000, 0.95 + step / 20_000, 3500.0, 12.0)
        for step in steps
    ]


@dataclass
class TrainedSession:
    """Stands in for the `TrainingSession` that training leaves behind (the real one needs
    TensorFlow): once a run has ended the dashboard asks the session only for its model."""

    model: object = field(default_factory=object)
    epochs_done: int = 5


def feed(app_state: str, events: list[TrainingEvent]) -> Callable[[Pilot[None]], Awaitable[None]]:
    """A `run_before` that brings the app to `app_state` through the same messages as training."""

    async def run_before(pilot: Pilot[None]) -> None:
        app: Any = pilot.app
        app.post_message(messages.BackendLoaded("CPU (2 cores)", CPU_REPORT))
        await pilot.pause()
        if app_state != "ready":
            app.panel.mode = "training"
            app.state = "training"
        for event in events:
            app.post_message(messages.wrap(event))
            await pilot.pause()
        if app_state == "finished":
            # What the app does when the training worker returns; there is no worker here, so
            # the session it trained is set first.
            app.session = TrainedSession()
            app.run_ended(succeeded=True)
        app.curves.replot()
        await pilot.pause()

    return run_before


IDLE = feed("ready", [])
TRAINING = feed("training", [STARTED, epoch(1), epoch(2), *progress(3, range(20, 241, 20))])
FINISHED = feed(
    "finished",
    [
        STARTED,
        *(epoch(n) for n in range(1, 6)),
        TrainingStopped(StopReason.FINISHED, 5),
        Evaluated(0.0301, 0.9907, 10_000),
    ],
)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_idle(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=IDLE)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_training(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=TRAINING)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_finished(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=FINISHED)


def test_dashboard_loss_curves(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["l"], run_before=FINISHED)


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), press=["question_mark"])
