"""Run directories: hyperparameters, per-epoch metrics, atomic checkpoints, resume and listing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tui.core.config import Hyperparams, dump_toml, load_toml
from tui.core.data import MnistData
from tui.core.events import (
    EpochEnded,
    Evaluated,
    EventSink,
    Predicted,
    error_line,
)
from tui.core.runtime import TENSORBOARD_MISSING, import_keras, tensorboard_installed
from tui.core.session import TrainingSession, discard_events

keras = import_keras()

RUNS_ENV = "MNIST_TUI_RUNS"
"""Environment variable naming the folder that holds run directories."""
DEFAULT_ROOT = Path("runs")
"""Run directories go here when neither an argument nor `MNIST_TUI_RUNS` names a folder."""

RUN_JSON = "run.json"
HPARAMS_TOML = "hparams.toml"
METRICS_CSV = "metrics.csv"
LAST_MODEL = "last.keras"
BEST_MODEL = "best.keras"
PREDICTIONS = "predictions.npz"
EVALUATION = "evaluation.json"
TENSORBOARD = "tensorboard"

_RUN_FILES = (RUN_JSON, HPARAMS_TOML, METRICS_CSV, LAST_MODEL)
_TIME_FORMAT = "%Y%m%d-%H%M%S"
_NAME = re.compile(r"^(\d{8}-\d{6})-(.+?)(?:-\d+)?$")


class RunError(Exception):
    """A run directory that cannot be used; str(err) is one sentence a person can act on."""


def runs_root(root: str | Path | None = None) -> Path:
    """The folder holding run directories: `root`, else `$MNIST_TUI_RUNS`, else `./runs`."""
    if root is not None:
        return Path(root)
    env = os.environ.get(RUNS_ENV)
    return Path(env) if env else DEFAULT_ROOT


# --- atomic file writes -------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _replacing(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    The temporary file lives in the same directory so that `os.replace` is a rename on one file
    system, which POSIX makes atomic: readers see the old file or the new one, never half of one.
    On failure the temporary file is removed and `target` is left as it was.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(target.parent)


def write_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` so that a crash leaves either the old or the new content."""
    with _replacing(target) as tmp:
        tmp.write_bytes(data)


