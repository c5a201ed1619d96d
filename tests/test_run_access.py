"""Resuming and attaching start on the right foot (issue 29, cases 9 and 10): a run's own data is
loaded first, a run being trained is refused before TensorFlow loads, and another user's run is
refused at once, naming its owner. Real run directories, real locks, real ownership."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import pwd
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY

from tui.core.data.mnist import SAMPLE_NOTICE, load_sample
from tui.core.runs.lock import RunLock
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.events import DataLoaded, TrainingEvent
from tui.core.training.phase import Phase
from tui.core.training.snapshot import advance
from tui.engine.client import EngineClient
from tui.engine.spawn import spawn_engine, wait_for_socket

LAST_WORDS = "print('tensorflow' in sys.modules, file=sys.stderr); sys.exit(code)"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real digits in an npz of their own: data that is not the bundled sample."""
    data = load_sample().subset(train=1200, test=300)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(
        path,
        x_train=np.rint(data.x_train[..., 0] * 255).astype(np.uint8),
        y_train=data.y_train,
        x_test=np.rint(data.x_test[..., 0] * 255).astype(np.uint8),
        y_test=data.y_test,
    )
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, digits: Path) -> Path:
    """A run of one tiny epoch on `digits`, trained by the real controller."""
    runs = tmp_path_factory.mktemp("runs")
    controller = TrainingController(
        Setup(TINY.with_changes(epochs=1), data_path=str(digits), runs_dir=str(runs)),
        holder="test",
    )
    try:
        controller.load()
        controller.claim_round().run()
    finally:
        controller.close()
    [run] = runs.iterdir()
    return run


@pytest.fixture
def run_copy(recorded: Path, tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "runs" / recorded.name
    shutil.copytree(recorded, target)
    yield target
    for path in (target, *target.rglob("*")):  # give it back, so that pytest can remove it
        os.chown(path, os.geteuid(), os.getegid())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh process; its last stderr line says whether it imported
    TensorFlow."""
    program = f"import sys; from tui.cli import main; code = main({list(args)!r}); {LAST_WORDS}"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )


def on_a_terminal(*args: str, timeout: float = 60) -> tuple[int | None, str]:
    """`mnist-tui ARGS` on a pseudo-terminal: its exit code (None if it had to be killed) and
    what it wrote."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child has gone and closed its side
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        try:
            code: int | None = process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # the app started instead of refusing
            process.kill()
            process.wait(30)
            code = None
    finally:
        os.close(master)
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def test_a_resumed_run_loads_its_own_data_first(recorded: Path, digits: Path) -> None:
    """Case 9: no bundled sample (and its warning) before the run's data, no fragment."""
    events: list[TrainingEvent] = []
    controller = TrainingController(Setup(TINY, runs_dir=str(recorded.parent)), holder="test")
    controller.subscribe(events.append)
    try:
        controller.load(recorded)
        assert controller.claim_open_run(recorded).run() is None
    finally:
        controller.close()
    loaded = [e for e in events if isinstance(e, DataLoaded)]
    assert [e.data.source for e in loaded] == [str(digits)]
    assert all(e.notice != SAMPLE_NOTICE for e in loaded)


async def _events_until_open(socket: str, timeout: float = 180) -> list[TrainingEvent]:
    """What a viewer that connects at once sees until the engine has the run open."""
    client = await EngineClient.connect(socket, "test")
    events: list[TrainingEvent] = []
    now = client.welcome.snapshot
    opened = asyncio.Event()

    def add(event: TrainingEvent) -> None:
        nonlocal now
        events.append(event)
        now = advance(now, event)
        if now.phase in (Phase.READY, Phase.BROKEN) and now.run:
            opened.set()

    reader = asyncio.ensure_future(client.run(add))
    try:
        await asyncio.wait_for(opened.wait(), timeout)
    finally:
        await client.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    return events


def test_an_engine_resuming_a_run_loads_its_data_and_no_other(run_copy: Path, digits: Path) -> None:
    """Case 9 through the engine that `--resume` and `attach` start: the run's data is the
    first and only data loaded, without a note that reads as a fragment."""
    engine = spawn_engine(Setup(TINY, runs_dir=str(run_copy.parent)), resume=str(run_copy))
    try:
        wait_for_socket(engine)
        events = asyncio.run(_events_until_open(engine.socket))
    finally:
        with contextlib.suppress(ProcessLookupError):
            engine.process.send_signal(signal.SIGTERM)
        engine.process.wait(60)
    loaded = [e for e in events if isinstance(e, DataLoaded)]
    assert all(e.data.source == str(digits) and e.notice == "" for e in loaded), loaded


def test_resuming_a_run_in_training_is_refused_before_tensorflow_loads(run_copy: Path) -> None:
    with RunLock(run_copy, "engine e42"):
        done = cli("train", "--resume", str(run_copy))
    *said, imported = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert imported == "False", "refused before TensorFlow was imported"
    [line] = said
    assert "is being trained by an engine" in line and "mnist-tui attach" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_another_users_run_is_refused_at_once_naming_them(run_copy: Path) -> None:
    """Case 10: the train, attach and app commands all say whose it is, before anything loads."""
    other = pwd.getpwnam("nobody")
    for path in (run_copy, *run_copy.rglob("*")):
        os.chown(path, other.pw_uid, other.pw_gid)

    done = cli("train", "--resume", str(run_copy))
    *said, imported = done.stderr.strip().splitlines()
    assert done.returncode == 2 and imported == "False", done.stderr
    [line] = said
    assert f"run {run_copy.name} belongs to nobody" in line and "not yours" in line

    for args in (("attach", str(run_copy)), ("--resume", str(run_copy))):
        code, output = on_a_terminal(*args)
        assert code == 2, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "belongs to nobody" in lines[0], output
