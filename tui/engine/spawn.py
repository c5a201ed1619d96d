"""Starting an engine in the background: its own session, stdin closed, output to a log.

The engine outlives the terminal that started it: `start_new_session` puts it out of reach of
the terminal's SIGHUP, and with stdin closed and its output in a file, nothing ties it to the
terminal at all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tui.core.settings.requests import Setup
from tui.engine import registry

READY_TIMEOUT = 30.0
"""Seconds to wait for a new engine's socket (it binds before TensorFlow loads)."""


class EngineStart(msgspec.Struct, frozen=True):
    """What a new engine is told to do: sent as its only argument, as JSON."""

    id: str
    socket: str
    log: str
    setup: Setup
    resume: str | None = None
    """A run directory to open once loaded."""
    model: str | None = None
    """A model file to open once loaded."""
    train: bool = False
    """Start a round once loaded (and opened): `train --detach`."""
    resume_epochs: int | None = None
    """With `resume` and `train`: the new epoch target."""
    idle_grace: float = 60.0
    """Seconds an engine with nothing to do waits for its first viewer before it ends."""


@dataclass(frozen=True)
class SpawnedEngine:
    start: EngineStart
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return self.start.socket

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 5) -> str:
        """The end of the engine's log, for a start-up that failed."""
        try:
            text = Path(self.start.log).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


class SpawnError(Exception):
    """The engine could not be started or did not come up; str(err) says why."""


def spawn_engine(
    setup: Setup,
    *,
    resume: str | None = None,
    model: str | None = None,
    train: bool = False,
    resume_epochs: int | None = None,
) -> SpawnedEngine:
    """Start an engine process in the background; returns at once (see `wait_for_socket`).

    Raises:
        SpawnError: the engine directory is unsafe or the process cannot start.
    """
    try:
        engine_id = registry.new_engine_id()
        socket = registry.socket_path(engine_id)
        log = registry.log_path(engine_id)
        registry.prune_logs()
    except registry.RegistryError as err:
        raise SpawnError(str(err)) from None
    start = EngineStart(
        engine_id,
        str(socket),
        str(log),
        _absolute(setup),
        resume=str(Path(resume).resolve()) if resume else None,
        model=str(Path(model).resolve()) if model else None,
        train=train,
        resume_epochs=resume_epochs,
    )
    try:
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "tui.engine", msgspec.json.encode(start).decode()],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as err:
        raise SpawnError(f"the engine could not be started: {err.strerror or err}") from None
    return SpawnedEngine(start, process)


def _absolute(setup: Setup) -> Setup:
    """Paths made absolute, so the engine means the same files from any folder."""
    import dataclasses

    from tui.core.runs.layout import runs_root

    data = str(Path(setup.data_path).expanduser().resolve()) if setup.data_path else None
    runs = str(runs_root(setup.runs_dir).expanduser().resolve())
    models = str(Path(setup.models_dir).expanduser().resolve())
    return dataclasses.replace(setup, data_path=data, runs_dir=runs, models_dir=models)


def wait_for_socket(engine: SpawnedEngine, timeout: float = READY_TIMEOUT) -> None:
    """Block until the engine's socket exists, or raise `SpawnError` with its log's end."""
    deadline = time.monotonic() + timeout
    path = Path(engine.socket)
    while not path.exists():
        code = engine.process.poll()
        if code is not None:
            tail = engine.log_tail()
            raise SpawnError(
                f"the engine ended at start-up (exit {code})" + (f": {tail}" if tail else "")
            )
        if time.monotonic() > deadline:
            raise SpawnError(f"the engine did not open {path} within {timeout:.0f} s")
        time.sleep(0.01)


__all__ = ["EngineStart", "SpawnError", "SpawnedEngine", "spawn_engine", "wait_for_socket"]
