"""The device panel: which devices the backend sees, what trains, GPU memory and CPU threads."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.core.platform.devices import DeviceReport
from tui.core.training.snapshot import Snapshot


class DevicePanel(Static):
    """Shows a `DeviceReport`: the one in the app's snapshot (gathered off the UI thread).

    On a machine without GPUs it reads "none: CPU only" rather than leaving the GPU row out,
    so that someone expecting a GPU sees at once that TensorFlow did not find one.
    """

    DEFAULT_CSS: ClassVar[str] = """
    DevicePanel {
        height: auto;
        padding: 0 1;
    }
    """

    report: reactive[DeviceReport | None] = reactive(None)
    """The latest report; None until the backend has loaded."""

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._follow, init=False)

    def _follow(self, snapshot: Snapshot) -> None:
        self.report = snapshot.devices

    def render(self) -> Text:
        if self.report is None:
            return Text("devices: waiting for the backend…", style="dim")
        rows = self.report.lines()
        width = max(len(label) for label, _ in rows)
        text = Text(no_wrap=False)
        for number, (label, value) in enumerate(rows):
            if number:
                text.append("\n")
            # Text.append, not markup: device names may contain square brackets.
            text.append(f"{label:<{width}}  ", style="bold")
            text.append(value, style="yellow" if value.endswith("CPU only") else "")
        return text
