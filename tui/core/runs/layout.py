"""One run directory on disk: its files, what run.json records, and the history it keeps.

No TensorFlow here: the app lists and reads runs without it (see `record` and `resume` for
what needs Keras).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from tui.core.data.info import DataInfo
from tui.core.inspect.problems import find_problems
from tui.core.runs.files import write_atomic, write_json
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.toml import dump_toml, load_toml
from tui.core.training.events import EpochEnded, Evaluated, LayerFigures, LayerHealthMeasured

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
LAYERS_JSONL = "layers.jsonl"
"""Every learning layer's figures, one JSON line per epoch (see `tui.core.inspect.health`)."""
ENGINE_JSON = "engine.json"
"""Where a live engine that trains this run can be reached (see `tui.engine`)."""
ENGINE_LOG = "engine.log"
LOCK = ".lock"
DAMAGED = ".damaged"
"""Suffix of a file kept aside because it could not be read (`run.json.damaged`)."""

RUN_FILES = (RUN_JSON, HPARAMS_TOML, METRICS_CSV, LAST_MODEL)
TIME_FORMAT = "%Y%m%d-%H%M%S"
_NAME = re.compile(r"^(\d{8}-\d{6})-(.+?)(?:-\d+)?$")
FORMAT = 2
"""run.json's format: 2 records the data as a `DataInfo` (1 had a display string)."""


class RunError(Exception):
    """A run directory that cannot be used; str(err) is one sentence a person can act on."""


def runs_root(root: str | Path | None = None) -> Path:
    """The folder holding run directories: `root`, else `$MNIST_TUI_RUNS`, else `./runs`."""
    if root is not None:
        return Path(root)
    env = os.environ.get(RUNS_ENV)
    return Path(env) if env else DEFAULT_ROOT


def now_stamp() -> str:
    return datetime.now().replace(microsecond=0).isoformat()