def _write_json(target: Path, value: dict[str, Any]) -> None:
    write_atomic(target, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def save_model_atomic(model: Any, target: Path) -> None:
    """`model.save(target)` through a temporary file and a rename.

    Keras's `ModelCheckpoint` calls `model.save(filepath)` on the final name, so a kill during the
    write leaves a truncated archive; it has no write-then-rename option, hence this helper.
    The temporary name ends in `.keras` because `Model.save` picks the format from the suffix.
    """
    with _replacing(target, suffix=".tmp.keras") as tmp:
        model.save(tmp)


# --- what a run directory holds -----------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    """One line of the runs list; `problem` says why a broken run cannot be fully used."""

    path: Path
    started: datetime | None
    preset: str
    epochs_done: int
    best_val_accuracy: float | None
    """Best validation accuracy over the epochs (training accuracy when there was no split)."""
    test_accuracy: float | None
    """From evaluation.json, when the run was evaluated."""
    duration_seconds: float
    """Training time: the sum of the epochs' durations."""
    problem: str | None = None
    """None for a healthy run, else a sentence naming what is wrong."""

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class ResumedRun:
    """Everything needed to build a `TrainingSession` that continues a run."""

    run_dir: RunDirectory
    hparams: Hyperparams
    model: Any
    """The compiled model with its optimizer state, or None when no epoch had completed."""
    epochs_done: int
    history: list[EpochEnded] = field(default_factory=list)
    """The completed epochs, rebuilt from metrics.csv."""

    def session(
        self,
        data: MnistData,
        sink: EventSink | None = None,
        *,
        tensorboard: bool = False,
        extra_callbacks: Sequence[Any] = (),
    ) -> TrainingSession:
        """A session that continues this run, writing to the same directory, history pre-filled."""
        callbacks = [*self.run_dir.callbacks(tensorboard=tensorboard), *extra_callbacks]
        session = TrainingSession(
            self.hparams,
            data,
            sink or discard_events,
            callbacks=callbacks,
            model=self.model,
            epochs_done=self.epochs_done,
        )
        session.history.extend(self.history)
        return session


class RunDirectory:
    """One training run on disk: `<root>/<YYYYmmdd-HHMMSS>-<preset>/`.

    Files: `run.json` (preset, data source, start time, last saved epoch, best epoch),
    `hparams.toml`, `metrics.csv` (Keras's CSVLogger, one row per epoch), `last.keras` and
    `best.keras` (written atomically, optimizer included), `predictions.npz`, `evaluation.json`
    and, on request, `tensorboard/`.
    """

    def __init__(self, path: Path, hparams: Hyperparams, info: dict[str, Any]) -> None:
        self.path = path
        self.hparams = hparams
        self.info = info
        """The contents of run.json, kept in step with the file."""

    # --- creating and opening ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path | None,
        preset_name: str,
        hparams: Hyperparams,
        data: MnistData | None = None,
        *,
        now: datetime | None = None,
    ) -> RunDirectory:
        """A new, empty run directory under `root` (see `runs_root`) for these hyperparameters.

        Args:
            root: the runs folder; None uses `$MNIST_TUI_RUNS` or `./runs`.
            preset_name: the preset the hyperparameters started from, used in the folder name.
            hparams: the hyperparameters, written to hparams.toml.
            data: the dataset, described in run.json (source and training-set size).
            now: start time (for tests); defaults to the current local time.
        """
        started = (now or datetime.now()).replace(microsecond=0)
        base = runs_root(root)
        slug = re.sub(r"[^A-Za-z0-9_.]+", "-", preset_name).strip("-.") or "run"
        try:
            base.mkdir(parents=True, exist_ok=True)
            stem = f"{started.strftime(_TIME_FORMAT)}-{slug}"
            path = base / stem
            suffix = 1
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    suffix += 1
                    path = base / f"{stem}-{suffix}"
        except OSError as err:
            raise RunError(
                f"cannot create a run directory in {base}: {err.strerror or err}; "
                f"pass --runs-dir or set {RUNS_ENV} to a writable folder."
            ) from None
        info: dict[str, Any] = {
            "format": 1,
            "preset": preset_name,
            "started": started.isoformat(),
            "data": data.describe() if data is not None else "",
            "train_samples": _train_samples(hparams, data) if data is not None else None,
            "saved": {"epoch": 0, "iterations": 0},
            "best": None,
        }
        run = cls(path, hparams, info)
        write_atomic(path / HPARAMS_TOML, dump_toml(hparams).encode())
        run._write_info()
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """An existing run directory; `RunError` when it is not one or its set-up files are bad."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(
                f"{path} is not a directory; pass a folder such as runs/<time>-<preset>."
            )
        if not (path / RUN_JSON).exists() and not (path / HPARAMS_TOML).exists():
            raise RunError(
                f"{path} is not a run directory (no {RUN_JSON} or {HPARAMS_TOML}); "
                "pass one of the folders listed by the runs screen."
            )
        info = _read_info(path)
        try:
            hparams = load_toml(path / HPARAMS_TOML)
        except ValueError as err:
            raise RunError(f"run {path.name}: {err} Restore hparams.toml to resume.") from None
        return cls(path, hparams, info)

    # --- paths and state -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def preset(self) -> str:
        return str(self.info.get("preset") or _name_parts(self.path.name)[1])

    @property
    def epochs_saved(self) -> int:
        """Epochs in last.keras, as recorded by the last completed atomic save."""
        return int(self.info.get("saved", {}).get("epoch", 0))

    def file(self, name: str) -> Path:
        return self.path / name

    def update_hparams(self, hparams: Hyperparams) -> None:
        """Rewrite hparams.toml when a continued run changes its settings (a new epoch target,
        batch size, ...), so that resuming it later carries on with what was last used."""
        if hparams != self.hparams:
            write_atomic(self.path / HPARAMS_TOML, dump_toml(hparams).encode())
            self.hparams = hparams

    def _write_info(self) -> None:
        _write_json(self.path / RUN_JSON, self.info)

    # --- during training -------------------------------------------------------------------------
    def callbacks(self, *, tensorboard: bool = False) -> list[Any]:
        """Keras callbacks for `TrainingSession(callbacks=...)`: metrics, checkpoints, TensorBoard.

        Raises:
            RunError: TensorBoard logs were asked for but TensorBoard is not installed.

        Order matters: the epoch extras go into the logs before CSVLogger writes them, and the
        metrics row is written before the checkpoint, so after a kill metrics.csv has at least the
        rows of the saved model (`resume` drops any extra one).
        """
        callbacks: list[Any] = [
            _EpochExtras(),
            keras.callbacks.CSVLogger(str(self.path / METRICS_CSV), append=True),
            _AtomicCheckpoint(self),
        ]
        if tensorboard:
            # TensorFlow stopped depending on TensorBoard; without it every summary write fails
            # inside fit, so refuse up front with the fix.
            if not tensorboard_installed():
                raise RunError(TENSORBOARD_MISSING)
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(self.path / TENSORBOARD)))
        return callbacks

    def record_save(self, epoch: int, iterations: int, best: dict[str, Any] | None) -> None:
        """Note in run.json which epoch last.keras now holds (called after each atomic save)."""
        self.info["saved"] = {
            "epoch": epoch,
            "iterations": iterations,
            "at": datetime.now().replace(microsecond=0).isoformat(),
        }
        if best is not None:
            self.info["best"] = best
        self._write_info()

    # --- results ----------------------------------------------------------------------------------
    def save_predictions(self, predicted: Predicted) -> Path:
        """Write the test-set probabilities and labels to predictions.npz."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            probabilities=np.asarray(predicted.probabilities, dtype=np.float32),
            labels=np.asarray(predicted.labels),
        )
        target = self.path / PREDICTIONS
        write_atomic(target, buffer.getvalue())
        return target

    def load_predictions(self) -> Predicted:
        """The saved test-set predictions; `RunError` if missing or unreadable."""
        target = self.path / PREDICTIONS
        try:
            with np.load(target) as saved:
                return Predicted(saved["probabilities"], saved["labels"])
        except FileNotFoundError:
            raise RunError(
                f"run {self.name} has no {PREDICTIONS}; evaluate the model first."
            ) from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise RunError(
                f"run {self.name}: {PREDICTIONS} is unreadable ({err}); predict again."
            ) from None

    def save_evaluation(self, evaluated: Evaluated, epochs_done: int | None = None) -> Path:
        """Write the test-set loss and accuracy (with their epoch) to evaluation.json."""
        target = self.path / EVALUATION
        _write_json(
            target,
            {
                "loss": evaluated.loss,
                "accuracy": evaluated.accuracy,
                "samples": evaluated.samples,
                "epochs_done": self.epochs_saved if epochs_done is None else epochs_done,
                "at": datetime.now().replace(microsecond=0).isoformat(),
            },
        )
        return target

    def load_history(self) -> list[EpochEnded]:
        """The epochs in metrics.csv as `EpochEnded` events (see `load_history`)."""
        return _history(self.path, self.hparams, self.info)


