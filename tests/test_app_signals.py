"""The real app in a pseudo-terminal: signals and Ctrl+C mid-training exit cleanly, and leave
a complete run directory behind."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

APP = """
import sys
from tui.app import run_app
from tui.core.config import Hyperparams
hp = Hyperparams(epochs=200, batch_size=64, conv_filters=(8,), dense_units=16, train_size=2000)
code = run_app(
    hp, data_path=sys.argv[1], log_path=sys.argv[2], runs_dir=sys.argv[3], tensorboard=True
)
sys.exit(code)
"""
EPOCH_LINE = re.compile(rb"epoch {2,}(\d+)/200")
"""An epoch's line in the training log (the progress bar's `epoch N/200` has one space)."""
TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


class Terminal:
    """A child process on a pty, with everything it wrote kept for inspection."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.output = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: become the app
            os.chdir(cwd)
            os.environ["TERM"] = "xterm-256color"
            os.execv(argv[0], argv)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.status: int | None = None

    def read_until(self, needle: bytes, timeout: float) -> bool:
        return self.poll_until(lambda: needle in self.output, timeout)

    def poll_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Keep reading the screen (the app blocks if nobody does) until `condition` holds."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self._read(0.1)
        return condition()

    def _read(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            # OSError: the child has closed the terminal.
            with contextlib.suppress(OSError):
                self.output += os.read(self.fd, 65536)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.05)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        return None

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def _saved_epochs(runs_root: Path) -> int:
    """The epoch the run's last.keras holds, from run.json; 0 before the first save."""
    for info in runs_root.glob("*/run.json"):
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(info.read_text()).get("saved", {}).get("epoch", 0))
    return 0


@pytest.mark.parametrize(
    ("how", "code"),
    [("SIGTERM", 128 + signal.SIGTERM), ("SIGHUP", 128 + signal.SIGHUP), ("ctrl+c", 0)],
)
def test_stops_training_and_exits_cleanly(
    how: str, code: int, shared_data: Path, tmp_path: Path
) -> None:
    log = tmp_path / "tensorflow.log"
    runs_root = tmp_path / "runs"
    term = Terminal(
        [sys.executable, "-c", APP, str(shared_data / "mnist.npz"), str(log), str(runs_root)],
        Path(__file__).resolve().parents[1],
    )
    try:
        assert term.read_until(b"press t to train", 120), term.output[-2000:]
        os.write(term.fd, b"t")
        assert term.read_until(b"samples/s", 120), term.output[-2000:]
        # One epoch recorded (metrics row, last.keras, run.json) before the signal lands.
        assert term.poll_until(lambda: _saved_epochs(runs_root) >= 1, 60), term.output[-2000:]
        if how == "ctrl+c":
            os.write(term.fd, b"\x03")
        else:
            os.kill(term.pid, getattr(signal, how))
        assert term.wait(60) == code
    finally:
        term.close()
    # Textual restored the terminal: it left the alternate screen on the way out.
    assert b"\x1b[?1049l" in term.output
    # TensorFlow's native chatter went to the log file, not over the screen.
    assert b"oneDNN" not in term.output and b"absl" not in term.output
    assert log.exists()
    if not TENSORBOARD:
        # --tensorboard without the package: one warning, and training went on without it.
        assert b"No TensorBoard" in term.output

    # The run directory is complete: listed without a problem, resumable after the epochs the
    # training log reported as finished (the interrupted epoch is not among them). An epoch's
    # log line is posted before its checkpoint is written, so every saved epoch is on screen.
    from tui.core import runs

    finished = max(int(n) for n in EPOCH_LINE.findall(term.output))
    assert finished >= 1
    [summary] = runs.list_runs(runs_root)
    assert summary.problem is None, summary.problem
    assert summary.epochs_done == finished
    resumed = runs.resume(summary.path)
    assert resumed.epochs_done == finished
    assert [e.epoch for e in resumed.history] == list(range(1, finished + 1))
