"""The real app in a pseudo-terminal: signals and Ctrl+C mid-training exit cleanly."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

APP = """
import sys
from tui.app import run_app
from tui.core.config import Hyperparams
hp = Hyperparams(epochs=200, batch_size=64, conv_filters=(8,), dense_units=16, train_size=2000)
sys.exit(run_app(hp, data_path=sys.argv[1], log_path=sys.argv[2]))
"""


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
        deadline = time.monotonic() + timeout
        while needle not in self.output and time.monotonic() < deadline:
            self._read(0.1)
        return needle in self.output

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


@pytest.mark.parametrize(
    ("how", "code"),
    [("SIGTERM", 128 + signal.SIGTERM), ("SIGHUP", 128 + signal.SIGHUP), ("ctrl+c", 0)],
)
def test_stops_training_and_exits_cleanly(
    how: str, code: int, shared_data: Path, tmp_path: Path
) -> None:
    log = tmp_path / "tensorflow.log"
    term = Terminal(
        [sys.executable, "-c", APP, str(shared_data / "mnist.npz"), str(log)],
        Path(__file__).resolve().parents[1],
    )
    try:
        assert term.read_until(b"press t to train", 120), term.output[-2000:]
        os.write(term.fd, b"t")
        assert term.read_until(b"samples/s", 120), term.output[-2000:]
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
