"""TrainingController: the one owner of the training lifecycle.

It holds the data, the model (through a `TrainingSession`), the controls and the run directory,
decides what a round is (a new model, the same one carrying on, the same one with new
settings), records it, and publishes every change as an event. Its `Snapshot` is the fold of
those events (see `tui.core.training.snapshot`): the epoch target, the learning rate, the stop
reason, the history and the predictions live here and nowhere else.

Blocking work (loading, a round, opening a run or a model) is split in two: `claim_*` checks
the request and moves the phase at once, on the caller's thread, so that two viewers asking at
the same moment cannot both start; the returned `Job` then does the work on whatever thread
runs it. The headless trainer runs jobs in the foreground; the engine runs them on its job
thread while its socket stays responsive.

TensorFlow is imported by `load()`, not by this module: an engine answers its viewers (in the
LOADING phase) while TensorFlow still loads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from tui.core.data.mnist import SAMPLE_NOTICE, DataError, MnistData, load_mnist
from tui.core.inspect.predictions import Predictions
from tui.core.runs.layout import RunError
from tui.core.runs.recorder import RunRecorder, recorded_data
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup
from tui.core.training import budget
from tui.core.training.controls import TrainingControls
from tui.core.training.events import (
    BackendLoaded,
    DataLoaded,
    DevicesReported,
    EpochEnded,
    Evaluated,
    LayerHealthMeasured,
    LearningRateChanged,
    LoadFailed,
    ModelDescribed,
    ModelOpened,
    ModelReset,
    ModelSaved,
    Paused,
    PredictionsReady,
    Resumed,
    RunOpened,
    RunRecording,
    SettingsApplied,
    StopReason,
    StopRequested,
    TargetChanged,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.training.phase import FITTING, Action, Phase
from tui.core.training.publisher import Publisher
from tui.core.training.rounds import RoundPlan, plan_round
from tui.core.training.snapshot import initial_snapshot, refusal
from tui.errors import error_line

if TYPE_CHECKING:
    from tui.core.inspect.reader import ModelReader
    from tui.core.training.adapter import ModelAdapter
    from tui.core.training.session import TrainingSession

T = TypeVar("T")


class ControllerError(Exception):
    """A request that cannot be carried out now; str(err) is the sentence to show."""


class Job(Generic[T]):
    """Claimed work, run once on the thread that calls `run()`."""

    def __init__(self, name: str, work: Callable[[], T]) -> None:
        self.name = name
        self._work = work

    def run(self) -> T:
        return self._work()


class TrainingController(Publisher):
    """See the module docstring. Every public method is safe to call from any thread."""

    def __init__(
        self, setup: Setup, *, data: MnistData | None = None, holder: str = "mnist-tui"
    ) -> None:
        """
        Args:
            setup: data source, runs folder, strategy and the starting hyperparameters.
            data: data already in memory (tests, benchmarks); `load()` then skips finding it.
            holder: what this process is, written into the locks of the runs it trains.
        """
        super().__init__(initial_snapshot(setup.hparams, setup.preset))
        self.setup = setup
        self.holder = holder
        self.data = data
        self.strategy: Any = None
        self.session: TrainingSession | None = None
        self.controls = TrainingControls(setup.hparams.epochs, setup.hparams.learning_rate)
        self.recorder = RunRecorder(
            setup, holder, lambda text, title: self.notice(text, "warning", title)
        )
        self._opened: ModelAdapter | None = None
        """A model opened from a file, for browsing and drawing (not trained here)."""
        self._predictions: Predictions | None = None
        self._round_length = setup.hparams.epochs
        """Epochs a round adds when `t` continues a model whose target is already reached."""
        self._quitting = False
        self._problems_said: set[tuple[str, str]] = set()

    # --- observing: see `Publisher` ---------------------------------------------------------
    def _require(self, action: Action) -> None:
        refused = refusal(self.snapshot, action)
        if refused is not None:
            raise ControllerError(refused.reason)

    # --- loading ------------------------------------------------------------------------------
    def load(self, run: str | Path | None = None) -> None:
        """Import TensorFlow, make the strategy and load the data (`run`'s own, for a run to be
        reopened without --data), side by side; ends READY, or BROKEN with the reason. Blocks
        the caller for seconds."""
        loader: threading.Thread | None = None
        if self.data is None:
            own = Path(run) if run and not self.setup.data_path else None
            loader = threading.Thread(
                target=self._load_data, args=(own,), name="load-data", daemon=True
            )
            loader.start()
        else:
            notice = SAMPLE_NOTICE if self.data.is_sample else ""
            self.publish(DataLoaded(self.data.info, notice))
        backend_ok = self._load_backend()
        if loader is not None:
            loader.join()
        with self._lock:
            broken = not backend_ok or self.data is None
            self._phase(Phase.BROKEN if broken else Phase.READY)

    def _load_data(self, run: Path | None) -> None:
        try:
            data = recorded_data(run) if run is not None else None
            if data is None:
                data = load_mnist(self.setup.data_path).excluding(self.setup.exclude)
        except DataError as err:
            self.publish(LoadFailed("data", str(err)))
            return
        self.data = data
        self.publish(DataLoaded(data.info, SAMPLE_NOTICE if data.is_sample else ""))

    def _load_backend(self) -> bool:
        try:
            import tui.core.training.session  # noqa: F401  (Keras and TensorFlow: seconds)
            from tui.core.platform.distribute import make_strategy_for, prepare, training_device
            from tui.core.platform.runtime import device_report

            # Right after the import: devices are split and precision set before any model.
            prepare(self.setup.distribute)
            self.strategy = make_strategy_for(self.setup.distribute)
            device = training_device(self.strategy)
            report = device_report(device)
        except Exception as err:  # a broken install or a bad strategy: one line, no traceback
            self.publish(LoadFailed("TensorFlow", error_line(err)))
            return False
        self.publish(BackendLoaded(device, report))
        return True

    # --- rounds -------------------------------------------------------------------------------
    def claim_round(
        self, hparams: Hyperparams | None = None, preset: str | None = None
    ) -> Job[StopReason]:
        """Check a request to train and move to STARTING; the job records, trains, evaluates,
        predicts and saves.

        The round is a new model, or the one that exists carrying on (see `plan_round`).

        Args:
            hparams: the settings to train with; None keeps the ones in force.
            preset: the preset they started from (names the run directory).

        Raises:
            ControllerError: not now (the sentence says why), or settings that cannot be used.
        """
        with self._lock:
            self._require(Action.TRAIN)
            snapshot = self._snapshot
            hparams = hparams or snapshot.hparams
            preset = preset or snapshot.preset
            session = self.session
            trained = session.hparams if session and session.model is not None else None
            done = session.epochs_done if session else 0
            try:
                plan = plan_round(hparams, preset, trained, done, self._round_length)
            except ValueError as err:
                raise ControllerError(str(err)) from None
            verdict = budget.check_on(plan.hparams, snapshot.devices)
            if verdict.refuse:
                raise ControllerError(verdict.reason[:1].upper() + verdict.reason[1:])
            if plan.fresh and snapshot.model is not None:
                self._forget_model()
            self.controls.arm(self.session.epochs_done if self.session else 0, plan.target)
            # Against the rate in force, not the snapshot's: a new model or a reopened run
            # has not trained at the one the controls still hold.
            if plan.hparams.learning_rate != self.controls.learning_rate:
                self.controls.set_learning_rate(plan.hparams.learning_rate)
                self.controls.take_learning_rate_change()  # applied at the round's start
            self._quitting = False
            self.publish(SettingsApplied(plan.hparams, plan.preset))
            if plan.target != self._snapshot.target:
                self.publish(TargetChanged(plan.target, plan.target))
            if verdict.warning:
                self.notice(verdict.warning[:1].upper() + verdict.warning[1:], "warning")
            self._phase(Phase.STARTING)
        return Job("train", lambda: self._execute_round(plan))

    def _new_session(
        self, hparams: Hyperparams, data: MnistData, model: Any = None, epochs_done: int = 0
    ) -> TrainingSession:
        from tui.core.training.session import TrainingSession

        return TrainingSession(
            hparams,
            data,
            self.controls,
            model=model,
            epochs_done=epochs_done,
            strategy=self.strategy,
            progress_interval=self.setup.progress_interval,
        )

    def _execute_round(self, plan: RoundPlan) -> StopReason:
        try:
            return self._train_round(plan)
        except Exception as err:  # nothing may leave the controller in a busy phase
            self.notice(f"Training failed: {error_line(err)}", "error", "Training failed")
            self._phase(Phase.FAILED)
            return StopReason.ERROR

    def _train_round(self, plan: RoundPlan) -> StopReason:
        assert self.data is not None
        old = self.session
        if old is None or old.model is None:
            session = self._new_session(plan.hparams, self.data)
            self._round_length = plan.hparams.epochs
        elif (
            old.hparams.with_changes(
                epochs=plan.hparams.epochs, learning_rate=plan.hparams.learning_rate
            )
            == plan.hparams
            and old.data is self.data
        ):
            session = old
            session.hparams = plan.hparams
        else:
            # Batch size, schedule, split or train size changed: same model, new settings.
            session = self._new_session(plan.hparams, self.data, old.model, old.epochs_done)
        self.session = session
        created = self.recorder.begin_round(
            fresh=plan.fresh,
            preset=plan.preset,
            hparams=plan.hparams,
            round_length=self._round_length,
            data=self.data,
            train_samples=lambda: len(session.split()[0]),
        )
        if created is not None:
            self.publish(RunRecording(str(created.path)))
        callbacks = self.recorder.callbacks(session.clock, lambda: self.controls.learning_rate)
        outcome = session.train(self._from_training, callbacks)
        o, by = outcome, self.controls.stopped_by
        self.publish(TrainingStopped(o.reason, session.epochs_done, o.message, o.epoch, o.step, by))
        reason = outcome.reason
        if reason in (StopReason.ERROR, StopReason.NAN):
            self._phase(Phase.FAILED)
            return reason
        if not self._quitting:
            self._phase(Phase.EVALUATING)
            self._evaluate(session.predict(), session.epochs_done)
        self._phase(Phase.FINISHED if reason is StopReason.FINISHED else Phase.STOPPED)
        return reason

    def _from_training(self, event: TrainingEvent) -> None:
        """The session's sink: runs on the training thread (progress on Keras's helper)."""
        with self._lock:
            phase = self._snapshot.phase
            self.publish(event)
            if isinstance(event, TrainingStarted) and phase is Phase.STARTING:
                self._phase(Phase.TRAINING)
            elif isinstance(event, Paused) and phase is not Phase.STOPPING:
                self._phase(Phase.PAUSED)
            elif isinstance(event, Resumed) and phase is not Phase.STOPPING:
                self._phase(Phase.TRAINING)
        if isinstance(event, EpochEnded):
            threading.Thread(target=self._report_devices, daemon=True).start()
        elif isinstance(event, LayerHealthMeasured):
            self._record_health(event)

    def _record_health(self, measured: LayerHealthMeasured) -> None:
        """Into the run directory, and each kind of problem said once per layer."""
        self.recorder.record_health(measured)
        for problem in measured.problems:
            seen = (problem.layer, problem.kind)
            if seen not in self._problems_said:
                self._problems_said.add(seen)
                self.notice(f"Layer health: {problem.text}", "warning", "Layer health")

    def _report_devices(self) -> None:
        from tui.core.platform.runtime import device_report

        with contextlib.suppress(Exception):  # a report is a nicety; never a failure
            self.publish(DevicesReported(device_report(self.snapshot.device or None)))

    def _evaluate(self, predictions: Predictions, epochs_done: int) -> None:
        with self._lock:
            self._predictions = predictions
            version = (self._snapshot.predictions.version + 1) if self._snapshot.predictions else 1
        evaluated = Evaluated(
            predictions.loss, predictions.accuracy, len(predictions.labels), epochs_done
        )
        self.publish(evaluated)
        self.publish(PredictionsReady(len(predictions.labels), predictions.accuracy, version))
        if self._opened is None:  # a model opened from a file has no run to record into
            self.recorder.record_results(evaluated, predictions)

    # --- the controls -------------------------------------------------------------------------
    def stop_now(self, by: str = "") -> None:
        """Leave `fit` before the next group of batches; the epoch in progress is rolled back.
        `by`: who asked and from where, for a stop from another login (`mnist-tui stop`)."""
        with self._lock:
            self._require(Action.STOP_NOW)
            self.controls.stop_now(by)
            self.publish(StopRequested(after_epoch=False, by=by))
            self._phase(Phase.STOPPING)

    def stop_after_epoch(self, by: str = "") -> None:
        with self._lock:
            self._require(Action.STOP_AFTER_EPOCH)
            self.controls.stop_after_epoch(by)
            self.publish(StopRequested(after_epoch=True, by=by))

    def pause(self) -> None:
        with self._lock:
            self._require(Action.PAUSE)
            if self._snapshot.phase in (Phase.PAUSING, Phase.PAUSED):
                return
            self.controls.pause()
            self._phase(Phase.PAUSING)

    def resume(self) -> None:
        with self._lock:
            self._require(Action.PAUSE)
            if self._snapshot.phase not in (Phase.PAUSING, Phase.PAUSED):
                return
            self.controls.resume()
            started = self._snapshot.started is not None and self._snapshot.stopped is None
            self._phase(Phase.TRAINING if started else Phase.STARTING)

    def toggle_pause(self) -> bool:
        """Pause if training, resume if paused; returns True when now paused."""
        with self._lock:
            if self._snapshot.phase in (Phase.PAUSING, Phase.PAUSED):
                self.resume()
                return False
            self.pause()
            return True

    def set_target(self, requested: int) -> int:
        """Move the epoch target while training; never below the epoch in progress.

        Returns:
            The target actually set.
        """
        with self._lock:
            self._require(Action.CHANGE_TARGET)
            actual = self.controls.set_epoch_target(requested)
            if actual != self._snapshot.target or actual != requested:
                self.publish(TargetChanged(actual, requested))
                self.recorder.record_target(actual)
            return actual

    def change_target(self, delta: int) -> int:
        with self._lock:
            return self.set_target(self.controls.epoch_target + delta)

    def set_learning_rate(self, learning_rate: float) -> None:
        """Change the learning rate while training, from the next group of batches."""
        with self._lock:
            self._require(Action.SET_LEARNING_RATE)
            try:
                self.controls.set_learning_rate(learning_rate)
            except ValueError as err:
                raise ControllerError(str(err)) from None
            if learning_rate != self._snapshot.learning_rate:
                self.publish(LearningRateChanged(float(learning_rate)))

    # --- runs and models ----------------------------------------------------------------------
    def claim_open_run(self, path: str | Path) -> Job[str | None]:
        """Check a request to reopen a run and move to OPENING; the job loads it.

        The run continues on the data it recorded: if this controller's data is other, the
        recorded source is loaded (and checked); where it is gone or has changed, the run is
        refused, unless `--data` was given, in which case the run records the change.
        """
        with self._lock:
            self._require(Action.OPEN_RUN)
            before = self._snapshot.phase
            self._phase(Phase.OPENING)
        return Job("open run", lambda: self._opening(before, lambda: self._open_run(Path(path))))

    def claim_open_model(self, path: str | Path) -> Job[str | None]:
        """Check a request to open a saved model (to browse and draw with) and move to OPENING;
        the job returns like `claim_open_run`'s."""
        with self._lock:
            self._require(Action.OPEN_MODEL)
            before = self._snapshot.phase
            self._phase(Phase.OPENING)
        return Job(
            "open model", lambda: self._opening(before, lambda: self._open_model(Path(path)))
        )

    def _opening(self, before: Phase, work: Callable[[], None]) -> str | None:
        try:
            work()
        except Exception as err:
            expected = isinstance(err, RunError | DataError | ControllerError)
            reason = str(err) if expected else error_line(err)
            self.notice(reason, "error", "Cannot open")
            self._phase(before)
            return reason
        self._phase(Phase.READY)
        return None

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        """The strategy's scope: a model loaded inside it trains under the strategy."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def _open_run(self, path: Path) -> None:
        assert self.data is not None
        resumed, data = self.recorder.reopen(path, self._scope, self.data)
        if data is not self.data:
            self.data = data
            note = f"Run {resumed.run_dir.name} goes on with the data it was trained on."
            self.publish(DataLoaded(data.info, note))
        # The recorder now holds the reopened run, having released any other.
        self._forget_model(publish=False, keep_run=True)
        session = self._new_session(resumed.hparams, data, resumed.model, resumed.epochs_done)
        if resumed.model is not None:
            session.ensure_model()  # batches per call to suit this strategy
        self.session = session
        self._round_length = resumed.hparams.epochs
        self.controls.arm(resumed.epochs_done, max(resumed.hparams.epochs, resumed.epochs_done))
        # The controls follow what the snapshot will say from here on (RunOpened below).
        self.controls.set_learning_rate(resumed.hparams.learning_rate)
        self.controls.take_learning_rate_change()
        run = resumed.run_dir
        self.publish(
            RunOpened(
                str(run.path),
                run.preset,
                resumed.hparams,
                resumed.epochs_done,
                tuple(resumed.history),
                resumed.model is not None,
                run.load_health(resumed.epochs_done),
            )
        )
        for repair in resumed.repairs:
            self.notice(f"run {run.name}: {repair}.", "warning", "Repaired")
        if resumed.model is not None:
            from tui.core.inspect.health import describe_layers

            self.publish(ModelDescribed(describe_layers(resumed.model)))
            self._evaluate(session.predict(), resumed.epochs_done)

    def _open_model(self, path: Path) -> None:
        from tui.core.runs.resume import load_model_file
        from tui.core.training.adapter import ModelAdapter, ModelMismatch

        assert self.data is not None
        with self._scope():
            model = load_model_file(path)
        try:
            adapter = ModelAdapter.for_model(model)
            predictions, notes = adapter.predict(self.data.x_test, self.data.y_test)
        except ModelMismatch as err:
            raise ControllerError(f"{path}: {err}") from None
        self._forget_model(publish=False)  # and the run with it
        self._opened = adapter
        self.publish(ModelOpened(str(path), int(model.count_params()), notes))
        from tui.core.inspect.health import describe_layers

        with contextlib.suppress(Exception):  # a model from elsewhere may not list its layers
            self.publish(ModelDescribed(describe_layers(model)))
        self._evaluate(predictions, 0)

    def save_model(self, path: str | Path, *, overwrite: bool = True) -> Path:
        """Save the model (atomically) to `path`; returns where it went.

        Args:
            path: a `.keras` file.
            overwrite: replace an existing file; otherwise a number is added to the name.

        Raises:
            ControllerError: no model, training runs, or the file cannot be written.
        """
        from tui.core.runs.record import save_model_file

        with self._lock:
            self._require(Action.SAVE_MODEL)
            model = self.model
        try:
            target = save_model_file(model, Path(path), overwrite=overwrite)
        except RunError as err:
            raise ControllerError(str(err)) from None
        self.publish(ModelSaved(str(target)))
        return target

    def reset(self) -> None:
        """Discard the model (and stop recording its run); the next round builds a fresh one."""
        with self._lock:
            self._require(Action.RESET)
            self._forget_model()
            self._phase(Phase.READY)

    def _forget_model(self, *, publish: bool = True, keep_run: bool = False) -> None:
        self._problems_said.clear()
        self.session = None
        self._opened = None
        self._predictions = None
        if not keep_run:
            self.recorder.release()
        self._round_length = self.setup.hparams.epochs
        if publish:
            self.publish(ModelReset())

    # --- what viewers ask for -----------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The trained model, else an opened one, else None."""
        if self.session is not None and self.session.model is not None:
            return self.session.model
        return self._opened.model if self._opened is not None else None

    @property
    def predictions(self) -> Predictions | None:
        """The current model's test-set predictions (see `PredictionsReady`)."""
        return self._predictions

    def test_images(self) -> np.ndarray | None:
        """The test images the predictions are for, as (n, 28, 28) uint8."""
        if self.data is None:
            return None
        pixels: np.ndarray = np.rint(self.data.x_test[..., 0] * 255.0).astype(np.uint8)
        return pixels

    def ask(self, question: Callable[[ModelReader], T]) -> T:
        """Ask the current model `question`, e.g. `lambda model: model.classify(images)` (see
        `ModelReader`: classify, predict_shifted, explain, clusters); any thread. Raises
        `ControllerError` with the sentence to show."""
        from tui.core.inspect.reader import ModelReader
        from tui.core.training.adapter import ModelAdapter

        self._require(Action.CLASSIFY)
        adapter = self._opened or ModelAdapter.for_model(self.model)
        try:
            return question(ModelReader(adapter, self.data, self._predictions))
        except ValueError as err:
            raise ControllerError(str(err)) from None

    # --- leaving ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop a round within a group of batches, skipping its evaluation (quit)."""
        with self._lock:
            self._quitting = True
            if self._snapshot.phase in FITTING:
                self.controls.stop_now()
                self.publish(StopRequested(after_epoch=False))
                self._phase(Phase.STOPPING)

    def close(self) -> None:
        """Release the run's lock (the process is ending)."""
        with self._lock:
            self.recorder.release()
