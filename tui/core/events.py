"""Plain dataclasses that a training session emits; the app and the CLI both consume them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from tui.core.config import Hyperparams

if TYPE_CHECKING:
    import numpy as np  # the arrays arrive already made; the app's first frame skips numpy


class StopReason(enum.Enum):
    """Why a call to `TrainingSession.train` returned."""

    FINISHED = "finished"
    """The epoch target was reached."""
    USER = "stopped by user"
    """Stop now: training ended within a few batches, the epoch in progress is not counted."""
    AFTER_EPOCH = "stopped after epoch"
    """Stop after this epoch: the epoch in progress completed first."""
    NAN = "loss became NaN"
    """The loss became NaN or infinite (Keras's TerminateOnNaN)."""
    ERROR = "error"
    """An exception inside training; the message says which."""
    EARLY_STOP = "early stopping"
    """A monitoring callback decided to stop."""


@dataclass(frozen=True)
class TrainingStarted:
    """`fit` is about to run its first batch."""

    first_epoch: int
    """1-based number of the first epoch this call runs."""
    target: int
    """Epoch target at the start (it can move while training)."""
    steps_per_epoch: int
    train_samples: int
    val_samples: int
    params: int
    """Trainable and non-trainable parameter count."""
    device: str
    hparams: Hyperparams


@dataclass(frozen=True)
class BatchProgress:
    """Running figures inside an epoch; throttled to a few per second."""

    epoch: int
    """1-based epoch number."""
    step: int
    """Steps done in this epoch (1-based, so `step == steps` at the end)."""
    steps: int
    loss: float
    """Running mean loss over the epoch so far."""
    accuracy: float
    """Running mean accuracy over the epoch so far."""
    samples_per_sec: float
    eta_seconds: float
    """Estimated seconds left in this epoch."""


@dataclass(frozen=True)
class EpochEnded:
    """One epoch finished, with its metrics (validation included when there is a split)."""

    epoch: int
    target: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    samples_per_sec: float
    learning_rate: float


@dataclass(frozen=True)
class Paused:
    """Training waits between two batches until resumed or stopped."""

    epoch: int
    step: int


@dataclass(frozen=True)
class Resumed:
    """Training goes on after a pause."""

    epoch: int
    step: int
    paused_seconds: float


@dataclass(frozen=True)
class TargetChanged:
    """The epoch target moved (possibly clamped to the epoch in progress)."""

    target: int
    requested: int


@dataclass(frozen=True)
class LearningRateChanged:
    """The optimizer's learning rate was changed while training."""

    learning_rate: float


@dataclass(frozen=True)
class TrainingStopped:
    """`fit` returned; `epochs_done` counts completed epochs over the whole session."""

    reason: StopReason
    epochs_done: int
    message: str = ""


@dataclass(frozen=True)
class Evaluated:
    """Test-set evaluation."""

    loss: float
    accuracy: float
    samples: int


@dataclass(frozen=True)
class Predicted:
    """Class probabilities for the whole test set."""

    probabilities: np.ndarray = field(repr=False)
    """(n, 10) float32."""
    labels: np.ndarray = field(repr=False)
    """(n,) true labels."""

    @property
    def predicted(self) -> np.ndarray:
        predicted: np.ndarray = self.probabilities.argmax(axis=1).astype("uint8")
        return predicted

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self.labels) else 0.0


def error_line(err: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, short enough for a log line or a stop message."""
    lines = str(err).strip().splitlines()
    text = lines[0][:limit] if lines else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


TrainingEvent: TypeAlias = (
    TrainingStarted
    | BatchProgress
    | EpochEnded
    | Paused
    | Resumed
    | TargetChanged
    | LearningRateChanged
    | TrainingStopped
    | Evaluated
    | Predicted
)

EventSink: TypeAlias = Callable[[TrainingEvent], None]
"""Receives events on the training thread; must be quick and must not raise."""
