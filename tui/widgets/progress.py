"""The epoch progress line: a bar plus step, ETA, running loss and accuracy, samples per second."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label

from tui.core.training.events import BatchProgress, StopReason
from tui.core.training.phase import FITTING, Phase
from tui.core.training.snapshot import Snapshot
from tui.format import count, format_eta, format_percent


class EpochProgress(Vertical):
    """Where the epoch in progress stands: the bar on one line, the figures on the next.

    Everything it shows comes from the snapshot (`show_state`) or, several times a second, from
    the newest progress event (`show_progress`), so the bar and its figures always describe the
    same epoch.
    """

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show_state)

    def compose(self) -> ComposeResult:
        with Horizontal(id="progress-top"):
            yield Label("epoch -", id="progress-epoch")
            yield EpochBar(id="progress-bar")
        yield Label("", id="progress-figures")

    def show_progress(self, event: BatchProgress, target: int) -> None:
        """Reflect a progress update.

        This runs several times a second while training, so the labels (fixed-size in the
        stylesheet) skip the layout pass: a reflow of the whole screen per update cost the
        training thread a tenth of its speed on two cores.
        """
        self._epoch(f"epoch {event.epoch}/{target}", layout=False)
        self.query_one("#progress-bar", EpochBar).show(event.step, event.steps)
        self._figures(self.figures(event, self.size.width), layout=False)

    @staticmethod
    def figures(event: BatchProgress, width: int) -> str:
        """The running figures, as many as fit `width` (least needed dropped first)."""
        parts = [
            f"step {event.step}/{event.steps}",
            f"ETA {format_eta(event.eta_seconds)}",
            f"loss {event.loss:.4f}",
            f"acc {format_percent(event.accuracy)}",
            f"{event.samples_per_sec:,.0f} samples/s",
        ]
        while len(parts) > 1 and len(" · ".join(parts)) > width:
            parts.pop()
        return " · ".join(parts)

    def show_state(self, s: Snapshot | None) -> None:
        """The epoch in progress, or where training stands, from the snapshot."""
        if s is None:
            return
        if s.progress is not None and s.phase in FITTING:
            self.show_progress(s.progress, s.target)
            if s.phase in (Phase.PAUSING, Phase.PAUSED, Phase.STOPPING):
                self._figures(_NOTES[s.phase])
            return
        bar = self.query_one("#progress-bar", EpochBar)
        done = s.epochs_done
        if s.phase in FITTING:
            # Between epochs, or before the first batch: the next epoch, empty. Between epochs
            # (once an epoch) the short text skips the layout pass, as progress does; the
            # notes of a phase change may wrap, so they take one.
            steps = s.started.steps_per_epoch if s.started is not None else 1
            between = s.phase is Phase.TRAINING
            self._epoch(f"epoch {min(done + 1, s.target)}/{s.target}", layout=not between)
            bar.show(0, steps)
            note = _NOTES.get(s.phase) or f"epoch {done + 1} starting…"
            self._figures(note, layout=not between)
            return
        self._epoch(f"epoch {done}/{s.target}" if done else f"epoch -/{s.target}")
        bar.show(1 if done else 0, 1)
        self._figures(_idle_note(s))

    def _epoch(self, text: str, *, layout: bool = True) -> None:
        _set(self.query_one("#progress-epoch", Label), text, layout)

    def _figures(self, text: str, *, layout: bool = True) -> None:
        _set(self.query_one("#progress-figures", Label), text, layout)


class EpochBar(Widget):
    """A bar and its percentage in one widget, repainted only when what it draws changes.

    Textual's `ProgressBar` is a container of two widgets here (bar, percentage) and a timer
    that repaints it every second for an ETA this line shows elsewhere: 2.7 ms a second, and
    5 ms per progress update against 3.5 ms for this one (the app's thread time, pinned).
    """

    DEFAULT_CSS = """
    EpochBar {
        width: 1fr;
        height: 1;
        &> .epoch-bar--bar { color: $primary; background: $surface; }
        &> .epoch-bar--complete { color: $success; background: $surface; }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"epoch-bar--bar", "epoch-bar--complete"}
    PERCENT_WIDTH = 5
    """Columns of the percentage after the bar ("100%" right-aligned, one space before)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._share = 0.0
        self._drawn: tuple[int, int] | None = None

    def show(self, step: int, steps: int) -> None:
        """`step` of `steps` done; a repaint only when a half cell or the percentage moves."""
        self._share = min(1.0, max(0.0, step / steps)) if steps > 0 else 1.0
        drawn = self._cells()  # a new width repaints by itself
        if drawn != self._drawn:
            self._drawn = drawn
            self.refresh()

    def _cells(self) -> tuple[int, int]:
        """Half cells filled, and the whole percentage."""
        width = max(0, self.size.width - self.PERCENT_WIDTH)
        return int(self._share * width * 2), round(self._share * 100)

    def render(self) -> Text:
        width = max(0, self.size.width - self.PERCENT_WIDTH)
        halves, percent = self._cells()
        component = "epoch-bar--complete" if self._share >= 1 else "epoch-bar--bar"
        style = self.get_component_rich_style(component)
        done, rest = Style(color=style.color), Style(color=style.bgcolor)
        full, half = divmod(halves, 2)
        bar = Text(end="")
        bar.append("━" * full + ("╸" if half else ""), done)
        if not half and 0 < full < width:
            bar.append("╺", rest)
            full += 1
        elif half:
            full += 1
        bar.append("━" * (width - full), rest)
        bar.append(f"{percent}%".rjust(self.PERCENT_WIDTH))
        return bar


def _set(label: Label, text: str, layout: bool) -> None:
    """A label's text, repainted only when it changes (most progress updates keep the epoch)."""
    if str(label.content) != text:
        label.update(text, layout=layout)


_NOTES = {
    Phase.STARTING: "starting: building the model and recording the run…",
    Phase.PAUSING: "pausing before the next group of batches…",
    Phase.PAUSED: "paused: p resumes",
    Phase.STOPPING: "stopping before the next group of batches…",
}


def _idle_note(s: Snapshot) -> str:
    if s.phase is Phase.EVALUATING:
        return "evaluating on the test set…"
    if s.phase is Phase.LOADING:
        return "loading TensorFlow and MNIST…"
    if s.phase is Phase.OPENING:
        return "opening…"
    if s.phase is Phase.BROKEN:
        return s.problem
    stopped = s.stopped
    if stopped is None:
        if s.model is not None and s.epochs_done:
            return f"{count(s.epochs_done, 'epoch')} done: t continues"
        return "t trains" if s.model is None else "t trains it further"
    if stopped.reason in (StopReason.ERROR, StopReason.NAN):
        return f"{stopped.reason.value}: r resets, t tries again"
    return f"{stopped.reason.value}: t continues, + sets more epochs, r resets"
