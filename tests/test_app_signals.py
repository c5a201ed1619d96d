"""The real app in a pseudo-terminal, on a real engine process: a closed terminal (SIGHUP)
leaves training running, `mnist-tui attach` comes back to all of it, `q` while training asks,
and an engine that dies is noticed within two seconds and can be resumed."""

from __future__ import annotations

import contextlib
import csv
import fcntl
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

from tui.core.runs.lock import pid_alive
from tui.engine import registry
from tui.engine.protocol import EngineInfo

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty"),
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tui" / "sample" / "mnist_sample.npz"
EPOCHS = 8
TRAIN = ["--epochs", str(EPOCHS), "--train-size", "3000", "--conv-filters", "8",
         "--dense-units", "16", "--batch-size", "64"]  # fmt: skip


def epoch_lines(output: bytes) -> set[int]:
    """Epochs whose log line (`epoch 3/8  loss ...`) reached the screen."""
    plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", output)
    return {int(n) for n in re.findall(rb"epoch +(\d+)/%d +loss" % EPOCHS, plain)}


class Terminal:
    """A child process on a pty, with everything it wrote kept for inspection."""

    def __init__(self, argv: list[str], cwd: Path, size: tuple[int, int] = (120, 40)) -> None:
        self.output = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: become the app
            os.chdir(cwd)
            os.environ["TERM"] = "xterm-256color"
            # The child's own cache, so that nothing the app writes outlives the test.
            os.environ["XDG_CACHE_HOME"] = str(cwd / "cache")
            os.execv(argv[0], argv)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.status: int | None = None

    def read_until(self, needle: bytes, timeout: float) -> bool:
        return self.poll_until(lambda: needle in self.output, timeout)

    def poll_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Keep reading the screen (the app blocks if nobody does) until `condition` holds."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self._read(0.05)
        return condition()

    def _read(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            with contextlib.suppress(OSError):  # the child has closed the terminal
                self.output += os.read(self.fd, 65536)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

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
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def app(tmp_path: Path, *args: str) -> Terminal:
    env_args = [sys.executable, "-m", "tui", *args]
    return Terminal(env_args, tmp_path)


def the_engine() -> EngineInfo:
    engines = registry.live_engines()
    assert len(engines) == 1, engines
    return engines[0]


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def started_training(term: Terminal) -> None:
    assert term.read_until(b"press t to train", 120), term.output[-3000:]
    term.type(b"t")
    assert term.poll_until(lambda: 1 in epoch_lines(term.output), 120), term.output[-3000:]


def test_a_closed_terminal_leaves_training_running_and_attach_shows_it_all(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    term = app(tmp_path, "--data", str(SAMPLE), "--runs-dir", str(runs), *TRAIN)
    try:
        started_training(term)
        engine = the_engine()
        os.kill(term.pid, signal.SIGHUP)
        assert term.wait(30) == 128 + signal.SIGHUP
    finally:
        term.close()
    # Textual restored the terminal, and no TensorFlow chatter reached it.
    assert b"\x1b[?1049l" in term.output
    assert b"oneDNN" not in term.output and b"absl" not in term.output
    assert pid_alive(engine.pid), "the engine trains on without its terminal"

    viewer = app(tmp_path, "attach")
    try:
        # The whole history first (every epoch so far), then live ones, to the end.
        assert viewer.poll_until(lambda: set(range(1, EPOCHS + 1)) <= epoch_lines(viewer.output),
                                 180), viewer.output[-3000:]  # fmt: skip
        assert viewer.read_until(b"test accuracy", 60)
        viewer.type(b"q")
        assert viewer.wait(30) == 0
    finally:
        viewer.close()
    assert wait_gone(engine.pid, 30), "nothing to do and nobody watching: the engine ends"
    (run,) = runs.iterdir()
    epochs = [int(row["epoch"]) for row in csv.DictReader((run / "metrics.csv").open())]
    assert epochs == list(range(EPOCHS)), "each epoch recorded once"


def test_q_while_training_offers_to_leave_it_running(tmp_path: Path) -> None:
    term = app(tmp_path, "--data", str(SAMPLE), "--runs-dir", str(tmp_path / "runs"), *TRAIN)
    try:
        started_training(term)
        engine = the_engine()
        term.type(b"q")
        assert term.read_until(b"Leave it training", 10), term.output[-3000:]
        term.type(b"l")
        assert term.wait(30) == 0
    finally:
        term.close()
    # The way back is printed once the app has left the screen.
    assert b"mnist-tui attach" in term.output.split(b"\x1b[?1049l")[-1]
    assert pid_alive(engine.pid)
    os.kill(engine.pid, signal.SIGTERM)
    assert wait_gone(engine.pid, 60)


def test_a_killed_engine_is_noticed_and_its_run_resumed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    term = app(tmp_path, "--data", str(SAMPLE), "--runs-dir", str(runs), *TRAIN)
    try:
        started_training(term)
        engine = the_engine()
        os.kill(engine.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert term.read_until(b"The engine is gone", 10), term.output[-3000:]
        assert time.monotonic() - killed < 2.0
        assert term.read_until(b"Resume it", 10)
        term.type(b"y")
        assert term.read_until(b"resumed", 120), term.output[-3000:]
        fresh = the_engine()
        assert fresh.pid != engine.pid and fresh.run == engine.run
        term.type(b"q")
        assert term.wait(30) == 0
    finally:
        term.close()
    assert wait_gone(fresh.pid, 30)


def kept_checkpoint(runs: Path) -> Path | None:
    """The run under `runs` once it has kept an epoch's checkpoint."""
    return next((found.parent.parent for found in runs.glob("*/checkpoints/*")), None)


def test_b_while_training_opens_the_branch_in_an_engine_of_its_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    long = ["--epochs", "500", *TRAIN[2:]]
    term = app(tmp_path, "--data", str(SAMPLE), "--runs-dir", str(runs), *long)
    engines: list[EngineInfo] = []
    try:
        assert term.read_until(b"press t to train", 120), term.output[-3000:]
        term.type(b"t")
        assert term.poll_until(lambda: kept_checkpoint(runs) is not None, 120), term.output[-3000:]
        parent = kept_checkpoint(runs)
        assert parent is not None
        trainer = the_engine()
        term.type(b"b")
        assert term.read_until(b"Enter branches", 20), term.output[-3000:]
        term.type(b"\r")
        runs_trained = lambda: {e.run for e in registry.live_engines()}  # noqa: E731
        assert term.poll_until(lambda: len(runs_trained() - {""}) == 2, 120), term.output[-3000:]
        engines = registry.live_engines()
        (branch,) = [p for p in runs.iterdir() if p != parent]
        lineage = json.loads((branch / "run.json").read_text())["lineage"]
        assert lineage["parent_name"] == parent.name
        assert runs_trained() == {str(parent), str(branch)}
        # The parent trains on in its own engine, which this app no longer watches.
        assert pid_alive(trainer.pid)
        said = lambda: re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", term.output)  # noqa: E731
        assert term.poll_until(lambda: b"background" in said(), 30), said()[-3000:]
        term.type(b"q")
        assert term.wait(30) == 0
    finally:
        term.close()
        for engine in engines:
            with contextlib.suppress(ProcessLookupError):
                os.kill(engine.pid, signal.SIGTERM)
    for engine in engines:
        assert wait_gone(engine.pid, 60)
