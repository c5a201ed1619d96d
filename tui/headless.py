"""The headless commands `train`, `evaluate` and `predict`: rich progress and tables over the
training controller, no Textual.

They take typed requests (`tui.core.settings.requests`), never argparse, and report failures as
`UsageError` (bad input, exit 2) or a returned exit code; `tui.cli` turns both into one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.columns import Columns
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from tui.core.inspect.predictions import PredictionFilter, Predictions, PredictionSort, select
from tui.core.platform.placement import ClusterTask, DistributeError, read_tf_config
from tui.core.platform.runtime import TENSORBOARD_MISSING, tensorboard_installed
from tui.core.runs.files import check_writable
from tui.core.settings import presets
from tui.core.settings.requests import EvaluateRequest, PredictRequest, Setup, TrainRequest
from tui.core.settings.toml import save_toml
from tui.core.training.controller import ControllerError, TrainingController
from tui.core.training.events import (
    BatchProgress,
    DataLoaded,
    EpochEnded,
    Notice,
    RunRecording,
    StopReason,
    TrainingEvent,
    TrainingStarted,
)
from tui.core.training.phase import Phase
from tui.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, say_error
from tui.format import format_eta, format_number

if TYPE_CHECKING:
    from tui.branch import BranchPlan

PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two progress lines when stdout is not a terminal (logs, CI, pipes)."""


# --- what training prints -----------------------------------------------------------------------
_EPOCH_COLUMNS = (
    ("epoch", 7),
    ("loss", 8),
    ("acc", 8),
    ("val loss", 9),
    ("val acc", 8),
    ("time", 7),
    ("samples/s", 10),
)


def _epoch_table(show_header: bool) -> Table:
    """A table with fixed column widths, so rows printed one at a time line up under the header."""
    table = Table(box=None, show_header=show_header, header_style="bold", pad_edge=False)
    for title, width in _EPOCH_COLUMNS:
        table.add_column(title, justify="right", width=width, no_wrap=True)
    return table


