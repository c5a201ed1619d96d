"""Snapshots of the dashboard idle, training and finished, from fixed engine states, at two
sizes. A scripted engine (real socket, real protocol, no TensorFlow) sends each state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
from app_helpers import until
from scripted_engine import ScriptedEngine
from textual.pilot import Pilot

from tui.app import MnistApp, create_app
from tui.core.data.info import DataInfo
from tui.core.platform.devices import DeviceReport
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import (
    BackendLoaded,
    BatchProgress,
    DataLoaded,
    EpochEnded,
    Evaluated,
    PhaseChanged,
    PredictionsReady,
    RunRecording,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, advance, initial_snapshot

SIZES = [(60, 20), (80, 24), (120, 40)]
HPARAMS = Hyperparams()
CPU_REPORT = DeviceReport("tensorflow", ("CPU:0",), "CPU (2 cores)", cpu_cores=2)
DATA = DataInfo("path", "/data/mnist.npz", "0" * 64, 60_000, 10_000)
ACCURACY = [
    (0.9203, 0.9833),
    (0.9741, 0.9862),
    (0.9812, 0.9880),
    (0.9846, 0.9893),
    (0.9871, 0.9902),
]
LOSS = [(0.2629, 0.0586), (0.0853, 0.0451), (0.0617, 0.0398), (0.0502, 0.0371), (0.0421, 0.0352)]
RUN = "/home/me/runs/20250101-090000-default"


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


LOADED: list[TrainingEvent] = [
    DataLoaded(DATA),
    BackendLoaded("CPU (2 cores)", CPU_REPORT),
    PhaseChanged(Phase.READY),
]
TRAINING = [
    *LOADED,
    PhaseChanged(Phase.STARTING),
    RunRecording(RUN),
    STARTED,
    PhaseChanged(Phase.TRAINING),
    epoch(1),
    epoch(2),
    *progress(3, range(20, 241, 20)),
]
FINISHED = [
    *LOADED,
    PhaseChanged(Phase.STARTING),
    RunRecording(RUN),
    STARTED,
    PhaseChanged(Phase.TRAINING),
    *(epoch(n) for n in range(1, 6)),
    TrainingStopped(StopReason.FINISHED, 5),
    PhaseChanged(Phase.EVALUATING),
    Evaluated(0.0301, 0.9907, 10_000, 5),
    PredictionsReady(10_000, 0.9907, 1),
    PhaseChanged(Phase.FINISHED),
]


def state(events: list[TrainingEvent]) -> Snapshot:
    snapshot = initial_snapshot(HPARAMS, "default")
    for event in events:
        snapshot = advance(snapshot, event)
    return snapshot


@pytest.fixture
def engines() -> Iterator[Callable[[list[TrainingEvent]], MnistApp]]:
    """Apps on scripted engines in a given state; the engines end with the test."""
    running: list[ScriptedEngine] = []

    def app_in(events: list[TrainingEvent]) -> MnistApp:
        engine = ScriptedEngine(state(events)).__enter__()
        running.append(engine)
        return create_app(engine.options, engine.connector())

    yield app_in
    for engine in running:
        engine.__exit__(None, None, None)


async def connected(pilot: Pilot[None]) -> None:
    app: Any = pilot.app
    await until(pilot, lambda: app.handle.client is not None)
    await pilot.pause()
    app.dashboard.curves.replot()
    await pilot.pause()


def before(extra: Callable[[Pilot[None]], Awaitable[None]] | None = None) -> Any:
    async def run_before(pilot: Pilot[None]) -> None:
        await connected(pilot)
        if extra is not None:
            await extra(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_idle(snap_compare: Any, engines: Any, size: tuple[int, int]) -> None:
    assert snap_compare(engines(LOADED), terminal_size=size, run_before=before())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_training(snap_compare: Any, engines: Any, size: tuple[int, int]) -> None:
    assert snap_compare(engines(TRAINING), terminal_size=size, run_before=before())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_finished(snap_compare: Any, engines: Any, size: tuple[int, int]) -> None:
    assert snap_compare(engines(FINISHED), terminal_size=size, run_before=before())


def test_dashboard_loss_curves(snap_compare: Any, engines: Any) -> None:
    assert snap_compare(
        engines(FINISHED), terminal_size=(120, 40), press=["l"], run_before=before()
    )


def test_help_screen(snap_compare: Any, engines: Any) -> None:
    assert snap_compare(
        engines(LOADED), terminal_size=(80, 24), press=["question_mark"], run_before=before()
    )
