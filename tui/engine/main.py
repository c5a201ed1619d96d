"""The engine process: `python -m tui.engine '<EngineStart as JSON>'`.

It binds its socket first (only the standard library, msgspec and numpy are loaded by then), so
that a viewer connects at once and watches TensorFlow load. It ends by itself once nothing
runs and no viewer is left; a SIGHUP never reaches it (its own session) and is ignored anyway;
SIGTERM stops training within a group of batches, records, and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

import msgspec

from tui.core.platform.quiet import quiet_tensorflow
from tui.core.runs.layout import ENGINE_JSON, ENGINE_LOG
from tui.core.training.controller import ControllerError, Job, TrainingController
from tui.core.training.events import RunOpened, RunRecording, TrainingEvent
from tui.engine import registry
from tui.engine.protocol import EngineInfo
from tui.engine.server import EngineServer
from tui.engine.spawn import EngineStart

log = logging.getLogger("mnist_tui.engine")


def package_version() -> str:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("mnist-tui")
    return "unknown"


class Engine:
    """The controller, its server, and the run directory it follows (record and log)."""

    def __init__(self, start: EngineStart, controller: TrainingController | None = None) -> None:
        self.start = start
        self.controller = controller or TrainingController(start.setup, holder=f"engine {start.id}")
        self.info = EngineInfo(
            id=start.id,
            pid=os.getpid(),
            socket=start.socket,
            started=datetime.now().replace(microsecond=0).isoformat(),
            version=package_version(),
            log=start.log,
            runs_root=start.setup.runs_dir or "",
        )
        self.server = EngineServer(self.controller, self.info)
        self._run: Path | None = None
        self.redirect_output = False
        """Follow the run: its engine.log takes this process's stdout and stderr (the real
        engine; not an engine inside a test process)."""

    async def serve(self) -> None:
        """Serve until nothing runs and nobody watches."""
        await self.server.start()
        registry.write_record(self.info)
        self.controller.subscribe(self._follow)
        if self.start.train:
            # Nobody will connect first: once its round is claimed, ending when idle is right.
            self.server.ever_connected = True
        self.server.run_job(Job("start", self._start_up))
        keeper = asyncio.ensure_future(self.server.keep_socket())
        beat = asyncio.ensure_future(self.server.beat())
        grace = asyncio.ensure_future(self._grace())
        try:
            await self.server.finished.wait()
        finally:
            keeper.cancel()
            beat.cancel()
            grace.cancel()
            self.controller.shutdown()
            self.controller.close()
            registry.remove_record(self.info, *self._run_files())
            await self.server.close()

    def stop(self) -> None:
        """SIGTERM: stop training and end once it has stopped."""
        log.info("asked to stop")
        self.server.shutdown_requested = True
        self.controller.shutdown()
        self.server.check_idle()

    async def _grace(self) -> None:
        await asyncio.sleep(self.start.idle_grace)
        if not self.server.ever_connected:
            self.server.shutdown_requested = True
            self.server.check_idle()

    def _start_up(self) -> None:
        """The first job: load, then open what was asked for, then train if asked."""
        c = self.controller
        c.load(self.start.resume)  # a run to reopen brings its own data, not the default's
        if self.start.resume is not None and c.claim_open_run(self.start.resume).run():
            return
        if self.start.model is not None:
            c.claim_open_model(self.start.model).run()
        if self.start.train:
            hparams = None
            if self.start.resume_epochs is not None:
                hparams = c.snapshot.hparams.with_changes(epochs=self.start.resume_epochs)
            try:
                job = c.claim_round(hparams)
            except ControllerError as err:
                c.notice(str(err), "error", "Not trained")
                return
            job.run()

    # --- following the run directory ----------------------------------------------------------
    def _follow(self, event: TrainingEvent) -> None:
        if isinstance(event, RunRecording | RunOpened):
            self._move_to(Path(event.path))

    def _move_to(self, run: Path) -> None:
        old = self._run_files()
        self._run = run
        self.info = msgspec.structs.replace(self.info, run=str(run))
        self.server.info = self.info
        for stale in old:
            with contextlib.suppress(OSError):
                stale.unlink()
        registry.write_record(self.info, run / ENGINE_JSON)
        if self.redirect_output:
            _redirect_output(run / ENGINE_LOG)

    def _run_files(self) -> tuple[Path, ...]:
        return (self._run / ENGINE_JSON,) if self._run is not None else ()


def _redirect_output(path: Path) -> None:
    """stdout and stderr (Python's and TensorFlow's native ones) now append to `path`."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        log.info("engine log continues in %s", path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tui.engine '<EngineStart JSON>' (started by mnist-tui)")
        return 2
    start = msgspec.json.decode(argv[0], type=EngineStart)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.captureWarnings(True)
    quiet_tensorflow()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = Engine(start)
    engine.redirect_output = True

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, engine.stop)
        await engine.serve()

    asyncio.run(run())
    log.info("engine %s ends", start.id)
    logging.shutdown()
    # Ended cleanly: nothing in its log is news (a crash skips this, so its log stays a while).
    if start.log:
        with contextlib.suppress(OSError):
            Path(start.log).unlink()
    # TensorFlow's threads can hold an interpreter exit for seconds; the run is recorded.
    os._exit(0)
