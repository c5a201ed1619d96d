"""Command line: `mnist-tui` starts the app; `train`, `evaluate` and `predict` run headless."""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import itertools
import logging
import math
import os
import signal
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from rich.columns import Columns
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from tui.core import config
from tui.core.config import Hyperparams
from tui.core.data import SAMPLE_NOTICE, DataError, MnistData, load_mnist
from tui.core.distribute import (
    STRATEGIES,
    DistributeError,
    DistributeOptions,
    parse_devices,
    read_tf_config,
)
from tui.core.events import (
    BatchProgress,
    EpochEnded,
    Predicted,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.predictions import PredictionFilter, PredictionSort, select
from tui.core.runtime import (
    TENSORBOARD_MISSING,
    native_stderr_to,
    tensorboard_installed,
    tensorflow_log_path,
)

PROG = "mnist-tui"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EVAL_BATCH = 1024
"""Batch size of every test-set pass, so `train` and `evaluate` report identical figures."""
PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two progress lines when stdout is not a terminal (logs, CI, pipes)."""


class UsageError(Exception):
    """Bad input from the person at the keyboard; str(err) is the sentence to show."""


# --- argument parsing -------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        _say_error(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def _say_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _field_docs() -> dict[str, str]:
    """The docstrings written under each Hyperparams field, for `--help`.

    They live in the source only (Python keeps no attribute docstrings), so read them from there
    instead of keeping a second copy of every description here.
    """
    try:
        tree = ast.parse(inspect.getsource(Hyperparams))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _converter(name: str, kind: str) -> Callable[[str], Any]:
    """Parse a flag's text into the field's type, with a message naming the field on failure."""

    def whole(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a whole number.") from None

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a number.") from None

    def filters(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} = {text!r} must be whole numbers separated by commas, e.g. 32,64."
            ) from None

    if kind == "int":
        return whole
    if kind == "float":
        return number
    if kind.startswith("tuple"):
        return filters
    return str


_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}


def _add_hyperparam_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Hyperparams field, generated so the field list lives only in the core.

    Flags default to "absent" (SUPPRESS) so that only what was typed overrides the config file
    and the preset. Range and choice checks are left to Hyperparams, whose sentences name the
    field, the value and what is allowed.
    """
    group = parser.add_argument_group(
        "hyperparameters", "each overrides --config, which overrides --preset"
    )
    docs = _field_docs()
    base = config.preset(config.DEFAULT_PRESET)
    for f in fields(Hyperparams):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = getattr(base, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{docs.get(f.name, '')} (default: {shown})".strip()
        text = text.replace("%", "%%")  # argparse formats help with %
        if kind == "bool":
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
            continue
        choices = config.CHOICES.get(f.name)
        metavar = "{" + ",".join(choices) + "}" if choices else _METAVARS.get(kind, "N,...")
        group.add_argument(
            flag,
            dest=f.name,
            type=_converter(f.name, kind),
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=text,
        )


def _add_setup_flags(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and --data, shared by the app and `train`."""
    parser.add_argument(
        "--preset",
        default=config.DEFAULT_PRESET,
        metavar="{" + ",".join(config.PRESETS) + "}",
        help="starting hyperparameters (default: %(default)s)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help="hyperparameters from a TOML file"
    )
    _add_data_flag(parser)
    _add_distribute_flags(parser)


def _add_distribute_flags(parser: argparse.ArgumentParser) -> None:
    """--strategy, --devices and --mixed-precision: where training runs, not what it learns."""
    group = parser.add_argument_group("devices", "where training runs (not hyperparameters)")
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: one device; mirrored: every local GPU (or two logical CPUs without one); "
        "multiworker: several processes described by $TF_CONFIG (default: %(default)s)",
    )
    group.add_argument(
        "--devices",
        metavar="LIST",
        help="for --strategy mirrored, the devices to use, e.g. gpu:0,gpu:1 or cpu:0,cpu:1",
    )
    group.add_argument(
        "--mixed-precision",
        action="store_true",
        help="compute in float16 with float32 weights and output (faster on recent GPUs)",
    )


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="mnist.npz or a folder of IDX files (default: $MNIST_TUI_DATA, the Keras cache, "
        "a download, then the bundled sample)",
    )


def _add_runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="where run directories go (default: $MNIST_TUI_RUNS, else ./runs)",
    )


def _add_tensorboard_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into the run directory's tensorboard/ folder "
        "(needs `pip install tensorboard`)",
    )


def _add_app_flags(parser: argparse.ArgumentParser) -> None:
    """--runs-dir, --tensorboard, --resume and --model: what the app opens and records."""
    _add_runs_dir_flag(parser)
    _add_tensorboard_flag(parser)
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="open a run directory: its curves, hyperparameters and model; t continues it",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="open a saved .keras model to browse its predictions (v, c) and draw (d)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the app's flags plus the train/evaluate/predict subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train a Keras CNN on MNIST and watch and steer it live in the terminal. "
        "Without a command, starts the app.",
    )
    _add_setup_flags(parser)
    _add_app_flags(parser)
    _add_hyperparam_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train headless with a progress bar and a metrics table"
    )
    _add_setup_flags(train)
    train.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to save the model (default: ./models/<preset>-<timestamp>.keras); "
        "a path ending in .keras names the file itself",
    )
    train.add_argument(
        "--save-config", type=Path, metavar="FILE.toml", help="write the hyperparameters used"
    )
    _add_runs_dir_flag(train)
    _add_tensorboard_flag(train)
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run from its last completed epoch; --epochs sets a new target",
    )
    _add_hyperparam_flags(train)

    evaluate = commands.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("--model", type=Path, required=True, metavar="PATH")
    _add_data_flag(evaluate)

    predict = commands.add_parser("predict", help="show test digits with the model's guesses")
    predict.add_argument("--model", type=Path, required=True, metavar="PATH")
    _add_data_flag(predict)
    predict.add_argument(
        "--index", type=int, default=0, metavar="I", help="first test image (default: 0)"
    )
    predict.add_argument(
        "--count", type=int, default=8, metavar="N", help="how many digits (default: 8)"
    )
    predict.add_argument(
        "--misclassified", action="store_true", help="only digits the model got wrong"
    )
    predict.add_argument("--true", type=int, metavar="K", help="only digits of true class K")
    predict.add_argument("--pred", type=int, metavar="K", help="only digits predicted as K")
    predict.add_argument(
        "--sort",
        choices=[order.value for order in PredictionSort],
        default=PredictionSort.INDEX.value,
        help="index (default), confidence (least confident first) or loss (highest first)",
    )
    predict.add_argument("--compact", action="store_true", help="half-size digits")
    predict.add_argument("--no-color", action="store_true", help="plain characters, no colour")
    return parser


def resolve_hparams(args: argparse.Namespace) -> Hyperparams:
    """Preset, then the config file, then the flags typed; raises ValueError on bad values."""
    hparams = config.preset(args.preset)
    if args.config is not None:
        hparams = config.load_toml(args.config, base=hparams)
    typed = {f.name: getattr(args, f.name) for f in fields(Hyperparams) if hasattr(args, f.name)}
    return Hyperparams.from_dict(typed, base=hparams)


def distribute_options(args: argparse.Namespace) -> DistributeOptions:
    """The strategy flags, checked without importing TensorFlow; raises UsageError."""
    try:
        return DistributeOptions(
            strategy=args.strategy,
            devices=parse_devices(args.devices),
            mixed_precision=args.mixed_precision,
        )
    except DistributeError as err:
        raise UsageError(str(err)) from None


def _make_strategy(options: DistributeOptions) -> Any:
    """Set the devices up (before TensorFlow initialises them) and build the strategy."""
    try:
        options.prepare()
        return options.make_strategy()
    except DistributeError as err:
        raise UsageError(str(err)) from None


# --- quiet runtime ----------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_runtime(log_path: Path) -> Iterator[None]:
    """Send native stderr, Python warnings and library logging to `log_path`.

    TensorFlow must be imported inside this: its C++ runtime writes banners to descriptor 2 at
    import time, under Python, where nothing else can catch them.
    """
    with native_stderr_to(log_path), open(log_path, "a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        saved_show = warnings.showwarning

        def to_log(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            log.write(warnings.formatwarning(message, category, filename, lineno, line))
            log.flush()

        warnings.showwarning = to_log
        try:
            yield
        finally:
            warnings.showwarning = saved_show
            root.removeHandler(handler)


def _load_data(console: Console, path: str | None) -> MnistData:
    data = load_mnist(path)
    console.print(f"Data: {data.describe()}", highlight=False)
    if data.is_sample:
        console.print(f"[yellow]{SAMPLE_NOTICE}[/]", highlight=False)
    return data


def _load_model(path: Path) -> Any:
    """A saved Keras model, or UsageError with one sentence when it cannot be read."""
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist; pass a .keras file saved by train.")
    if not zipfile.is_zipfile(path):
        # Keras's own message for this case says "File not found", which misleads.
        raise UsageError(
            f"model file {path} is not a Keras .keras archive; pass a file saved by train."
        )
    from tui.core.runtime import import_keras

    keras = import_keras()
    try:
        return keras.models.load_model(path)
    except Exception as err:  # Keras raises many types for a bad archive; all mean "unusable"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"model file {path} cannot be loaded: {reason}") from None


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
    """Save under a temporary name first, so a crash or a second Ctrl+C never leaves a
    half-written file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras insists on the .keras suffix, so the marker goes in front.
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _accuracy_line(loss: float, accuracy: float, samples: int) -> str:
    return f"Test accuracy: {accuracy:.2%} (loss {loss:.4f}, {samples:,} images)"


@contextlib.contextmanager
def _ctrl_c_stops(stop_now: Callable[[], None], console: Console) -> Iterator[None]:
    """While training, Ctrl+C asks the session to stop before the next batch.

    Training runs in this (the main) thread, where Python runs signal handlers between
    bytecodes, so the request lands within one batch. A second Ctrl+C gives up at once.
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
        preset_name = args.resume.name
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
        _say_error(f"training failed: {message}")
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
        probabilities = model.predict(data.x_test, batch_size=EVAL_BATCH, verbose=0)
        accuracy = (probabilities.argmax(axis=1) == data.y_test).mean()
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


def select_indices(selection: Selection, labels: Any, probabilities: Any) -> list[int]:
    """Test-set indices to show, in order; raises UsageError when out of range.

    Args:
        selection: what was asked for.
        labels: true labels of the whole test set.
        probabilities: (n, 10) class probabilities of every test image.
    """
    if selection.count < 1:
        raise UsageError(f"count = {selection.count} is out of range: at least 1.")
    chosen = select(Predicted(probabilities, labels), selection.filter, selection.sort)
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
        sort=PredictionSort(args.sort),
    )
    model = _load_model(args.model)
    data = _load_data(console, args.data)
    # The whole test set, not just the shown slice: filters and sorting need every prediction.
    probabilities = model.predict(data.x_test, batch_size=EVAL_BATCH, verbose=0)
    predicted = probabilities.argmax(axis=1)
    indices = select_indices(selection, data.y_test, probabilities)
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
            float(probabilities[i, predicted[i]]),
            compact=args.compact,
            color=color,
        )
        for i in indices
    ]
    console.print(Columns(cards, padding=(0, 2)))
    right = sum(int(predicted[i]) == int(data.y_test[i]) for i in indices)
    console.print(f"{right} of {len(indices)} shown are right.", highlight=False)
    return EXIT_OK


# --- entry point ------------------------------------------------------------------------------
def _run_app(args: argparse.Namespace) -> int:
    hparams = resolve_hparams(args)
    options = distribute_options(args)
    if options.strategy == "multiworker":
        # Every worker would need its own app and the same key presses at the same moment.
        raise UsageError(
            "the app trains on one machine; for several hosts use "
            f"`{PROG} train --strategy multiworker`."
        )
    if args.resume is not None and args.model is not None:
        raise UsageError("pass --resume or --model, not both.")
    from tui.app import run_app  # Textual only when the app is wanted

    return run_app(
        hparams,
        preset_name=args.preset,
        data_path=args.data,
        log_path=str(tensorflow_log_path()),
        runs_dir=args.runs_dir,
        tensorboard=args.tensorboard,
        resume_path=args.resume,
        model_path=args.model,
        distribute=options,
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "train": run_train,
    "evaluate": run_evaluate,
    "predict": run_predict,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already reported in one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        if args.command is None:
            return _run_app(args)
        with quiet_runtime(tensorflow_log_path()):
            # Created inside so that its stderr is the terminal, not the log.
            console = Console(highlight=False, soft_wrap=True)
            return COMMANDS[args.command](args, console)
    except (UsageError, DataError, ValueError) as err:
        _say_error(str(err))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say_error("interrupted; nothing saved.")
        return EXIT_INTERRUPTED
    except OSError as err:
        _say_error(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
