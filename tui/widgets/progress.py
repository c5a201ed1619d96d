"""The epoch progress line: a bar plus step, ETA, running loss and accuracy, samples per second."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar

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
            yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="progress-bar")
        yield Label("", id="progress-figures")

    def show_progress(self, event: BatchProgress, target: int) -> None:
        """Reflect a progress update.

        This runs several times a second while training, so the labels (fixed-size in the
        stylesheet) skip the layout pass: a reflow of the whole screen per update cost the
        training thread a tenth of its speed on two cores.
        """
        self._epoch(f"epoch {event.epoch}/{target}", layout=False)
        self.query_one("#progress-bar", ProgressBar).update(total=event.steps, progress=event.step)
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
        bar = self.query_one("#progress-bar", ProgressBar)
        done = s.epochs_done
        if s.phase in FITTING:
            # Between epochs, or before the first batch: the next epoch, empty. Between epochs
            # (once an epoch) the short text skips the layout pass, as progress does; the
            # notes of a phase change may wrap, so they take one.
            steps = s.started.steps_per_epoch if s.started is not None else 1
            between = s.phase is Phase.TRAINING
            self._epoch(f"epoch {min(done + 1, s.target)}/{s.target}", layout=not between)
            bar.update(total=steps, progress=0)
            note = _NOTES.get(s.phase) or f"epoch {done + 1} starting…"
            self._figures(note, layout=not between)
            return
        self._epoch(f"epoch {done}/{s.target}" if done else f"epoch -/{s.target}")
        bar.update(total=1, progress=1 if done else 0)
        self._figures(_idle_note(s))

    def _epoch(self, text: str, *, layout: bool = True) -> None:
        _set(self.query_one("#progress-epoch", Label), text, layout)

    def _figures(self, text: str, *, layout: bool = True) -> None:
        _set(self.query_one("#progress-figures", Label), text, layout)


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