class _EpochExtras(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Adds `learning_rate` and `epoch_seconds` to each epoch's logs so CSVLogger records them.

    Keras's own LearningRateScheduler adds `learning_rate` to the logs the same way; the CSV then
    holds everything needed to redraw the curves and rebuild the history on resume.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        logs["epoch_seconds"] = time.monotonic() - self._started
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )


class _AtomicCheckpoint(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Saves last.keras each epoch and best.keras on improvement, each through a rename.

    Not `ModelCheckpoint`: it writes in place (see `save_model_atomic`). The optimizer state is
    part of a `.keras` archive of a compiled model, so a reloaded model continues exactly.
    """

    def __init__(self, run: RunDirectory) -> None:
        super().__init__()
        self.run = run
        self.best: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        recorded = self.run.info.get("best") or {}
        value = recorded.get("value")
        self.best = float(value) if isinstance(value, int | float) else None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        metric = "val_accuracy" if logs.get("val_accuracy") is not None else "accuracy"
        value = _finite(logs.get(metric))
        best: dict[str, Any] | None = None
        try:
            if value is not None and (self.best is None or value > self.best):
                save_model_atomic(self.model, self.run.path / BEST_MODEL)
                self.best = value
                best = {"epoch": epoch + 1, "metric": metric, "value": value}
            save_model_atomic(self.model, self.run.path / LAST_MODEL)
        except OSError as err:
            raise RunError(
                f"cannot save the model in {self.run.path}: {err.strerror or err}; "
                "free some disk space or choose another --runs-dir."
            ) from None
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.run.record_save(epoch + 1, iterations, best)


# --- reading runs back ----------------------------------------------------------------------------
def resume(path: str | Path) -> ResumedRun:
    """Reopen a run to continue training from its last saved epoch.

    The epoch count comes from run.json, cross-checked with the optimizer's step counter in
    last.keras: a kill between renaming last.keras and rewriting run.json leaves the model one
    epoch ahead, and the counter tells. metrics.csv is cut back to the saved epochs so that the
    epoch in progress at the kill (if its row was written) is not recorded twice.

    Raises:
        RunError: not a run directory, bad hyperparameters, or a model that cannot be loaded.
    """
    run = RunDirectory.open(path)
    model: Any = None
    epochs_done = 0
    last = run.path / LAST_MODEL
    if last.exists():
        model = _load_model(last, run.name)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        saved = run.info.get("saved", {})
        epochs_done = int(saved.get("epoch", 0))
        if iterations > int(saved.get("iterations", 0)):
            epochs_done += 1
            run.record_save(epochs_done, iterations, None)
    elif run.epochs_saved:
        raise RunError(
            f"run {run.name}: {LAST_MODEL} is missing although {run.epochs_saved} epochs were "
            f"saved; copy best.keras to {LAST_MODEL} to continue from the best epoch."
        )
    history = _history(run.path, run.hparams, run.info)
    if len(history) > epochs_done:
        history = history[:epochs_done]
        _cut_metrics(run.path / METRICS_CSV, epochs_done)
    elif epochs_done == 0:
        with contextlib.suppress(FileNotFoundError):
            (run.path / METRICS_CSV).unlink()
    return ResumedRun(run, run.hparams, model, epochs_done, history)


def load_history(path: str | Path) -> list[EpochEnded]:
    """The epochs recorded in a run's metrics.csv, for curves and comparisons.

    Raises:
        RunError: not a run directory, or a metrics.csv that cannot be parsed.
    """
    return RunDirectory.open(path).load_history()


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    """Every run under `root`, newest first; a broken one gets a `problem` note, not an error."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    summaries = [
        _summarise(entry)
        for entry in base.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    oldest = datetime.min
    return sorted(summaries, key=lambda s: (s.started or oldest, s.name), reverse=True)


def _summarise(path: Path) -> RunSummary:
    problems: list[str] = []
    stamp, preset = _name_parts(path.name)
    started = _parse_time(stamp)
    info: dict[str, Any] = {}
    try:
        info = _read_info(path)
    except RunError as err:
        problems.append(_sentence(err))
    preset = str(info.get("preset") or preset or "?")
    started = _parse_time(info.get("started")) or started
    if not any((path / name).exists() for name in _RUN_FILES):
        return RunSummary(path, started, preset, 0, None, None, 0.0, "not a run directory.")

    hparams: Hyperparams | None = None
    try:
        hparams = load_toml(path / HPARAMS_TOML)
    except ValueError as err:
        problems.append(f"{err} It cannot be resumed")
    history: list[EpochEnded] = []
    try:
        history = _history(path, hparams or Hyperparams(), info)
    except RunError as err:
        problems.append(_sentence(err))

    saved = int(info.get("saved", {}).get("epoch", 0)) if info else len(history)
    last = path / LAST_MODEL
    if last.exists():
        damage = _archive_problem(last)
        if damage:
            problems.append(f"{LAST_MODEL} is damaged ({damage}); it cannot be resumed")
    elif saved:
        problems.append(f"{LAST_MODEL} is missing; it cannot be resumed")
    if info and len(history) < saved:
        problems.append(f"{METRICS_CSV} has {len(history)} of {saved} epochs")

    epochs = saved if info else len(history)
    accuracies = [
        e.val_accuracy if e.val_accuracy is not None else e.accuracy for e in history[:epochs]
    ]
    finite = [a for a in accuracies if math.isfinite(a)]
    return RunSummary(
        path=path,
        started=started,
        preset=preset,
        epochs_done=epochs,
        best_val_accuracy=max(finite) if finite else None,
        test_accuracy=_test_accuracy(path, problems),
        duration_seconds=sum(e.seconds for e in history if math.isfinite(e.seconds)),
        problem="; ".join(problems) + "." if problems else None,
    )


def _test_accuracy(path: Path, problems: list[str]) -> float | None:
    target = path / EVALUATION
    if not target.exists():
        return None
    try:
        value = json.loads(target.read_text(encoding="utf-8"))["accuracy"]
        return float(value)
    except (OSError, ValueError, KeyError, TypeError):
        problems.append(f"{EVALUATION} is unreadable")
        return None


def _archive_problem(path: Path) -> str | None:
    """Why a `.keras` file is not a complete archive, or None; cheap, without loading TensorFlow."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        return str(err) or "not a zip archive"
    if broken is not None:
        return f"{broken} fails its checksum"
    if "config.json" not in names:
        return "no config.json inside"
    return None


def load_model_file(path: str | Path) -> Any:
    """A saved `.keras` model (to browse or draw with); `RunError` with one sentence if unusable."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"model file {path} does not exist; pass a .keras file saved by mnist-tui.")
    model, problem = _try_load_model(path)
    if model is not None:
        return model
    raise RunError(f"model file {path} cannot be loaded ({problem}); pass another .keras file.")


def _try_load_model(path: Path) -> tuple[Any, str | None]:
    """The loaded model and None, or None and what is wrong with the file."""
    problem = _archive_problem(path)
    if problem is None:
        try:
            return keras.saving.load_model(path), None
        except Exception as err:  # Keras raises many types for a bad archive
            problem = error_line(err, limit=200)
    return None, problem


def _load_model(path: Path, run_name: str) -> Any:
    model, problem = _try_load_model(path)
    if model is not None:
        return model
    raise RunError(
        f"run {run_name}: {path.name} cannot be loaded ({problem}); copy {BEST_MODEL} over it to "
        "continue from the best epoch, or start a new run."
    )


def _read_info(path: Path) -> dict[str, Any]:
    target = path / RUN_JSON
    try:
        info = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{RUN_JSON} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"{RUN_JSON} is unreadable ({err})") from None
    if not isinstance(info, dict) or not isinstance(info.get("saved", {}), dict):
        raise RunError(f"{RUN_JSON} does not hold a run description")
    return info


