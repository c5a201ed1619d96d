"""The epoch progress line: a bar plus step, ETA, running loss and accuracy, samples per second."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar

from tui.core.events import BatchProgress


def format_eta(seconds: float) -> str:
    """`1:05` or `0:09`; `-` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochProgress(Vertical):
    """Where the epoch in progress stands: the bar on one line, the figures on the next."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="progress-top"):
            yield Label("epoch -", id="progress-epoch")
            yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="progress-bar")
        yield Label("", id="progress-figures")

    def show(self, event: BatchProgress, target: int) -> None:
        """Reflect a progress update.

        This runs several times a second while training, so the labels (fixed-size in the
        stylesheet) skip the layout pass: a reflow of the whole screen per update cost the
        training thread a tenth of its speed on two cores.
        """
        self.query_one("#progress-epoch", Label).update(
            f"epoch {event.epoch}/{target}", layout=False
        )
        self.query_one("#progress-bar", ProgressBar).update(total=event.steps, progress=event.step)
        self.query_one("#progress-figures", Label).update(
            f"step {event.step}/{event.steps} · ETA {format_eta(event.eta_seconds)} · "
            f"loss {event.loss:.4f} · acc {event.accuracy:.2%} · "
            f"{event.samples_per_sec:,.0f} samples/s",
            layout=False,
        )

    def set_epoch(self, epoch: int, target: int, steps: int | None = None) -> None:
        """Show an epoch about to start, with an empty bar."""
        self.query_one("#progress-epoch", Label).update(f"epoch {epoch}/{target}")
        self.query_one("#progress-bar", ProgressBar).update(total=steps or 1, progress=0)

    def complete(self, epoch: int, target: int) -> None:
        """Show a finished epoch: a full bar."""
        self.query_one("#progress-epoch", Label).update(f"epoch {epoch}/{target}")
        bar = self.query_one("#progress-bar", ProgressBar)
        bar.update(total=bar.total or 1, progress=bar.total or 1)

    def set_note(self, note: str) -> None:
        """Replace the figures with a short note (paused, stopped, ...)."""
        self.query_one("#progress-figures", Label).update(note)
