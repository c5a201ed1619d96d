"""The status bar: data source, device, state, epoch and the latest accuracies, always visible."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

STATE_LABELS: dict[str, str] = {
    "loading": "loading TensorFlow…",
    "ready": "ready",
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
        sep = (" │ ", "status--sep")
        parts: list[tuple[str, str] | str] = [
            (self.data_text, "status--data"),
            sep,
            (self.device, "status--device"),
            sep,
            (f"● {STATE_LABELS.get(self.state, self.state)}", f"status--state-{self.state}"),
            sep,
            f"epoch {self.epoch} of {self.target}" if self.target else "epoch -",
            sep,
            f"val {_pct(self.val_accuracy)}",
            sep,
            f"test {_pct(self.test_accuracy)}",
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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