def _history(path: Path, hparams: Hyperparams, info: dict[str, Any]) -> list[EpochEnded]:
    """metrics.csv as events; a row cut short by a kill is ignored, other damage is an error."""
    target = path / METRICS_CSV
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise RunError(f"{METRICS_CSV} is unreadable ({err})") from None
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]  # an unfinished row: the process died while writing it
    if not lines:
        return []
    reader = csv.DictReader(lines)
    if not reader.fieldnames or not {"epoch", "loss", "accuracy"} <= set(reader.fieldnames):
        raise RunError(f"{METRICS_CSV} has no epoch, loss and accuracy columns")
    samples = info.get("train_samples")
    rows: dict[int, EpochEnded] = {}
    for number, row in enumerate(reader, start=2):
        try:
            epoch = int(row["epoch"]) + 1
            seconds = _number(row.get("epoch_seconds"))
            event = EpochEnded(
                epoch=epoch,
                target=0,
                loss=float(row["loss"]),
                accuracy=float(row["accuracy"]),
                val_loss=_finite(row.get("val_loss")),
                val_accuracy=_finite(row.get("val_accuracy")),
                seconds=seconds,
                samples_per_sec=(
                    samples / seconds if isinstance(samples, int) and seconds > 0 else math.nan
                ),
                learning_rate=_number(row.get("learning_rate")),
            )
        except (TypeError, ValueError):
            raise RunError(f"{METRICS_CSV} line {number} is not a row of numbers") from None
        if epoch < 1:
            raise RunError(f"{METRICS_CSV} line {number} has epoch {epoch - 1}")
        rows[epoch] = event  # a repeated epoch (an older resume) keeps its latest row
    ordered = [rows[e] for e in sorted(rows)]
    target_epochs = max(hparams.epochs, len(ordered))
    return [_with_target(e, target_epochs) for e in ordered]


