"""Textual messages that carry the training core's events from the worker thread to the app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from tui.core import events
from tui.core.runtime import DeviceReport

if TYPE_CHECKING:
    from tui.core.data import MnistData  # numpy: not needed before the first frame

    # Both import Keras: only the workers that post these messages import them at run time.
    from tui.core.runs import RunDirectory
    from tui.core.session import TrainingSession


@dataclass
class TrainingStarted(Message):
    """A call to `TrainingSession.train` began its first batch."""

    event: events.TrainingStarted


@dataclass
class ProgressUpdated(Message):
    """Running figures inside the current epoch."""

    event: events.BatchProgress

    def can_replace(self, message: Message) -> bool:
        # Only the newest figures matter: a queued older update is dropped rather than drawn late.
        return isinstance(message, ProgressUpdated)


@dataclass
class EpochEnded(Message):
    """An epoch finished, with its metrics."""

    event: events.EpochEnded


@dataclass
class TrainingPaused(Message):
    """Training waits between two batches."""

    event: events.Paused


@dataclass
class TrainingResumed(Message):
    """Training went on after a pause."""

    event: events.Resumed


@dataclass
class TargetChanged(Message):
    """The epoch target moved (possibly clamped by the core)."""

    event: events.TargetChanged


@dataclass
class LearningRateChanged(Message):
    """The optimizer's learning rate was changed live."""

    event: events.LearningRateChanged


@dataclass
class TrainingStopped(Message):
    """`fit` returned, with the reason."""

    event: events.TrainingStopped


@dataclass
class Evaluated(Message):
    """The test set was evaluated."""

    event: events.Evaluated


@dataclass
class Predicted(Message):
    """Predictions for the whole test set are ready."""

    event: events.Predicted


@dataclass
class DataLoaded(Message):
    """MNIST was found and loaded in the background."""

    data: MnistData


@dataclass
class DataFailed(Message):
    """MNIST could not be loaded; `reason` is one sentence a person can act on."""

    reason: str


@dataclass
class BackendLoaded(Message):
    """TensorFlow and Keras are imported; `device` names what training runs on."""

    device: str
    report: DeviceReport
    """What TensorFlow sees, gathered in the same worker so the panel is filled on "ready"."""
    strategy: Any = None
    """The `tf.distribute.Strategy` sessions train under, or None for one device."""


@dataclass
class DevicesReported(Message):
    """A fresh device report (after TensorFlow loads and after each epoch)."""

    report: DeviceReport


@dataclass
class RunResumed(Message):
    """A run directory was reopened: its session (model and history) is ready to continue."""

    session: TrainingSession
    run: RunDirectory
    predictions: events.Predicted | None
    """The reopened model's predictions on the current test set, when it has a model."""


@dataclass
class ModelOpened(Message):
    """A saved model was loaded (`--model`) and has predicted the test set."""

    model: Any
    path: Path
    predictions: events.Predicted


@dataclass
class OpenFailed(Message):
    """A run or model could not be opened; `reason` is one sentence a person can act on."""

    reason: str


@dataclass
class ModelSaved(Message):
    """The model was written to `path`."""

    path: Path


@dataclass
class RunCreated(Message):
    """The training worker created the run directory a fresh model records into."""

    run: RunDirectory


@dataclass
class RunNotCreated(Message):
    """No run directory could be made; training goes on unrecorded. `reason` is one sentence."""

    reason: str


@dataclass
class RecordFailed(Message):
    """A file could not be written (a run's results or a saved model); the app carries on."""

    reason: str


@dataclass
class BackendFailed(Message):
    """TensorFlow could not be imported."""

    reason: str


_WRAPPERS: dict[type[object], type[Message]] = {
    events.TrainingStarted: TrainingStarted,
    events.BatchProgress: ProgressUpdated,
    events.EpochEnded: EpochEnded,
    events.Paused: TrainingPaused,
    events.Resumed: TrainingResumed,
    events.TargetChanged: TargetChanged,
    events.LearningRateChanged: LearningRateChanged,
    events.TrainingStopped: TrainingStopped,
    events.Evaluated: Evaluated,
    events.Predicted: Predicted,
}


def wrap(event: events.TrainingEvent) -> Message:
    """The Textual message for a core event."""
    wrapper = _WRAPPERS[type(event)]
    return wrapper(event)  # type: ignore[call-arg]
