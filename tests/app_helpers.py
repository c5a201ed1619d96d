"""What the app tests share: an app on an engine, waiting on what it shows, reading it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from local_engine import LocalEngine
from textual.pilot import Pilot

from tui.app import MnistApp, create_app
from tui.core.data.mnist import MnistData
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.phase import IDLE, Phase

SIZE = (120, 40)


async def until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 90) -> None:
    """Let the app run until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.02)


@contextlib.asynccontextmanager
async def app_on_engine(
    hparams: Hyperparams,
    data: MnistData,
    *,
    size: tuple[int, int] = SIZE,
    ready: bool = True,
    **engine: Any,
) -> AsyncIterator[tuple[MnistApp, Pilot[None], LocalEngine]]:
    """The app on an in-process engine (the real server and protocol on a real socket)."""
    with LocalEngine(hparams, data, **engine) as local:
        app = create_app(local.options, local.connector())
        async with app.run_test(size=size, notifications=True) as pilot:
            if ready:
                await until(
                    pilot, lambda: app.phase is not Phase.LOADING and app.handle.client is not None
                )
            yield app, pilot, local


def log_text(app: MnistApp) -> str:
    return "\n".join(line.text for line in app.dashboard.training_log.lines)


def logged(app: MnistApp, text: str) -> bool:
    """`text` is in the log, however the log wrapped it (long paths break across lines)."""
    return "".join(text.split()) in "".join(log_text(app).split())


def toasts(app: MnistApp) -> list[str]:
    """The notifications on screen, title and message."""
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def idle(app: MnistApp) -> bool:
    return app.phase in IDLE


async def train(pilot: Pilot[None], app: MnistApp, key: str = "t") -> None:
    """Press t (or `key`) and wait until the round it starts is over and evaluated."""
    before = app.snapshot.stopped
    await pilot.press(key)
    await until(pilot, lambda: round_over(app, before))


def round_over(app: MnistApp, before: object = None) -> bool:
    stopped = app.snapshot.stopped
    return stopped is not None and stopped is not before and idle(app)


def status_line(app: MnistApp) -> str:
    """The status bar as shown (it shortens itself to fit the terminal's width)."""
    return str(app.dashboard.status.render())


def shows_epoch(app: MnistApp, done: int, target: int) -> bool:
    line = status_line(app)
    return f"{done} of {target} epochs done" in line or f"done {done}/{target}" in line
