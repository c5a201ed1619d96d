"""What the training controller tells its viewers: one typed, immutable event per thing that
happened. The headless CLI, the app and the engine's socket all carry these same structs.

They are msgspec `Struct`s tagged with their class name, so that the engine can send them as
JSON and a viewer decode them into the same types, validated (no pickle, no hand-written
checks). A figure that can be unknown is `None`, never NaN: JSON has no NaN.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import msgspec

from tui.core.data.info import DataInfo
from tui.core.inspect.problems import LayerProblem
from tui.core.platform.devices import DeviceReport
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.phase import Phase


class StopReason(enum.Enum):
    """Why a training round ended."""

    FINISHED = "finished"
    """The epoch target was reached."""
    USER = "stopped by user"
    """Stop now: `fit` left within a group of batches and the epoch in progress was rolled
    back, so the model is the one saved at the last complete epoch."""
    AFTER_EPOCH = "stopped after epoch"
    """Stop after this epoch: the epoch in progress completed first."""
    NAN = "loss became NaN"
    """The loss became NaN or infinite."""
    ERROR = "error"
    """An exception inside training; the message says which."""
    EARLY_STOP = "early stopping"
    """A monitoring callback decided to stop."""


class Event(msgspec.Struct, frozen=True, tag=True):
    """Base of every event; the tag (the class name) tells them apart on the wire."""


class PhaseChanged(Event, frozen=True):
    """The lifecycle moved on (see `Phase`)."""

    phase: Phase


class DataLoaded(Event, frozen=True):
    """The data that training uses (at start-up, or a run's own data when it is opened)."""

    data: DataInfo
    notice: str = ""
    """Something to say about it (it is the bundled sample; the run's data was replaced)."""


class BackendLoaded(Event, frozen=True):
    """TensorFlow is imported and the strategy made; `device` names what training runs on."""

    device: str
    report: DeviceReport


class LoadFailed(Event, frozen=True):
    """TensorFlow or the data could not be loaded; `reason` is one sentence to act on."""

    what: str
    """"data" or "TensorFlow"."""
    reason: str


class DevicesReported(Event, frozen=True):
    """A fresh device report (memory in use changes as training runs)."""

    report: DeviceReport


class SettingsApplied(Event, frozen=True):
    """The hyperparameters in force changed: a round began with them, or a run was opened."""

    hparams: Hyperparams
    preset: str


class RunRecording(Event, frozen=True):
    """Training records into this run directory."""

    path: str


class Notice(Event, frozen=True):
    """A line for the log; warnings and errors are also shown as a notification."""

    text: str
    level: str = "info"
    """"info", "warning" or "error"."""
    title: str = ""


class TrainingStarted(Event, frozen=True):
    """`fit` is about to run its first batch."""

    first_epoch: int
    """1-based number of the first epoch this round runs."""
    target: int
    """Epoch target at the start (it can move while training)."""
    steps_per_epoch: int
    train_samples: int
    val_samples: int
    params: int
    """Trainable and non-trainable parameter count."""
    device: str
    hparams: Hyperparams


class BatchProgress(Event, frozen=True):
    """Running figures inside an epoch; throttled to a few per second."""

    epoch: int
    """1-based epoch number."""
    step: int
    """Steps done in this epoch (1-based, so `step == steps` at the end)."""
    steps: int
    loss: float
    """Running mean loss over the epoch so far."""
    accuracy: float | None
    """Running mean accuracy over the epoch so far (None for a model without the metric)."""
    samples_per_sec: float
    eta_seconds: float | None
    """Estimated seconds left in this epoch; None when unknown."""


class EpochEnded(Event, frozen=True):
    """One epoch finished, with its metrics (validation included when there is a split)."""

    epoch: int
    target: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float | None
    """Training time of the epoch, pauses excluded; None when a record lacks it."""
    samples_per_sec: float | None
    learning_rate: float | None


class Paused(Event, frozen=True):
    """Training waits between two groups of batches until resumed or stopped."""

    epoch: int
    step: int


class Resumed(Event, frozen=True):
    """Training goes on after a pause."""

    epoch: int
    step: int
    paused_seconds: float


class TargetChanged(Event, frozen=True):
    """The epoch target moved (possibly clamped to the epoch in progress)."""

    target: int
    requested: int


class LearningRateChanged(Event, frozen=True):
    """The learning rate a schedule starts from was changed while training."""

    learning_rate: float


class StopRequested(Event, frozen=True):
    """A stop was asked for: now (within a group of batches) or when this epoch ends."""

    after_epoch: bool
    by: str = ""
    """Who asked and from where, for a stop from another login (`mnist-tui stop`): "alice
    from pts/3 (ssh 10.0.0.5)"; empty for a viewer's key."""


class TrainingStopped(Event, frozen=True):
    """`fit` returned; `epochs_done` counts completed epochs over the model's whole life."""

    reason: StopReason
    epochs_done: int
    message: str = ""
    epoch: int = 0
    """The epoch that was in progress when a stop-now landed (0: none)."""
    step: int = 0
    """Steps of that epoch done when it landed."""
    by: str = ""
    """Who asked for the stop that ended it, as `StopRequested.by` says."""


class Evaluated(Event, frozen=True):
    """Test-set loss and accuracy of the model saved at `epochs_done`."""

    loss: float
    accuracy: float
    samples: int
    epochs_done: int


class PredictionsReady(Event, frozen=True):
    """The current model has predicted the whole test set; viewers fetch the arrays."""

    samples: int
    accuracy: float
    version: int
    """Grows with each new set of predictions, so a viewer knows when its copy is stale."""


class RunOpened(Event, frozen=True):
    """A run directory was reopened: its history and (if it has one) its model."""

    path: str
    preset: str
    hparams: Hyperparams
    epochs_done: int
    history: tuple[EpochEnded, ...]
    has_model: bool
    health: tuple[LayerHealthMeasured, ...] = ()
    """The layers' figures recorded for the run's epochs."""


class ModelOpened(Event, frozen=True):
    """A saved model was opened to browse and draw with (not trained here)."""

    path: str
    params: int
    notes: tuple[str, ...] = ()
    """How the model is fed or read (a flattened input, raw scores put through softmax)."""


class ModelSaved(Event, frozen=True):
    path: str


class ModelReset(Event, frozen=True):
    """The model was discarded; the next round builds a fresh one."""


class LayerInfo(msgspec.Struct, frozen=True):
    """One layer of the model, as `model.summary()` lists it."""

    name: str
    kind: str
    """The layer's class, e.g. "Conv2D"."""
    output_shape: tuple[int | None, ...]
    params: int
    trainable: bool


class ModelDescribed(Event, frozen=True):
    """The layers of the model that trains (or was opened)."""

    layers: tuple[LayerInfo, ...]


class LayerFigures(msgspec.Struct, frozen=True):
    """How one learning layer is doing after an epoch."""

    layer: str
    weight_norm: float | None
    update_ratio: float | None
    """How far the weights moved in the epoch, relative to their size; None the first time."""
    dead_share: float | None
    """Share of the layer's ReLU units that never fired on a fixed probe batch."""
    finite: bool


class LayerHealthMeasured(Event, frozen=True):
    """Every learning layer's figures after an epoch, and what looks wrong with them."""

    epoch: int
    layers: tuple[LayerFigures, ...]
    problems: tuple[LayerProblem, ...] = ()


TrainingEvent: TypeAlias = (
    PhaseChanged
    | DataLoaded
    | BackendLoaded
    | LoadFailed
    | DevicesReported
    | SettingsApplied
    | RunRecording
    | Notice
    | TrainingStarted
    | BatchProgress
    | EpochEnded
    | Paused
    | Resumed
    | TargetChanged
    | LearningRateChanged
    | StopRequested
    | TrainingStopped
    | Evaluated
    | PredictionsReady
    | RunOpened
    | ModelOpened
    | ModelSaved
    | ModelReset
    | ModelDescribed
    | LayerHealthMeasured
)
"""Everything a controller publishes, as one tagged union."""
