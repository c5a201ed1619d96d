"""The Textual app (dashboard, training worker, keys) and the `create_app`/`run_app` factories."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from tui import messages
from tui.core.config import INT_BOUNDS, PRESETS, Hyperparams, preset
from tui.core.distribute import DistributeOptions
from tui.core.events import Evaluated, Predicted, StopReason, TrainingEvent, error_line
from tui.core.runtime import native_stderr_to, tensorboard_installed, tensorflow_log_path
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.runs import RunsScreen
from tui.screens.save_model import SUFFIX, SaveModelScreen
from tui.widgets.curves import CurvesPlot
from tui.widgets.devices import DevicePanel
from tui.widgets.hyperparams import HyperparamsPanel
from tui.widgets.progress import EpochProgress
from tui.widgets.status import StatusBar
from tui.widgets.training_log import TrainingLog

if TYPE_CHECKING:
    import numpy as np

    # These import Keras (seconds): at run time they are imported in a worker first.
    from tui.core.data import MnistData
    from tui.core.runs import RunDirectory
    from tui.core.session import TrainingSession
    from tui.screens.draw import PredictFn

# numpy, the data loader and the prediction screens are imported where they are first used
# (by then a worker has loaded numpy): the first frame waits for every import above, and
# numpy alone is a third of them (tests/benchmarks/bench_startup.py).

MIN_EPOCHS, MAX_EPOCHS = INT_BOUNDS["epochs"]
_Opened = TypeVar("_Opened")
APP_PROGRESS_INTERVAL = 0.2
"""Seconds between progress updates in the app. On two cores every repaint is taken from
training; five a second looks live and measured close to the plain script's speed
(tests/benchmarks/bench_training.py), where ten a second cost several percent."""

ACTIVE_STATES = frozenset({"training", "paused", "stopping"})
"""States in which `fit` is running."""
BUSY_STATES = ACTIVE_STATES | {"evaluating"}
"""States in which the training worker is running."""
LOADING_STATES = frozenset({"loading", "loading-data"})
"""States before TensorFlow and the data are both in."""
DASHBOARD_ONLY = frozenset(
    {
        *("browse", "confusion", "draw", "runs", "save_model", "toggle_devices"),
        *("train", "change_target", "toggle_loss", "toggle_panel", "reset"),
    }
)
"""Actions whose keys work on the dashboard only: over the screens they open they would pile
screen on screen, act unseen, or crowd those screens' own keys out of the footer."""
DEFAULT_MODELS_DIR = Path("models")
"""Where `S` saves models, like `mnist-tui train`."""


def short_description(data: MnistData) -> str:
    """The data source and sizes in few columns, for narrow terminals."""
    name = Path(data.source).name if data.kind in ("path", "keras-cache") else data.kind
    return f"{name} {len(data.y_train):,}/{len(data.y_test):,}"


