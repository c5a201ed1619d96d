"""TrainingSession: owns the model and runs `fit` in the caller's thread, emitting events."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tui.core.callback import MAX_EPOCHS, SessionCallback, StopNow, TrainingControls
from tui.core.config import Hyperparams
from tui.core.data import MnistData
from tui.core.distribute import steps_per_execution, training_device
from tui.core.events import (
    EpochEnded,
    Evaluated,
    EventSink,
    Predicted,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
    error_line,
)
from tui.core.model import build_model, set_steps_per_execution
from tui.core.predictions import predict_test_set
from tui.core.runtime import import_keras

keras = import_keras()


def discard_events(event: TrainingEvent) -> None:
    """The default sink."""


class TrainingSession:
    """One model and its training history, steered through `controls` from any thread.

    `train()` blocks the calling thread until the epoch target is reached or training stops;
    call it again to continue (epoch numbers and optimizer state carry on).
    """

    def __init__(
        self,
        hparams: Hyperparams,
        data: MnistData,
        sink: EventSink = discard_events,
        *,
        callbacks: Sequence[Any] = (),
        progress_interval: float = 0.1,
        model: Any = None,
        epochs_done: int = 0,
        strategy: Any = None,
    ) -> None:
        """
        Args:
            hparams: validated hyperparameters; `epochs` is the initial target.
            data: the dataset; `hparams.train_size` slices its training part.
            sink: receives every event, on the training thread.
            callbacks: extra Keras callbacks (checkpoints, CSV logging, ...).
            progress_interval: minimum seconds between two `BatchProgress` events.
            model: an already built (and compiled) model to continue training.
            epochs_done: epochs that model has already trained.
            strategy: a `tf.distribute.Strategy` (see `tui.core.distribute`) to build the model
                under, or None for one device. `hparams.batch_size` stays the global batch:
                Keras splits each batch across the replicas. A `model` passed in must have
                been built or loaded under this strategy's scope.
        """
        self.hparams = hparams
        self.data = data
        self.sink = sink
        self.extra_callbacks = list(callbacks)
        self.progress_interval = progress_interval
        self.controls = TrainingControls(max(hparams.epochs, epochs_done))
        self.model: Any = model
        self.epochs_done = epochs_done
        self.history: list[EpochEnded] = []
        """Every epoch this session has trained, across `train()` calls."""
        self.last_evaluation: Evaluated | None = None
        self.last_prediction: Predicted | None = None
        self.learning_rate = hparams.learning_rate
        """The user's learning rate (live changes included); a schedule decays from it."""
        self.strategy: Any = strategy
        self._device: str | None = None

    # --- set-up -------------------------------------------------------------------------------
    def ensure_model(self) -> Any:
        """The model, built from the hyperparameters on first use, set to the number of batches
        per call that suits the session's strategy."""
        if self.model is None:
            # Variables created under the scope are mirrored; Keras then trains with the strategy.
            scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
            with scope:
                self.model = build_model(self.hparams)
        set_steps_per_execution(self.model, steps_per_execution(self.strategy))
        return self.model

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = training_device(self.strategy)
        return self._device

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training and validation arrays: the first `train_size` images, the last part held out."""
        x, y = self.data.x_train, self.data.y_train
        if self.hparams.train_size:
            x, y = x[: self.hparams.train_size], y[: self.hparams.train_size]
        # Same rule as Keras's validation_split, done here so that the sizes are known up front.
        split_at = math.ceil(len(x) * (1.0 - self.hparams.validation_split))
        return x[:split_at], y[:split_at], x[split_at:], y[split_at:]

    # --- training -----------------------------------------------------------------------------
    def _emit(self, event: TrainingEvent) -> None:
        if isinstance(event, EpochEnded):
            self.history.append(event)
        self.sink(event)

    def train(self) -> StopReason:
        """Train up to `controls.epoch_target`, from `epochs_done`; returns why it stopped."""
        self.controls.begin_run(self.epochs_done)
        if self.controls.epoch_target <= self.epochs_done:
            self._emit(TrainingStopped(StopReason.FINISHED, self.epochs_done, "target reached"))
            return StopReason.FINISHED
        try:
            model = self.ensure_model()
            x, y, x_val, y_val = self.split()
            if len(x) == 0:
                raise ValueError("no training images left after the validation split")
            batch_size = self.hparams.batch_size
            steps = math.ceil(len(x) / batch_size)
        except Exception as err:  # a model that cannot be built is reported like any failure
            return self._stopped(StopReason.ERROR, error_line(err))

        callback = SessionCallback(
            self.controls,
            self._emit,
            batch_size=batch_size,
            train_samples=len(x),
            learning_rate=self.learning_rate,
            lr_schedule=self.hparams.lr_schedule,
            progress_interval=self.progress_interval,
        )
        callback.epochs_done = self.epochs_done
        # Our own CallbackList so that a stop-now exception can still shut its thread pool down.
        callbacks = keras.callbacks.CallbackList(
            [callback, *self.extra_callbacks],
            add_history=True,
            add_progbar=False,
            verbose=0,
            epochs=MAX_EPOCHS,
            steps=steps,
            model=model,
        )
        self._emit(
            TrainingStarted(
                first_epoch=self.epochs_done + 1,
                target=self.controls.epoch_target,
                steps_per_epoch=steps,
                train_samples=len(x),
                val_samples=len(x_val),
                params=int(model.count_params()),
                device=self.device,
                hparams=self.hparams,
            )
        )
        reason: StopReason
        message = ""
        try:
            model.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=MAX_EPOCHS,
                initial_epoch=self.epochs_done,
                validation_data=(x_val, y_val) if len(x_val) else None,
                shuffle=True,
                verbose=0,
                callbacks=callbacks,
            )
            if callback.stop_reason is None:
                reason = StopReason.EARLY_STOP
            else:
                reason, message = callback.stop_reason, callback.stop_message
        except StopNow:
            reason = StopReason.USER
            message = "stopped within a few batches; the epoch in progress is not counted"
        except Exception as err:
            reason, message = StopReason.ERROR, error_line(err)
        finally:
            executor = getattr(callbacks, "_executor", None)
            if executor is not None:
                executor.shutdown(wait=True)
        self.epochs_done = callback.epochs_done
        self.learning_rate = callback.base_lr
        self.controls.mark_epoch(0, self.epochs_done)
        return self._stopped(reason, message)

    def _stopped(self, reason: StopReason, message: str) -> StopReason:
        self._emit(TrainingStopped(reason, self.epochs_done, message))
        return reason

    # --- results ------------------------------------------------------------------------------
    def evaluate(self, batch_size: int = 1024) -> Evaluated:
        """Test-set loss and accuracy of the current model."""
        model = self.ensure_model()
        loss, accuracy = model.evaluate(
            self.data.x_test, self.data.y_test, batch_size=batch_size, verbose=0
        )
        result = Evaluated(float(loss), float(accuracy), len(self.data.y_test))
        self.last_evaluation = result
        self._emit(result)
        return result

    def predict(self, batch_size: int = 1024) -> Predicted:
        """Class probabilities for the whole test set."""
        model = self.ensure_model()
        result = predict_test_set(model, self.data.x_test, self.data.y_test, batch_size)
        self.last_prediction = result
        self._emit(result)
        return result
