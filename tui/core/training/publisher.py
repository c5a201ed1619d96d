"""`Publisher`: a snapshot that is the fold of the events published, and who hears them.

One lock orders both, so that a listener gets the snapshot as it was when it subscribed and then
every later event, none missed and none twice (the engine's late viewers rely on it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from tui.core.training.events import Notice, PhaseChanged, TrainingEvent
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, advance

Listener = Callable[[TrainingEvent], None]
"""Told every event, in order, on the publishing thread: must be quick and must not block."""


class Publisher:
    """The fold of published events and its listeners; every method is safe from any thread."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._snapshot = snapshot

    @property
    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def subscribe(self, listener: Listener) -> tuple[Snapshot, Callable[[], None]]:
        """The snapshot now and, from then on, every event; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)
            snapshot = self._snapshot

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return snapshot, unsubscribe

    def publish(self, event: TrainingEvent) -> None:
        """Fold `event` into the snapshot and tell every listener, in one step."""
        with self._lock:
            self._snapshot = advance(self._snapshot, event)
            for listener in list(self._listeners):
                listener(event)

    def notice(self, text: str, level: str = "info", title: str = "") -> None:
        """A line for every viewer's log (warnings and errors also as a notification)."""
        self.publish(Notice(text, level, title))

    def _phase(self, phase: Phase) -> None:
        with self._lock:
            if self._snapshot.phase is not phase:
                self.publish(PhaseChanged(phase))
