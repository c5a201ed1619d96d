"""The app and its terminal (issue 29): no start without one, an exit when it hangs up without
a SIGHUP, and Ctrl+Z and `fg` as in other full-screen programs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app_signals import SAMPLE, TRAIN, Terminal, app, started_training, the_engine, wait_gone

from tui.core.runs.lock import pid_alive
from tui.engine import registry
from tui.terminal import TerminalWatch

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def pseudo_terminal() -> Iterator[tuple[int, int]]:
    """A pty's (master, slave) descriptors, both closed afterwards if still open."""
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.mark.parametrize(
    ("argv", "stdin_is_tty", "named"),
    [
        ([], False, "stdin"),
        ([], True, "stdout"),
        (["attach"], False, "stdin"),
    ],
    ids=["app-stdin-devnull", "app-stdout-pipe", "attach-stdin-devnull"],
)
def test_without_a_terminal_the_app_refuses_in_one_line(
    tmp_path: Path, argv: list[str], stdin_is_tty: bool, named: str
) -> None:
    """`ssh host 'mnist-tui attach </dev/null'` wrote the whole TUI into the pipe at 99% CPU."""
    with pseudo_terminal() as (_, slave):
        done = subprocess.run(
            [sys.executable, "-m", "tui", *argv, "--data", str(SAMPLE)]
            if not argv
            else [sys.executable, "-m", "tui", *argv],
            stdin=slave if stdin_is_tty else subprocess.DEVNULL,
            capture_output=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "c")},
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stdout == b"", "nothing drawn"
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith("mnist-tui: error: the app needs a terminal")
    assert f"its {named} is not one" in line and "mnist-tui train" in line
    assert registry.live_engines() == [], "no engine started"


def test_the_watch_sees_a_hang_up_and_nothing_else() -> None:
    with pseudo_terminal() as (master, slave):
        told = threading.Event()
        watch = TerminalWatch((slave,), on_gone=told.set)
        watch.start()
        try:
            os.write(master, b"keys")  # input is not a hang-up
            assert not told.wait(0.3), "told while the terminal lived"
            os.close(master)
            assert told.wait(1.0), "the hang-up went unnoticed"
        finally:
            watch.stop()


class OwnSessionTerminal(Terminal):
    """The app on a pty it does not control: in a session of its own (as under `su -c` in a
    tmux pane), so that closing the pty's master sends it no SIGHUP."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.output = b""
        self.status = None
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "XDG_CACHE_HOME": str(cwd / "cache")}
        child = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.pid, self.fd = child.pid, master

    def hang_up(self) -> float:
        """Close the pty's master, as a terminal emulator or tmux does; returns the CPU
        seconds the app had used until then."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        os.close(self.fd)
        self.fd = -1
        return used

    def wait_exit(self, timeout: float) -> tuple[int, float] | None:
        """The exit code and the CPU seconds used in all, or None if still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status, usage = os.wait4(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status, usage.ru_utime + usage.ru_stime
            time.sleep(0.1)
        return None

    def close(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        if self.fd >= 0:
            os.close(self.fd)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_terminal_gone_without_sighup_detaches_and_training_goes_on(tmp_path: Path) -> None:
    """`tmux kill-session` over `su -c 'mnist-tui'`: the app spun at half a core for as long
    as nobody killed it, and kept its engine."""
    argv = [sys.executable, "-m", "tui", "--data", str(SAMPLE), "--runs-dir",
            str(tmp_path / "runs"), *TRAIN]  # fmt: skip
    term = OwnSessionTerminal(argv, tmp_path)
    try:
        started_training(term)
        engine = the_engine()
        used_before = term.hang_up()
        hung_up = time.monotonic()
        ended = term.wait_exit(15)
        assert ended is not None, "the app outlived its terminal"
        # Detached as on SIGHUP, at once, without burning a core on the way out.
        code, used = ended
        assert code == 128 + signal.SIGHUP
        assert time.monotonic() - hung_up < 5.0
        assert used - used_before < 2.0
    finally:
        term.close()
    assert pid_alive(engine.pid), "the engine trains on without its terminal"
    os.kill(engine.pid, signal.SIGTERM)
    assert wait_gone(engine.pid, 60)


def process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat: R, S, T (stopped) ..."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_z_suspends_and_fg_redraws_the_whole_screen(tmp_path: Path) -> None:
    """Ctrl+Z did nothing; after `kill -TSTP` and `fg` the screen stayed blank until each part
    was redrawn by a key."""
    term = app(tmp_path, "--data", str(SAMPLE), "--runs-dir", str(tmp_path / "runs"))
    try:
        assert term.read_until(b"press t to train", 120), term.output[-3000:]
        engine = the_engine()
        term.type(b"\x1a")  # Ctrl+Z
        assert term.poll_until(lambda: process_state(term.pid) == "T", 10), "not suspended"
        assert term.output.endswith(b"\x1b[?1049l\x1b[?25h\x1b[?1004l"), "terminal not restored"
        before = len(term.output)
        os.kill(term.pid, signal.SIGCONT)  # what `fg` sends
        # The whole dashboard again, unasked, not only the parts that change next.
        assert term.poll_until(lambda: words(term.output[before:]) >= SCREEN, 20), SCREEN - words(
            term.output[before:]
        )
        assert process_state(term.pid) != "T"
        term.type(b"q")
        assert term.wait(30) == 0
    finally:
        term.close()
    assert wait_gone(engine.pid, 30)


SCREEN = {b"CPU", b"ready", b"Accuracy", b"press", b"Browse", b"Quit"}
"""Words from each part of the idle dashboard: the status bar, the curves, the log, the footer."""


def words(output: bytes) -> set[bytes]:
    """The words painted, escape sequences taken out."""
    return set(re.sub(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]", b" ", output).split())
