"""The headless commands `train`, `evaluate` and `predict`: rich progress and tables, no Textual.

Kept apart from `tui.cli` so that starting the app does not import numpy, the data loader and
rich's progress machinery before its first frame; `tui.cli.main` imports this module only when a
command is given.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.columns import Columns
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from tui.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    UsageError,
    distribute_options,
    resolve_hparams,
    say_error,
)
from tui.core import config
from tui.core.config import Hyperparams
from tui.core.data import SAMPLE_NOTICE, DataError, MnistData, load_mnist
from tui.core.distribute import DistributeError, DistributeOptions, read_tf_config
from tui.core.events import (
    BatchProgress,
    EpochEnded,
    Predicted,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.predictions import PredictionFilter, PredictionSort, predict_test_set, select
from tui.core.runtime import TENSORBOARD_MISSING, tensorboard_installed

EVAL_BATCH = 1024
"""Batch size of every test-set pass, so `train` and `evaluate` report identical figures."""
PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two progress lines when stdout is not a terminal (logs, CI, pipes)."""


def _make_strategy(options: DistributeOptions) -> Any:
    """Set the devices up (before TensorFlow initialises them) and build the strategy."""
    try:
        options.prepare()
        return options.make_strategy()
    except DistributeError as err:
        raise UsageError(str(err)) from None


def _load_data(console: Console, path: str | None) -> MnistData:
    data = load_mnist(path)
    console.print(f"Data: {data.describe()}", highlight=False)
    if data.is_sample:
        console.print(f"[yellow]{SAMPLE_NOTICE}[/]", highlight=False)
    return data


def _load_model(path: Path) -> Any:
    """A saved Keras model, or UsageError with one sentence when it cannot be read."""
    from tui.core.runs import RunError, load_model_file  # imports TensorFlow

    try:
        return load_model_file(path)
    except RunError as err:
        raise UsageError(str(err)) from None


# --- train ------------------------------------------------------------------------------------
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


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


class TrainReporter:
    """The CLI's event sink: a live progress bar (or plain lines when not on a terminal)
    and the epoch table, row by row."""

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
        self.last: BatchProgress | None = None
        self.stopped: TrainingStopped | None = None
        self._last_plain = -math.inf
        self._plain_epoch = 0

    def __enter__(self) -> TrainReporter:
        if self.console.is_terminal:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console.is_terminal:
            self.progress.stop()

    def __call__(self, event: TrainingEvent) -> None:
        if isinstance(event, TrainingStarted):
            self._started(event)
        elif isinstance(event, BatchProgress):
            self._batch(event)
        elif isinstance(event, EpochEnded):
            self._epoch(event)
        elif isinstance(event, TrainingStopped):
            self.stopped = event

    def _started(self, event: TrainingStarted) -> None:
        self.target = event.target
        hp = event.hparams
        self.console.print(
            f"Model: {hp.architecture_summary()} · {event.params:,} parameters · {event.device}",
            highlight=False,
        )
        val = f", {event.val_samples:,} validation" if event.val_samples else ""
        self.console.print(
            f"Training on {event.train_samples:,} images{val}: {event.target} epochs of "
            f"{event.steps_per_epoch} steps, batch {hp.batch_size}, {hp.optimizer} "
            f"lr {hp.learning_rate:g}. Ctrl+C stops and saves.",
            highlight=False,
        )
        self.console.print(_epoch_table(show_header=True))
        self.task = self.progress.add_task(
            "", total=event.steps_per_epoch, epoch=f"{event.first_epoch}/{event.target}", figures=""
        )

    def _batch(self, event: BatchProgress) -> None:
        self.last = event
        figures = (
            f"loss {_fmt(event.loss, '.4f')} acc {_fmt(event.accuracy, '.4f')} · "
            f"{event.samples_per_sec:,.0f} samples/s · ETA {_eta(event.eta_seconds)}"
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
            _fmt(event.loss, ".4f"),
            _fmt(event.accuracy, ".4f"),
            _fmt(event.val_loss, ".4f"),
            _fmt(event.val_accuracy, ".4f"),
            f"{event.seconds:.1f}s",
            f"{event.samples_per_sec:,.0f}",
        )
        self.console.print(row)
        if self.task is not None:
            self.progress.reset(self.task, epoch=f"{event.epoch + 1}/{event.target}", figures="")


def model_path(out: Path | None, preset_name: str) -> Path:
    """Where to save: `out` itself if it names a .keras file, else a timestamped file in it."""
    if out is not None and out.suffix == ".keras":
        return out
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return (out or Path("models")) / f"{preset_name}-{stamp}.keras"


def save_model(model: Any, path: Path) -> None:
    """Save through a temporary file, so a crash or a second Ctrl+C never leaves a half-written
    file under the real name."""
    from tui.core.runs import save_model_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, path)


def _accuracy_line(loss: float, accuracy: float, samples: int) -> str:
    return f"Test accuracy: {accuracy:.2%} (loss {loss:.4f}, {samples:,} images)"


