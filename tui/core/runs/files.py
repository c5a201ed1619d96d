"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry to disk; a rename is only durable once its directory is."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replacing(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    The temporary file lives in the same directory so that `os.replace` is a rename on one file
    system, which POSIX makes atomic: readers see the old file or the new one, never half of one.
    On failure the temporary file is removed and `target` is left as it was.
    """
    fd, name = tempfile.mkstemp(suffix=suffix, prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(name)
    try:
        try:
            # mkstemp makes the file 0600; what replaces `target` gets the mode a new file would.
            os.fchmod(fd, _new_file_mode())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(target.parent)


def _new_file_mode() -> int:
    """0666 less the umask, read without setting it (setting it would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644


def write_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` so that a crash leaves either the old or the new content."""
    with replacing(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: Path, value: dict[str, Any]) -> None:
    write_atomic(target, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def check_writable(folder: Path) -> None:
    """Make `folder` (and its parents) and write a file in it, or raise the `OSError` that
    training would otherwise meet only at its end."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".mnist-tui-check-"):
        pass


def reserve_unique(target: Path) -> Path:
    """Create an empty file at `target`, or at `<stem>-2<suffix>`, `-3`, ... if that exists,
    and return its path: two processes saving at the same second never share a name.

    Raises:
        OSError: the folder cannot be created or written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = target, 1
    while True:
        try:
            with open(candidate, "x"):
                return candidate
        except FileExistsError:
            number += 1
            candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
