"""A frozen engine (issue 29, case 4): a real engine process stopped with SIGSTOP is noticed by
its viewers within a few seconds, keys that need it say so, and all is well again after
SIGCONT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import status_line, toasts, until
from tiny import TINY

from tui.app import create_app
from tui.core.settings.requests import AppOptions, Setup
from tui.core.training.phase import Phase
from tui.engine import protocol as p
from tui.engine.client import EngineClient
from tui.engine.connect import SocketConnector
from tui.engine.handle import NOT_ANSWERING
from tui.engine.spawn import SpawnedEngine, spawn_engine, wait_for_socket

SAMPLE = Path(__file__).resolve().parents[1] / "tui" / "sample" / "mnist_sample.npz"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SpawnedEngine]:
    """A real engine process on the bundled sample; continued and ended whatever the test did."""
    setup = Setup(TINY, preset="tiny", data_path=str(SAMPLE), runs_dir=str(tmp_path / "runs"))
    spawned = spawn_engine(setup)
    wait_for_socket(spawned)
    try:
        yield spawned
    finally:
        with contextlib.suppress(ProcessLookupError):
            spawned.process.send_signal(signal.SIGCONT)
            spawned.process.send_signal(signal.SIGTERM)
        spawned.process.wait(60)


def test_heartbeats_keep_an_idle_engine_heard_and_a_stopped_one_goes_silent(
    engine: SpawnedEngine,
) -> None:
    async def watch() -> tuple[float, float, float]:
        client = await EngineClient.connect(engine.socket, "test")
        reader = asyncio.ensure_future(client.run(lambda event: None))
        try:
            # Idle and loaded or not, its heartbeats keep coming.
            await asyncio.sleep(3 * p.HEARTBEAT_INTERVAL)
            idle = client.silent_for
            os.kill(engine.pid, signal.SIGSTOP)
            await asyncio.sleep(NOT_ANSWERING + 1)
            stopped = client.silent_for
            os.kill(engine.pid, signal.SIGCONT)
            deadline = time.monotonic() + 10
            while client.silent_for > 2 * p.HEARTBEAT_INTERVAL and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return idle, stopped, client.silent_for
        finally:
            await client.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    idle, stopped, again = asyncio.run(watch())
    assert idle < 2 * p.HEARTBEAT_INTERVAL
    assert stopped >= NOT_ANSWERING
    assert again <= 2 * p.HEARTBEAT_INTERVAL


async def test_the_app_says_a_stopped_engine_is_not_answering_and_recovers(
    engine: SpawnedEngine,
) -> None:
    app = create_app(AppOptions(engine.start.setup), SocketConnector(engine.socket))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await until(pilot, lambda: app.handle.client is not None and app.phase is Phase.READY)
        assert "not answering" not in status_line(app)
        os.kill(engine.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        await until(pilot, lambda: "not answering" in status_line(app), timeout=30)
        assert time.monotonic() - stopped < NOT_ANSWERING + 3
        await until(pilot, lambda: any(f"pid {engine.pid}" in toast for toast in toasts(app)))
        app.clear_notifications()
        await pilot.press("t")
        await until(pilot, lambda: any("has not answered" in toast for toast in toasts(app)))
        os.kill(engine.pid, signal.SIGCONT)
        await until(pilot, lambda: "not answering" not in status_line(app), timeout=30)
        assert "ready" in status_line(app)
        await until(pilot, lambda: any("answers again" in toast for toast in toasts(app)))
        # The key pressed while it was frozen was not kept for later.
        assert app.phase is Phase.READY
