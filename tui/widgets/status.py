"""The status bar: data source, device, state, epoch and the latest accuracies, always visible."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.format import format_percent

STATE_LABELS: dict[str, str] = {
    "loading": "loading TensorFlow…",
    "loading-data": "loading MNIST…",
    "ready": "ready",
    "opening": "opening…",
    "training": "training",
    "paused": "paused",
    "stopping": "stopping…",
    "evaluating": "evaluating",
    "finished": "finished",
    "stopped": "stopped",
    "error": "error",
}
"""What each app state reads as on screen."""


class StatusBar(Static):
    """One line that reflects the app's state; every part is a reactive set by the app."""

    data_text: reactive[str] = reactive("finding MNIST…")
    """Data source and sizes."""
    data_short: reactive[str] = reactive("")
    """The same in fewer columns, used when the full line does not fit."""
    device: reactive[str] = reactive("device: …")
    """What training runs on."""
    state: reactive[str] = reactive("loading")
    """A key of `STATE_LABELS`."""
    epoch: reactive[int] = reactive(0)
    """Epochs done."""
    target: reactive[int] = reactive(0)
    """Epoch target."""
    val_accuracy: reactive[float | None] = reactive(None)
    """Last validation accuracy."""
    test_accuracy: reactive[float | None] = reactive(None)
    """Last test accuracy."""

    def render(self) -> Text:
        text = self._line(compact=False)
        if text.cell_len > self.content_region.width and self.data_short:
            text = self._line(compact=True)
        return text

    def _line(self, compact: bool) -> Text:
        sep = ("│", "status--sep") if compact else (" │ ", "status--sep")
        epoch = (
            f"ep {self.epoch}/{self.target}" if compact else f"epoch {self.epoch} of {self.target}"
        )
        decimals = 1 if compact else 2
        parts: list[tuple[str, str] | str] = [
            (self.data_short if compact else self.data_text, "status--data"),
            sep,
            (self.device, "status--device"),
            sep,
            (f"● {STATE_LABELS.get(self.state, self.state)}", f"status--state-{self.state}"),
            sep,
            epoch,
            sep,
            f"val {format_percent(self.val_accuracy, decimals, missing='-')}",
            sep,
            f"test {format_percent(self.test_accuracy, decimals, missing='-')}",
        ]
        text = Text(no_wrap=True, overflow="ellipsis")
        for part in parts:
            if isinstance(part, tuple):
                content, component = part
                text.append(content, self.get_component_rich_style(component, partial=True))
            else:
                text.append(part)
        return text

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--data",
        "status--device",
        "status--sep",
        *(f"status--state-{state}" for state in STATE_LABELS),
    }
