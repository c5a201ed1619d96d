"""The Textual app: the dashboard, its keys and screens, as a viewer of a training engine.

The app never trains and never imports TensorFlow. It connects to an engine (started for it in
the background, or already running for `attach`), shows the engine's snapshot and events, and
turns keys into commands. Everything it shows about training is the engine's `Snapshot`,
folded forward by the same `advance` the engine uses; no widget keeps a value of its own.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import msgspec
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.notifications import SeverityLevel

from tui.core.settings.hyperparams import INT_BOUNDS
from tui.core.settings.requests import AppOptions
from tui.core.training.events import (
    BatchProgress,
    DataLoaded,
    EpochEnded,
    ModelReset,
    Notice,
    PhaseChanged,
    PredictionsReady,
    RunOpened,
    SettingsApplied,
    StopReason,
    TrainingEvent,
    TrainingStopped,
)
from tui.core.training.phase import FITTING, Action, Phase
from tui.core.training.snapshot import Snapshot, initial_snapshot, refusal
from tui.core.training.snapshot import advance as fold
from tui.engine import protocol as p
from tui.engine.client import EngineUnavailable
from tui.engine.connect import Connector, SpawnConnector
from tui.engine.handle import EngineHandle
from tui.messages import EngineConnected, EngineEvent, EngineLost
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.quit import DETACH, STOP, QuitScreen
from tui.screens.too_small import TooSmallScreen, too_small
from tui.widgets.curves import CurvesPlot
from tui.widgets.devices import DevicePanel
from tui.widgets.footer import FittingFooter
from tui.widgets.hyperparams import HyperparamsPanel
from tui.widgets.progress import EpochProgress
from tui.widgets.status import StatusBar, data_text
from tui.widgets.training_log import TrainingLog

if TYPE_CHECKING:
    import numpy as np

    from tui.core.inspect.predictions import Predictions

MIN_EPOCHS, MAX_EPOCHS = INT_BOUNDS["epochs"]
DASHBOARD_ONLY = frozenset(
    {
        *("browse", "confusion", "draw", "runs", "save_model", "toggle_devices"),
        *("train", "change_target", "toggle_loss", "toggle_panel", "reset", "model", "clusters"),
    }
)
"""Actions whose keys work on the dashboard only: over the screens they open they would pile
screen on screen, act unseen, or crowd those screens' own keys out of the footer."""
KEY_ACTIONS = {
    "stop_now": Action.STOP_NOW,
    "stop_after_epoch": Action.STOP_AFTER_EPOCH,
    "pause": Action.PAUSE,
    "reset": Action.RESET,
    "runs": Action.OPEN_RUN,
    "save_model": Action.SAVE_MODEL,
}
"""Keys hidden from the footer while the engine would refuse them."""


