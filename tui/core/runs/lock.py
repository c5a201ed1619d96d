"""One writer per run directory: an advisory `flock` on `<run>/.lock`, held while training.

The kernel drops a `flock` when its process dies, however it dies, so a lock left by a killed
process is never obeyed: the file may still name the dead pid, but nobody holds it. The pid and
what the holder is are written into the file only so that the refusal can say who it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from tui.core.runs.layout import LOCK, RunError, now_stamp

RETRY_SECONDS = 0.5
"""How long to keep trying: another process may be probing the lock (see `is_locked`)."""


class RunBusy(RunError):
    """Another live process trains into this run."""


class RunLock:
    """The exclusive lock of one run directory; `release()` (or exit) gives it up."""

    def __init__(self, run_path: Path, holder: str) -> None:
        """
        Args:
            run_path: the run directory.
            holder: what holds it, for the refusal others see ("mnist-tui train", "engine").
        """
        self.path = run_path / LOCK
        self.holder = holder
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None
        """What the lock file said when it was taken over from a dead process."""

    def acquire(self) -> RunLock:
        """Take the lock, or raise `RunBusy` naming the live holder."""
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise RunError(
                f"cannot lock {self.path.parent}: {err.strerror or err}; is the folder writable?"
            ) from None
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                owner = _read(fd)
                os.close(fd)
                raise RunBusy(busy_sentence(self.path.parent, owner)) from None
        previous = _read(fd)
        if previous and previous.get("pid") != os.getpid():
            self.stale = previous
        record = {"pid": os.getpid(), "holder": self.holder, "since": now_stamp()}
        # The record only names the holder in a refusal: a full disk must not leave the lock
        # taken by a descriptor nobody holds.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(run_path: Path) -> dict[str, Any] | None:
    """What the live holder of a run's lock wrote, or None when nobody holds it.

    Probes with a shared lock, which an exclusive holder blocks; a writer that meets the probe
    retries for `RETRY_SECONDS`.
    """
    path = run_path / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {"pid": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(fd: int) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw.decode() or "{}")
        if isinstance(value, dict):
            return value
    return {}


def busy_sentence(run: Path, owner: dict[str, Any]) -> str:
    who = owner.get("holder") or "another process"
    pid = owner.get("pid")
    since = owner.get("since")
    detail = f" (pid {pid}" + (f", since {since}" if since else "") + ")" if pid else ""
    if str(who).startswith("engine"):
        return (
            f"run {run.name} is being trained by an engine{detail}; follow and steer it "
            f"with `mnist-tui attach {run.name}`, or stop it with `mnist-tui stop {run.name}`."
        )
    return f"run {run.name} is being trained by {who}{detail}; wait until it ends."
