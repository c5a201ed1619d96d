"""An engine inside the test process: the real server and protocol on a real Unix socket, with
data handed in, so that app tests stay quick (TensorFlow loads once per test process)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.core.data.mnist import MnistData
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import AppOptions, Setup
from tui.core.training.controller import TrainingController
from tui.engine import registry
from tui.engine.connect import SocketConnector
from tui.engine.main import Engine
from tui.engine.spawn import EngineStart


class LocalEngine:
    """`with LocalEngine(hparams, data) as engine:` serves until the block ends."""

    def __init__(
        self,
        hparams: Hyperparams,
        data: MnistData,
        *,
        preset: str = "custom",
        runs_dir: str | Path | None = None,
        progress_interval: float = 0.0,
        resume: str | Path | None = None,
        model: str | Path | None = None,
        **setup: Any,
    ) -> None:
        self.setup = Setup(
            hparams,
            preset=preset,
            runs_dir=str(runs_dir) if runs_dir is not None else None,
            progress_interval=progress_interval,
            **setup,
        )
        engine_id = registry.new_engine_id()
        start = EngineStart(
            engine_id,
            str(registry.socket_path(engine_id)),
            "",
            self.setup,
            resume=str(resume) if resume is not None else None,
            model=str(model) if model is not None else None,
            idle_grace=3600.0,
        )
        self.controller = TrainingController(self.setup, data=data, holder="engine (test)")
        self.engine = Engine(start, self.controller)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="local-engine", daemon=True)
        self._bound = threading.Event()

    @property
    def socket(self) -> str:
        return self.engine.start.socket

    @property
    def options(self) -> AppOptions:
        return AppOptions(self.setup)

    def connector(self) -> SocketConnector:
        return SocketConnector(self.socket)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            task = asyncio.ensure_future(self.engine.serve())
            while not Path(self.socket).exists() and not task.done():
                await asyncio.sleep(0.005)
            self._bound.set()
            await task

        self._loop.run_until_complete(serve())

    def on_loop(self, work: Callable[[], None]) -> None:
        """Run `work` on the engine's event-loop thread and wait for it to finish."""
        done = threading.Event()

        def run() -> None:
            try:
                work()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        assert done.wait(30), "the engine's loop never ran the work"

    def __enter__(self) -> LocalEngine:
        self._thread.start()
        assert self._bound.wait(30), "the engine never bound its socket"
        return self

    def __exit__(self, *exc: object) -> None:
        def finish() -> None:
            self.engine.server.shutdown_requested = True
            self.controller.shutdown()
            self.engine.server.finish("the test is over")

        self._loop.call_soon_threadsafe(finish)
        self._thread.join(60)