def _with_target(event: EpochEnded, target: int) -> EpochEnded:
    return replace(event, target=target)


def _cut_metrics(target: Path, epochs: int) -> None:
    """Keep the header and the rows of the first `epochs` epochs of metrics.csv."""
    text = target.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if text and not text.endswith("\n"):
        lines = lines[:-1]
    kept = lines[:1] + [line for line in lines[1:] if _first_field(line, lambda v: int(v) < epochs)]
    write_atomic(target, "".join(kept).encode())


def _first_field(line: str, keep: Callable[[str], bool]) -> bool:
    try:
        return keep(next(csv.reader([line]))[0])
    except (StopIteration, IndexError, ValueError):
        return False


def _train_samples(hparams: Hyperparams, data: MnistData) -> int:
    # The session owns the split rule; ask it rather than copy it.
    return len(TrainingSession(hparams, data).split()[0])


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _finite(value: object) -> float | None:
    number = _number(value)
    return number if math.isfinite(number) else None


def _name_parts(name: str) -> tuple[str, str]:
    match = _NAME.match(name)
    return (match.group(1), match.group(2)) if match else ("", "")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, _TIME_FORMAT)):
        with contextlib.suppress(ValueError):
            return parse(value)
    return None


def _sentence(err: Exception) -> str:
    return str(err).rstrip(".")
