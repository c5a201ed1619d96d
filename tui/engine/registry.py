"""Where live engines are found, and who may reach them.

As tmux does with /tmp/tmux-UID/, every engine of a user keeps its socket and a small record in
one directory that only that user can enter (mode 0700): `$XDG_RUNTIME_DIR/mnist-tui/` when
that is set, else `/tmp/mnist-tui-UID/`. Sockets are named by a short engine id, never by the
run directory, so that a deep `--runs-dir` cannot run into the Unix socket path limit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from pathlib import Path

import msgspec

from tui.core.runs.files import write_atomic
from tui.core.runs.lock import pid_alive
from tui.engine.protocol import EngineInfo

SOCKET_PATH_LIMIT = 100
"""Unix socket paths must fit in sun_path (108 bytes on Linux, 104 on macOS), with room."""
STATE_ENV = "MNIST_TUI_STATE_DIR"
"""Overrides where engines live (tests; a shared machine with an odd /tmp)."""
CRASHED_LOG_KEEP = 3 * 86_400.0
"""Seconds the log of an engine that ended without cleaning up is kept for a person to read."""


class RegistryError(Exception):
    """The engine directory cannot be used safely; str(err) says why and what to do."""


def state_dir(create: bool = True) -> Path:
    """The directory holding this user's engine sockets and records, checked to be private.

    Raises:
        RegistryError: it is not a directory, is a link, is someone else's, or others can
            enter it.
    """
    override = os.environ.get(STATE_ENV)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if override:
        folder = Path(override)
    elif runtime and Path(runtime).is_dir() and len(runtime) < SOCKET_PATH_LIMIT - 30:
        folder = Path(runtime) / "mnist-tui"
    else:
        folder = Path("/tmp") / f"mnist-tui-{os.getuid()}"
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=False)
    try:
        info = folder.lstat()
    except FileNotFoundError:
        if not create:
            return folder
        raise RegistryError(f"{folder} could not be created") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise RegistryError(f"{folder} is not a directory; remove it so mnist-tui can make one.")
    if info.st_uid != os.getuid():
        raise RegistryError(
            f"{folder} belongs to user {info.st_uid}, not you; remove it, or set {STATE_ENV}."
        )
    if info.st_mode & 0o077:
        raise RegistryError(
            f"{folder} can be entered by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 700 {folder}`."
        )
    return folder


def new_engine_id() -> str:
    return secrets.token_hex(4)


def socket_path(engine_id: str) -> Path:
    path = state_dir() / f"{engine_id}.sock"
    if len(str(path)) > SOCKET_PATH_LIMIT:
        raise RegistryError(
            f"the engine socket path {path} is too long for a Unix socket; set {STATE_ENV} "
            "to a shorter folder."
        )
    return path


def record_path(engine_id: str) -> Path:
    return state_dir() / f"{engine_id}.json"


def log_path(engine_id: str) -> Path:
    return state_dir() / f"{engine_id}.log"


def prune_logs(keep: float = CRASHED_LOG_KEEP) -> None:
    """Remove the logs of engines that are gone and were last written over `keep` seconds ago:
    an engine that ends cleanly removes its own, so these are the crashed ones, read or not."""
    folder = state_dir(create=False)
    live = {info.id for info in live_engines()}
    now = time.time()
    for path in folder.glob("*.log"):
        with contextlib.suppress(OSError):
            if path.stem not in live and now - path.stat().st_mtime > keep:
                path.unlink()


def write_record(info: EngineInfo, *also: Path) -> None:
    """Write the engine's record (and a copy at each of `also`, e.g. the run's engine.json)."""
    data = msgspec.json.format(msgspec.json.encode(info)) + b"\n"
    for target in (record_path(info.id), *also):
        with contextlib.suppress(OSError):
            write_atomic(target, data)


def remove_record(info: EngineInfo, *also: Path) -> None:
    for target in (record_path(info.id), Path(info.socket), *also):
        with contextlib.suppress(OSError):
            target.unlink()


def live_engines() -> list[EngineInfo]:
    """The records of this user's engines whose process still runs, newest first; the records
    of engines that died without cleaning up are removed."""
    folder = state_dir(create=False)
    if not folder.is_dir():
        return []
    found: list[EngineInfo] = []
    for record in folder.glob("*.json"):
        try:
            info = msgspec.json.decode(record.read_bytes(), type=EngineInfo)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        if pid_alive(info.pid):
            found.append(info)
        else:
            remove_record(info)
    return sorted(found, key=lambda info: info.started, reverse=True)


def find_engine(run: str | None) -> EngineInfo | None:
    """The live engine training `run` (a run directory or its name), or the newest one."""
    engines = live_engines()
    if run is None:
        return engines[0] if engines else None
    wanted = Path(run).expanduser()
    for info in engines:
        if not info.run:
            continue
        path = Path(info.run)
        if path.name == wanted.name and (len(wanted.parts) == 1 or _same(path, wanted)):
            return info
    return None


def _same(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve()
    return False
