"""The training log: one readable line per thing that happened, read from the snapshot's journal."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from tui.core.settings.hyperparams import Hyperparams
from tui.core.training import events
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot
from tui.format import count, format_eta, format_percent, format_rate
from tui.widgets.status import data_text

MAX_LINES = 5000


def describe_hparams(h: Hyperparams) -> str:
    """The hyperparameters that matter for reading a run, on one line."""
    parts = [
        h.architecture_summary(),
        f"batch {h.batch_size}",
        f"{h.optimizer} lr {h.learning_rate:g}",
        f"{h.lr_schedule} LR",
        f"dropout {h.dropout:g}",
    ]
    if h.optimizer == "sgd":
        parts.append(f"momentum {h.momentum:g}")
    if h.batch_norm:
        parts.append("batch norm")
    if h.augment:
        parts.append(
            f"augmented (not the last {h.clean_epochs} epochs)" if h.clean_epochs else "augmented"
        )
    parts.append(f"seed {h.seed}")
    return ", ".join(parts)


def _took(seconds: float | None) -> str:
    """An epoch's time: "15.5s" under a minute, then "20:35" or "1:06:40"."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 59.95 else format_eta(seconds)


class TrainingLog(RichLog):
    """A scrolling log with one line per event, so the wording lives in one place.

    Bound to the app's snapshot: it writes the journal's events it has not written yet, and the
    whole journal of an engine it has not seen before (a viewer that attaches late).

    It keeps what it wrote, not only the lines as wrapped then: when its width changes (the
    panel hidden, the terminal resized) it wraps everything again to the new width.
    """

    def __init__(self, *, id: str | None = None) -> None:
        # RichLog renders at least `min_width` (78) columns; narrow terminals need it to wrap.
        super().__init__(
            id=id, wrap=True, markup=False, highlight=False, max_lines=MAX_LINES, min_width=20
        )
        self._written: deque[Text] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0
        self._last: events.TrainingEvent | None = None
        """The newest journal entry written (by identity: the snapshot keeps the same objects)."""
        self._phase: Phase | None = None
        self._at_end = True
        self._rewrapping = False
        """Whether the log showed its newest line when it last scrolled: a resize keeps it
        there (a resize moves the end, so whether it is at the end now says nothing)."""

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.follow)

    def follow(self, snapshot: Snapshot | None) -> None:
        """Write what the snapshot's journal holds that is not written yet."""
        if snapshot is None:
            return
        journal, fresh = snapshot.journal, self._phase is None
        if journal and journal[-1] is not self._last:
            start = next(
                (i + 1 for i in range(len(journal) - 1, -1, -1) if journal[i] is self._last), None
            )
            fresh = fresh or start is None
            shown_data = data_text(snapshot, compact=False)
            for event in journal[start or 0 :]:
                self.show(event, shown_data)
            self._last = journal[-1]
        before, self._phase = self._phase, snapshot.phase
        if snapshot.phase is Phase.READY and (not journal if fresh else before is Phase.LOADING):
            self.note("Ready: press t to train.", "bold green")

    def write_line(self, text: Text) -> None:
        self._written.append(text)
        self.write(text)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._rewrapping:
            self._at_end = new_value >= self.max_scroll_y

    def on_resize(self, event: Resize) -> None:
        at_end, width = self._at_end, self.scrollable_content_region.width
        if width != self._wrapped_at and self._written:
            self._rewrapping = True
            self.clear()
            for text in self._written:
                self.write(text, scroll_end=False)
            self._rewrapping = False
        self._wrapped_at = width
        if at_end:
            self.scroll_end(animate=False, immediate=True)

    def forget(self) -> None:
        """Empty the log (a viewer starting over on another engine's history)."""
        self._written.clear()
        self._last = self._phase = None
        self.clear()

    def note(self, message: str, style: str = "") -> None:
        """A plain line."""
        self.write_line(Text(message, style=style))

    def error(self, message: str) -> None:
        self.write_line(Text.assemble(("✖ ", "bold red"), (message, "red")))

    def warning(self, message: str) -> None:
        self.write_line(Text.assemble(("! ", "bold yellow"), (message, "yellow")))

    def show(self, event: events.TrainingEvent, data_text: str = "") -> None:
        """The line (or lines) for one event; events with nothing to say write nothing."""
        match event:
            case events.DataLoaded(data=data, notice=notice):
                where = f" from {data.source}" if data.kind in ("path", "keras-cache") else ""
                self.note(f"MNIST: {data.describe()}{where}")
                if notice:
                    self.warning(notice)
            case events.BackendLoaded(device=device):
                self.note(f"TensorFlow is loaded; training runs on {device}.")
            case events.LoadFailed(what=what, reason=reason):
                self.error(f"{what} could not be loaded: {reason}")
            case events.RunRecording(path=path):
                self.note(f"Recording this run in {path}", "dim")
            case events.Notice(text=text, level=level):
                if level == "error":
                    self.error(text)
                elif level == "warning":
                    self.warning(text)
                else:
                    self.note(text)
            case events.TrainingStarted():
                self.started(event, data_text)
            case events.EpochEnded():
                self.epoch_ended(event)
            case events.Paused(epoch=epoch, step=step):
                self.note(f"⏸ paused in epoch {epoch} at step {step}", "yellow")
            case events.Resumed(paused_seconds=seconds):
                self.note(f"▶ resumed after {seconds:.1f}s", "green")
            case events.TargetChanged(target=target, requested=requested):
                clamped = "" if target == requested else f" (asked for {requested})"
                self.note(f"◆ epoch target is now {target}{clamped}", "cyan")
            case events.LearningRateChanged(learning_rate=rate):
                self.note(f"◆ learning rate is now {rate:g}", "cyan")
            case events.StopRequested(after_epoch=after_epoch, by=by) if by:
                when = "when this epoch ends" if after_epoch else "now"
                self.note(f"◆ {by} asked to stop {when} (mnist-tui stop)", "bold yellow")
            case events.StopRequested(after_epoch=True):
                self.note("◆ will stop when this epoch ends", "cyan")
            case events.StopRequested(after_epoch=False):
                self.note("◆ stopping before the next group of batches…", "cyan")
            case events.TrainingStopped():
                self.stopped(event)
            case events.Evaluated():
                self.evaluated(event)
            case events.RunOpened(path=path, epochs_done=done):
                self.note(
                    f"◆ resumed {path}: {count(done, 'epoch')} done; "
                    f"t continues at epoch {done + 1}",
                    "bold cyan",
                )
            case events.ModelOpened(path=path, notes=notes):
                extra = f" ({'; '.join(notes)})" if notes else ""
                self.note(
                    f"◆ opened {path}{extra}: v browses its predictions, c shows its "
                    "confusion matrix, d lets you draw",
                    "bold cyan",
                )
            case events.ModelSaved(path=path):
                self.note(f"◆ model saved to {path}", "cyan")
            case events.ModelReset():
                self.note("◆ model reset: t builds a fresh one from the panel", "cyan")

    def started(self, event: events.TrainingStarted, data_text: str) -> None:
        first, target = event.first_epoch, event.target
        span = f"epoch {first}" if first == target else f"epochs {first} to {target}"
        verb = "Training" if first == 1 else "Continuing:"
        self.write_line(
            Text.assemble(("▶ ", "bold green"), (f"{verb} {span} on {event.device}", "bold"))
        )
        val = f" / {event.val_samples:,} val" if event.val_samples else " (no validation)"
        self.note(
            f"  {data_text}; using {event.train_samples:,} train{val}, "
            f"{event.steps_per_epoch:,} steps/epoch, {event.params:,} parameters",
            "dim",
        )
        self.note(f"  {describe_hparams(event.hparams)}", "dim")

    def epoch_ended(self, event: events.EpochEnded) -> None:
        width = len(str(event.target))
        line = Text.assemble(
            (f"epoch {event.epoch:>{width}}/{event.target}", "bold"),
            f"  loss {event.loss:.4f} acc {format_percent(event.accuracy)}",
        )
        # Fits the log beside the panel at 120 columns (78) up to "epoch 1000/1000", an
        # hour-long epoch included: "val" before the loss, minutes past a minute.
        if event.val_accuracy is not None and event.val_loss is not None:
            line.append(" │ ", "dim")
            line.append(f"val {event.val_loss:.4f} ")
            line.append(f"acc {event.val_accuracy:.2%}", "bold cyan")
        line.append(f" │ {_took(event.seconds)} {format_rate(event.samples_per_sec)}", "dim")
        self.write_line(line)

    def stopped(self, event: events.TrainingStopped) -> None:
        reason = event.reason
        detail = f": {event.message}" if event.message else ""
        done = f"{event.epochs_done} epoch{'s' if event.epochs_done != 1 else ''} done"
        if reason is events.StopReason.FINISHED:
            self.note(f"■ finished, {done}", "bold green")
        elif reason in (events.StopReason.ERROR, events.StopReason.NAN):
            self.error(f"training failed, {reason.value}{detail}; {done}. r resets the model.")
        else:
            said = f"stopped by {event.by}" if event.by else reason.value
            where = f" in epoch {event.epoch} at step {event.step}" if event.epoch else ""
            self.note(f"■ {said}{where}{detail}; {done}", "bold yellow")

    def evaluated(self, event: events.Evaluated) -> None:
        self.write_line(
            Text.assemble(
                ("★ test accuracy ", "bold"),
                (f"{event.accuracy:.2%}", "bold green"),
                f"  (loss {event.loss:.4f}, {event.samples:,} test images"
                + (f", after epoch {event.epochs_done})" if event.epochs_done else ")"),
            )
        )
