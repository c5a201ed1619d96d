"""Where the training lifecycle stands (`Phase`) and what can be asked of it (`Action`)."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """The controller's lifecycle; the value is what the status bar and `ps` show."""

    LOADING = "loading"
    """TensorFlow and the data are being loaded."""
    BROKEN = "broken"
    """TensorFlow or the data could not be loaded: nothing can train (the reason is shown)."""
    READY = "ready"
    """Idle: nothing has trained since start-up, a reset, or opening a run or model."""
    OPENING = "opening"
    """A run or a model is being opened."""
    STARTING = "starting"
    """A round was asked for: the run is recorded and the model built before `fit` begins."""
    TRAINING = "training"
    PAUSING = "pausing"
    """A pause was asked for; it takes effect before the next group of batches."""
    PAUSED = "paused"
    STOPPING = "stopping"
    """Stop now was asked for; `fit` leaves before the next group of batches."""
    EVALUATING = "evaluating"
    """Training ended; the test set is evaluated and predicted."""
    FINISHED = "finished"
    """Idle after a round that reached its epoch target."""
    STOPPED = "stopped"
    """Idle after a round stopped by a person or a callback."""
    FAILED = "failed"
    """Idle after a round that failed (the log says why); training can start again."""

    @property
    def label(self) -> str:
        """The phase as a person reads it: "stopping…", "loading TensorFlow…"."""
        return _LABELS.get(self, self.value)


_LABELS = {
    Phase.LOADING: "loading…",
    Phase.OPENING: "opening…",
    Phase.STARTING: "starting…",
    Phase.PAUSING: "pausing…",
    Phase.STOPPING: "stopping…",
    Phase.EVALUATING: "evaluating…",
}

IDLE = frozenset({Phase.READY, Phase.FINISHED, Phase.STOPPED, Phase.FAILED})
"""Nothing runs: a round, a run or a model can be started, opened or saved."""
FITTING = frozenset({Phase.STARTING, Phase.TRAINING, Phase.PAUSING, Phase.PAUSED, Phase.STOPPING})
"""A round is between its claim and the end of `fit`: the controls act on it."""
BUSY = FITTING | {Phase.EVALUATING, Phase.OPENING, Phase.LOADING}
"""Something runs; an engine in one of these keeps going when its last viewer leaves."""


class Action(enum.Enum):
    """What a person (a key, a command, a protocol message) can ask of the controller."""

    TRAIN = "train"
    STOP_NOW = "stop now"
    STOP_AFTER_EPOCH = "stop after this epoch"
    PAUSE = "pause or resume"
    CHANGE_TARGET = "change the epoch target"
    SET_LEARNING_RATE = "change the learning rate"
    RESET = "reset the model"
    OPEN_RUN = "open a run"
    OPEN_MODEL = "open a model"
    SAVE_MODEL = "save the model"
    CLASSIFY = "classify a drawing"
