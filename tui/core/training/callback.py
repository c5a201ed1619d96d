"""The Keras callbacks that connect `fit` to the controls and to the event stream.

`ControlCallback` runs on the training thread, between groups of batches: it stops, pauses,
applies the learning rate and the schedule, reports the epoch, and keeps the point that a
stop-now rolls back to. `ProgressCallback` is `async_safe`: Keras may run it on a helper thread,
so reading the running metrics never stalls the device. Both share one `EpochClock`, which is
also what the run directory records as an epoch's time, so that pauses never count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from tui.core.platform.runtime import import_keras
from tui.core.training.controls import MAX_EPOCHS, TrainingControls
from tui.core.training.events import (
    BatchProgress,
    EpochEnded,
    Paused,
    Resumed,
    StopReason,
    TrainingEvent,
)
from tui.core.training.schedule import scheduled_rate

keras = import_keras()

EventSink = Callable[[TrainingEvent], None]
"""Receives events on the training thread (or Keras's callback thread); quick, never raises."""

__all__ = [
    "MAX_EPOCHS",
    "ControlCallback",
    "EpochClock",
    "EpochReport",
    "LossNotFinite",
    "ProgressCallback",
    "RoundState",
    "StopNow",
]


class StopNow(Exception):
    """Raised inside `fit` to leave it at once; the epoch in progress is rolled back."""


class LossNotFinite(Exception):
    """Raised inside `fit` when the loss became NaN or infinite, before the epoch's end is
    recorded: the run directory never saves or logs a diverged epoch, and the model rolls back
    to the last good one."""


class EpochClock:
    """Seconds trained in the epoch in progress, pauses excluded; safe from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._paused = 0.0

    def now(self) -> float:
        return self._clock()

    def start_epoch(self) -> None:
        with self._lock:
            self._started = self._clock()
            self._paused = 0.0

    def add_pause(self, seconds: float) -> None:
        with self._lock:
            self._paused += seconds

    def elapsed(self, now: float | None = None) -> float:
        """Training seconds in this epoch so far (never zero, so rates stay finite)."""
        at = self._clock() if now is None else now
        with self._lock:
            return max(at - self._started - self._paused, 1e-9)


class RoundState:
    """What the two callbacks learn during one `fit` and the session reads afterwards."""

    def __init__(self, epochs_done: int, steps: int) -> None:
        self.epochs_done = epochs_done
        self.steps = steps
        """Steps per epoch."""
        self.epoch = 0
        """1-based epoch in progress, 0 before the first."""
        self.step = 0
        """Steps done in the epoch in progress, as far as the control callback knows."""
        self.stop_reason: StopReason | None = None
        self.stop_message = ""


class ControlCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Reads the controls before each group of batches; reports epochs; keeps the rollback.

    Keras calls the batch hooks once per `steps_per_execution` batches (8, see `model.py`), on
    the training thread, so a stop or pause takes effect before the next group.
    """

    def __init__(
        self,
        controls: TrainingControls,
        sink: EventSink,
        state: RoundState,
        clock: EpochClock,
        *,
        train_samples: int,
        lr_schedule: str = "constant",
    ) -> None:
        super().__init__()
        self.controls = controls
        self.sink = sink
        self.state = state
        self.clock = clock
        self.train_samples = train_samples
        self.lr_schedule = lr_schedule
        self.rollback: list[Any] = []
        """The model's and optimizer's variables at the last epoch boundary."""
        self.finished_epoch: EpochEnded | None = None
        """The epoch that just ended, for `EpochReport` to tell once it is recorded."""

    # --- the rollback point -------------------------------------------------------------------
    def _keep_rollback(self) -> None:
        variables = [*self.model.weights, *self.model.optimizer.variables]
        self.rollback = [keras.ops.convert_to_numpy(v) for v in variables]

    def roll_back(self) -> None:
        """Put the variables back as they were at the last epoch boundary."""
        variables = [*self.model.weights, *self.model.optimizer.variables]
        if len(variables) != len(self.rollback):
            return  # the optimizer built its variables during the abandoned epoch: nothing kept
        for variable, value in zip(variables, self.rollback, strict=True):
            variable.assign(value)

    # --- hooks --------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.model.optimizer.built:
            # Built now rather than on the first step, so that the rollback covers its state.
            self.model.optimizer.build(self.model.trainable_variables)
        if self.lr_schedule == "constant":
            # A model loaded from a file brings the rate it was saved with; the controls say
            # what is in force now.
            self.model.optimizer.learning_rate.assign(self.controls.learning_rate)
        self._keep_rollback()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.state.epoch, self.state.step = epoch + 1, 0
        self.controls.mark_epoch(epoch + 1, self.state.epochs_done)
        self.clock.start_epoch()
        self._apply_learning_rate(0)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.state.step = batch
        if self.state.stop_reason is StopReason.NAN:
            raise LossNotFinite
        if self.controls.stop_requested:
            raise StopNow
        if self.controls.paused:
            self._pause(batch)
        self._apply_learning_rate(batch)

    def _pause(self, batch: int) -> None:
        started = self.clock.now()
        self.sink(Paused(self.state.epoch, batch))
        # Wake up now and then so that a stop request also ends a pause.
        while not self.controls.wait_while_paused(0.05):
            if self.controls.stop_requested:
                break
        if self.controls.stop_requested:
            raise StopNow
        waited = self.clock.now() - started
        self.clock.add_pause(waited)
        self.sink(Resumed(self.state.epoch, batch, waited))

    def _apply_learning_rate(self, batch: int) -> None:
        # The controller reports a change when it is asked for; here it only takes effect.
        changed = self.controls.take_learning_rate_change()
        if self.lr_schedule == "constant" and changed is None:
            return
        steps = self.state.steps
        rate = scheduled_rate(
            self.lr_schedule,
            self.controls.learning_rate,
            (self.state.epoch - 1) * steps + batch,
            self.controls.epoch_target * steps,
        )
        self.model.optimizer.learning_rate.assign(rate)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = self.clock.elapsed()
        if self.state.stop_reason is StopReason.NAN:
            # First in the callback list: nothing after it records this epoch.
            raise LossNotFinite
        self.state.epochs_done = epoch + 1
        self.state.step = self.state.steps
        target = self.controls.epoch_target
        self.controls.mark_epoch(0, self.state.epochs_done)
        self._keep_rollback()
        self.finished_epoch = EpochEnded(
            epoch=epoch + 1,
            target=target,
            loss=float(logs.get("loss", math.nan)),
            accuracy=_maybe_float(logs.get("accuracy")),
            val_loss=_maybe_float(logs.get("val_loss")),
            val_accuracy=_maybe_float(logs.get("val_accuracy")),
            seconds=seconds,
            samples_per_sec=self.train_samples / seconds,
            learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        )
        if self.controls.stop_after_epoch_requested:
            self.state.stop_reason = StopReason.AFTER_EPOCH
            self.model.stop_training = True
        elif self.state.epochs_done >= target:
            self.state.stop_reason = StopReason.FINISHED
            self.model.stop_training = True


class EpochReport(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Last in the callback list: tells the epoch that `ControlCallback` measured, once every
    callback before it (the run's metrics and checkpoint) has recorded it, so that an epoch a
    viewer sees is an epoch a resume gets back."""

    def __init__(self, control: ControlCallback, sink: EventSink) -> None:
        super().__init__()
        self.control = control
        self.sink = sink

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        finished, self.control.finished_epoch = self.control.finished_epoch, None
        if finished is not None:
            self.sink(finished)


class ProgressCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Running figures inside an epoch, at most one every `interval` seconds; and NaN.

    NaN is caught here rather than with `TerminateOnNaN`, whose per-batch hook is not
    `async_safe` and would make every batch wait for its metrics.
    """

    async_safe = True

    def __init__(
        self,
        sink: EventSink,
        state: RoundState,
        clock: EpochClock,
        *,
        batch_size: int,
        train_samples: int,
        interval: float = 0.1,
    ) -> None:
        super().__init__()
        self.sink = sink
        self.state = state
        self.clock = clock
        self.batch_size = batch_size
        self.train_samples = train_samples
        self.interval = interval
        self._lock = threading.Lock()
        self._epoch = 0
        self._last_emit = -math.inf
        self._last_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._epoch = epoch + 1
            self._last_emit = -math.inf
            self._last_step = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        steps = self.state.steps
        # `batch` is the last batch of the group Keras ran; for the epoch's last, shorter group
        # it runs past the end of the epoch.
        step = min(batch + 1, steps) if steps else batch + 1
        loss = float(logs.get("loss", math.nan))
        if not math.isfinite(loss):
            self.state.stop_reason = StopReason.NAN
            self.state.stop_message = f"loss became {loss} at epoch {self._epoch}, step {step}"
            self.model.stop_training = True
            return
        now = self.clock.now()
        with self._lock:
            # Async dispatch may run two groups' hooks out of order: never report backwards.
            if step <= self._last_step or now - self._last_emit < self.interval:
                return
            self._last_emit, self._last_step = now, step
        rate = min(step * self.batch_size, self.train_samples) / self.clock.elapsed(now)
        left = max(steps - step, 0) * self.batch_size
        self.sink(
            BatchProgress(
                epoch=self._epoch,
                step=step,
                steps=steps,
                loss=loss,
                accuracy=_maybe_float(logs.get("accuracy")),
                samples_per_sec=rate,
                eta_seconds=left / rate if rate > 0 else None,
            )
        )


def _maybe_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
