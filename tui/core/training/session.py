"""TrainingSession: one model and the data it trains on; `train()` runs `fit` in the caller's
thread, steered by `TrainingControls` and reporting through an event sink."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tui.core.data.augment import AugmentationSwitch
from tui.core.data.mnist import MnistData
from tui.core.data.pipeline import EpochCursor, batches, training_batches
from tui.core.inspect.predictions import Predictions
from tui.core.platform.distribute import precision_here, steps_per_execution, training_device
from tui.core.platform.runtime import import_keras
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.adapter import ModelAdapter
from tui.core.training.callback import (
    MAX_EPOCHS,
    ControlCallback,
    EpochClock,
    EpochReport,
    EventSink,
    LossNotFinite,
    ProgressCallback,
    RoundState,
    StopNow,
)
from tui.core.training.controls import TrainingControls
from tui.core.training.events import ModelDescribed, StopReason, TrainingStarted
from tui.core.training.model import build_model, set_steps_per_execution
from tui.core.training.replay import EpochSeeds
from tui.errors import error_line

keras = import_keras()

EVAL_BATCH = 1024
"""Batch size of every test-set pass."""


class InStep(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Keeps the training thread in step with the device on JAX and PyTorch.

    Their steps are dispatched asynchronously: without a wait, the thread that checks the
    controls before each group of batches runs up to an epoch ahead of what the device has
    done, and a stop or a pause acts an epoch late (paused in epoch 3 when asked in epoch 2,
    tests/test_backends.py). A batch-end hook that is not `async_safe` makes Keras read each
    group's logs in this thread, which waits for that group; TensorFlow's steps already do.
    """

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        return None


@dataclass(frozen=True)
class RoundOutcome:
    """How one call to `TrainingSession.train` ended."""

    reason: StopReason
    message: str = ""
    epoch: int = 0
    """For a stop-now: the epoch that was in progress (and rolled back)."""
    step: int = 0
    """For a stop-now: the steps of that epoch that had run."""


