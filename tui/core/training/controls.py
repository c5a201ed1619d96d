"""Steering for a training round, safe to call from any thread: stop, pause, target, rate."""

from __future__ import annotations

import threading

from tui.core.settings.hyperparams import INT_BOUNDS, check_setting

MIN_EPOCHS, MAX_EPOCHS = INT_BOUNDS["epochs"]
"""The epoch target's bounds, as its spec says them."""


class TrainingControls:
    """What a person asks of a running `fit`; the control callback reads it between batches.

    Requests persist until the controller `arm`s the controls for the next round, so a stop or
    pause asked for while the model is still being built takes effect at the first batch.
    Nothing here touches Keras.
    """

    def __init__(self, epoch_target: int, learning_rate: float) -> None:
        self._lock = threading.Lock()
        self._target = epoch_target
        self._learning_rate = learning_rate
        self._lr_changed = False
        self._stop_now = threading.Event()
        self._stop_after_epoch = threading.Event()
        self._stopped_by = ""
        self._running = threading.Event()
        self._running.set()
        self._epoch_in_progress = 0
        """1-based epoch being trained, 0 when idle."""
        self._epochs_done = 0

    # --- the epoch target ---------------------------------------------------------------------
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

    # --- stopping and pausing -----------------------------------------------------------------
    def stop_now(self, by: str = "") -> None:
        """Leave `fit` before the next group of batches; also releases a pause. `by`: who
        asked, from where (empty: a viewer's key)."""
        self._stopped_by = by
        self._stop_now.set()
        self._running.set()

    def stop_after_epoch(self, by: str = "") -> None:
        """Finish the epoch in progress, then stop."""
        self._stopped_by = by
        self._stop_after_epoch.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_now.is_set()

    @property
    def stop_after_epoch_requested(self) -> bool:
        return self._stop_after_epoch.is_set()

    @property
    def stopped_by(self) -> str:
        """Who asked for the latest stop, where a command from another login did."""
        return self._stopped_by

    # --- learning rate ------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate in force (a schedule scales it down from here)."""
        with self._lock:
            return self._learning_rate

    def set_learning_rate(self, learning_rate: float) -> None:
        """Ask for a new learning rate; applied before the next group of batches.

        Raises:
            ValueError: outside the learning rate's range, in the words `Hyperparams` uses.
        """
        checked = check_setting("learning_rate", learning_rate)
        with self._lock:
            self._learning_rate = checked
            self._lr_changed = True

    def take_learning_rate_change(self) -> float | None:
        """The learning rate if it changed since the last call, else None."""
        with self._lock:
            changed, self._lr_changed = self._lr_changed, False
            return self._learning_rate if changed else None

    # --- bookkeeping by the controller and the callback ---------------------------------------
    def arm(self, epochs_done: int, target: int) -> None:
        """Forget the last round's requests: called when a new round is claimed, not when `fit`
        starts, so that a request made in between is kept."""
        self._stop_now.clear()
        self._stop_after_epoch.clear()
        self._stopped_by = ""
        self._running.set()
        with self._lock:
            self._epochs_done = epochs_done
            self._epoch_in_progress = 0
            self._target = target
            self._lr_changed = False

    def mark_epoch(self, in_progress: int, done: int) -> None:
        with self._lock:
            self._epoch_in_progress = in_progress
            self._epochs_done = done
            self._target = max(self._target, in_progress, done, MIN_EPOCHS)

    def wait_while_paused(self, timeout: float) -> bool:
        """Block up to `timeout` seconds while paused; True once running again."""
        return self._running.wait(timeout)
