"""The dashboard: status, hyperparameters, curves, progress, devices and log, and the keys that
steer training and open the other screens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from tui.core.settings.hyperparams import INT_BOUNDS, Hyperparams
from tui.core.training.phase import FITTING, IDLE, Action, Phase
from tui.core.training.snapshot import Snapshot, refusal
from tui.engine import protocol as p
from tui.screens.confirm import ConfirmScreen
from tui.widgets.curves import CurvesPlot
from tui.widgets.devices import DevicePanel
from tui.widgets.footer import FittingFooter
from tui.widgets.hyperparams import HyperparamsPanel
from tui.widgets.progress import EpochProgress
from tui.widgets.status import StatusBar
from tui.widgets.training_log import TrainingLog

if TYPE_CHECKING:
    import numpy as np

    from tui.app import MnistApp
    from tui.core.inspect.predictions import Predictions

MIN_EPOCHS, MAX_EPOCHS = INT_BOUNDS["epochs"]
KEY_ACTIONS = {
    "stop_now": Action.STOP_NOW,
    "stop_after_epoch": Action.STOP_AFTER_EPOCH,
    "pause": Action.PAUSE,
    "reset": Action.RESET,
    "runs": Action.OPEN_RUN,
    "save_model": Action.SAVE_MODEL,
}
"""Keys hidden from the footer while the engine would refuse them."""
NOT_YET = frozenset({Phase.LOADING, Phase.OPENING})
"""Phases in which `t` waits: training starts by itself once they are over."""


class DashboardScreen(Screen[None]):
    """The app's first screen; every widget on it draws from the app's snapshot."""

    app: MnistApp  # type: ignore[assignment]  # (Textual types it as App)

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
        Binding("b", "branch", "Branch", show=False),
        Binding("W", "sweeps", "Sweeps", show=False),
        Binding("S", "save_model", "Save"),
        Binding("i", "toggle_devices", "Devices", show=False),
        Binding("a", "training_digits", "Training digits", show=False),
        Binding("escape", "leave_field", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: Snapshot | None = None
        self.train_when_ready = False
        """`t` was pressed while the engine was loading or opening: train once it is idle."""

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="body"):
            setup = self.app.options.setup
            yield HyperparamsPanel(setup.hparams, setup.preset, id="panel")
            with Vertical(id="main"):
                yield CurvesPlot(id="curves")
                yield EpochProgress(id="progress")
                yield DevicePanel(id="devices")
                yield TrainingLog(id="log")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.devices.border_title = "Devices (i hides)"
        self.training_log.note(
            "mnist-tui: t trains, ? lists every key, h shows or hides the panel.", "bold"
        )
        self.training_log.note("Starting the engine (TensorFlow loads in it)…", "dim")
        self.watch(self.app, "snapshot", self._show, init=False)
        self.watch(self.app, "silence", self._silence, init=False)

    def _silence(self, was: int, seconds: int) -> None:
        """The engine stopped answering (`MnistApp.silence`), or answers again."""
        pid = self.app.pid_text
        if seconds and not was:
            self.training_log.error(f"The engine (pid {pid}) has not answered for {seconds} s.")
            self.notify(
                f"No word from the engine (pid {pid}) for {seconds} s: it may be stopped "
                "(kill -STOP) or starved. Keys that need it say so until it answers.",
                title="The engine is not answering",
                severity="error",
                timeout=10,
            )
        elif was and not seconds:
            self.training_log.note(f"The engine (pid {pid}) answers again.", "dim")
            self.notify(f"The engine (pid {pid}) answers again.")

    # --- the widgets ----------------------------------------------------------------------------
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
    def snapshot(self) -> Snapshot:
        return self.app.snapshot

    def _show(self, s: Snapshot) -> None:
        """The panel (whose fields are the user's until training uses them) and the keys; the
        other widgets follow the snapshot themselves."""
        before, self._shown = self._shown, s
        if (
            before is not None
            and s.journal is before.journal
            and s.phase is before.phase
            and (s.target, s.learning_rate) == (before.target, before.learning_rate)
        ):
            return  # progress alone (several times a second): nothing here changes
        if self.train_when_ready and s.phase not in NOT_YET:
            self.train_when_ready = False
            if s.phase in IDLE:
                self.run_worker(self.action_train(), group="queued-train")
        if before is None or s.hparams is not before.hparams:
            # Another engine's settings, or ones it applied (a run opened, a round started).
            if before is None and s.model is None and not s.history:
                pass  # a fresh engine on this app's own settings: the panel shows them already
            elif before is None or s.hparams != before.hparams:
                self.panel.load(s.hparams)
        if s.phase in FITTING:
            self.panel.show_live("epochs", s.target)
            self.panel.show_live("learning_rate", s.learning_rate)
        self.panel.mode = (
            "training" if s.phase in FITTING else "model" if s.model is not None else "free"
        )
        if before is None or s.journal is not before.journal or s.phase is not before.phase:
            self.refresh_bindings()  # not for progress alone: the footer recomposes

    # --- which keys act -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys that do nothing now, so the footer fits 80 columns."""
        if self.app.screen is not self:
            return False  # under a dialog: its footer still shows, but none of these keys act
        phase = self.snapshot.phase
        if action == "train":
            # Shown (and saying why not) while loading or broken: t is the first key people try.
            return phase not in FITTING | {Phase.EVALUATING, Phase.OPENING}
        wanted = KEY_ACTIONS.get(action)
        if wanted is not None:
            return refusal(self.snapshot, wanted) is None
        if action in ("browse", "confusion", "draw", "model"):
            return phase is not Phase.LOADING
        if action == "clusters":
            return self.snapshot.model is not None
        return True

    def _refused(self, action: Action) -> bool:
        refused = refusal(self.snapshot, action)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
        return refused is not None

    # --- training -------------------------------------------------------------------------------
    async def action_train(self) -> None:
        if self.snapshot.phase in NOT_YET:
            self.train_when_ready = True
            what = "MNIST loads" if self.snapshot.phase is Phase.LOADING else "the run opens"
            self.notify(f"Will start training once the model is ready ({what} first).")
            return
        if self._refused(Action.TRAIN):
            return
        invalid = self.panel.first_invalid()
        if invalid is not None:
            name, error = invalid
            self._show_panel(True)
            self.panel.focus_field(name)
            self.notify(error, title="Fix this field first", severity="error")
            return
        preset = self.panel.preset_name or self.snapshot.preset
        await self.app.handle.command(p.Train, hparams=self.panel.hyperparams(), preset=preset)

    async def action_stop_now(self) -> None:
        await self.app.handle.command(p.StopNow)

    async def action_stop_after_epoch(self) -> None:
        if await self.app.handle.command(p.StopAfterEpoch) is not None:
            self.notify("Training stops when this epoch ends.")

    async def action_pause(self) -> None:
        await self.app.handle.command(p.Pause)

    async def action_change_target(self, delta: int) -> None:
        if self.snapshot.phase in FITTING:
            await self.app.handle.command(p.SetTarget, delta=delta)
            return
        value = self.panel.raw_values().get("epochs")
        current = value if isinstance(value, int) else self.snapshot.target
        self.panel.set_value("epochs", min(MAX_EPOCHS, max(MIN_EPOCHS, current + delta)))

    @on(HyperparamsPanel.LiveValueSubmitted)
    async def _live_value(self, message: HyperparamsPanel.LiveValueSubmitted) -> None:
        if message.submitted:
            # Enter confirms the field and gives the keys back (q must quit, not type "q").
            self.training_log.focus()
        if self.snapshot.phase not in FITTING:
            return
        if message.name == "epochs":
            reply = await self.app.handle.command(p.SetTarget, target=int(message.value))
            actual = reply.value if reply is not None else None
            if isinstance(actual, p.Target) and actual.target != message.value:
                self.notify(
                    f"The target cannot go below the epoch in progress; it is {actual.target}."
                )
        elif message.name == "learning_rate":
            await self.app.handle.command(p.SetLearningRate, learning_rate=float(message.value))

    def action_reset(self) -> None:
        if self._refused(Action.RESET):
            return
        self.app.push_screen(
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
            await self.app.handle.command(p.Reset)

    # --- the layout -----------------------------------------------------------------------------
    def action_toggle_loss(self) -> None:
        self.curves.show_loss = not self.curves.show_loss

    def action_toggle_panel(self) -> None:
        self.toggle_class("-panel-toggled")

    def _show_panel(self, shown: bool) -> None:
        # "-panel-toggled" flips the default: hidden when narrow, shown when wide.
        self.set_class(shown == self.has_class("-narrow"), "-panel-toggled")

    def action_leave_field(self) -> None:
        if self.has_class("-narrow"):
            self._show_panel(False)
        self.training_log.focus()

    def action_toggle_devices(self) -> None:
        self.devices.toggle_class("-shown")

    # --- the other screens ----------------------------------------------------------------------
    def _screen_arrays(self) -> tuple[Predictions | None, np.ndarray | None]:
        """The predictions and the images they are for (None when they do not match)."""
        images, predictions = self.app.test_images, self.app.predictions
        if predictions is None or images is None or len(images) != len(predictions.labels):
            return predictions, None
        return predictions, images

    def action_browse(self) -> None:
        from tui.screens.browser import PredictionBrowser

        explain = self.app.handle.explain if self.snapshot.model is not None else None
        self.app.push_screen(PredictionBrowser(*self._screen_arrays(), explain=explain))

    def _browse_within(self, indices: np.ndarray, label: str) -> None:
        from tui.screens.browser import PredictionBrowser

        predictions, images = self._screen_arrays()
        self.app.push_screen(
            PredictionBrowser(
                predictions,
                images,
                within=indices,
                within_label=label,
                explain=self.app.handle.explain,
            )
        )

    def action_confusion(self) -> None:
        from tui.screens.confusion import ConfusionScreen

        self.app.push_screen(ConfusionScreen(*self._screen_arrays()))

    def action_draw(self) -> None:
        from tui.screens.draw import DrawScreen

        handle = self.app.handle
        if self.snapshot.model is not None:
            self.app.push_screen(DrawScreen(handle.classify, explain=handle.explain))
        else:
            self.app.push_screen(DrawScreen(None))

    def action_model(self) -> None:
        from tui.screens.model import ModelScreen

        self.app.push_screen(ModelScreen(self.snapshot))

    def action_clusters(self) -> None:
        from tui.screens.clusters import ClustersScreen

        predictions, images = self._screen_arrays()
        if predictions is None or images is None:
            self.notify("No predictions yet: train a model (t) or open one.", severity="warning")
            return
        self.app.push_screen(
            ClustersScreen(
                predictions.labels,
                predictions.predicted,
                self._browse_within,
                self.app.handle.clusters,
            )
        )

    def action_training_digits(self) -> None:
        from tui.screens.training_digits import TrainingDigitsScreen

        def settings() -> tuple[Hyperparams, str] | str:
            """The panel's settings for a run without the marked digits, or why not."""
            invalid = self.panel.first_invalid()
            if invalid is not None:
                return invalid[1]
            return self.panel.hyperparams(), self.panel.preset_name or self.snapshot.preset

        self.app.push_screen(TrainingDigitsScreen(self.app.handle, settings))

    def action_runs(self) -> None:
        from tui.screens.branch import request_branch
        from tui.screens.runs import RunsScreen

        if not self._refused(Action.OPEN_RUN):
            runs = RunsScreen(
                self.app.options.setup.runs_dir,
                branch=lambda run, epoch: request_branch(self.app, run, epoch),
            )
            self.app.push_screen(runs, self._run_chosen)

    def action_branch(self) -> None:
        from tui.screens.branch import branch_held_run

        branch_held_run(self.app)

    def action_sweeps(self) -> None:
        from tui.screens.sweep import SweepListScreen  # Optuna: only once a sweep is asked for

        if not self._refused(Action.OPEN_RUN):
            self.app.push_screen(SweepListScreen(), self._run_chosen)

    async def _run_chosen(self, path: Path | None) -> None:
        """Open a past run in this engine; a live one is watched where it trains instead."""
        from tui.engine import registry

        if path is None:
            return
        try:
            engine = await asyncio.to_thread(registry.find_engine, str(path))
        except registry.RegistryError as err:
            self.notify(str(err), severity="error")
            return
        if engine is None:
            await self.app.handle.command(p.OpenRun, path=str(path))
        elif self.app.engine is not None and engine.id == self.app.engine.id:
            self.notify(f"{path.name} is the run this app is watching.")
        else:
            await self.app.attach(engine)

    def action_save_model(self) -> None:
        from tui.screens.save_model import SUFFIX, SaveModelScreen

        if self._refused(Action.SAVE_MODEL):
            return
        folder = Path(self.app.options.setup.models_dir)
        s = self.snapshot
        default = Path(s.run).name if s.run else f"{s.preset}-{s.epochs_done}-epochs"
        existing = {path.name.removesuffix(SUFFIX) for path in folder.glob(f"*{SUFFIX}")}
        self.app.push_screen(
            SaveModelScreen(default, existing=existing, folder=str(folder)),
            lambda name: self._save_chosen(folder, name, SUFFIX),
        )

    async def _save_chosen(self, folder: Path, name: str | None, suffix: str) -> None:
        if name is not None:
            reply = await self.app.handle.command(p.SaveModel, path=str(folder / f"{name}{suffix}"))
            if reply is not None and isinstance(reply.value, p.Saved):
                self.notify(reply.value.path, title="Model saved")
