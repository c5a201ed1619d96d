"""The viewer side of the socket: connect, greet, then read events and send commands.

No TensorFlow and no controller here: the app, `ps`, `stop` and `train --detach` all talk to
an engine through this.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tui.core.training.events import TrainingEvent
from tui.engine import protocol as p

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the engine's `Welcome`."""


class EngineUnavailable(Exception):
    """No engine answered, or it refused this viewer; str(err) says which and why."""


class EngineClient:
    """One connection to an engine; `run()` must be running for replies to arrive."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: p.Welcome
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.welcome = welcome
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[p.Reply]] = {}
        self.closed = False
        self.heard = time.monotonic()
        """When the engine's last line arrived (its heartbeats keep this fresh)."""

    @property
    def engine(self) -> p.EngineInfo:
        return self.welcome.engine

    @property
    def silent_for(self) -> float:
        """Seconds since the engine last said anything (0 once the connection is closed)."""
        return 0.0 if self.closed else time.monotonic() - self.heard

    @classmethod
    async def connect(
        cls, socket: str, client: str = "viewer", timeout: float = CONNECT_TIMEOUT
    ) -> EngineClient:
        """Connect and greet; the engine's `Welcome` (with its snapshot) is `client.welcome`.

        Raises:
            EngineUnavailable: nothing listens there, its queue of viewers stayed full, it
                refused us, or it spoke nonsense.
        """
        try:
            connected = await asyncio.wait_for(_connect_unix(socket), timeout)
            reader, writer = await asyncio.open_unix_connection(
                sock=connected, limit=p.MAX_MESSAGE_BYTES
            )
        except TimeoutError:
            raise EngineUnavailable(
                f"the engine at {socket} is not taking viewers (its queue stayed full for "
                f"{timeout:g} s)"
            ) from None
        except OSError as err:
            raise EngineUnavailable(f"no engine answers at {socket} ({_reason(err)})") from None
        try:
            writer.write(p.encode(p.Hello(p.PROTOCOL_VERSION, client)))
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, TimeoutError, ValueError) as err:
            writer.close()
            raise EngineUnavailable(
                f"the engine at {socket} did not answer ({_reason(err)})"
            ) from None
        version = p.version_of(line)
        if version and version != p.PROTOCOL_VERSION:
            writer.close()
            raise EngineUnavailable(
                f"the engine speaks protocol {version} and this mnist-tui {p.PROTOCOL_VERSION}; "
                "use the same version of mnist-tui for both (or stop the engine)."
            )
        try:
            first = p.decode_server(line)
        except p.ProtocolError as err:
            writer.close()
            raise EngineUnavailable(f"the engine's greeting is not understood: {err}") from None
        if isinstance(first, p.Refused):
            writer.close()
            raise EngineUnavailable(f"the engine refused this viewer: {first.reason}")
        if not isinstance(first, p.Welcome):
            writer.close()
            raise EngineUnavailable("the engine did not greet this viewer")
        return cls(reader, writer, first)

    async def run(self, on_event: Callable[[TrainingEvent], None]) -> str:
        """Read until the engine goes away, handing each event to `on_event` and each reply to
        its request; returns why the connection ended."""
        reason = "the engine closed the connection"
        try:
            while True:
                try:
                    line = await self.reader.readline()
                except (OSError, ValueError) as err:
                    reason = f"the connection broke ({_reason(err)})"
                    break
                if not line:
                    break
                self.heard = time.monotonic()
                try:
                    message = p.decode_server(line)
                except p.ProtocolError as err:
                    # A message this version does not know; the rest still reads. If it was the
                    # answer to a request, that request fails now instead of waiting forever.
                    future = self._pending.pop(p.command_id(line), None)
                    if future is not None and not future.done():
                        future.set_exception(
                            EngineUnavailable(f"the engine's answer was not understood ({err})")
                        )
                    continue
                if isinstance(message, p.Reply):
                    future = self._pending.pop(message.id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif isinstance(message, p.Closing):
                    reason = message.reason
                elif not isinstance(message, p.Welcome | p.Refused | p.Heartbeat):
                    on_event(message)
        finally:
            self.closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(EngineUnavailable(reason))
            self._pending.clear()
        return reason

    async def request(self, kind: type[p.Command], **fields: Any) -> p.Reply:
        """Send a command (`kind` with `fields`, an id added) and wait for its reply."""
        if self.closed:
            raise EngineUnavailable("the engine is gone")
        number = next(self._ids)
        future: asyncio.Future[p.Reply] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        try:
            self.writer.write(p.encode(kind(id=number, **fields)))
            await self.writer.drain()
        except (OSError, RuntimeError) as err:
            self._pending.pop(number, None)
            raise EngineUnavailable(f"the engine is gone ({_reason(err)})") from None
        return await future

    async def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()


async def with_engine(socket: str, client: str, work: Callable[[EngineClient], Awaitable[T]]) -> T:
    """Connect, run `work` while replies are read, then hang up."""
    engine = await EngineClient.connect(socket, client)
    reader = asyncio.ensure_future(engine.run(lambda event: None))
    try:
        return await work(engine)
    finally:
        await engine.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _connect_unix(path: str) -> socket.socket:
    """A connected socket to `path`, waiting while the listener's backlog is full.

    Linux answers a non-blocking connect to a full AF_UNIX backlog with EAGAIN and leaves the
    socket unconnected; asyncio's `open_unix_connection` takes that for a connection in progress
    (CPython gh-117208) and hands back a socket whose first read fails with EINVAL. So this tries
    again, a little later each time, until the caller's timeout cancels it.
    """
    pause = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


def _reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