class MnistApp(App[None]):
    """Train a Keras CNN on MNIST and steer it live, through an engine."""

    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    AUTO_FOCUS = "#log"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (App's own type)

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
        Binding("m", "model", "Model"),
        Binding("k", "clusters", "Clusters"),
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

    def __init__(self, options: AppOptions, connector: Connector) -> None:
        super().__init__()
        self.options = options
        self.connector = connector
        setup = options.setup
        self.snapshot: Snapshot = initial_snapshot(setup.hparams, setup.preset)
        """The engine's state as last heard; every widget shows part of it."""
        self.handle = EngineHandle(lambda text, severity: self.notify(text, severity=severity))
        """The app's and its screens' one way to the engine."""
        self.engine: p.EngineInfo | None = None
        self.predictions: Predictions | None = None
        """The current model's test-set predictions, fetched when the engine has new ones."""
        self.test_images: np.ndarray | None = None
        """The engine's test images, (n, 28, 28) uint8, fetched once per data set."""
        self.log_path: str | None = None
        """Where this process's native stderr goes (shown in the help screen)."""
        self.handle_signals = False
        """Detach on SIGTERM/SIGHUP; only `tui.launch.run_app` turns it on (tests
        share a process)."""
        self.exit_signal: int | None = None
        self.farewell = ""
        """Printed after the app leaves the terminal (how to come back to a detached run)."""
        self._images_for = ""

    # --- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="body"):
            setup = self.options.setup
            yield HyperparamsPanel(setup.hparams, setup.preset, id="panel")
            with Vertical(id="main"):
                yield CurvesPlot(id="curves")
                yield EpochProgress(id="progress")
                yield DevicePanel(id="devices")
                yield TrainingLog(id="log")
        yield FittingFooter()

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
    def phase(self) -> Phase:
        return self.snapshot.phase

    def on_resize(self, event: Resize) -> None:
        if too_small(*event.size) and not isinstance(self.screen, TooSmallScreen):
            self.push_screen(TooSmallScreen())

    def on_mount(self) -> None:
        if too_small(*self.size):
            self.push_screen(TooSmallScreen())
        self.devices.border_title = "Devices (i hides)"
        self.training_log.note(
            "mnist-tui: t trains, ? lists every key, h shows or hides the panel.", "bold"
        )
        self.training_log.note("Starting the engine (TensorFlow loads in it)…", "dim")
        self.curves.target = self.snapshot.target
        self.progress.show_state(self.snapshot)
        # Started after the first frame, so that nothing competes with painting it.
        self.call_after_refresh(self._connect)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._on_signal, signum)

    # --- the engine connection ----------------------------------------------------------------
    @work(exclusive=True, group="engine", exit_on_error=False)
    async def _connect(self) -> None:
        try:
            client = await self.connector.connect()
        except EngineUnavailable as err:
            self.post_message(EngineLost(str(err)))
            return
        self.post_message(EngineConnected(client))

        def deliver(event: TrainingEvent) -> None:
            self.post_message(EngineEvent(event))

        reason = await client.run(deliver)
        self.post_message(EngineLost(reason))

    @on(EngineConnected)
    def _connected(self, message: EngineConnected) -> None:
        self.handle.client = message.client
        self.engine = message.client.engine
        self._show_snapshot(message.client.welcome.snapshot)

    def _show_snapshot(self, snapshot: Snapshot) -> None:
        """Start over from a whole snapshot: the engine's history replayed into the widgets."""
        self.snapshot = snapshot
        log = self.training_log
        log.note(f"Engine {self.engine.id if self.engine else ''} (pid {self.pid_text}).", "dim")
        for event in snapshot.journal:
            log.show(event, data_text(snapshot, compact=False))
        self.curves.load(list(snapshot.history))
        if snapshot.model is not None or snapshot.history:
            self.panel.load(snapshot.hparams)
        self._refresh_state()
        if snapshot.phase is Phase.READY and not snapshot.journal:
            log.note("Ready: press t to train.", "bold green")
        last = snapshot.journal[-1] if snapshot.journal else None
        if isinstance(last, Notice) and last.level == "error" and snapshot.phase not in FITTING:
            # What went wrong just before this viewer came (a run that would not open at
            # start-up) is still news.
            self.notify(last.text, title=last.title, severity="error", timeout=10)
        if snapshot.data is not None:
            self._fetch_images()
        if snapshot.predictions is not None:
            self._fetch_predictions()

    @property
    def pid_text(self) -> str:
        return str(self.engine.pid) if self.engine else "?"

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        before = self.snapshot
        self.snapshot = snapshot = fold(before, event)
        if isinstance(event, BatchProgress):
            # The hot path: a few times a second while training; no layout, no log.
            self.status.snapshot = snapshot
            self.progress.show_progress(event, snapshot.target)
            self.curves.add_progress(event)
            return
        self.training_log.show(event, data_text(snapshot, compact=False))
        if isinstance(event, PhaseChanged):
            if event.phase is Phase.READY and before.phase is Phase.LOADING:
                self.training_log.note("Ready: press t to train.", "bold green")
        elif isinstance(event, EpochEnded):
            self.curves.add_epoch(event)
        elif isinstance(event, TrainingStopped) and event.reason is not StopReason.FINISHED:
            self.curves.end_epoch()
        elif isinstance(event, RunOpened):
            self.curves.load(list(event.history))
            self.panel.load(event.hparams)
        elif isinstance(event, ModelReset):
            self.curves.clear()
            self.predictions = None
        elif isinstance(event, SettingsApplied):
            self.panel.load(event.hparams)
        elif isinstance(event, PredictionsReady):
            self._fetch_predictions()
        elif isinstance(event, DataLoaded):
            self._fetch_images()
        elif isinstance(event, Notice) and event.level in ("warning", "error"):
            level: SeverityLevel = "error" if event.level == "error" else "warning"
            self.notify(event.text, title=event.title, severity=level, timeout=10)
        self._refresh_state()

    def _refresh_state(self) -> None:
        """Everything drawn from the snapshot but the log and the curves' points."""
        s = self.snapshot
        self.status.snapshot = s
        self.progress.show_state(s)
        self.curves.target = s.target
        self.curves.validation = s.hparams.validation_split > 0
        self.devices.report = s.devices
        if s.phase in FITTING:
            self.panel.show_live("epochs", s.target)
            self.panel.show_live("learning_rate", s.learning_rate)
        self.panel.mode = (
            "training" if s.phase in FITTING else "model" if s.model is not None else "free"
        )
        screen = self.screen
        if type(screen).__name__ == "ModelScreen":
            screen.show(s)  # type: ignore[attr-defined]
        self.refresh_bindings()

    @on(EngineLost)
    def _engine_lost(self, message: EngineLost) -> None:
        self.handle.client = None
        was = self.snapshot
        self.snapshot = msgspec.structs.replace(
            was, phase=Phase.BROKEN, problem="the engine is gone"
        )
        self._refresh_state()
        reason = message.reason
        self.training_log.error(f"The engine (pid {self.pid_text}) is gone: {reason}.")
        if was.run:
            self.push_screen(
                ConfirmScreen(
                    "The engine is gone.",
                    f"{reason}. Open {was.run} in a new engine? Its saved epochs are kept.",
                    yes="Resume it",
                ),
                lambda yes: self._restart(was.run) if yes else None,
            )
        else:
            self.notify(f"{reason}; q quits.", title="The engine is gone", severity="error")

    def _restart(self, run: str) -> None:
        self.training_log.note(f"Starting a new engine on {run}…", "dim")
        self.options = AppOptions(self.options.setup, resume=run)
        self.connector = SpawnConnector(self.options)
        self.training_log.forget()
        self._connect()

    # --- arrays for the screens ---------------------------------------------------------------
    @work(group="fetch-predictions", exclusive=True)
    async def _fetch_predictions(self) -> None:
        predictions = await self.handle.predictions()
        if predictions is not None:
            self.predictions = predictions

    @work(group="fetch-images", exclusive=True)
    async def _fetch_images(self) -> None:
        data = self.snapshot.data
        if data is None or data.fingerprint == self._images_for:
            return
        images = await self.handle.test_images()
        if images is not None:
            self._images_for = data.fingerprint
            self.test_images = images

    # --- which keys act -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys that do nothing now, so the footer fits 80 columns."""
        if action in DASHBOARD_ONLY and len(self.screen_stack) > 1:
            return False
        if action == "train":
            # Shown (and saying why not) while loading or broken: t is the first key people try.
            return self.phase not in FITTING | {Phase.EVALUATING, Phase.OPENING}
        wanted = KEY_ACTIONS.get(action)
        if wanted is not None:
            return refusal(self.snapshot, wanted) is None
        if action in ("browse", "confusion", "draw", "model"):
            return self.phase is not Phase.LOADING
        if action == "clusters":
            return self.snapshot.model is not None
        return True

    # --- keys ---------------------------------------------------------------------------------
    async def action_train(self) -> None:
        refused = refusal(self.snapshot, Action.TRAIN)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
            return
        invalid = self.panel.first_invalid()
        if invalid is not None:
            name, error = invalid
            self._show_panel(True)
            self.panel.focus_field(name)
            self.notify(error, title="Fix this field first", severity="error")
            return
        preset = self.panel.preset_name or self.snapshot.preset
        await self.handle.command(p.Train, hparams=self.panel.hyperparams(), preset=preset)

    async def action_stop_now(self) -> None:
        await self.handle.command(p.StopNow)

    async def action_stop_after_epoch(self) -> None:
        if await self.handle.command(p.StopAfterEpoch) is not None:
            self.notify("Training stops when this epoch ends.")

    async def action_pause(self) -> None:
        await self.handle.command(p.Pause)

    async def action_change_target(self, delta: int) -> None:
        if self.phase in FITTING:
            await self.handle.command(p.SetTarget, delta=delta)
            return
        value = self.panel.raw_values().get("epochs")
        current = value if isinstance(value, int) else self.snapshot.target
        self.panel.set_value("epochs", min(MAX_EPOCHS, max(MIN_EPOCHS, current + delta)))

    @on(HyperparamsPanel.LiveValueSubmitted)
    async def _live_value(self, message: HyperparamsPanel.LiveValueSubmitted) -> None:
        if message.submitted:
            # Enter confirms the field and gives the keys back (q must quit, not type "q").
            self.training_log.focus()
        if self.phase not in FITTING:
            return
        if message.name == "epochs":
            reply = await self.handle.command(p.SetTarget, target=int(message.value))
            actual = reply.value if reply is not None else None
            if isinstance(actual, p.Target) and actual.target != message.value:
                self.notify(
                    f"The target cannot go below the epoch in progress; it is {actual.target}."
                )
        elif message.name == "learning_rate":
            await self.handle.command(p.SetLearningRate, learning_rate=float(message.value))

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

    def action_toggle_devices(self) -> None:
        self.devices.toggle_class("-shown")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.log_path))

    def _screen_arrays(self) -> tuple[Predictions | None, np.ndarray | None]:
        """The predictions and the images they are for (None when they do not match)."""
        images, predictions = self.test_images, self.predictions
        if predictions is None or images is None or len(images) != len(predictions.labels):
            return predictions, None
        return predictions, images

    def action_browse(self) -> None:
        from tui.screens.browser import PredictionBrowser

        explain = self.handle.explain if self.snapshot.model is not None else None
        self.push_screen(PredictionBrowser(*self._screen_arrays(), explain=explain))

    def _browse_within(self, indices: np.ndarray, label: str) -> None:
        from tui.screens.browser import PredictionBrowser

        predictions, images = self._screen_arrays()
        self.push_screen(
            PredictionBrowser(
                predictions, images, within=indices, within_label=label, explain=self.handle.explain
            )
        )

    def action_model(self) -> None:
        from tui.screens.model import ModelScreen

        self.push_screen(ModelScreen(self.snapshot))

    def action_clusters(self) -> None:
        from tui.screens.clusters import ClustersScreen

        predictions, images = self._screen_arrays()
        if predictions is None or images is None:
            self.notify("No predictions yet: train a model (t) or open one.", severity="warning")
            return
        self.push_screen(
            ClustersScreen(
                predictions.labels, predictions.predicted, self._browse_within, self.handle.clusters
            )
        )

    def action_confusion(self) -> None:
        from tui.screens.confusion import ConfusionScreen

        self.push_screen(ConfusionScreen(*self._screen_arrays()))

    def action_draw(self) -> None:
        from tui.screens.draw import DrawScreen

        has_model = self.snapshot.model is not None
        if has_model:
            self.push_screen(DrawScreen(self.handle.classify, explain=self.handle.explain))
        else:
            self.push_screen(DrawScreen(None))

    def action_runs(self) -> None:
        from tui.screens.runs import RunsScreen

        refused = refusal(self.snapshot, Action.OPEN_RUN)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
            return
        self.push_screen(RunsScreen(self.options.setup.runs_dir), self._run_chosen)

    async def _run_chosen(self, path: Path | None) -> None:
        if path is not None:
            await self.handle.command(p.OpenRun, path=str(path))

    def action_save_model(self) -> None:
        from tui.screens.save_model import SUFFIX, SaveModelScreen

        refused = refusal(self.snapshot, Action.SAVE_MODEL)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
            return
        folder = Path(self.options.setup.models_dir)
        s = self.snapshot
        default = Path(s.run).name if s.run else f"{s.preset}-{s.epochs_done}-epochs"
        existing = {path.name.removesuffix(SUFFIX) for path in folder.glob(f"*{SUFFIX}")}
        self.push_screen(
            SaveModelScreen(default, existing=existing, folder=str(folder)),
            lambda name: self._save_chosen(folder, name, SUFFIX),
        )

    async def _save_chosen(self, folder: Path, name: str | None, suffix: str) -> None:
        if name is not None:
            reply = await self.handle.command(p.SaveModel, path=str(folder / f"{name}{suffix}"))
            if reply is not None and isinstance(reply.value, p.Saved):
                self.notify(reply.value.path, title="Model saved")

    def action_reset(self) -> None:
        refused = refusal(self.snapshot, Action.RESET)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
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

    async def _reset_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            await self.handle.command(p.Reset)

    # --- leaving ------------------------------------------------------------------------------
    async def action_quit(self) -> None:  # type: ignore[override]
        """Quit; while training, ask whether to leave it running or to stop it."""
        if self.handle.client is not None and self.phase in FITTING | {Phase.EVALUATING}:
            if isinstance(self.screen, QuitScreen):
                return
            self.push_screen(QuitScreen(self.snapshot.run), self._quit_chosen)
            return
        self._leave()

    async def _quit_chosen(self, choice: str | None) -> None:
        if choice == DETACH:
            self.detach()
        elif choice == STOP:
            await self.handle.command(p.Shutdown)
            self._leave()

    def detach(self) -> None:
        """Leave the terminal; the engine trains on."""
        run = Path(self.snapshot.run).name if self.snapshot.run else ""
        back = f"mnist-tui attach {run}".strip()
        self.farewell = (
            f"Training goes on in the background (engine pid {self.pid_text}); {back} comes "
            "back to it, mnist-tui ps lists it, mnist-tui stop ends it."
        )
        self._leave()

    def _leave(self) -> None:
        self.exit(return_code=128 + self.exit_signal if self.exit_signal else 0)

    def _on_signal(self, signum: int) -> None:
        """SIGHUP (the terminal closed) or SIGTERM: the viewer goes, training does not."""
        self.exit_signal = signum
        if self.phase in FITTING | {Phase.EVALUATING}:
            self.detach()
        else:
            self._leave()

    async def on_unmount(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        if self.handle.client is not None:
            await self.handle.client.close()


def create_app(options: AppOptions, connector: Connector | None = None) -> MnistApp:
    """The app for `options`, on a new background engine unless `connector` says otherwise."""
    return MnistApp(options, connector or SpawnConnector(options))


__all__ = ["MnistApp", "create_app"]
