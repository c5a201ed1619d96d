"""The app's own messages: what its engine connection posts for the widgets to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from tui.core.training.events import BatchProgress, TrainingEvent

if TYPE_CHECKING:
    from tui.engine.client import EngineClient


class EngineEvent(Message):
    """An event from the engine, on its way to the widgets."""

    def __init__(self, event: TrainingEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # Only the newest figures matter: queued older progress is dropped, not drawn late.
        return (
            isinstance(self.event, BatchProgress)
            and isinstance(message, EngineEvent)
            and isinstance(message.event, BatchProgress)
        )


class EngineConnected(Message):
    """The app reached its engine and holds this client to it."""

    def __init__(self, client: EngineClient) -> None:
        super().__init__()
        self.client = client


class EngineLost(Message):
    """The connection to the engine ended; `reason` says why, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