class MnistApp(App[None]):
    """Train a Keras CNN on MNIST and steer it live."""

    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    AUTO_FOCUS = "#log"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [  # noqa: RUF012 (App declares it as a plain class attribute)
        (0, "-narrow"),
        (100, "-wide"),
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "train", "Train"),
        Binding("s", "stop_now", "Stop"),
        Binding("e", "stop_after_epoch", "Finish epoch"),
        Binding("p", "pause", "Pause"),
        Binding("plus,equals_sign", "change_target(1)", "Epochs", key_display="+/-"),
        Binding("minus", "change_target(-1)", "Fewer epochs", show=False),
        Binding("v", "browse", "Browse"),
        Binding("c", "confusion", "Matrix"),
        Binding("d", "draw", "Draw"),
        # l, h and i are named where they act (curve title, first log line, panel border) and
        # in the help, so that the footer still ends with ? and q in 80 columns.
        Binding("l", "toggle_loss", "Loss", show=False),
        Binding("h", "toggle_panel", "Panel", show=False),
        Binding("r", "reset", "Reset"),
        Binding("R", "runs", "Runs"),
        Binding("S", "save_model", "Save"),
        Binding("i", "toggle_devices", "Devices", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("escape", "leave_field", show=False),
    ]

    state: reactive[str] = reactive("loading")
    """loading, loading-data, ready, opening, training, paused, stopping, evaluating, finished,
    stopped or error."""

    def __init__(
        self,
        hparams: Hyperparams,
        *,
        preset_name: str = "default",
        data_path: str | None = None,
        data: MnistData | None = None,
        load_tensorflow: bool = True,
        progress_interval: float = APP_PROGRESS_INTERVAL,
        runs_dir: str | Path | None = None,
        tensorboard: bool = False,
        resume_path: str | Path | None = None,
        model_path: str | Path | None = None,
        distribute: DistributeOptions | None = None,
        models_dir: str | Path = DEFAULT_MODELS_DIR,
    ) -> None:
        super().__init__()
        self.initial_hparams = hparams
        self.preset_name = preset_name
        self.data_path = data_path
        self.data: MnistData | None = data
        self.load_tensorflow = load_tensorflow
        self.progress_interval = progress_interval
        self.session: TrainingSession | None = None
        """The model and its history; None until the first `t` and after a reset."""
        self.predictions: Predicted | None = None
        """Test-set predictions of the current model, for the browser and the confusion matrix."""
        self.runs_dir = runs_dir
        """Where run directories go; None means `$MNIST_TUI_RUNS`, else `./runs`."""
        self.tensorboard = tensorboard
        """Runs also write TensorBoard logs (`--tensorboard`); turned off at start-up, with a
        warning, when the tensorboard package is missing."""
        self.models_dir = Path(models_dir)
        """Where `S` saves a model."""
        self.resume_path = Path(resume_path) if resume_path is not None else None
        """A run to reopen once TensorFlow and the data are in (`--resume`)."""
        self.model_path = Path(model_path) if model_path is not None else None
        """A saved model to open once TensorFlow and the data are in (`--model`)."""
        self.distribute = distribute or DistributeOptions()
        self.strategy: Any = None
        """The `tf.distribute.Strategy` from `distribute`, made once TensorFlow is in."""
        self.run_dir: RunDirectory | None = None
        """Where the current model's run is recorded; None before the first `t`, after a reset
        or when the run directory could not be created."""
        self.opened_model: Any = None
        """A model opened with `--model`, for browsing and drawing without training."""
        self.log_path: str | None = None
        """Where native stderr goes (shown in the help screen); set by `run_app`."""
        self.handle_signals = False
        """Stop cleanly on SIGTERM/SIGHUP; only `run_app` turns it on (tests share a process)."""
        self.backend_ready = False
        self.data_error: str | None = None
        self.exit_signal: int | None = None
        self._quitting = False
        self._target = hparams.epochs
        self._stop_reason: StopReason | None = None
        self._applied_lr: float | None = None
        self._steps: int | None = None
        self._stop_after_epoch = False
        self._state_before_open = "ready"

    # --- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="body"):
            yield HyperparamsPanel(self.initial_hparams, self.preset_name, id="panel")
            with Vertical(id="main"):
                yield CurvesPlot(id="curves")
                yield EpochProgress(id="progress")
                yield DevicePanel(id="devices")
                yield TrainingLog(id="log")
        yield Footer(compact=True)

    @property
    def panel(self) -> HyperparamsPanel:
        return self.query_one("#panel", HyperparamsPanel)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def training_log(self) -> TrainingLog:
        return self.query_one("#log", TrainingLog)

    @property
    def curves(self) -> CurvesPlot:
        return self.query_one("#curves", CurvesPlot)

    @property
    def progress(self) -> EpochProgress:
        return self.query_one("#progress", EpochProgress)

    @property
    def devices(self) -> DevicePanel:
        return self.query_one("#devices", DevicePanel)

    @property
    def model(self) -> Any:
        """The model the browser, matrix and drawing use: the trained one, else `--model`'s."""
        if self.session is not None and self.session.model is not None:
            return self.session.model
        return self.opened_model

    def on_mount(self) -> None:
        self.status.target = self._target
        self.curves.target = self._target
        self.devices.border_title = "Devices (i hides)"
        log = self.training_log
        log.note("mnist-tui: t trains, ? lists every key, h shows or hides the panel.", "bold")
        if self.tensorboard and not tensorboard_installed():
            # Training still goes on and records everything else; say so once, up front.
            self.tensorboard = False
            missing = (
                "TensorBoard logs are off: the tensorboard package is not installed "
                "(`pip install tensorboard`, then restart)."
            )
            log.warning(missing)
            self.notify(missing, title="No TensorBoard", severity="warning", timeout=10)
        if self.data is not None:
            self.post_message(messages.DataLoaded(self.data))
        else:
            log.note("Looking for MNIST…", "dim")
        if self.load_tensorflow:
            log.note("Loading TensorFlow in the background…", "dim")
        # The loaders hold the GIL for long stretches, and Textual writes frames from another
        # thread: start them a moment after the first frame, so that it reaches the terminal.
        self.call_after_refresh(self.set_timer, 0.1, self._start_loading)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._on_signal, signum)

    # --- start-up workers ---------------------------------------------------------------------
    def _start_loading(self) -> None:
        if self.data is None:
            self._load_data()
        if self.load_tensorflow:
            self._load_backend()

    @work(thread=True, exit_on_error=False, group="startup")
    def _load_data(self) -> None:
        from tui.core.data import DataError, load_mnist

        try:
            data = load_mnist(self.data_path)
        except DataError as err:
            self.post_message(messages.DataFailed(str(err)))
        else:
            self.post_message(messages.DataLoaded(data))

    @work(thread=True, exit_on_error=False, group="startup")
    def _load_backend(self) -> None:
        try:
            import tui.core.session  # noqa: F401  (imports Keras and TensorFlow)
            from tui.core.distribute import training_device
            from tui.core.runtime import device_report

            # Right after the import: devices are split and precision set before any model.
            self.distribute.prepare()
            strategy = self.distribute.make_strategy()
            device = training_device(strategy)
            report = device_report(device)
        except Exception as err:  # a broken TensorFlow install is reported, not a traceback
            self.post_message(messages.BackendFailed(error_line(err)))
        else:
            self.post_message(messages.BackendLoaded(device, report, strategy))

    @on(messages.DataLoaded)
    def _data_loaded(self, message: messages.DataLoaded) -> None:
        from tui.core.data import SAMPLE_NOTICE

        self.data = message.data
        self.data_error = None
        self.status.data_text = message.data.describe()
        self.status.data_short = short_description(message.data)
        self.training_log.note(f"MNIST: {message.data.describe()} from {message.data.source}")
        if message.data.is_sample:
            self.training_log.warning(SAMPLE_NOTICE)
        self._maybe_ready()

    @on(messages.DataFailed)
    def _data_failed(self, message: messages.DataFailed) -> None:
        self.data_error = message.reason
        self.status.data_text = self.status.data_short = "no data"
        self.training_log.error(message.reason)
        self.notify(message.reason, title="MNIST could not be loaded", severity="error")
        self.state = "error"

    @on(messages.BackendLoaded)
    def _backend_loaded(self, message: messages.BackendLoaded) -> None:
        self.backend_ready = True
        self.strategy = message.strategy
        self.status.device = message.device
        self.devices.report = message.report
        self.training_log.note(f"TensorFlow is loaded; training runs on {message.device}.")
        self._maybe_ready()

    def _maybe_ready(self) -> None:
        """Once both TensorFlow and the data are in, say that training can start."""
        if self.state not in LOADING_STATES:
            return
        if not self.backend_ready:
            return
        if self.data is None:
            self.state = "loading-data"
            return
        self.state = "ready"
        self.training_log.note("Ready: press t to train.", "bold green")
        if self.resume_path is not None:
            path, self.resume_path = self.resume_path, None
            self._open_run(path)
        elif self.model_path is not None:
            path, self.model_path = self.model_path, None
            self._begin_opening(f"Opening the model {path}…")
            self._load_model(path)

    @on(messages.BackendFailed)
    def _backend_failed(self, message: messages.BackendFailed) -> None:
        self.status.device = "no TensorFlow"
        self.training_log.error(f"TensorFlow could not be loaded: {message.reason}")
        self.notify(message.reason, title="TensorFlow could not be loaded", severity="error")
        self.state = "error"

    # --- state --------------------------------------------------------------------------------
    def watch_state(self, state: str) -> None:
        self.status.state = state
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys that do nothing in the current state, so the footer fits 80 columns."""
        if action in ("stop_now", "stop_after_epoch", "pause"):
            return self.state in ACTIVE_STATES
        if action == "train":
            return self.state not in BUSY_STATES and self.state != "opening"
        if action == "reset":
            return self.state not in BUSY_STATES and self.session is not None
        if action in DASHBOARD_ONLY and len(self.screen_stack) > 1:
            return False
        if action in ("browse", "confusion", "draw"):
            return self.state not in LOADING_STATES
        if action == "runs":
            return self.state not in BUSY_STATES
        if action == "save_model":
            return self.state not in BUSY_STATES and self.model is not None
        return True

    # --- the training worker ------------------------------------------------------------------
    def _sink(self, event: TrainingEvent) -> None:
        """Runs on the training thread: hand the event to the UI thread and nothing else."""
        self.post_message(messages.wrap(event))

    @work(thread=True, exclusive=True, exit_on_error=False, group="training")
    def _train(
        self,
        session: TrainingSession,
        run: RunDirectory | None,
        hparams: Hyperparams,
        *,
        fresh: bool,
    ) -> StopReason:
        """Record the run, train, then evaluate and predict; runs on the training thread.

        Args:
            session: the session to train.
            run: the run directory when `t` was pressed (None if there is none).
            hparams: the panel's settings, for hparams.toml.
            fresh: a new model, which records into a new run directory (see `_record_run`).
        """
        run = self._record_run(session, run, hparams, fresh=fresh)
        reason = session.train()
        if self._quitting or reason in (StopReason.ERROR, StopReason.NAN):
            return reason
        evaluated = session.evaluate()
        if not self._quitting:
            predicted = session.predict()
            if run is not None:
                self._record_results(run, evaluated, predicted, session.epochs_done)
        return reason

    def _record_run(
        self,
        session: TrainingSession,
        run: RunDirectory | None,
        hparams: Hyperparams,
        *,
        fresh: bool,
    ) -> RunDirectory | None:
        """Runs on the training thread: the run directory this training records into.

        Here rather than on `t`: creating a run makes a folder and fsyncs several small files,
        which a slow or network disk can stall for seconds. A fresh model gets a new directory
        and the session its callbacks; a continued model keeps `run`, whose hparams.toml
        follows the new settings.
        """
        if not fresh:
            if run is not None:
                self._record_hparams(run, hparams)
            return run
        run = self._run_for_new_model(run, hparams)
        if run is not None:
            session.extra_callbacks = run.callbacks(tensorboard=self.tensorboard)
        return run

    def _run_for_new_model(
        self, run: RunDirectory | None, hparams: Hyperparams
    ) -> RunDirectory | None:
        """Runs on the training thread: the run directory a fresh model records into; None
        (reported to the UI) if none can be made.

        A run that has not saved an epoch yet (a first attempt that failed, a resumed empty run)
        is reused rather than leaving an empty directory behind.
        """
        from tui.core.runs import RunDirectory, RunError

        if run is not None and run.epochs_saved == 0:
            try:
                run.update_hparams(hparams)
            except OSError:
                pass
            else:
                return run
        assert self.data is not None
        try:
            created = RunDirectory.create(self.runs_dir, self.preset_name, hparams, self.data)
        except (RunError, OSError) as err:
            self.post_message(messages.RunNotCreated(str(err)))
            return None
        self.post_message(messages.RunCreated(created))
        return created

    def _record_hparams(self, run: RunDirectory, hparams: Hyperparams) -> None:
        """Runs on the training thread: a continued run keeps its directory; its hparams.toml
        follows the new settings.

        Except `epochs`: it stays the length of one round, which `t` runs again after a resume.
        """
        try:
            run.update_hparams(hparams.with_changes(epochs=run.hparams.epochs))
        except OSError as err:
            self.post_message(
                messages.RecordFailed(f"hparams.toml in {run.path} not updated: {err}")
            )

    def _record_results(
        self, run: RunDirectory, evaluated: Evaluated, predicted: Predicted, epochs_done: int
    ) -> None:
        """Runs on the training thread: the test results go into the run directory."""
        try:
            run.save_evaluation(evaluated, epochs_done)
            run.save_predictions(predicted)
        except OSError as err:
            self.post_message(
                messages.RecordFailed(
                    f"cannot write the test results to {run.path}: {err.strerror or err}"
                )
            )

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group in ("open", "save", "devices") and event.state == WorkerState.ERROR:
            # The workers report their expected failures themselves; this is anything else.
            reason = error_line(worker.error or RuntimeError("unknown error"))
            if worker.group == "open":
                self.post_message(messages.OpenFailed(reason))
            elif worker.group == "save":
                self.post_message(messages.RecordFailed(f"the model was not saved: {reason}"))
            return
        if worker.group != "training" or not worker.is_finished:
            return
        if event.state == WorkerState.ERROR:
            error = worker.error or RuntimeError("unknown error")
            self._failed(f"{error_line(error)}")
        if self._quitting:
            self._exit_app()
            return
        self.run_ended(succeeded=event.state == WorkerState.SUCCESS)

    def run_ended(self, *, succeeded: bool) -> None:
        """Settle the state once the training worker has returned."""
        if succeeded and self.state != "error":
            reason = self._stop_reason
            self.state = "finished" if reason is StopReason.FINISHED else "stopped"
            what = reason.value if reason else "done"
            self.progress.set_note(f"{what}: t continues, + sets more epochs, r resets")
        elif self.state in BUSY_STATES:
            self.state = "error"
        self.panel.mode = "model" if self._has_model() else "free"
        self.refresh_bindings()

    def _failed(self, message: str) -> None:
        self.training_log.error(message)
        self.notify(message, title="Training failed", severity="error", timeout=10)
        self.state = "error"

    def _has_model(self) -> bool:
        return self.session is not None and self.session.model is not None

    def _training_running(self) -> bool:
        return any(w.group == "training" and not w.is_finished for w in self.workers)

    # --- core events, on the UI thread --------------------------------------------------------
    @on(messages.TrainingStarted)
    def _started(self, message: messages.TrainingStarted) -> None:
        event = message.event
        # `train()` clears old requests as it begins; keys pressed while the model was being
        # built must survive that.
        if self.session is not None:
            controls = self.session.controls
            if self._quitting or self.state == "stopping":
                controls.stop_now()
            elif self.state == "paused":
                controls.pause()
            if self._stop_after_epoch:
                controls.stop_after_epoch()
        self._set_target(event.target)
        self.status.epoch = event.first_epoch
        self.training_log.started(event, self.status.data_text)
        self._steps = event.steps_per_epoch
        self.progress.set_epoch(event.first_epoch, event.target, event.steps_per_epoch)
        self.progress.set_note("starting…")

    @on(messages.ProgressUpdated)
    def _progress(self, message: messages.ProgressUpdated) -> None:
        self.status.epoch = message.event.epoch
        self.progress.show(message.event, self._target)
        self.curves.add_progress(message.event)

    @on(messages.EpochEnded)
    def _epoch_ended(self, message: messages.EpochEnded) -> None:
        event = message.event
        self.training_log.epoch_ended(event)
        self.curves.add_epoch(event)
        self.status.epoch = event.epoch
        self.status.val_accuracy = event.val_accuracy
        if self.session is not None:
            self._report_devices(self.session.device)
        if event.epoch < self._target and self.state in ACTIVE_STATES:
            self.progress.set_epoch(event.epoch + 1, self._target, self._steps)
        else:
            self.progress.complete(event.epoch, self._target)

    @on(messages.TrainingPaused)
    def _paused(self, message: messages.TrainingPaused) -> None:
        self.training_log.paused(message.event)
        self.progress.set_note("paused: p resumes")
        if self.state == "training":
            self.state = "paused"

    @on(messages.TrainingResumed)
    def _resumed(self, message: messages.TrainingResumed) -> None:
        self.training_log.resumed(message.event)
        if self.state == "paused":
            self.state = "training"

    @on(messages.TargetChanged)
    def _target_changed(self, message: messages.TargetChanged) -> None:
        self._set_target(message.event.target)
        self.training_log.target_changed(message.event)

    @on(messages.LearningRateChanged)
    def _lr_changed(self, message: messages.LearningRateChanged) -> None:
        self._applied_lr = message.event.learning_rate
        self.training_log.learning_rate_changed(message.event)

    @on(messages.TrainingStopped)
    def _stopped(self, message: messages.TrainingStopped) -> None:
        event = message.event
        self._stop_reason = event.reason
        self.status.epoch = event.epochs_done
        self.training_log.stopped(event)
        if event.reason is not StopReason.FINISHED:
            self.curves.end_epoch()
        self.progress.set_note(event.reason.value)
        if event.reason in (StopReason.ERROR, StopReason.NAN):
            text = f"{event.reason.value}: {event.message}" if event.message else event.reason.value
            self.notify(text, title="Training failed", severity="error", timeout=10)
            self.state = "error"
        elif not self._quitting:
            self.state = "evaluating"
            self.progress.set_note("evaluating on the test set…")

    @on(messages.Evaluated)
    def _evaluated(self, message: messages.Evaluated) -> None:
        self.status.test_accuracy = message.event.accuracy
        self.training_log.evaluated(message.event)

    @on(messages.Predicted)
    def _predicted(self, message: messages.Predicted) -> None:
        self.predictions = message.event

    @on(messages.RunCreated)
    def _run_created(self, message: messages.RunCreated) -> None:
        self.run_dir = message.run
        self.training_log.note(f"Recording this run in {message.run.path}", "dim")

    @on(messages.RunNotCreated)
    def _run_not_created(self, message: messages.RunNotCreated) -> None:
        self.run_dir = None
        self.training_log.warning(f"This run is not recorded: {message.reason}")
        self.notify(message.reason, title="No run directory", severity="warning", timeout=8)

    @on(messages.RecordFailed)
    def _record_failed(self, message: messages.RecordFailed) -> None:
        self.training_log.warning(message.reason)
        self.notify(message.reason, severity="warning", timeout=8)

    # --- devices ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="devices")
    def _report_devices(self, training_on: str) -> None:
        from tui.core.runtime import device_report

        self.post_message(messages.DevicesReported(device_report(training_on)))

    @on(messages.DevicesReported)
    def _devices_reported(self, message: messages.DevicesReported) -> None:
        self.devices.report = message.report

    def action_toggle_devices(self) -> None:
        self.devices.toggle_class("-shown")

    # --- opening a run or a saved model -------------------------------------------------------
    def _begin_opening(self, note: str) -> None:
        self._state_before_open = self.state
        self.state = "opening"
        self.training_log.note(note, "dim")

    def _open_run(self, path: Path) -> None:
        self._begin_opening(f"Opening the run {path}…")
        self._resume_run(path)

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        """The strategy's scope: a model loaded inside it trains under the strategy."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def _open_in_scope(self, open_: Callable[[Path], _Opened], path: Path) -> _Opened | None:
        """`open_(path)` under the strategy's scope; None once a failure is reported."""
        from tui.core.runs import RunError

        try:
            with self._scope():
                return open_(path)
        except RunError as err:
            self.post_message(messages.OpenFailed(str(err)))
            return None

    @work(thread=True, exclusive=True, exit_on_error=False, group="open")
    def _resume_run(self, path: Path) -> None:
        from tui.core.runs import resume

        assert self.data is not None
        resumed = self._open_in_scope(resume, path)
        if resumed is None:
            return
        session = resumed.session(self.data, tensorboard=self.tensorboard)
        session.progress_interval = self.progress_interval
        session.strategy = self.strategy
        # Predicted on this app's test set, which need not be the one the run was tested on.
        predictions = session.predict() if session.model is not None else None
        session.sink = self._sink
        self.post_message(messages.RunResumed(session, resumed.run_dir, predictions))

    @work(thread=True, exclusive=True, exit_on_error=False, group="open")
    def _load_model(self, path: Path) -> None:
        from tui.core.distribute import steps_per_execution
        from tui.core.model import set_steps_per_execution
        from tui.core.predictions import predict_test_set
        from tui.core.runs import load_model_file

        assert self.data is not None
        model = self._open_in_scope(load_model_file, path)
        if model is None:
            return
        set_steps_per_execution(model, steps_per_execution(self.strategy))
        predictions = predict_test_set(model, self.data.x_test, self.data.y_test)
        self.post_message(messages.ModelOpened(model, path, predictions))

    @on(messages.OpenFailed)
    def _open_failed(self, message: messages.OpenFailed) -> None:
        self.training_log.error(message.reason)
        self.notify(message.reason, title="Cannot open", severity="error", timeout=10)
        if self.state == "opening":
            self.state = self._state_before_open

    @on(messages.RunResumed)
    def _run_resumed(self, message: messages.RunResumed) -> None:
        session, run = message.session, message.run
        self.session, self.run_dir, self.opened_model = session, run, None
        self.predictions = message.predictions
        self.preset_name = run.preset
        self._stop_reason = None
        self._stop_after_epoch = False
        self._applied_lr = session.hparams.learning_rate
        self.panel.load(session.hparams)
        done = session.epochs_done
        self.curves.load(session.history)
        self._set_target(max(session.hparams.epochs, done))
        last = session.history[-1] if session.history else None
        self.status.epoch = done
        self.status.val_accuracy = last.val_accuracy if last is not None else None
        self.status.test_accuracy = (
            message.predictions.accuracy if message.predictions is not None else None
        )
        self.progress.complete(done, self._target)
        self.progress.set_note(f"resumed after epoch {done}: t continues")
        self.panel.mode = "model" if session.model is not None else "free"
        self.state = "ready"
        self.training_log.note(
            f"◆ resumed {run.path}: {done} epochs done; t continues at epoch {done + 1}",
            "bold cyan",
        )
        self.refresh_bindings()

    @on(messages.ModelOpened)
    def _model_opened(self, message: messages.ModelOpened) -> None:
        self.opened_model = message.model
        self.predictions = message.predictions
        self.status.test_accuracy = message.predictions.accuracy
        if self.state == "opening":
            self.state = self._state_before_open
        self.training_log.note(
            f"◆ opened {message.path}: test accuracy {message.predictions.accuracy:.2%}; "
            "v browses its predictions, c shows its confusion matrix, d lets you draw",
            "bold cyan",
        )
        self.refresh_bindings()

    # --- saving the model ---------------------------------------------------------------------
    def action_save_model(self) -> None:
        model = self.model
        if model is None:
            self.notify("There is no model to save yet; t trains one.")
            return
        if self._training_running():
            self.notify("Stop training first (s); then save.", severity="warning")
            return
        folder = self.models_dir
        existing = {p.name.removesuffix(SUFFIX) for p in folder.glob(f"*{SUFFIX}")}
        done = self.session.epochs_done if self.session is not None else 0
        default = (
            self.run_dir.name if self.run_dir is not None else f"{self.preset_name}-{done}-epochs"
        )
        self.push_screen(
            SaveModelScreen(default, existing=existing, folder=str(folder)),
            lambda name: self._save_chosen(model, name),
        )

    def _save_chosen(self, model: Any, name: str | None) -> None:
        if name is not None:
            self._save_model(model, self.models_dir / f"{name}{SUFFIX}")

    @work(thread=True, exit_on_error=False, group="save")
    def _save_model(self, model: Any, target: Path) -> None:
        from tui.core.runs import save_model_atomic

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            save_model_atomic(model, target)
        except OSError as err:
            self.post_message(
                messages.RecordFailed(f"the model was not saved to {target}: {err.strerror or err}")
            )
        else:
            self.post_message(messages.ModelSaved(target))

    @on(messages.ModelSaved)
    def _model_saved(self, message: messages.ModelSaved) -> None:
        self.training_log.note(f"◆ model saved to {message.path}", "cyan")
        self.notify(str(message.path), title="Model saved")

    # --- keys ---------------------------------------------------------------------------------
    def action_train(self) -> None:
        if self._training_running():
            self.notify("Training is already running.", severity="warning")
            return
        invalid = self.panel.first_invalid()
        if invalid is not None:
            name, error = invalid
            self._show_panel(True)
            self.panel.focus_field(name)
            self.notify(error, title="Fix this field first", severity="error")
            return
        if self.data_error is not None:
            self.notify(self.data_error, title="No data", severity="error")
            return
        if not self.backend_ready:
            self.notify("Still loading TensorFlow; training can start in a moment.")
            return
        if self.data is None:
            self.notify("Still loading MNIST; training can start in a moment.")
            return
        if self.state == "opening":
            self.notify("Still opening; training can start in a moment.")
            return
        hparams = self.panel.hyperparams()
        fresh = not self._has_model()
        session = self._prepare_session(hparams)
        if session is None:
            return
        self.session = session
        self._stop_reason = None
        self._stop_after_epoch = False
        self.panel.mode = "training"
        self.state = "training"
        self._train(session, self.run_dir, hparams, fresh=fresh)

    def _prepare_session(self, hparams: Hyperparams) -> TrainingSession | None:
        """A session to train: a new one, or the current model carrying on."""
        from tui.core.session import TrainingSession  # already imported by the backend worker

        assert self.data is not None
        old = self.session
        if old is None or old.model is None:
            self._applied_lr = hparams.learning_rate
            self._set_target(hparams.epochs)
            # The training worker gives it the run directory's callbacks (see `_record_run`).
            return TrainingSession(
                hparams,
                self.data,
                self._sink,
                progress_interval=self.progress_interval,
                strategy=self.strategy,
            )
        done = old.epochs_done
        if done >= MAX_EPOCHS:
            self.notify(f"The model has trained {MAX_EPOCHS} epochs, the most allowed.")
            return None
        # The epochs field is the target: above what is done, train up to it; otherwise run
        # another round of the length the model was set up with.
        target = hparams.epochs if hparams.epochs > done else done + old.hparams.epochs
        target = min(target, MAX_EPOCHS)
        self.panel.set_value("epochs", target)
        self._set_target(target)
        hparams = hparams.with_changes(epochs=target)
        same_run = old.hparams.with_changes(epochs=target, learning_rate=hparams.learning_rate)
        if hparams == same_run:
            session = old
            session.controls.set_epoch_target(target)
        else:
            # Batch size, schedule, split or train size changed: same model, new run settings.
            session = TrainingSession(
                hparams,
                self.data,
                self._sink,
                callbacks=self._run_callbacks(),
                progress_interval=self.progress_interval,
                model=old.model,
                epochs_done=done,
                strategy=self.strategy,
            )
            session.history = list(old.history)
        if self._applied_lr is not None and hparams.learning_rate != self._applied_lr:
            session.controls.set_learning_rate(hparams.learning_rate)
        return session

    def _run_callbacks(self) -> list[Any]:
        """The run directory's Keras callbacks (metrics, checkpoints, TensorBoard if asked)."""
        if self.run_dir is None:
            return []
        return self.run_dir.callbacks(tensorboard=self.tensorboard)

    def action_stop_now(self) -> None:
        if self.session is None or self.state not in ACTIVE_STATES:
            return
        self.session.controls.stop_now()
        self.state = "stopping"
        self.progress.set_note("stopping…")

    def action_stop_after_epoch(self) -> None:
        if self.session is None or self.state not in ACTIVE_STATES:
            return
        self.session.controls.stop_after_epoch()
        self._stop_after_epoch = True
        self.training_log.note("◆ will stop when this epoch ends", "cyan")
        self.notify("Training stops when this epoch ends.")

    def action_pause(self) -> None:
        if self.session is None or self.state not in ("training", "paused"):
            return
        paused = self.session.controls.toggle_pause()
        self.state = "paused" if paused else "training"

    def action_change_target(self, delta: int) -> None:
        if self.session is not None and self.state in ACTIVE_STATES:
            self._set_target(self.session.controls.change_epoch_target(delta))
            return
        value = self.panel.raw_values().get("epochs")
        current = value if isinstance(value, int) else self._target
        self.panel.set_value("epochs", min(MAX_EPOCHS, max(MIN_EPOCHS, current + delta)))

    def _set_target(self, target: int) -> None:
        self._target = target
        self.status.target = target
        self.curves.target = target
        self.panel.set_value("epochs", target)

    @on(HyperparamsPanel.LiveValueSubmitted)
    def _live_value(self, message: HyperparamsPanel.LiveValueSubmitted) -> None:
        if self.session is None or self.state not in ACTIVE_STATES:
            return
        controls = self.session.controls
        if message.name == "epochs":
            actual = controls.set_epoch_target(int(message.value))
            if actual != message.value:
                self.notify(f"The target cannot go below the epoch in progress; it is {actual}.")
            self._set_target(actual)
        elif message.name == "learning_rate":
            controls.set_learning_rate(float(message.value))

    def action_toggle_loss(self) -> None:
        self.curves.show_loss = not self.curves.show_loss

    def action_toggle_panel(self) -> None:
        self.screen.toggle_class("-panel-toggled")

    def _show_panel(self, shown: bool) -> None:
        # "-panel-toggled" flips the default: hidden when narrow, shown when wide.
        narrow = self.screen.has_class("-narrow")
        self.screen.set_class(shown == narrow, "-panel-toggled")

    def action_leave_field(self) -> None:
        if self.screen.has_class("-narrow"):
            self._show_panel(False)
        self.training_log.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.log_path))

    def _test_images(self) -> np.ndarray | None:
        """The test images the predictions are for (None when they are not the same set)."""
        if self.data is None or self.predictions is None:
            return None
        if len(self.data.x_test) != len(self.predictions.labels):
            return None
        return self.data.x_test

    def action_browse(self) -> None:
        from tui.screens.browser import PredictionBrowser

        self.push_screen(PredictionBrowser(self.predictions, self._test_images()))

    def action_confusion(self) -> None:
        from tui.screens.confusion import ConfusionScreen

        self.push_screen(ConfusionScreen(self.predictions, self._test_images()))

    def action_draw(self) -> None:
        from tui.screens.draw import DrawScreen

        self.push_screen(DrawScreen(_predict_fn(self.model)))

    def action_runs(self) -> None:
        if self._training_running():
            self.notify("Stop training first (s) to open another run.", severity="warning")
            return
        self.push_screen(RunsScreen(self.runs_dir), self._run_chosen)

    def _run_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        if self._training_running() or self.state in BUSY_STATES:
            self.notify("Stop training first (s) to open another run.", severity="warning")
            return
        if self.state == "opening":
            self.notify("Still opening the last choice; try again in a moment.")
            return
        if not self.backend_ready or self.data is None:
            self.notify("Still loading; open the run again in a moment.")
            return
        self._open_run(path)

    def action_reset(self) -> None:
        if self.state in BUSY_STATES:
            self.notify("Stop training first (s).", severity="warning")
            return
        if self.session is None:
            self.notify("There is no model yet; t builds one from the panel.")
            return
        self.push_screen(
            ConfirmScreen(
                "Reset the model?",
                "Its trained weights and curves are discarded; t then builds a fresh model "
                "from the panel.",
                yes="Reset",
            ),
            self._reset_confirmed,
        )

    def _reset_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        self.session = None
        self.predictions = None
        self.run_dir = None
        self.opened_model = None
        self.curves.clear()
        self.status.epoch = 0
        self.status.val_accuracy = None
        self.status.test_accuracy = None
        self.panel.mode = "free"
        self.progress.set_epoch(0, self._target)
        self.progress.set_note("")
        self.training_log.note("◆ model reset: t builds a fresh one from the panel", "cyan")
        if self.backend_ready:
            self.state = "ready"
        self.refresh_bindings()

    # --- leaving ------------------------------------------------------------------------------
    def action_quit(self) -> None:  # type: ignore[override]
        """Stop `fit` within a few batches; exit once the training worker has returned."""
        self._quitting = True
        if self.session is not None:
            self.session.controls.stop_now()
        if self._training_running():
            # Not awaited here: the queue must keep flowing so that a stop requested before
            # `fit` began can be re-applied when it starts (see `_started`).
            self.state = "stopping"
            self.progress.set_note("stopping, then quitting…")
            return
        self._exit_app()

    def _exit_app(self) -> None:
        self.exit(return_code=128 + self.exit_signal if self.exit_signal else 0)

    def _on_signal(self, signum: int) -> None:
        self.exit_signal = signum
        self.action_quit()

    async def on_unmount(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)


