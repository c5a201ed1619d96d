"""The Textual app: a viewer of a training engine, around the dashboard screen.

The app never trains and never imports TensorFlow. It connects to an engine (started for it in
the background, or already running for `attach`), holds the engine's `Snapshot` as one reactive
that every widget and screen binds to (folded forward by the same `advance` the engine uses),
fetches the arrays the screens show, and owns the keys that work everywhere.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import msgspec
from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.notifications import SeverityLevel
from textual.reactive import var

from tui.core.settings.requests import AppOptions
from tui.core.training.events import DataLoaded, ModelReset, Notice, PredictionsReady
from tui.core.training.phase import FITTING, Phase
from tui.core.training.snapshot import Snapshot, initial_snapshot
from tui.core.training.snapshot import advance as fold
from tui.engine import protocol as p
from tui.engine.client import EngineUnavailable
from tui.engine.connect import Connector, SocketConnector, SpawnConnector
from tui.engine.handle import EngineHandle
from tui.messages import EngineConnected, EngineEvent, EngineLost
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.quit import DETACH, QUIT, STOP, QuitScreen
from tui.screens.too_small import TooSmallScreen, too_small

if TYPE_CHECKING:
    import numpy as np

    from tui.core.inspect.predictions import Predictions
    from tui.core.training.events import TrainingEvent


class MnistApp(App[None]):
    """Train a Keras CNN on MNIST and steer it live, through an engine."""

    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    AUTO_FOCUS = "#log"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (App's own type)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+z", "suspend_process", show=False),
    ]

    snapshot: var[Snapshot] = var(cast("Snapshot", None), always_update=True, init=False)
    """The engine's state as last heard: what every widget and screen draws from."""
    predictions: var[Predictions | None] = var(None, init=False)
    """The current model's test-set predictions, fetched when the engine has new ones."""
    silence: var[int] = var(0, init=False)
    """Whole seconds the engine has not answered, once that is past `NOT_ANSWERING`; else 0."""

    def __init__(self, options: AppOptions, connector: Connector) -> None:
        super().__init__()
        self.options = options
        self.connector = connector
        setup = options.setup
        self.set_reactive(MnistApp.snapshot, initial_snapshot(setup.hparams, setup.preset))
        self.handle = EngineHandle(lambda text, severity: self.notify(text, severity=severity))
        """The app's and its screens' one way to the engine."""
        self.engine: p.EngineInfo | None = None
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

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen()

    @property
    def dashboard(self) -> DashboardScreen:
        return cast(DashboardScreen, self.screen_stack[0])

    @property
    def phase(self) -> Phase:
        return self.snapshot.phase

    @property
    def pid_text(self) -> str:
        return str(self.engine.pid) if self.engine else "?"

    def on_resize(self, event: Resize) -> None:
        if too_small(*event.size) and not isinstance(self.screen, TooSmallScreen):
            self.push_screen(TooSmallScreen())

    def on_mount(self) -> None:
        if too_small(*self.size):
            self.push_screen(TooSmallScreen())
        # Started after the first frame, so that nothing competes with painting it.
        self.call_after_refresh(self._connect)
        self.set_interval(1.0, self._check_engine)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._on_signal, signum)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.log_path))

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
        """Start over from the engine's whole snapshot: its history replays into the widgets."""
        self.handle.client = message.client
        self.engine = message.client.engine
        log = self.dashboard.training_log
        log.note(f"Engine {self.engine.id} (pid {self.pid_text}).", "dim")
        self.snapshot = snapshot = message.client.welcome.snapshot
        last = snapshot.journal[-1] if snapshot.journal else None
        if isinstance(last, Notice) and last.level == "error" and snapshot.phase not in FITTING:
            # What went wrong just before this viewer came (a run that would not open at
            # start-up) is still news.
            self.notify(last.text, title=last.title, severity="error", timeout=10)
        if snapshot.data is not None:
            self._fetch_images()
        if snapshot.predictions is not None:
            self._fetch_predictions()
        else:
            self.predictions = None  # another engine's (one this app attached to instead)

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self.snapshot = fold(self.snapshot, event)
        if isinstance(event, ModelReset):
            self.predictions = None
        elif isinstance(event, PredictionsReady):
            self._fetch_predictions()
        elif isinstance(event, DataLoaded):
            self._fetch_images()
        elif isinstance(event, Notice) and event.level in ("warning", "error"):
            level: SeverityLevel = "error" if event.level == "error" else "warning"
            self.notify(event.text, title=event.title, severity=level, timeout=10)

    @on(EngineLost)
    def _engine_lost(self, message: EngineLost) -> None:
        self.handle.client = None
        was = self.snapshot
        gone = "the engine is gone"
        self.snapshot = msgspec.structs.replace(was, phase=Phase.BROKEN, problem=gone)
        reason = message.reason
        self.dashboard.training_log.error(f"The engine (pid {self.pid_text}) is gone: {reason}.")

        async def chosen(yes: bool | None) -> None:
            if yes:
                await self.open_in_new_engine(was.run)

        if was.run:
            text = f"{reason}. Open {was.run} in a new engine? Its saved epochs are kept."
            self.push_screen(ConfirmScreen("The engine is gone.", text, yes="Resume it"), chosen)
        else:
            self.notify(f"{reason}; q quits.", title="The engine is gone", severity="error")

    def _check_engine(self) -> None:
        """The watchdog's tick: the dashboard says when the engine stops answering, and when
        it answers again."""
        self.silence = int(self.handle.silence())

    async def attach(self, engine: p.EngineInfo) -> None:
        """Watch another live engine, as `mnist-tui attach` does."""
        note = f"Attaching to the engine training {engine.run} (pid {engine.pid})…"
        await self._switch(SocketConnector(engine.socket), note)

    async def open_in_new_engine(self, run: str) -> None:
        """Open `run` in an engine of its own (a killed engine's run, a branch made while this
        app's engine trains)."""
        self.options = AppOptions(self.options.setup, resume=run)
        await self._switch(SpawnConnector(self.options), f"Starting a new engine on {run}…")

    async def _switch(self, connector: Connector, note: str) -> None:
        """Follow the engine behind `connector`, the log starting over with `note`; the one left
        behind trains on in the background, or ends, when idle, once no viewer is left."""
        was, old = self.snapshot, self.handle.client
        self.dashboard.training_log.forget()
        self.dashboard.training_log.note(note, "dim")
        self.connector = connector
        self.handle.client = None
        self._connect()  # exclusive: the worker reading the old engine is cancelled
        if old is not None:
            await old.close()
            if was.phase in FITTING | {Phase.EVALUATING}:
                self.notify(
                    f"The training this app started goes on in the background (engine pid "
                    f"{old.engine.pid}); mnist-tui ps lists it."
                )

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
        elif choice == QUIT:
            self._leave()
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
