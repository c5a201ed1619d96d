"""How a viewer gets its engine: start a new one, or reach one that runs already."""

from __future__ import annotations

import asyncio
from typing import Protocol

from tui.core.settings.requests import AppOptions
from tui.engine.client import EngineClient, EngineUnavailable
from tui.engine.spawn import SpawnedEngine, SpawnError, spawn_engine, wait_for_socket


class Connector(Protocol):
    """Something that hands the app a connected engine."""

    async def connect(self) -> EngineClient:
        """Raises `EngineUnavailable` with one sentence when there is none."""
        ...


class SpawnConnector:
    """A new engine in the background for the app's options (`mnist-tui`, `--resume`...)."""

    def __init__(self, options: AppOptions) -> None:
        self.options = options
        self.spawned: SpawnedEngine | None = None

    async def connect(self) -> EngineClient:
        options = self.options
        try:
            self.spawned = await asyncio.to_thread(
                spawn_engine, options.setup, resume=options.resume, model=options.model
            )
            await asyncio.to_thread(wait_for_socket, self.spawned)
        except SpawnError as err:
            raise EngineUnavailable(str(err)) from None
        return await EngineClient.connect(self.spawned.socket, "app")


class SocketConnector:
    """An engine that already runs (`mnist-tui attach`, tests' in-process engines)."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    async def connect(self) -> EngineClient:
        return await EngineClient.connect(self.socket, "app")
