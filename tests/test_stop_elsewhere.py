"""`mnist-tui stop` from another login (issue 29, case 13): the attached app says who stopped
the training and from where, and `ps` right after the stop says "stopping". A real engine
process, the real `stop` and `ps` commands, `stop` on a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import log_text, logged, until
from tiny import TINY

from tui.app import create_app
from tui.core.settings.requests import AppOptions, Setup
from tui.core.training.phase import Phase
from tui.engine.connect import SocketConnector
from tui.engine.spawn import SpawnedEngine, spawn_engine, wait_for_socket

SAMPLE = Path(__file__).resolve().parents[1] / "tui" / "sample" / "mnist_sample.npz"
SLOW = TINY.with_changes(
    epochs=1000, train_size=6000, batch_size=16, conv_filters=(32, 64), dense_units=128
)
"""Epochs of seconds: a stop asked for mid-epoch is still pending when `ps` looks."""
SSH = "10.0.0.5 51234 10.0.0.1 22"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SpawnedEngine]:
    setup = Setup(SLOW, preset="tiny", data_path=str(SAMPLE), runs_dir=str(tmp_path / "runs"))
    spawned = spawn_engine(setup, train=True)
    wait_for_socket(spawned)
    try:
        yield spawned
    finally:
        with contextlib.suppress(ProcessLookupError):
            spawned.process.send_signal(signal.SIGTERM)
        spawned.process.wait(60)


def stop_from_another_login(*args: str) -> tuple[int, str, str]:
    """`mnist-tui stop ARGS` as if typed over ssh: on a pseudo-terminal of its own, with the
    ssh client's address in SSH_CONNECTION. Returns its exit code, what it printed and the
    terminal's name."""
    master, slave = pty.openpty()
    terminal = os.ttyname(slave).removeprefix("/dev/")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tui", "stop", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "SSH_CONNECTION": SSH},
            timeout=120,
        )
        os.set_blocking(master, False)
        with contextlib.suppress(OSError):
            said = os.read(master, 65536).decode(errors="replace")
    finally:
        os.close(slave)
        os.close(master)
    return done.returncode, said, terminal


async def test_a_stop_from_another_login_says_who_and_where(engine: SpawnedEngine) -> None:
    app = create_app(AppOptions(engine.start.setup), SocketConnector(engine.socket))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot, lambda: app.phase is Phase.TRAINING and app.snapshot.progress is not None
        )
        code, said, terminal = stop_from_another_login()
        assert code == 0, said
        ps = subprocess.run(
            [sys.executable, "-m", "tui", "ps"], capture_output=True, text=True, timeout=120
        )
        [line] = [line for line in ps.stdout.splitlines() if f" {engine.pid} " in line]
        assert "stopping" in line and "training" not in line, ps.stdout

        who = f"{pwd.getpwuid(os.getuid()).pw_name} from {terminal} (ssh 10.0.0.5)"
        await until(pilot, lambda: logged(app, f"{who} asked to stop when this epoch ends"))
        await until(pilot, lambda: app.phase is Phase.STOPPED, timeout=180)
        assert logged(app, f"stopped by {who}")
        assert "stopped by user" not in log_text(app)
