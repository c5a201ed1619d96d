"""TensorFlow and Keras start-up: quiet logging, device facts, native stderr redirection."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
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


def import_keras() -> ModuleType:
    """Import Keras (and its TensorFlow backend) quietly; returns the `keras` module."""
    quiet_tensorflow()
    import keras

    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return keras  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DeviceInfo:
    """What TensorFlow trains on."""

    kind: str
    """"GPU" or "CPU"."""
    name: str
    """Human name, e.g. "NVIDIA A100-SXM4-40GB" or "CPU (2 threads)"."""
    count: int
    """How many devices of that kind TensorFlow sees."""

    def describe(self) -> str:
        return self.name if self.count <= 1 else f"{self.count}x {self.name}"


def device_info() -> DeviceInfo:
    """The device training will use, as TensorFlow sees it (CPU when there is no GPU)."""
    import_keras()
    try:
        import tensorflow as tf
    except ImportError:  # another Keras backend
        import keras

        return DeviceInfo("CPU", f"CPU ({keras.backend.backend()} backend)", 1)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return DeviceInfo("GPU", str(details.get("device_name", "GPU")), len(gpus))
    return DeviceInfo("CPU", f"CPU ({os.cpu_count() or 1} cores)", 1)


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
