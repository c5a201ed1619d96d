"""`Snapshot`: the whole state of a training controller, as the fold of its events.

The controller keeps its snapshot by applying `advance` to every event it publishes; a viewer
that receives the snapshot first and then the events keeps an identical one by doing the same.
That is what lets a viewer attach late (or a second viewer join) and show what the first one
shows, and why no widget keeps a copy of a value that it must reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tui.core.data.info import DataInfo
from tui.core.platform.devices import DeviceReport
from tui.core.settings.hyperparams import INT_BOUNDS, Hyperparams
from tui.core.training.events import (
    BackendLoaded,
    BatchProgress,
    DataLoaded,
    DevicesReported,
    EpochEnded,
    Evaluated,
    LayerHealthMeasured,
    LayerInfo,
    LearningRateChanged,
    LoadFailed,
    ModelDescribed,
    ModelOpened,
    ModelReset,
    PhaseChanged,
    PredictionsReady,
    RunOpened,
    RunRecording,
    SettingsApplied,
    StopRequested,
    TargetChanged,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.training.phase import BUSY, FITTING, IDLE, Action, Phase

MAX_EPOCHS = INT_BOUNDS["epochs"][1]
JOURNAL_LIMIT = 2000
"""Events kept for the log of a viewer that attaches late (the newest; progress is not kept)."""
_NOT_JOURNALLED = (
    BatchProgress,
    PhaseChanged,
    DevicesReported,
    ModelDescribed,
    LayerHealthMeasured,
)


class ModelInfo(msgspec.Struct, frozen=True):
    """The model the controller holds."""

    origin: str
    """"trained" (built here), "run" (a reopened run's) or "file" (a saved model opened)."""
    params: int = 0
    path: str = ""
    """The run directory or the model file it came from; empty for a fresh model."""
    notes: tuple[str, ...] = ()


class Snapshot(msgspec.Struct, frozen=True):
    """Everything a viewer shows; see the module docstring for how it stays true."""

    hparams: Hyperparams
    """The hyperparameters in force: the last round's, an opened run's, or the start-up ones."""
    preset: str
    target: int
    """The epoch target; moves live while training."""
    learning_rate: float
    """The learning rate a schedule starts from; moves live while training."""
    phase: Phase = Phase.LOADING
    data: DataInfo | None = None
    device: str = ""
    devices: DeviceReport | None = None
    problem: str = ""
    """Why the phase is BROKEN."""
    run: str = ""
    """The run directory being recorded into; empty when unrecorded."""
    model: ModelInfo | None = None
    epochs_done: int = 0
    started: TrainingStarted | None = None
    """The latest round's start (steps per epoch, samples, parameters)."""
    progress: BatchProgress | None = None
    """The epoch in progress; None between epochs and when idle."""
    history: tuple[EpochEnded, ...] = ()
    stop_after_epoch: bool = False
    """A stop at the end of the epoch in progress has been asked for."""
    stopped: TrainingStopped | None = None
    """How the latest round ended; None while one runs."""
    evaluation: Evaluated | None = None
    predictions: PredictionsReady | None = None
    layers: tuple[LayerInfo, ...] = ()
    """The model's layers, as `model.summary()` lists them."""
    health: tuple[LayerHealthMeasured, ...] = ()
    """Every learning layer's figures, epoch by epoch."""
    journal: tuple[TrainingEvent, ...] = ()
    """What the log shows: every event but progress, phase changes, device reports and the
    model's figures."""

    @property
    def epoch_in_progress(self) -> int:
        """The 1-based epoch being trained, 0 when none is."""
        if self.phase not in FITTING or self.started is None:
            return 0
        return self.progress.epoch if self.progress is not None else self.epochs_done + 1

    @property
    def last_val_accuracy(self) -> float | None:
        return self.history[-1].val_accuracy if self.history else None


def initial_snapshot(hparams: Hyperparams, preset: str) -> Snapshot:
    """What a controller knows before anything happened."""
    return Snapshot(
        hparams=hparams, preset=preset, target=hparams.epochs, learning_rate=hparams.learning_rate
    )


def advance(snapshot: Snapshot, event: TrainingEvent) -> Snapshot:
    """The snapshot after `event`; pure, so that every viewer folds events the same way."""
    changes = _changes(snapshot, event)
    if not isinstance(event, _NOT_JOURNALLED):
        journal = (*snapshot.journal, event)
        changes["journal"] = journal[-JOURNAL_LIMIT:]
    return msgspec.structs.replace(snapshot, **changes) if changes else snapshot


def _changes(s: Snapshot, event: TrainingEvent) -> dict[str, object]:
    match event:
        case PhaseChanged(phase=phase):
            return {"phase": phase}
        case DataLoaded(data=data):
            return {"data": data}
        case BackendLoaded(device=device, report=report):
            return {"device": device, "devices": report}
        case LoadFailed(reason=reason):
            return {"problem": reason}
        case DevicesReported(report=report):
            return {"devices": report}
        case SettingsApplied(hparams=hparams, preset=preset):
            return {"hparams": hparams, "preset": preset, "learning_rate": hparams.learning_rate}
        case RunRecording(path=path):
            return {"run": path}
        case TrainingStarted(target=target, params=params):
            model = s.model if s.model is not None else ModelInfo("trained", params, s.run)
            return {
                "started": event,
                "target": target,
                "progress": None,
                "stopped": None,
                "stop_after_epoch": False,
                "model": model,
            }
        case BatchProgress():
            return {"progress": event}
        case EpochEnded(epoch=epoch, target=target):
            history = (*(e for e in s.history if e.epoch < epoch), event)
            return {"history": history, "epochs_done": epoch, "progress": None, "target": target}
        case TargetChanged(target=target):
            return {"target": target}
        case LearningRateChanged(learning_rate=lr):
            return {"learning_rate": lr}
        case StopRequested(after_epoch=after_epoch):
            return {"stop_after_epoch": after_epoch or s.stop_after_epoch}
        case TrainingStopped(epochs_done=done):
            return {
                "stopped": event,
                "epochs_done": done,
                "progress": None,
                "stop_after_epoch": False,
            }
        case Evaluated():
            return {"evaluation": event}
        case PredictionsReady():
            return {"predictions": event}
        case RunOpened(path=path, preset=preset, hparams=hparams, epochs_done=done):
            return {
                **_FORGET_MODEL,
                "run": path,
                "preset": preset,
                "hparams": hparams,
                "learning_rate": hparams.learning_rate,
                "epochs_done": done,
                "history": event.history,
                "target": max(hparams.epochs, done),
                "model": ModelInfo("run", 0, path) if event.has_model else None,
                "health": event.health,
            }
        case ModelOpened(path=path, params=params, notes=notes):
            return {**_FORGET_MODEL, "model": ModelInfo("file", params, path, notes)}
        case ModelReset():
            return dict(_FORGET_MODEL)
        case ModelDescribed(layers=layers):
            return {"layers": layers}
        case LayerHealthMeasured(epoch=epoch):
            return {"health": (*(h for h in s.health if h.epoch < epoch), event)}
    return {}


_FORGET_MODEL: dict[str, object] = {
    "model": None,
    "run": "",
    "history": (),
    "epochs_done": 0,
    "started": None,
    "progress": None,
    "stopped": None,
    "stop_after_epoch": False,
    "evaluation": None,
    "predictions": None,
    "layers": (),
    "health": (),
}
"""What a model's replacement (a reset, an opened run or model) makes stale."""


# --- what can be asked, and why not --------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """Why an action cannot be taken now, in a sentence for a notification."""

    reason: str


def refusal(snapshot: Snapshot, action: Action) -> Refusal | None:
    """None when `action` can be taken in this state, else why not.

    The one rule book: the controller refuses commands with it, and the app hides the keys
    that would be refused.
    """
    phase = snapshot.phase
    if phase is Phase.BROKEN:
        return Refusal(snapshot.problem or "TensorFlow or MNIST could not be loaded.")
    if phase is Phase.LOADING and action is not Action.CLASSIFY:
        return Refusal("Still loading TensorFlow and MNIST; try again in a moment.")
    reason = _REFUSALS[action](snapshot, phase)
    return Refusal(reason) if reason else None


def _train(s: Snapshot, phase: Phase) -> str:
    if phase is Phase.OPENING:
        return "Still opening; training can start in a moment."
    if phase not in IDLE:
        return "Training is already running."
    if s.model is not None and s.epochs_done >= MAX_EPOCHS:
        return f"The model has trained {MAX_EPOCHS} epochs, the most allowed."
    return ""


def _fitting(s: Snapshot, phase: Phase) -> str:
    return "" if phase in FITTING else "Nothing is training."


def _pause(s: Snapshot, phase: Phase) -> str:
    if phase is Phase.STOPPING:
        return "Training is stopping."
    return _fitting(s, phase)


def _live(s: Snapshot, phase: Phase) -> str:
    if phase in FITTING and phase is not Phase.STOPPING:
        return ""
    return "Nothing is training; the panel's field sets it for the next round."


def _reset(s: Snapshot, phase: Phase) -> str:
    if phase in BUSY:
        return "Stop training first (s)."
    return "" if s.model is not None else "There is no model yet; t builds one from the panel."


def _open(s: Snapshot, phase: Phase) -> str:
    if phase is Phase.OPENING:
        return "Still opening the last choice; try again in a moment."
    return "Stop training first (s) to open another run." if phase in BUSY else ""


def _save(s: Snapshot, phase: Phase) -> str:
    if s.model is None:
        return "There is no model to save yet; t trains one."
    return "Stop training first (s); then save." if phase in BUSY else ""


def _classify(s: Snapshot, phase: Phase) -> str:
    if s.model is None:
        return "No model yet: train one (t), or open one with --model."
    return ""


_REFUSALS = {
    Action.TRAIN: _train,
    Action.STOP_NOW: _fitting,
    Action.STOP_AFTER_EPOCH: _pause,
    Action.PAUSE: _pause,
    Action.CHANGE_TARGET: _live,
    Action.SET_LEARNING_RATE: _live,
    Action.RESET: _reset,
    Action.OPEN_RUN: _open,
    Action.OPEN_MODEL: _open,
    Action.SAVE_MODEL: _save,
    Action.CLASSIFY: _classify,
}