@contextlib.contextmanager
def _ctrl_c_stops(stop_now: Callable[[], None], console: Console) -> Iterator[None]:
    """While training, Ctrl+C asks the session to stop before the next group of batches.

    Training runs in this (the main) thread, where Python runs signal handlers between
    bytecodes, so the request lands within a few batches. A second Ctrl+C gives up at once.
    """
    pressed = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        if signum != signal.SIGINT:
            # A closed SSH session (SIGHUP) or a polite kill (SIGTERM): stop and save too.
            stop_now()
            return
        pressed += 1
        if pressed > 1:
            raise KeyboardInterrupt
        stop_now()
        console.print("Stopping… (Ctrl+C again to quit without saving)", highlight=False)

    signals = [signal.SIGINT, signal.SIGTERM] + (
        [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
    )
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _resumed_hparams(args: argparse.Namespace, saved: Hyperparams) -> Hyperparams:
    """The run's own hyperparameters; only --epochs (a new target) may change on resume."""
    typed = sorted(f.name for f in fields(Hyperparams) if hasattr(args, f.name))
    changed = [name for name in typed if name != "epochs"]
    if changed or args.config is not None:
        what = ", ".join("--" + name.replace("_", "-") for name in changed) or "--config"
        raise UsageError(
            f"{what} cannot change a run being resumed; only --epochs can (start a new run "
            "to train with other hyperparameters)."
        )
    return saved.with_changes(epochs=args.epochs) if "epochs" in typed else saved


def run_train(args: argparse.Namespace, console: Console) -> int:
    options = distribute_options(args)
    task = None
    if options.strategy == "multiworker":
        try:
            task = read_tf_config()
        except DistributeError as err:
            raise UsageError(str(err)) from None
        if args.resume is not None:
            raise UsageError(
                "--resume cannot be combined with --strategy multiworker yet; resume with "
                "--strategy default or mirrored."
            )
    # Under multiworker every process trains, but only the chief writes files.
    chief = task is None or task.is_chief
    if args.resume is None:
        hparams = resolve_hparams(args)
        preset_name = args.preset
    else:
        # Cheap checks first: hyperparameters and run.json, before TensorFlow loads.
        if not args.resume.is_dir():
            raise UsageError(f"{args.resume} is not a directory; pass a folder under runs/.")
        preset_name = ""  # the run's own, once it is opened below
    if args.tensorboard and not tensorboard_installed():
        # Before the data, TensorFlow and an empty run directory.
        raise UsageError(TENSORBOARD_MISSING)
    if args.save_config is not None and args.resume is None and chief:
        config.save_toml(hparams, args.save_config)
        console.print(f"Hyperparameters written to {args.save_config}", highlight=False)
    data = _load_data(console, args.data)
    strategy = _make_strategy(options)

    from tui.core import runs  # imports TensorFlow
    from tui.core.session import TrainingSession

    run: runs.RunDirectory | None = None
    with TrainReporter(console) as reporter:
        try:
            if task is not None and not task.is_chief:
                session = TrainingSession(hparams, data, reporter, strategy=strategy)
                console.print(
                    f"This is {task.task_type} {task.index} of a {task.workers}-process cluster: "
                    "the chief writes the run directory and the model, this process nothing.",
                    highlight=False,
                )
            elif args.resume is None:
                run = runs.RunDirectory.create(args.runs_dir, preset_name, hparams, data)
                session = TrainingSession(
                    hparams,
                    data,
                    reporter,
                    callbacks=run.callbacks(tensorboard=args.tensorboard),
                    strategy=strategy,
                )
            else:
                # Loaded inside the scope so that the saved weights become mirrored variables.
                scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
                with scope:
                    resumed = runs.resume(args.resume)
                resumed.hparams = _resumed_hparams(args, resumed.hparams)
                run, preset_name = resumed.run_dir, resumed.run_dir.preset
                session = resumed.session(data, reporter, tensorboard=args.tensorboard)
                session.strategy = strategy
                session.controls.set_epoch_target(resumed.hparams.epochs)
                console.print(
                    f"Resuming {run.name} after epoch {resumed.epochs_done} "
                    f"(target {session.controls.epoch_target})",
                    highlight=False,
                )
        except runs.RunError as err:
            raise UsageError(str(err)) from None
        if run is not None:
            console.print(f"Run: {run.path}", highlight=False)
        with _ctrl_c_stops(session.controls.stop_now, console):
            reason = session.train()
    stopped = reporter.stopped
    target = model_path(args.out, preset_name)

    if reason in (StopReason.NAN, StopReason.ERROR):
        message = stopped.message if stopped and stopped.message else reason.value
        say_error(f"training failed: {message}")
        return EXIT_FAILED

    if reason is StopReason.USER:
        where = ""
        if reporter.last is not None:
            last = reporter.last
            where = f" during epoch {last.epoch} (step {last.step}/{last.steps})"
        done = session.epochs_done
        console.print(
            f"Stopped by Ctrl+C{where}; {done} complete epoch{'s' if done != 1 else ''}.",
            highlight=False,
        )
        if run is not None:
            save_model(session.model, target)
            console.print(f"Model saved to {target}", highlight=False)
            console.print(f"Continue with: {PROG} train --resume {run.path}", highlight=False)
        return EXIT_INTERRUPTED

    # Every worker evaluates and predicts: under multiworker these are collective operations.
    result = session.evaluate(batch_size=EVAL_BATCH)
    console.print(_accuracy_line(result.loss, result.accuracy, result.samples), highlight=False)
    predicted = session.predict(batch_size=EVAL_BATCH)
    if run is None:
        return EXIT_OK
    run.save_evaluation(result, session.epochs_done)
    run.save_predictions(predicted)
    save_model(session.model, target)
    console.print(f"Model saved to {target}", highlight=False)
    return EXIT_OK


# --- evaluate and predict ---------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace, console: Console) -> int:
    model = _load_model(args.model)
    data = _load_data(console, args.data)
    loss, accuracy = _evaluate(model, data)
    console.print(_accuracy_line(loss, accuracy, len(data.y_test)), highlight=False)
    return EXIT_OK


def _evaluate(model: Any, data: MnistData) -> tuple[float, float]:
    values = model.evaluate(
        data.x_test, data.y_test, batch_size=EVAL_BATCH, verbose=0, return_dict=True
    )
    loss = float(values["loss"])
    accuracy = values.get("accuracy")
    if accuracy is None:
        # A model saved without its compiled metrics still has predictions to count.
        accuracy = predict_test_set(model, data.x_test, data.y_test, EVAL_BATCH).accuracy
    return loss, float(accuracy)


@dataclass(frozen=True)
class Selection:
    """Which test images `predict` shows: a filter, an order, then a window into the result."""

    index: int = 0
    """Position of the first image shown within the filtered, sorted selection (with no filter
    and the index order, that is the test index)."""
    count: int = 8
    """How many to show at most."""
    filter: PredictionFilter = field(default_factory=PredictionFilter)
    """Misclassified only, one true class, one predicted class, or a combination."""
    sort: PredictionSort = PredictionSort.INDEX
    """Test order, least confident first, or highest loss first."""


def select_indices(selection: Selection, predictions: Predicted) -> list[int]:
    """Test-set indices to show, in order; raises UsageError when out of range.

    Args:
        selection: what was asked for.
        predictions: the whole test set's.
    """
    if selection.count < 1:
        raise UsageError(f"count = {selection.count} is out of range: at least 1.")
    chosen = select(predictions, selection.filter, selection.sort)
    total = len(chosen)
    if total and not 0 <= selection.index < total:
        what = "test set" if selection.filter.is_all else "selection"
        raise UsageError(
            f"index = {selection.index} is out of range: the {what} has {total:,} images "
            f"(0 to {total - 1})."
        )
    return [int(i) for i in chosen[selection.index : selection.index + selection.count]]


def digit_card(
    image: Any,
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
    return Group(render_digit(image, compact=compact, color=color), caption, Text(""))


def run_predict(args: argparse.Namespace, console: Console) -> int:
    selection = Selection(
        index=args.index,
        count=args.count,
        filter=PredictionFilter(args.misclassified, args.true, args.pred),
        sort=args.sort,
    )
    model = _load_model(args.model)
    data = _load_data(console, args.data)
    # The whole test set, not just the shown slice: filters and sorting need every prediction.
    predictions = predict_test_set(model, data.x_test, data.y_test, EVAL_BATCH)
    predicted = predictions.predicted
    indices = select_indices(selection, predictions)
    if not indices:
        console.print(f"No test digits match: {selection.filter.describe()}.", highlight=False)
        return EXIT_OK
    # Half-blocks need colour to mean anything; without it (NO_COLOR, a pipe) use shade characters.
    color = (
        not args.no_color and not os.environ.get("NO_COLOR") and console.color_system is not None
    )
    cards = [
        digit_card(
            data.x_test[i],
            i,
            int(data.y_test[i]),
            int(predicted[i]),
            float(predictions.probabilities[i, predicted[i]]),
            compact=args.compact,
            color=color,
        )
        for i in indices
    ]
    console.print(Columns(cards, padding=(0, 2)))
    right = sum(int(predicted[i]) == int(data.y_test[i]) for i in indices)
    console.print(f"{right} of {len(indices)} shown are right.", highlight=False)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "train": run_train,
    "evaluate": run_evaluate,
    "predict": run_predict,
}


def run_command(args: argparse.Namespace, console: Console) -> int:
    """Run `args.command`; a bad MNIST source becomes a UsageError (one line, exit 2)."""
    try:
        return COMMANDS[args.command](args, console)
    except DataError as err:
        raise UsageError(str(err)) from None
