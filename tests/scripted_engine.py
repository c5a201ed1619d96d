"""A stand-in engine on a real Unix socket that speaks the real protocol from a script: it
greets with a fixed snapshot, records the commands it gets, answers them, and sends the events
a test gives it. No TensorFlow: panel, key and layout tests stay instant and repeatable."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from tui.core.settings.requests import AppOptions, Setup
from tui.core.training.events import TrainingEvent
from tui.core.training.snapshot import Snapshot, advance
from tui.engine import protocol as p
from tui.engine import registry
from tui.engine.connect import SocketConnector

Responder = Callable[[p.Command], p.Reply]


def accept(command: p.Command) -> p.Reply:
    return p.Reply(command.id)


class ScriptedEngine:
    """`with ScriptedEngine(snapshot) as engine:` serves until the block ends."""

    def __init__(self, snapshot: Snapshot, responder: Responder = accept) -> None:
        self.snapshot = snapshot
        self.responder = responder
        self.commands: list[p.Command] = []
        self.info = p.EngineInfo("scripted", 4242, "", "2025-01-01T09:00:00", "test")
        engine_id = registry.new_engine_id()
        self.socket = str(registry.socket_path(engine_id))
        self._loop = asyncio.new_event_loop()
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._serve, daemon=True, name="scripted")
        self._bound = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def options(self) -> AppOptions:
        return AppOptions(Setup(self.snapshot.hparams, preset=self.snapshot.preset))

    def connector(self) -> SocketConnector:
        return SocketConnector(self.socket)

    def emit(self, *events: TrainingEvent) -> None:
        """Send events to every connected viewer (and fold them into the snapshot)."""

        def send() -> None:
            for event in events:
                self.snapshot = advance(self.snapshot, event)
                for writer in self._writers:
                    writer.write(p.encode(event))

        self._loop.call_soon_threadsafe(send)

    def hang_up(self) -> None:
        """Close every connection, as an engine that died would."""
        self._loop.call_soon_threadsafe(lambda: [w.close() for w in self._writers])

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(self._connected, path=self.socket)
        self._bound.set()
        beat = asyncio.ensure_future(self._beat())
        await self._stop.wait()
        beat.cancel()
        server.close()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            Path(self.socket).unlink()

    async def _beat(self) -> None:
        """Heartbeats as a live engine sends them, so that no viewer takes it for frozen."""
        while True:
            await asyncio.sleep(p.HEARTBEAT_INTERVAL)
            for writer in self._writers:
                writer.write(p.encode(p.Heartbeat()))

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # Hello
        writer.write(p.encode(p.Welcome(p.PROTOCOL_VERSION, self.info, self.snapshot)))
        self._writers.append(writer)
        while line := await reader.readline():
            command = p.decode_client(line)
            if isinstance(command, p.Command):
                self.commands.append(command)
                writer.write(p.encode(self.responder(command)))
        with contextlib.suppress(ValueError):
            self._writers.remove(writer)

    def __enter__(self) -> ScriptedEngine:
        self._thread.start()
        assert self._bound.wait(10), "the scripted engine never bound its socket"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
