"""The status bar: data source, device, phase, epoch and the latest accuracies, always visible."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot
from tui.format import format_percent


def data_text(snapshot: Snapshot, *, compact: bool) -> str:
    """The data in use, with the training subset when `train_size` takes part of it."""
    data = snapshot.data
    if data is None:
        return "no data" if snapshot.phase is Phase.BROKEN else "finding MNIST…"
    used = snapshot.hparams.train_size
    if compact:
        train = f"{used:,}" if used and used < data.train else f"{data.train:,}"
        return f"{data.short().rsplit(' ', 1)[0]} {train}/{data.test:,}"
    if used and used < data.train:
        name = data.describe().split(" · ")[0]
        return f"{name} · {used:,} of {data.train:,} train / {data.test:,} test"
    return data.describe()


def _shown(s: Snapshot) -> tuple[object, ...]:
    """What of the snapshot the status line draws."""
    test = s.evaluation.accuracy if s.evaluation is not None else None
    shown = (s.data, s.hparams.train_size, s.device, s.phase, s.epochs_done, s.target)
    return (*shown, s.last_val_accuracy, test)


class StatusBar(Static):
    """One line drawn from the controller's snapshot; nothing here is kept anywhere else."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    """What the engine says; None until it first answers."""
    silence: reactive[int] = reactive(0)
    """Seconds the engine has not answered (0 while it does): shown instead of the phase."""

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._follow, init=False)
        self.watch(self.app, "silence", self._silent, init=False)

    def _silent(self, seconds: int) -> None:
        self.silence = seconds

    def _follow(self, snapshot: Snapshot) -> None:
        # Progress arrives several times a second and changes nothing this line shows; a
        # repaint per update was a share of what a viewer cost the core its engine trains on.
        if self.snapshot is None or _shown(self.snapshot) != _shown(snapshot):
            self.snapshot = snapshot

    def render(self) -> Text:
        """The fullest of the line's forms that fits: every part spelt out; then shorter; then
        without the device; then without the data (the phase and the figures stay)."""
        width = self.content_region.width
        text = self._line(compact=False)
        for drop in ((), ("device",), ("device", "data")):
            if text.cell_len <= width:
                break
            text = self._line(compact=True, drop=drop)
        return text

    def _line(self, compact: bool, drop: tuple[str, ...] = ()) -> Text:
        s = self.snapshot
        text = Text(no_wrap=True, overflow="ellipsis")
        if s is None:
            text.append("connecting to the engine…", self._style("status--state-loading"))
            return text
        sep = ("│", "status--sep") if compact else (" │ ", "status--sep")
        done = s.epochs_done
        # Epochs done, said as such: the progress line beside it counts the epoch in progress.
        epoch = f"done {done}/{s.target}" if compact else f"{done} of {s.target} epochs done"
        decimals = 1 if compact else 2
        device = s.device or ("-" if compact else "device: …")
        val = s.last_val_accuracy
        test = s.evaluation.accuracy if s.evaluation is not None else None
        parts: list[tuple[str, str] | str] = []
        if "data" not in drop:
            parts += [(data_text(s, compact=compact), "status--data"), sep]
        if "device" not in drop:
            parts += [(device, "status--device"), sep]
        phase = (f"● {s.phase.label}", f"status--state-{s.phase.value}")
        if self.silence:
            phase = (f"● not answering {self.silence} s", "status--state-broken")
        parts += [
            phase,
            sep,
            epoch,
            sep,
            f"val {format_percent(val, decimals, missing='-')}",
            sep,
            f"test {format_percent(test, decimals, missing='-')}",
        ]
        for part in parts:
            if isinstance(part, tuple):
                content, component = part
                text.append(content, self._style(component))
            else:
                text.append(part)
        return text

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--data",
        "status--device",
        "status--sep",
        *(f"status--state-{phase.value}" for phase in Phase),
    }
