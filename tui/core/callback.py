"""Thread-safe training controls and the Keras callback that turns `fit` into events."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from tui.core.config import INT_BOUNDS
from tui.core.events import (
    BatchProgress,
    EpochEnded,
    EventSink,
    LearningRateChanged,
    Paused,
    Resumed,
    StopReason,
    TargetChanged,
)
from tui.core.runtime import import_keras

keras = import_keras()

MIN_EPOCHS, MAX_EPOCHS = INT_BOUNDS["epochs"]


class StopNow(Exception):
    """Raised inside `fit` to leave it at once; the epoch in progress is not counted."""


class TrainingControls:
    """Steering for a running `fit`, safe to call from any thread.

    The callback reads these between batches: nothing here touches Keras directly.
    """

    def __init__(self, epoch_target: int) -> None:
        self._lock = threading.Lock()
        self._target = epoch_target
        self._stop_now = threading.Event()
        self._stop_after_epoch = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._pending_lr: float | None = None
        self._epoch_in_progress = 0
        """1-based epoch being trained, 0 when idle."""
        self._epochs_done = 0

    # --- the epoch target -------------------------------------------------------------------
    @property
    def epoch_target(self) -> int:
        with self._lock:
            return self._target

    def set_epoch_target(self, requested: int) -> int:
        """Move the target; it never drops below the epoch in progress (or the epochs done).

        Returns:
            The target actually set.
        """
        with self._lock:
            floor = max(MIN_EPOCHS, self._epoch_in_progress, self._epochs_done)
            self._target = min(MAX_EPOCHS, max(floor, int(requested)))
            return self._target

    def change_epoch_target(self, delta: int) -> int:
        """Raise or lower the target by `delta` epochs; returns the new target."""
        return self.set_epoch_target(self.epoch_target + delta)

    # --- stopping and pausing ----------------------------------------------------------------
    def stop_now(self) -> None:
        """Leave `fit` before the next group of batches; also releases a pause."""
        self._stop_now.set()
        self._running.set()

    def stop_after_epoch(self) -> None:
        """Finish the epoch in progress, then stop."""
        self._stop_after_epoch.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def toggle_pause(self) -> bool:
        """Pause if running, resume if paused; returns True when now paused."""
        if self._running.is_set():
            self.pause()
            return True
        self.resume()
        return False

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_now.is_set()

    @property
    def stop_after_epoch_requested(self) -> bool:
        return self._stop_after_epoch.is_set()

    # --- learning rate -------------------------------------------------------------------------
    def set_learning_rate(self, learning_rate: float) -> None:
        """Ask for a new learning rate; applied before the next group of batches."""
        if not (isinstance(learning_rate, int | float) and 0 < learning_rate <= 1):
            raise ValueError(f"learning_rate = {learning_rate!r} must be in (0, 1].")
        with self._lock:
            self._pending_lr = float(learning_rate)

    def take_learning_rate(self) -> float | None:
        """The pending learning rate, once."""
        with self._lock:
            lr, self._pending_lr = self._pending_lr, None
            return lr

    # --- bookkeeping used by the callback and the session --------------------------------------
    def begin_run(self, epochs_done: int) -> None:
        """Clear stop requests and pauses left over from an earlier run."""
        self._stop_now.clear()
        self._stop_after_epoch.clear()
        self._running.set()
        with self._lock:
            self._epochs_done = epochs_done
            self._epoch_in_progress = 0

    def mark_epoch(self, in_progress: int, done: int) -> None:
        with self._lock:
            self._epoch_in_progress = in_progress
            self._epochs_done = done
            self._target = max(self._target, in_progress, done, MIN_EPOCHS)

    def wait_while_paused(self, timeout: float) -> bool:
        """Block up to `timeout` seconds while paused; True once running again."""
        return self._running.wait(timeout)


class SessionCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Reads the controls between batches and reports progress as events.

    Keras calls the batch hooks once per `steps_per_execution` batches (8, see `model.py`).
    Control runs in `on_train_batch_begin`, which Keras calls on the training thread, so a stop
    or pause takes effect before the next group of batches. Progress runs in
    `on_train_batch_end`, which Keras may dispatch to a helper thread (`async_safe`), so reading
    the metrics never stalls the device; that is also why NaN is detected here rather than with
    `TerminateOnNaN`, whose per-batch hook would force every batch to synchronise.
    """

    async_safe = True

    def __init__(
        self,
        controls: TrainingControls,
        sink: EventSink,
        *,
        batch_size: int,
        train_samples: int,
        learning_rate: float,
        lr_schedule: str = "constant",
        progress_interval: float = 0.1,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__()
        self.controls = controls
        self.sink = sink
        self.batch_size = batch_size
        self.train_samples = train_samples
        self.progress_interval = progress_interval
        self.clock = clock
        self.base_lr = learning_rate
        """Learning rate set by the user; a schedule scales it down from there."""
        self.lr_schedule = lr_schedule
        self.stop_reason: StopReason | None = None
        self.stop_message = ""
        self.epochs_done = 0
        self._lock = threading.Lock()
        self._epoch = 0
        self._steps = 0
        self._epoch_start = 0.0
        self._paused_in_epoch = 0.0
        self._last_emit = -math.inf
        self._last_step = 0
        self._last_target = controls.epoch_target

    # --- control ------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._steps = int(self.params.get("steps") or 0)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1
        self.controls.mark_epoch(self._epoch, self.epochs_done)
        with self._lock:
            self._epoch_start = self.clock()
            self._paused_in_epoch = 0.0
            self._last_emit = -math.inf
            self._last_step = 0
        self._apply_learning_rate(0)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.controls.stop_requested:
            raise StopNow
        if self.controls.paused:
            self._pause(batch)
        self._apply_learning_rate(batch)
        self._report_target()

    def _pause(self, batch: int) -> None:
        started = self.clock()
        self.sink(Paused(self._epoch, batch))
        # Wake up now and then so that a stop request also ends a pause.
        while not self.controls.wait_while_paused(0.05):
            if self.controls.stop_requested:
                break
        if self.controls.stop_requested:
            raise StopNow
        waited = self.clock() - started
        with self._lock:
            self._paused_in_epoch += waited
        self.sink(Resumed(self._epoch, batch, waited))

    def _apply_learning_rate(self, batch: int) -> None:
        requested = self.controls.take_learning_rate()
        if requested is not None:
            self.base_lr = requested
            self.sink(LearningRateChanged(requested))
        if self.lr_schedule == "cosine":
            # Per batch, over the current target: raising the target mid-run stretches the decay
            # instead of restarting it.
            total = max(self.controls.epoch_target * self._steps, 1)
            done = min((self._epoch - 1) * self._steps + batch, total)
            scale = 0.5 * (1.0 + math.cos(math.pi * done / total))
            self.model.optimizer.learning_rate.assign(self.base_lr * max(scale, 0.01))
        elif requested is not None:
            self.model.optimizer.learning_rate.assign(requested)

    def _report_target(self) -> None:
        target = self.controls.epoch_target
        if target != self._last_target:
            self._last_target = target
            self.sink(TargetChanged(target, target))

    # --- progress -----------------------------------------------------------------------------
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        # `batch` is the last batch of the group Keras ran; for the epoch's last, shorter group
        # it runs past the end of the epoch.
        step = min(batch + 1, self._steps) if self._steps else batch + 1
        loss = float(logs.get("loss", math.nan))
        if not math.isfinite(loss):
            self.stop_reason = StopReason.NAN
            self.stop_message = f"loss became {loss} at epoch {self._epoch}, step {step}"
            self.model.stop_training = True
            return
        now = self.clock()
        with self._lock:
            # Async dispatch may run two batches' hooks out of order: never report backwards.
            if step <= self._last_step or now - self._last_emit < self.progress_interval:
                return
            self._last_emit = now
            self._last_step = step
            elapsed = max(now - self._epoch_start - self._paused_in_epoch, 1e-9)
        samples = min(step * self.batch_size, self.train_samples)
        rate = samples / elapsed
        left = max(self._steps - step, 0) * self.batch_size
        self.sink(
            BatchProgress(
                epoch=self._epoch,
                step=step,
                steps=self._steps,
                loss=loss,
                accuracy=float(logs.get("accuracy", math.nan)),
                samples_per_sec=rate,
                eta_seconds=left / rate if rate > 0 else math.inf,
            )
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        with self._lock:
            seconds = max(self.clock() - self._epoch_start - self._paused_in_epoch, 1e-9)
        if self.stop_reason is StopReason.NAN:
            return
        self.epochs_done = epoch + 1
        target = self.controls.epoch_target
        self.controls.mark_epoch(0, self.epochs_done)
        self.sink(
            EpochEnded(
                epoch=epoch + 1,
                target=target,
                loss=float(logs.get("loss", math.nan)),
                accuracy=float(logs.get("accuracy", math.nan)),
                val_loss=_maybe_float(logs.get("val_loss")),
                val_accuracy=_maybe_float(logs.get("val_accuracy")),
                seconds=seconds,
                samples_per_sec=self.train_samples / seconds,
                learning_rate=float(self.model.optimizer.learning_rate.numpy()),
            )
        )
        if self.controls.stop_after_epoch_requested:
            self.stop_reason = StopReason.AFTER_EPOCH
            self.model.stop_training = True
        elif self.epochs_done >= target:
            self.stop_reason = StopReason.FINISHED
            self.model.stop_training = True


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)