class TrainingSession:
    """One model, the data it trains on and how many epochs it has trained.

    `train()` blocks the calling thread until the epoch target in `controls` is reached or
    training stops; call it again to continue (epoch numbers and optimizer state carry on).
    """

    def __init__(
        self,
        hparams: Hyperparams,
        data: MnistData,
        controls: TrainingControls,
        *,
        model: Any = None,
        epochs_done: int = 0,
        strategy: Any = None,
        progress_interval: float = 0.1,
    ) -> None:
        """
        Args:
            hparams: validated hyperparameters (the epoch target lives in `controls`).
            data: the dataset; `hparams.train_size` slices its training part.
            controls: stop, pause, target and learning rate, set from any thread.
            model: an already built (and compiled) model to continue training.
            epochs_done: epochs that model has already trained.
            strategy: a `tf.distribute.Strategy` (see `tui.core.platform.distribute`) to build
                the model under, or None for one device. `hparams.batch_size` stays the global
                batch: Keras splits each batch across the replicas. A `model` passed in must have
                been built or loaded under this strategy's scope.
            progress_interval: minimum seconds between two `BatchProgress` events.
        """
        self.hparams = hparams
        self.data = data
        self.controls = controls
        self.model: Any = model
        self.epochs_done = epochs_done
        self.strategy: Any = strategy
        self.progress_interval = progress_interval
        self.clock = EpochClock()
        """The epoch timer shared by progress, the epoch events and the run's records."""
        self._device: str | None = None
        self._probe: Any = None
        self._probed: Any = None
        """The model `_probe` was made for (a probe keeps the weights it saw last epoch)."""

    # --- set-up -------------------------------------------------------------------------------
    def ensure_model(self) -> Any:
        """The model, built from the hyperparameters on first use, set to the number of batches
        per call that suits the session's strategy."""
        if self.model is None:
            # Variables created under the scope are mirrored; Keras then trains with the strategy.
            scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
            precision_here()
            with scope:
                self.model = build_model(self.hparams)
        set_steps_per_execution(self.model, steps_per_execution(self.strategy))
        return self.model

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = training_device(self.strategy)
        return self._device

    def split(self) -> tuple[Any, Any, Any, Any]:
        """Training and validation arrays (see `MnistData.training_split`)."""
        return self.data.training_split(self.hparams.train_size, self.hparams.validation_split)

    # --- training -----------------------------------------------------------------------------
    def train(self, sink: EventSink, callbacks: Sequence[Any] = ()) -> RoundOutcome:
        """Train up to `controls.epoch_target`, from `epochs_done`.

        Args:
            sink: receives `TrainingStarted`, progress, epochs, pauses and changes.
            callbacks: more Keras callbacks after the session's own (the run's records).
        """
        if self.controls.epoch_target <= self.epochs_done:
            return RoundOutcome(StopReason.FINISHED, "target reached")
        try:
            model = self.ensure_model()
            x, y, x_val, y_val = self.split()
            if len(x) == 0:
                raise ValueError("no training images left after the validation split")
            batch_size = self.hparams.batch_size
            steps = math.ceil(len(x) / batch_size)
        except Exception as err:  # a model that cannot be built is reported like any failure
            return RoundOutcome(StopReason.ERROR, error_line(err))
        if self.controls.stop_requested:
            return RoundOutcome(StopReason.USER, "stopped before the first batch")
        from tui.core.inspect.health import HealthCallback, describe_layers, make_probe

        sink(ModelDescribed(describe_layers(model)))
        if self._probed is not model:
            self._probe, self._probed = make_probe(model, x), model
        health = [HealthCallback(self._probe, sink)] if self._probe is not None else []

        state = RoundState(self.epochs_done, steps)
        control = ControlCallback(
            self.controls,
            sink,
            state,
            self.clock,
            train_samples=len(x),
            lr_schedule=self.hparams.lr_schedule,
        )
        progress = ProgressCallback(
            sink,
            state,
            self.clock,
            batch_size=batch_size,
            train_samples=len(x),
            interval=self.progress_interval,
        )
        # Always with augmentation: a model whose last round ended clean may go on with 0.
        switch: list[Any] = []
        if self.hparams.augment:
            switch.append(
                AugmentationSwitch(
                    lambda: self.controls.epoch_target, self.hparams.clean_epochs, sink
                )
            )
        cursor = EpochCursor(self.epochs_done)
        # Our own CallbackList so that a stop-now exception can still shut its thread pool down.
        in_step = [] if keras.backend.backend() == "tensorflow" else [InStep()]
        callback_list = keras.callbacks.CallbackList(
            [
                EpochSeeds(cursor),
                control,
                progress,
                *switch,
                *callbacks,
                EpochReport(control, sink),
                *health,
                *in_step,
            ],
            add_history=True,
            add_progbar=False,
            verbose=0,
            epochs=MAX_EPOCHS,
            steps=steps,
            model=model,
        )
        sink(
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
        arrays = (x, y, x_val, y_val)
        outcome = self._fit(model, control, callback_list, state, arrays, cursor)
        self.epochs_done = state.epochs_done
        self.controls.mark_epoch(0, self.epochs_done)
        return outcome

    def _fit(
        self,
        model: Any,
        control: ControlCallback,
        callback_list: Any,
        state: RoundState,
        arrays: tuple[Any, Any, Any, Any],
        cursor: EpochCursor,
    ) -> RoundOutcome:
        x, y, x_val, y_val = arrays
        try:
            model.fit(
                # Each epoch's order is the seed's and the epoch's (see `EpochSeeds`).
                training_batches(x, y, self.hparams.batch_size, self.hparams.seed, cursor),
                epochs=MAX_EPOCHS,
                initial_epoch=self.epochs_done,
                validation_data=batches(x_val, y_val, EVAL_BATCH) if len(x_val) else None,
                shuffle=False,  # the batches come shuffled; Keras would warn
                verbose=0,
                callbacks=callback_list,
            )
        except StopNow:
            control.roll_back()
            return RoundOutcome(
                StopReason.USER,
                f"the epoch in progress is not counted: the model is the one after epoch "
                f"{state.epochs_done}",
                epoch=state.epoch,
                step=state.step,
            )
        except LossNotFinite:
            control.roll_back()
            return RoundOutcome(
                StopReason.NAN,
                f"{state.stop_message}; the model is back at epoch {state.epochs_done}",
            )
        except Exception as err:
            with contextlib.suppress(Exception):
                control.roll_back()
            return RoundOutcome(StopReason.ERROR, error_line(err))
        finally:
            executor = getattr(callback_list, "_executor", None)
            if executor is not None:
                executor.shutdown(wait=True)
        if state.stop_reason is None:
            return RoundOutcome(StopReason.EARLY_STOP)
        return RoundOutcome(state.stop_reason, state.stop_message)

    # --- results ------------------------------------------------------------------------------
    def predict(self, batch_size: int = EVAL_BATCH) -> Predictions:
        """Class probabilities for the whole test set."""
        adapter = ModelAdapter.for_model(self.ensure_model())
        return adapter.predict(self.data.x_test, self.data.y_test, batch_size)[0]