class TrainReporter:
    """A controller's listener for the terminal: the data and run lines, a live progress bar
    (or plain lines when not on a terminal) and the epoch table, row by row."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.target = 0
        self.errors: list[str] = []
        """Error notices, in order (an opened run or model that failed, a failed round)."""
        self._last_plain = -math.inf
        self._plain_epoch = 0
        self._lock = threading.Lock()

    def __enter__(self) -> TrainReporter:
        if self.console.is_terminal:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console.is_terminal:
            self.progress.stop()

    def __call__(self, event: TrainingEvent) -> None:
        # Called on the training thread and on Keras's callback thread: one at a time.
        with self._lock:
            self._show(event)

    def _show(self, event: TrainingEvent) -> None:
        print_ = self.console.print
        if isinstance(event, DataLoaded):
            print_(f"Data: {event.data.describe()}", highlight=False)
            if event.notice:
                print_(f"[yellow]{event.notice}[/]", highlight=False)
        elif isinstance(event, Notice):
            if event.level == "error":
                self.errors.append(event.text)
            elif event.level == "warning":
                print_(Text(f"! {event.text}", style="yellow"))
            else:  # a turn in the training itself, e.g. augmentation switched off
                print_(event.text, highlight=False)
        elif isinstance(event, RunRecording):
            print_(f"Run: {event.path}", highlight=False)
        elif isinstance(event, TrainingStarted):
            self._started(event)
        elif isinstance(event, BatchProgress):
            self._batch(event)
        elif isinstance(event, EpochEnded):
            self._epoch(event)

    def _started(self, event: TrainingStarted) -> None:
        self.target = event.target
        hp = event.hparams
        self.console.print(
            f"Model: {hp.architecture_summary()} · {event.params:,} parameters · {event.device}",
            highlight=False,
        )
        val = f", {event.val_samples:,} validation" if event.val_samples else ""
        span = (
            f"{event.target} epochs"
            if event.first_epoch == 1
            else (f"epochs {event.first_epoch} to {event.target}")
        )
        self.console.print(
            f"Training on {event.train_samples:,} images{val}: {span} of "
            f"{event.steps_per_epoch} steps, batch {hp.batch_size}, {hp.optimizer} "
            f"lr {hp.learning_rate:g}. Ctrl+C stops and saves.",
            highlight=False,
        )
        self.console.print(_epoch_table(show_header=True))
        self.task = self.progress.add_task(
            "", total=event.steps_per_epoch, epoch=f"{event.first_epoch}/{event.target}", figures=""
        )

    def _batch(self, event: BatchProgress) -> None:
        figures = (
            f"loss {format_number(event.loss, '.4f')} acc {format_number(event.accuracy, '.4f')}"
            f" · {event.samples_per_sec:,.0f} samples/s · ETA {format_eta(event.eta_seconds)}"
        )
        if self.console.is_terminal:
            if self.task is not None:
                self.progress.update(
                    self.task,
                    completed=event.step,
                    total=event.steps,
                    epoch=f"{event.epoch}/{self.target}",
                    figures=figures,
                )
            return
        # Without a live display each update would be a new line: keep logs short, but always
        # show an epoch's first update so a reader (or a test) sees training has begun.
        now = time.monotonic()
        if event.epoch != self._plain_epoch or now - self._last_plain >= PLAIN_PROGRESS_EVERY:
            self._plain_epoch, self._last_plain = event.epoch, now
            self.console.print(
                f"epoch {event.epoch}/{self.target} step {event.step}/{event.steps} {figures}",
                highlight=False,
            )

    def _epoch(self, event: EpochEnded) -> None:
        self.target = event.target
        row = _epoch_table(show_header=False)
        row.add_row(
            f"{event.epoch}/{event.target}",
            format_number(event.loss, ".4f"),
            format_number(event.accuracy, ".4f"),
            format_number(event.val_loss, ".4f"),
            format_number(event.val_accuracy, ".4f"),
            f"{format_number(event.seconds, '.1f')}s",
            format_number(event.samples_per_sec, ",.0f"),
        )
        self.console.print(row)
        if self.task is not None:
            self.progress.reset(self.task, epoch=f"{event.epoch + 1}/{event.target}", figures="")


def _accuracy_line(loss: float, accuracy: float, samples: int) -> str:
    return f"Test accuracy: {accuracy:.2%} (loss {loss:.4f}, {samples:,} images)"


def _print_tta(controller: TrainingController, console: Console) -> int:
    """The test accuracy with test-time augmentation and what it took; the exit code."""
    from tui.core.inspect.tta import SHIFTS

    started = time.perf_counter()
    try:
        shifted = controller.ask(lambda model: model.predict_shifted())
    except ControllerError as err:
        say_error(str(err))
        return EXIT_FAILED
    except KeyboardInterrupt:  # the model, if any, is saved by now
        say_error("interrupted during test-time augmentation.")
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - started
    console.print(
        f"With test-time augmentation: {shifted.accuracy:.2%} (loss {shifted.loss:.4f}; each "
        f"digit averaged with its {len(SHIFTS)} one-pixel shifts, {len(SHIFTS)} more "
        f"predictions a digit: {seconds:.1f} s)",
        highlight=False,
    )
    return EXIT_OK


# --- train ------------------------------------------------------------------------------------
def model_target(out: str | None, preset_name: str) -> tuple[Path, bool]:
    """Where to save, and whether that name was asked for (an explicit `.keras` file) rather
    than made up (a timestamped file in `out` or ./models, made unique when saved)."""
    if out is not None and out.endswith(".keras"):
        return Path(out), True
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(out or "models") / f"{preset_name}-{stamp}.keras", False


def _check_before_training(request: TrainRequest, chief: bool) -> None:
    """Everything that would only fail after training, checked before it starts."""
    setup = request.setup
    if setup.tensorboard and not tensorboard_installed():
        raise UsageError(TENSORBOARD_MISSING)
    if not chief:
        return
    target, asked = model_target(request.out, setup.preset)
    if asked and target.exists() and not request.overwrite:
        raise UsageError(f"{target} exists; pass --overwrite to replace it, or another --out.")
    if target.is_dir():
        raise UsageError(f"{target} is a folder; pass a file name ending in .keras for --out.")
    for folder, what in ((target.parent, "--out"), (_runs_folder(setup), "--runs-dir")):
        try:
            check_writable(folder)
        except OSError as err:
            raise UsageError(
                f"{what}: {folder} is not writable ({err.strerror or err}); choose another."
            ) from None


def _runs_folder(setup: Setup) -> Path:
    from tui.core.runs.layout import runs_root

    return runs_root(setup.runs_dir)


@contextlib.contextmanager
def _ctrl_c_stops(controller: TrainingController, console: Console) -> Iterator[None]:
    """While a round runs, Ctrl+C stops it (and the model is saved); a second one quits at once.

    Training runs on another thread, so the main thread, which Python runs signal handlers on,
    is free to answer within moments. A closed SSH session (SIGHUP) or a polite kill (SIGTERM)
    stops and saves like the first Ctrl+C.
    """
    pressed = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        if signum == signal.SIGINT:
            pressed += 1
            if pressed > 1:
                say_error("interrupted again: quitting without saving.")
                # The run directory is consistent at every moment (atomic writes), and the
                # kernel drops the run's lock with the process.
                os._exit(EXIT_INTERRUPTED)
            console.print("Stopping… (Ctrl+C again to quit without saving)", highlight=False)
        with contextlib.suppress(ControllerError):  # already stopping, or not yet started
            controller.stop_now()

    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _in_background(work: threading.Thread) -> None:
    """Start `work` and wait for it in slices, so that signal handlers run meanwhile."""
    work.start()
    while work.is_alive():
        work.join(0.1)


def run_train(request: TrainRequest, console: Console) -> int:
    setup = request.setup
    task = None
    if setup.distribute.strategy == "multiworker":
        try:
            task = read_tf_config()
        except DistributeError as err:
            raise UsageError(str(err)) from None
        if request.resume is not None:
            raise UsageError(
                "--resume cannot be combined with --strategy multiworker yet; resume with "
                "--strategy default or mirrored."
            )
    # Under multiworker every process trains, but only the chief writes files.
    chief = task is None or task.is_chief
    if not chief:
        setup = dataclasses.replace(setup, record=False)
    if request.resume is not None:
        _check_resumable(Path(request.resume))
    branch = None
    if request.branch_from is not None:
        from tui.branch import plan_branch

        branch = plan_branch(request)  # before TensorFlow loads
        preset = branch.point.parent.preset
        setup = dataclasses.replace(setup, hparams=branch.hparams, preset=preset)
        request = dataclasses.replace(request, setup=setup)
    _check_before_training(request, chief)
    if request.save_config is not None and request.resume is None and chief:
        save_toml(setup.hparams, request.save_config)
        console.print(f"Hyperparameters written to {request.save_config}", highlight=False)

    controller = TrainingController(setup, holder=f"{PROG} train")
    try:
        return _train(controller, request, console, chief, task, branch)
    finally:
        controller.close()


def _check_resumable(run: Path) -> None:
    """Refuse a run that cannot be continued before TensorFlow or any data loads (seconds)."""
    from tui.core.runs.access import check_continuable
    from tui.core.runs.layout import RunError

    if not run.is_dir():
        raise UsageError(f"{run} is not a directory; pass a folder under runs/.")
    try:
        check_continuable(run)
    except RunError as err:
        raise UsageError(str(err)) from None


def _train(
    controller: TrainingController,
    request: TrainRequest,
    console: Console,
    chief: bool,
    task: ClusterTask | None,
    branch: BranchPlan | None = None,
) -> int:
    reporter = TrainReporter(console)
    controller.subscribe(reporter)
    controller.load(request.resume)
    snapshot = controller.snapshot
    if snapshot.phase is Phase.BROKEN:
        raise UsageError(snapshot.problem)
    if task is not None and not chief:
        console.print(
            f"This is {task.task_type} {task.index} of a {task.workers}-process cluster: the "
            "chief writes the run directory and the model, this process nothing.",
            highlight=False,
        )
    hparams = None
    if branch is not None:
        from tui.branch import branch_line, open_branch

        path = open_branch(controller, branch, request.setup)
        console.print(branch_line(branch, path), highlight=False)
        hparams = controller.snapshot.hparams
    elif request.resume is not None:
        error = controller.claim_open_run(request.resume).run()
        if error is not None:
            raise UsageError(error)
        snapshot = controller.snapshot
        hparams = snapshot.hparams
        if request.resume_epochs is not None:
            hparams = hparams.with_changes(epochs=request.resume_epochs)
    try:
        job = controller.claim_round(hparams)
    except ControllerError as err:
        raise UsageError(str(err)) from None
    if request.resume is not None or branch is not None:
        # After the claim: the controller decides the target (a finished run goes on for
        # another round of its length).
        snapshot = controller.snapshot
        console.print(
            f"Resuming {Path(snapshot.run).name} after epoch {snapshot.epochs_done} "
            f"(target {snapshot.target}, learning rate {snapshot.learning_rate:g})",
            highlight=False,
        )
    reason = StopReason.ERROR
    with reporter, _ctrl_c_stops(controller, console):

        def work() -> None:
            nonlocal reason
            reason = job.run()

        _in_background(threading.Thread(target=work, name="training"))
    return _after_training(controller, request, console, reporter, reason, chief)


def _after_training(
    controller: TrainingController,
    request: TrainRequest,
    console: Console,
    reporter: TrainReporter,
    reason: StopReason,
    chief: bool,
) -> int:
    snapshot = controller.snapshot
    stopped = snapshot.stopped
    done = snapshot.epochs_done
    if reason in (StopReason.NAN, StopReason.ERROR):
        message = stopped.message if stopped and stopped.message else reason.value
        if reporter.errors:
            message = reporter.errors[-1]
        say_error(f"training failed: {message}")
        if chief and done and controller.model is not None:
            # What trained before the failure is worth keeping (a NaN rolls back to it).
            console.print(f"The model after epoch {done} is kept:", highlight=False)
            _save(controller, request, console)
        return EXIT_FAILED
    if reason is StopReason.USER:
        where = ""
        if stopped is not None and stopped.epoch:
            where = f" during epoch {stopped.epoch} (step {stopped.step}/"
            where += f"{snapshot.started.steps_per_epoch if snapshot.started else '?'})"
        console.print(
            f"Stopped{where}; {done} complete epoch{'s' if done != 1 else ''}, the epoch in "
            "progress is not counted.",
            highlight=False,
        )
    evaluation = snapshot.evaluation
    if evaluation is not None:
        console.print(
            _accuracy_line(evaluation.loss, evaluation.accuracy, evaluation.samples),
            highlight=False,
        )
    if chief and controller.model is not None and done:
        _save(controller, request, console)
    if reason is StopReason.USER:
        if snapshot.run:
            console.print(f"Continue with: {PROG} train --resume {snapshot.run}", highlight=False)
        return EXIT_INTERRUPTED
    if request.tta and evaluation is not None:
        return _print_tta(controller, console)
    return EXIT_OK


def _save(controller: TrainingController, request: TrainRequest, console: Console) -> None:
    target, asked = model_target(request.out, controller.snapshot.preset)
    try:
        saved = controller.save_model(target, overwrite=asked)
    except ControllerError as err:
        say_error(str(err))
        return
    console.print(f"Model saved to {saved}", highlight=False)


# --- evaluate and predict ---------------------------------------------------------------------
def _opened(model: str, data_path: str | None, console: Console) -> TrainingController:
    """A controller holding the saved model, with its predictions on the test set."""
    controller = TrainingController(
        Setup(presets.preset(presets.DEFAULT_PRESET), data_path=data_path, record=False)
    )
    reporter = TrainReporter(console)
    controller.subscribe(reporter)
    controller.load()
    if controller.snapshot.phase is Phase.BROKEN:
        raise UsageError(controller.snapshot.problem)
    error = controller.claim_open_model(model).run()
    if error is not None:
        raise UsageError(error)
    notes = controller.snapshot.model.notes if controller.snapshot.model else ()
    for note in notes:
        console.print(f"Model: {note}", highlight=False)
    return controller


def run_evaluate(request: EvaluateRequest, console: Console) -> int:
    controller = _opened(request.model, request.data_path, console)
    evaluation = controller.snapshot.evaluation
    assert evaluation is not None
    console.print(
        _accuracy_line(evaluation.loss, evaluation.accuracy, evaluation.samples), highlight=False
    )
    return _print_tta(controller, console) if request.tta else EXIT_OK


def select_indices(request: PredictRequest, predictions: Predictions) -> list[int]:
    """Test-set indices to show, in order; raises UsageError when out of range."""
    if request.count < 1:
        raise UsageError(f"count = {request.count} is out of range: at least 1.")
    chosen_filter = prediction_filter(request)
    chosen = select(predictions, chosen_filter, PredictionSort(request.sort))
    total = len(chosen)
    if total and not 0 <= request.index < total:
        what = "test set" if chosen_filter.is_all else "selection"
        raise UsageError(
            f"index = {request.index} is out of range: the {what} has {total:,} images "
            f"(0 to {total - 1})."
        )
    return [int(i) for i in chosen[request.index : request.index + request.count]]


def prediction_filter(request: PredictRequest) -> PredictionFilter:
    try:
        return PredictionFilter(request.misclassified, request.true, request.predicted)
    except ValueError as err:
        raise UsageError(str(err)) from None


def digit_card(
    image: object,
    index: int,
    true: int,
    predicted: int,
    confidence: float,
    *,
    compact: bool,
    color: bool,
) -> Group:
    """One digit with its caption: index, true label, prediction with ✓/✗ and confidence."""
    from tui.core.render import render_digit

    right = predicted == true
    mark = "✓" if right else "✗"
    style = ("green" if right else "bold red") if color else ""
    caption = Text(no_wrap=True)
    caption.append(f"#{index}\ntrue {true} pred {predicted}\n")
    caption.append(mark, style=style)
    caption.append(f" {confidence:.1%}")
    return Group(render_digit(image, compact=compact, color=color), caption, Text(""))  # type: ignore[arg-type]


def run_predict(request: PredictRequest, console: Console) -> int:
    prediction_filter(request)  # a bad class is refused before TensorFlow loads
    controller = _opened(request.model, request.data_path, console)
    predictions = controller.predictions
    images = controller.test_images()
    assert predictions is not None and images is not None
    predicted = predictions.predicted
    labels = predictions.labels
    indices = select_indices(request, predictions)
    if not indices:
        console.print(
            f"No test digits match: {prediction_filter(request).describe()}.", highlight=False
        )
        return EXIT_OK
    # Half-blocks need colour to mean anything; without it (NO_COLOR, a pipe) use shade characters.
    color = request.color and not os.environ.get("NO_COLOR") and console.color_system is not None
    cards = [
        digit_card(
            images[i],
            i,
            int(labels[i]),
            int(predicted[i]),
            float(predictions.probabilities[i, predicted[i]]),
            compact=request.compact,
            color=color,
        )
        for i in indices
    ]
    console.print(Columns(cards, padding=(0, 2)))
    right = sum(int(predicted[i]) == int(labels[i]) for i in indices)
    console.print(f"{right} of {len(indices)} shown are right.", highlight=False)
    return EXIT_OK