class RunDirectory:
    """One training run on disk: `<root>/<YYYYmmdd-HHMMSS>-<preset>/`.

    Files: `run.json` (preset, data, start time, last saved epoch, best epoch), `hparams.toml`,
    `metrics.csv` (Keras's CSVLogger, one row per epoch), `last.keras` and `best.keras`
    (written atomically, optimizer included), `predictions.npz`, `evaluation.json`, and while
    an engine trains it `engine.json`, `engine.log` and the `.lock` of its one writer.
    """

    def __init__(
        self,
        path: Path,
        hparams: Hyperparams,
        info: dict[str, Any],
        *,
        info_damage: str | None = None,
    ) -> None:
        self.path = path
        self.hparams = hparams
        self.info = info
        """The contents of run.json, kept in step with the file."""
        self._hparams_lock = threading.Lock()
        self.info_damage = info_damage
        """Why run.json could not be read, when `info` was rebuilt from the other files
        instead (see `rebuilt_info`); `repair_info` writes the rebuilt one."""

    # --- creating and opening -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path | None,
        preset_name: str,
        hparams: Hyperparams,
        data: DataInfo,
        train_samples: int,
        *,
        now: datetime | None = None,
    ) -> RunDirectory:
        """A new, empty run directory under `root` (see `runs_root`) for these hyperparameters.

        Args:
            root: the runs folder; None uses `$MNIST_TUI_RUNS` or `./runs`.
            preset_name: the preset the hyperparameters started from, used in the folder name.
            hparams: the hyperparameters, written to hparams.toml.
            data: the data it trains on, recorded so that a resume finds the same.
            train_samples: images per epoch (after the validation split).
            now: start time (for tests); defaults to the current local time.
        """
        started = (now or datetime.now()).replace(microsecond=0)
        base = runs_root(root)
        slug = re.sub(r"[^A-Za-z0-9_.]+", "-", preset_name).strip("-.") or "run"
        try:
            base.mkdir(parents=True, exist_ok=True)
            stem = f"{started.strftime(TIME_FORMAT)}-{slug}"
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
            "format": FORMAT,
            "preset": preset_name,
            "started": started.isoformat(),
            "data": data.record(),
            "train_samples": train_samples,
            "saved": {"epoch": 0, "iterations": 0},
            "best": None,
        }
        run = cls(path.resolve(), hparams, info)
        try:
            write_atomic(path / HPARAMS_TOML, dump_toml(hparams).encode())
            run.write_info()
        except OSError as err:
            raise RunError(
                f"cannot write the run directory {path}: {err.strerror or err}; "
                "free some disk space or pass another --runs-dir."
            ) from None
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
        try:
            hparams = load_toml(path / HPARAMS_TOML)
        except ValueError as err:
            raise RunError(f"run {path.name}: {err} Restore hparams.toml to resume.") from None
        try:
            return cls(path.resolve(), hparams, read_info(path))
        except RunError as err:
            # hparams.toml, metrics.csv and last.keras still say what the run is.
            info = rebuilt_info(path, read_metrics(path, hparams, {}).history)
            return cls(path.resolve(), hparams, info, info_damage=str(err))

    def repair_info(self) -> str | None:
        """Write the run.json rebuilt by `open` (the unreadable one kept beside it); what was
        lost, as a sentence, or None when run.json was fine."""
        if self.info_damage is None:
            return None
        damaged = self.path / RUN_JSON
        if damaged.exists():
            os.replace(damaged, self.path / (RUN_JSON + DAMAGED))
        self.write_info()
        reason, self.info_damage = self.info_damage, None
        return (
            f"{reason}: rebuilt from hparams.toml, metrics.csv and {LAST_MODEL} "
            f"({self.epochs_saved} epochs); the record of the data it trained on and of its "
            f"start is lost (the old file is kept as {RUN_JSON}{DAMAGED})"
        )

    # --- paths and state ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def preset(self) -> str:
        return str(self.info.get("preset") or name_parts(self.path.name)[1])

    @property
    def epochs_saved(self) -> int:
        """Epochs in last.keras, as recorded by the last completed atomic save."""
        return int(self.info.get("saved", {}).get("epoch", 0))

    @property
    def data(self) -> DataInfo | None:
        """The data the run trains on; None for a run recorded before data identities (format
        1 kept only a display string)."""
        return data_info(self.info.get("data"))

    @property
    def data_label(self) -> str:
        """The recorded data for people, whatever the format."""
        data = self.data
        if data is not None:
            return data.describe()
        recorded = self.info.get("data")
        return recorded if isinstance(recorded, str) and recorded else "unknown data"

    def file(self, name: str) -> Path:
        return self.path / name

    def write_info(self) -> None:
        write_json(self.path / RUN_JSON, self.info)

    def change_hparams(self, **changes: Any) -> None:
        """Rewrite hparams.toml with these settings changed, from any thread: a live target
        (the engine's loop) and a live learning rate (the training thread, at an epoch's end)
        each change only their own field, so that neither undoes the other."""
        with self._hparams_lock:
            self.update_hparams(self.hparams.with_changes(**changes))

    def update_hparams(self, hparams: Hyperparams) -> None:
        """Rewrite hparams.toml when a continued run changes its settings (a new epoch target,
        a learning rate changed live, ...), so that a later resume starts from what was used."""
        if hparams != self.hparams:
            write_atomic(self.path / HPARAMS_TOML, dump_toml(hparams).encode())
            self.hparams = hparams

    def record_data_change(self, new: DataInfo) -> None:
        """The run goes on with other data than it started with: say so in run.json."""
        old = self.info.get("data")
        changes = list(self.info.get("data_changes") or [])
        changes.append({"at": now_stamp(), "epoch": self.epochs_saved, "from": old})
        self.info["data_changes"] = changes
        self.info["data"] = new.record()
        self.write_info()

    def record_save(self, epoch: int, iterations: int, best: dict[str, Any] | None) -> None:
        """Note in run.json which epoch last.keras now holds (called after each atomic save)."""
        self.info["saved"] = {"epoch": epoch, "iterations": iterations, "at": now_stamp()}
        # What a branch from this epoch's checkpoint records as its own start (see `branch`).
        steps = dict(self.info.get("epoch_iterations") or {})
        steps[str(epoch)] = iterations
        self.info["epoch_iterations"] = steps
        if best is not None:
            self.info["best"] = best
        self.write_info()

    # --- results --------------------------------------------------------------------------------
    def save_predictions(self, probabilities: Any, labels: Any) -> Path:
        """Write the test-set probabilities and labels to predictions.npz."""
        import numpy as np

        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            probabilities=np.asarray(probabilities, dtype=np.float32),
            labels=np.asarray(labels),
        )
        target = self.path / PREDICTIONS
        write_atomic(target, buffer.getvalue())
        return target

    def save_evaluation(self, evaluated: Evaluated) -> Path:
        """Write the test-set loss and accuracy, with the epoch and data they belong to."""
        target = self.path / EVALUATION
        data = self.data
        write_json(
            target,
            {
                "loss": evaluated.loss,
                "accuracy": evaluated.accuracy,
                "samples": evaluated.samples,
                "epochs_done": evaluated.epochs_done,
                "data": data.fingerprint if data is not None else None,
                "at": now_stamp(),
            },
        )
        return target

    def append_health(self, measured: LayerHealthMeasured) -> None:
        """Add one epoch's layer figures to layers.jsonl (a line, appended and flushed)."""
        with open(self.path / LAYERS_JSONL, "ab") as out:
            out.write(msgspec.json.encode(measured) + b"\n")

    def load_health(self, epochs: int) -> tuple[LayerHealthMeasured, ...]:
        """The layer figures of the first `epochs` epochs (later ones belong to no saved model);
        an unreadable line is skipped: these figures are for looking at, not for resuming."""
        try:
            lines = (self.path / LAYERS_JSONL).read_bytes().splitlines()
        except OSError:
            return ()
        kept: dict[int, LayerHealthMeasured] = {}
        for line in lines:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                measured = _health_line(line)
                if measured.epoch <= epochs:
                    kept[measured.epoch] = measured
        return tuple(kept[epoch] for epoch in sorted(kept))

    def load_history(self) -> list[EpochEnded]:
        """The epochs in metrics.csv as `EpochEnded` events (see `read_history`)."""
        return read_history(self.path, self.hparams, self.info)


