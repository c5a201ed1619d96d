"""The training log: one readable line per thing that happened, fed by the core's events."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from tui.core import events
from tui.core.config import Hyperparams


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
        parts.append("augmented")
    parts.append(f"seed {h.seed}")
    return ", ".join(parts)


class TrainingLog(RichLog):
    """A scrolling log with a method per kind of line, so the wording lives in one place."""

    def __init__(self, *, id: str | None = None) -> None:
        # RichLog renders at least `min_width` (78) columns; narrow terminals need it to wrap.
        super().__init__(
            id=id, wrap=True, markup=False, highlight=False, max_lines=5000, min_width=20
        )

    def note(self, message: str, style: str = "") -> None:
        """A plain line."""
        self.write(Text(message, style=style))

    def error(self, message: str) -> None:
        self.write(Text.assemble(("✖ ", "bold red"), (message, "red")))

    def warning(self, message: str) -> None:
        self.write(Text.assemble(("! ", "bold yellow"), (message, "yellow")))

    def started(self, event: events.TrainingStarted, data_text: str) -> None:
        first, target = event.first_epoch, event.target
        span = f"epoch {first}" if first == target else f"epochs {first} to {target}"
        verb = "Training" if first == 1 else "Continuing:"
        self.write(
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
            f"  loss {event.loss:.4f} acc {event.accuracy:.2%}",
        )
        if event.val_accuracy is not None and event.val_loss is not None:
            line.append(" │ ", "dim")
            line.append(f"val loss {event.val_loss:.4f} ")
            line.append(f"acc {event.val_accuracy:.2%}", "bold cyan")
        line.append(f" │ {event.seconds:.1f}s {_rate(event.samples_per_sec)}", "dim")
        self.write(line)

    def paused(self, event: events.Paused) -> None:
        self.note(f"⏸ paused in epoch {event.epoch} at step {event.step}", "yellow")

    def resumed(self, event: events.Resumed) -> None:
        self.note(f"▶ resumed after {event.paused_seconds:.1f}s", "green")

    def target_changed(self, event: events.TargetChanged) -> None:
        clamped = "" if event.target == event.requested else f" (asked for {event.requested})"
        self.note(f"◆ epoch target is now {event.target}{clamped}", "cyan")

    def learning_rate_changed(self, event: events.LearningRateChanged) -> None:
        self.note(f"◆ learning rate is now {event.learning_rate:g}", "cyan")

    def stopped(self, event: events.TrainingStopped) -> None:
        reason = event.reason
        detail = f": {event.message}" if event.message else ""
        done = f"{event.epochs_done} epoch{'s' if event.epochs_done != 1 else ''} done"
        if reason is events.StopReason.FINISHED:
            self.note(f"■ finished, {done}", "bold green")
        elif reason in (events.StopReason.ERROR, events.StopReason.NAN):
            self.error(f"training failed, {reason.value}{detail}; {done}. r resets the model.")
        else:
            self.note(f"■ {reason.value}{detail}; {done}", "bold yellow")

    def evaluated(self, event: events.Evaluated) -> None:
        self.write(
            Text.assemble(
                ("★ test accuracy ", "bold"),
                (f"{event.accuracy:.2%}", "bold green"),
                f"  (loss {event.loss:.4f}, {event.samples:,} test images)",
            )
        )


def _rate(samples_per_sec: float) -> str:
    """Samples per second in few columns: 870/s, 3.5k/s, 12k/s."""
    if samples_per_sec < 1000:
        return f"{samples_per_sec:.0f}/s"
    if samples_per_sec < 10_000:
        return f"{samples_per_sec / 1000:.1f}k/s"
    return f"{samples_per_sec / 1000:.0f}k/s"