def _predict_fn(model: Any) -> PredictFn | None:
    """The model as the drawing screen calls it (from a thread), or None without a model."""
    if model is None:
        return None

    import numpy as np

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model(images, training=False))

    return predict


def create_app(
    hparams: Hyperparams | None = None,
    *,
    preset_name: str = "default",
    data_path: str | None = None,
    data: MnistData | None = None,
    load_tensorflow: bool = True,
    progress_interval: float = APP_PROGRESS_INTERVAL,
    runs_dir: str | Path | None = None,
    tensorboard: bool = False,
    resume_path: str | Path | None = None,
    model_path: str | Path | None = None,
    distribute: DistributeOptions | None = None,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
) -> MnistApp:
    """Build the app.

    Args:
        hparams: starting hyperparameters; the named preset's when None.
        preset_name: preset shown in the picker (and used when `hparams` is None).
        data_path: an MNIST npz or IDX folder; None picks the best source available.
        data: already loaded data (tests), used instead of loading any.
        load_tensorflow: import TensorFlow in the background; False paints without it (snapshots).
        progress_interval: minimum seconds between two progress updates from training.
        runs_dir: where run directories go; None means `$MNIST_TUI_RUNS`, else `./runs`.
        tensorboard: runs also write TensorBoard logs into their `tensorboard/` folder; without
            the tensorboard package the app warns once and trains without them.
        resume_path: a run directory to reopen and continue (`--resume`).
        model_path: a saved `.keras` model to browse and draw with (`--model`).
        distribute: strategy and precision; prepared in the worker that imports TensorFlow.
        models_dir: where `S` saves models.
    """
    if hparams is None:
        hparams = preset(preset_name if preset_name in PRESETS else "default")
    return MnistApp(
        hparams,
        preset_name=preset_name,
        data_path=data_path,
        data=data,
        load_tensorflow=load_tensorflow,
        progress_interval=progress_interval,
        runs_dir=runs_dir,
        tensorboard=tensorboard,
        resume_path=resume_path,
        model_path=model_path,
        distribute=distribute,
        models_dir=models_dir,
    )


def run_app(
    hparams: Hyperparams | None = None,
    *,
    preset_name: str = "default",
    data_path: str | None = None,
    log_path: str | None = None,
    runs_dir: str | Path | None = None,
    tensorboard: bool = False,
    resume_path: str | Path | None = None,
    model_path: str | Path | None = None,
    distribute: DistributeOptions | None = None,
) -> int:
    """Run the app in this terminal with native stderr sent to a log file.

    Returns:
        The exit code: 0, or 128 + the signal number when SIGTERM or SIGHUP ended it.
    """
    path = Path(log_path) if log_path else tensorflow_log_path()
    # The app is built inside the redirection so Textual paints on the terminal stream.
    with native_stderr_to(path):
        app = create_app(
            hparams,
            preset_name=preset_name,
            data_path=data_path,
            runs_dir=runs_dir,
            tensorboard=tensorboard,
            resume_path=resume_path,
            model_path=model_path,
            distribute=distribute,
        )
        app.log_path = str(path)
        app.handle_signals = True
        app.run()
    return app.return_code or 0


__all__ = ["MnistApp", "create_app", "run_app"]
