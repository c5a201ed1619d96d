"""Keeping TensorFlow's output off the terminal: its log level, its native stderr in a file,
Python warnings and logging in the same file. No TensorFlow is imported here."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python logging off the terminal.

    Must run before TensorFlow is first imported: the C++ log level is read once at load time.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN prints a banner about numerical differences on import; it is noise for users.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"))
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def tensorflow_log_path() -> Path:
    """Where TensorFlow's native output and Python warnings go: the user's cache directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "mnist-tui" / "tensorflow.log"


@contextlib.contextmanager
def native_stderr_to(path: str | Path) -> Iterator[TextIO]:
    """Point file descriptor 2 at `path` while keeping Python's stderr on the terminal.

    TensorFlow's C++ runtime writes straight to descriptor 2, below Python, so a TUI painted on
    the terminal would be scribbled over. The terminal stays reachable through a duplicate
    descriptor, which becomes `sys.stderr` and `sys.__stderr__` (Textual paints on the latter).

    Yields:
        The terminal stream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace")
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    old_stderr, old_dunder = sys.stderr, sys.__stderr__
    sys.stderr = sys.__stderr__ = terminal  # type: ignore[misc]
    try:
        yield terminal
    finally:
        with contextlib.suppress(OSError, ValueError):
            terminal.flush()
        sys.stderr, sys.__stderr__ = old_stderr, old_dunder  # type: ignore[misc]
        os.dup2(saved, 2)
        os.close(saved)
        with contextlib.suppress(OSError):
            terminal.close()


@contextlib.contextmanager
def quiet_runtime(log_path: Path) -> Iterator[None]:
    """Send native stderr, Python warnings and library logging to `log_path`.

    TensorFlow must be imported inside this: its C++ runtime writes banners to descriptor 2 at
    import time, under Python, where nothing else can catch them. Warnings go through logging
    (`logging.captureWarnings`), so one handler on the root logger takes both.
    """
    with native_stderr_to(log_path), open(log_path, "a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
