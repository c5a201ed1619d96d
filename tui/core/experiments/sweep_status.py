"""A live sweep as others see it: the status file its process keeps in the folder, the lock it
holds while it lives, and the records by which `ps` and `stop` find it from anywhere.

No Optuna here: `ps` reads a sweep's progress from this small file instead of the study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.runs.files import write_json
from tui.core.runs.layout import now_stamp
from tui.errors import PROG

SWEEP_JSON = "sweep.json"
"""What makes a folder a sweep's: its settings (`study.py` writes it)."""
STATUS_JSON = "status.json"
LOCK_FILE = "sweep.lock"
LOG_FILE = "sweep.log"
"""A detached sweep's output, and a foreground one's after its terminal hung up."""
DEFAULT_ROOT = Path("sweeps")
"""Where sweeps are made unless `--out` says otherwise, and looked for by name."""
RECORDS = "sweeps"
"""The folder, in the engines' private state directory, of one record per live sweep."""


@dataclass(frozen=True)
class SweepStatus:
    """What the sweep's process is doing, rewritten (atomically) as each trial starts and ends."""

    pid: int
    phase: str
    """starting, running, stopping (after the trial in progress), stopping now, or ended."""
    trials: int | None
    """Trials to finish; None: no limit (a time budget)."""
    finished: int = 0
    """Trials complete or pruned, over every process on the study."""
    running: tuple[int, ...] = ()
    """The numbers of the trials in progress."""
    best_trial: int | None = None
    best_value: float | None = None
    started: str = ""

    @property
    def progress(self) -> str:
        """ "trial 3 of 10": the trial in progress (or the next one), counted from 1."""
        current = self.finished + max(len(self.running), 1)
        if self.trials is None:
            return f"trial {current}"
        return f"trial {min(current, self.trials)} of {self.trials}"

    @property
    def best(self) -> str:
        """ "97.10% (trial 2)", or "-" before a trial completes."""
        if self.best_value is None or self.best_trial is None:
            return "-"
        return f"{self.best_value:.2%} (trial {self.best_trial})"

    def with_phase(self, phase: str) -> SweepStatus:
        return dataclasses.replace(self, phase=phase)


def write_status(folder: Path, status: SweepStatus) -> None:
    data = dataclasses.asdict(status)
    data["running"] = list(status.running)
    with contextlib.suppress(OSError):  # a full disk must not stop the trials
        write_json(folder / STATUS_JSON, data)


def read_status(folder: Path) -> SweepStatus | None:
    """The status its process last wrote; None when there is none or it cannot be read."""
    try:
        data: dict[str, Any] = json.loads((folder / STATUS_JSON).read_text(encoding="utf-8"))
        data["running"] = tuple(data.get("running", ()))
        return SweepStatus(**data)
    except (OSError, ValueError, TypeError):
        return None


class SweepLock:
    """Held by the process that drives a sweep for as long as it lives; the kernel lets it go
    however that process ends, so a held lock means a live sweep and never a stale one."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_live(folder: Path) -> bool:
    """Whether a process drives the sweep in `folder` now."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        # A shared probe: it never blocks the owner, only tells whether one holds it.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def register(state_dir: Path, folder: Path) -> Path:
    """Record this process's sweep where `ps` looks; the record's path, to remove at the end."""
    records = state_dir / RECORDS
    records.mkdir(mode=0o700, exist_ok=True)
    record = records / f"{os.getpid()}.json"
    write_json(record, {"path": str(folder), "pid": os.getpid(), "started": now_stamp()})
    return record


def live_sweeps(state_dir: Path) -> list[Path]:
    """The folders of this user's live sweeps, newest first, each once; records of ended ones
    removed. (A sweep killed outright leaves its record, and `--resume` adds another for the
    same folder while the first still reads as live.)"""
    records = state_dir / RECORDS
    found: dict[Path, tuple[str, Path]] = {}
    for record in records.glob("*.json") if records.is_dir() else ():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            folder = Path(data["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_live(folder):
            started = str(data.get("started", ""))
            key = folder.resolve()
            found[key] = max(found.get(key, (started, folder)), (started, folder))
        else:
            with contextlib.suppress(OSError):
                record.unlink()
    return [folder for _, folder in sorted(found.values(), reverse=True)]


def find_sweep(state_dir: Path, name: str, root: Path) -> Path | None:
    """The sweep `name` means: a sweep folder, a live sweep's folder name, or a folder under
    `root` (./sweeps); None when it names no sweep."""
    for candidate in (Path(name).expanduser(), root / name):
        if (candidate / SWEEP_JSON).is_file():
            return candidate.resolve()
    for folder in live_sweeps(state_dir):
        if folder.name == name:
            return folder
    return None


class SweepNotRunning(Exception):
    """No process drives the sweep, or it cannot be signalled; str(err) says so in a sentence."""


def stop_sweep(folder: Path, now: bool) -> SweepStatus:
    """Signal the sweep's process: SIGTERM lets the trial in progress finish, SIGINT (as
    Ctrl+C) stops it now, to be re-run by `sweep --resume`; the status it was in."""
    status = read_status(folder)
    if status is None or not is_live(folder):
        raise SweepNotRunning(
            f"the sweep {folder.name} is not running; `{PROG} sweep --resume {folder}` "
            "carries it on."
        )
    try:
        os.kill(status.pid, signal.SIGINT if now else signal.SIGTERM)
    except OSError as err:
        raise SweepNotRunning(
            f"the sweep {folder.name} (pid {status.pid}) cannot be signalled: "
            f"{err.strerror or err}."
        ) from None
    return status