class _FiguresOnly(msgspec.Struct):
    """A layers.jsonl line less its problems, which lines written before 2026-12 hold as
    sentences (`LayerProblem`s since)."""

    epoch: int
    layers: tuple[LayerFigures, ...]


def _health_line(line: bytes) -> LayerHealthMeasured:
    """One layers.jsonl line; an old one gets its problems found again from its figures."""
    try:
        return msgspec.json.decode(line, type=LayerHealthMeasured)
    except msgspec.ValidationError:
        old = msgspec.json.decode(line, type=_FiguresOnly)
        return LayerHealthMeasured(old.epoch, old.layers, find_problems(old.layers))


def data_info(recorded: object) -> DataInfo | None:
    """run.json's "data" as a `DataInfo`, or None when it is the old display string."""
    if not isinstance(recorded, dict):
        return None
    try:
        return DataInfo(
            kind=str(recorded["kind"]),
            source=str(recorded["source"]),
            fingerprint=str(recorded["fingerprint"]),
            train=int(recorded["train"]),
            test=int(recorded["test"]),
            excluded=tuple(int(i) for i in recorded.get("excluded") or ()),
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_info(path: Path) -> dict[str, Any]:
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


@dataclass(frozen=True)
class MetricsRead:
    """What metrics.csv holds, and what in it could not be used."""

    history: list[EpochEnded]
    """The complete rows as events, in epoch order (a repeated epoch keeps its latest row)."""
    torn: bool = False
    """The last row was cut short (a kill or a full disk while writing it)."""
    bad_lines: tuple[int, ...] = ()
    """Line numbers (the header is line 1) that are not rows of numbers."""
    unreadable: str | None = None
    """Why the whole file cannot be used (no header, not text), or None."""

    def problems(self) -> list[str]:
        """What is wrong with the file, for the runs list; empty when nothing is."""
        found = []
        if self.unreadable:
            found.append(f"{METRICS_CSV} {self.unreadable}")
        if self.torn:
            found.append(f"{METRICS_CSV}'s last row is cut short")
        if self.bad_lines:
            lines = ", ".join(map(str, self.bad_lines))
            found.append(f"{METRICS_CSV} line {lines} held no row of numbers")
        return found


def read_metrics(path: Path, hparams: Hyperparams, info: dict[str, Any]) -> MetricsRead:
    """metrics.csv as events, with what could not be read; never raises for damage."""
    target = path / METRICS_CSV
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return MetricsRead([])
    except (OSError, UnicodeDecodeError) as err:
        return MetricsRead([], unreadable=f"is unreadable ({err})")
    lines = text.splitlines()
    torn = bool(text) and not text.endswith("\n")
    if torn:
        lines = lines[:-1]
    if not lines:
        return MetricsRead([], torn=torn)
    reader = csv.DictReader(lines)
    if not reader.fieldnames or not {"epoch", "loss", "accuracy"} <= set(reader.fieldnames):
        return MetricsRead([], unreadable="has no epoch, loss and accuracy columns")
    samples = info.get("train_samples")
    rows: dict[int, EpochEnded] = {}
    bad: list[int] = []
    for number, row in enumerate(reader, start=2):
        event = _row_event(row, samples)
        if event is None:
            bad.append(number)
        elif math.isfinite(event.loss):  # a diverged epoch (older versions): not in the model
            rows[event.epoch] = event  # a repeated epoch (an older resume) keeps its latest row
    ordered = [rows[e] for e in sorted(rows)]
    target_epochs = max(hparams.epochs, len(ordered))
    history = [_with_target(e, target_epochs) for e in ordered]
    return MetricsRead(history, torn=torn, bad_lines=tuple(bad))


def _row_event(row: dict[str, Any], samples: object) -> EpochEnded | None:
    """One metrics.csv row as an event, or None when it is not a row of numbers."""
    try:
        epoch = int(row["epoch"]) + 1
        seconds = finite(row.get("epoch_seconds"))
        rate = samples / seconds if isinstance(samples, int) and seconds else None
        event = EpochEnded(
            epoch=epoch,
            target=0,
            loss=float(row["loss"]),
            accuracy=finite(float(row["accuracy"])),
            val_loss=finite(row.get("val_loss")),
            val_accuracy=finite(row.get("val_accuracy")),
            seconds=seconds,
            samples_per_sec=rate,
            learning_rate=finite(row.get("learning_rate")),
        )
    except (TypeError, ValueError):
        return None
    return event if epoch >= 1 else None


def read_history(path: Path, hparams: Hyperparams, info: dict[str, Any]) -> list[EpochEnded]:
    """metrics.csv's usable rows as events (see `read_metrics` for what was not usable)."""
    return read_metrics(path, hparams, info).history


def rebuilt_info(path: Path, history: list[EpochEnded]) -> dict[str, Any]:
    """A run.json made from the folder's name and metrics.csv, for a run whose own is lost."""
    stamp, preset = name_parts(path.name)
    started = parse_time(stamp)
    best: dict[str, Any] | None = None
    for event in history:
        metric = "val_accuracy" if event.val_accuracy is not None else "accuracy"
        value = getattr(event, metric)
        if value is not None and (best is None or value > best["value"]):
            best = {"epoch": event.epoch, "metric": metric, "value": value}
    return {
        "format": FORMAT,
        "preset": preset or "run",
        "started": started.isoformat() if started else now_stamp(),
        "data": "unknown (run.json was rebuilt)",
        "saved": {"epoch": len(history), "iterations": None},
        "best": best,
        "rebuilt": now_stamp(),
    }


def _with_target(event: EpochEnded, target: int) -> EpochEnded:
    return msgspec.structs.replace(event, target=target)


def cut_metrics(target: Path, epochs: int) -> None:
    """Keep the header and the complete rows of numbers of the first `epochs` epochs of
    metrics.csv (the latest row of a repeated epoch): a torn or garbled line is never left for
    the next row to be appended to."""
    text = target.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    if text and not text.endswith("\n"):
        lines = lines[:-1]
    latest: dict[int, str] = {}
    for line in lines[1:]:
        with contextlib.suppress(StopIteration, IndexError, ValueError):
            cells = next(csv.reader([line]))
            epoch = int(cells[0])
            if 0 <= epoch < epochs and all(_number(cell) for cell in cells[1:]):
                latest[epoch] = line
    kept = [latest[epoch] for epoch in sorted(latest)]
    write_atomic(target, "".join(lines[:1] + kept).encode())


def _number(cell: str) -> bool:
    """An empty cell (a metric absent that epoch) or one float() reads."""
    try:
        float(cell or 0)
    except ValueError:
        return False
    return True


def finite(value: object) -> float | None:
    """A number from a record, or None when absent, unparsable or not finite."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def name_parts(name: str) -> tuple[str, str]:
    """(timestamp, preset) of a run folder's name, or empty strings."""
    match = _NAME.match(name)
    return (match.group(1), match.group(2)) if match else ("", "")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, TIME_FORMAT)):
        with contextlib.suppress(ValueError):
            return parse(value)
    return None
