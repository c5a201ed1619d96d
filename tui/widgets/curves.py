"""Accuracy and loss curves per epoch, with the running figure of the epoch in progress."""

from __future__ import annotations

import math
import time

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.core.training.events import BatchProgress, EpochEnded
from tui.core.training.snapshot import Snapshot

REDRAW_INTERVAL = 5.0
"""Seconds between redraws of the running curve; a plotext redraw (12-20 ms with its repaint) is
the costliest paint while training, so it happens only with a progress event (whose repaint it
shares) at least this long after the last. The progress line moves every second meanwhile."""


TRAIN_COLOR = "cyan"
VAL_COLOR = "orange"
VAL_MARKER = "●"
"""Validation points are dots on their line, so the two curves differ without colour too."""


def nice_ticks(low: float, high: float, most: int) -> list[float]:
    """Round tick values from `low` up to at least `high`, at most `most` of them."""
    span = max(high - low, 1e-9)
    step = 1.0
    for factor in (10.0**k for k in range(-3, 7)):
        for base in (1.0, 2.0, 5.0):
            step = base * factor
            if span / step <= most - 1:
                break
        else:
            continue
        break
    first = math.floor(low / step + 1e-9) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [round(first + i * step, 10) for i in range(count + 1)]


class CurvesPlot(PlotextPlot):  # type: ignore[misc]
    """Train and validation accuracy (or loss) per epoch, redrawn through `replot()`.

    Bound to the app's snapshot: the epochs are its `history` (no copy kept here), the running
    points are its progress events inside the epoch in progress.
    """

    show_loss: reactive[bool] = reactive(False)
    """Plot loss instead of accuracy."""
    target: reactive[int] = reactive(1)
    """Epoch target: the x axis spans it, so the run's progress reads at a glance."""
    validation: reactive[bool] = reactive(True)
    """The settings hold out a validation set: the legend names its points."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: tuple[EpochEnded, ...] = ()
        """The snapshot's completed epochs, in order."""
        self.running: list[tuple[float, float | None, float]] = []
        """(fractional epoch, running accuracy, running loss) inside the epoch in progress."""
        self._drawn_at = 0.0
        """`time.monotonic()` of the last redraw."""

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "snapshot", self.show)
        self.replot()

    @property
    def epochs(self) -> list[EpochEnded]:
        """The completed epochs drawn."""
        return list(self.history)

    # --- data in ------------------------------------------------------------------------------
    def show(self, snapshot: Snapshot | None) -> None:
        """Follow the engine's state: a new history redraws at once, progress at the next tick."""
        if snapshot is None:
            return
        self.target = snapshot.target
        self.validation = snapshot.hparams.validation_split > 0
        progress = snapshot.progress
        if snapshot.history is not self.history or (progress is None and self.running):
            # An epoch ended, a run was opened or reset, or the epoch in progress was abandoned.
            # A whole new history (a viewer attaching) starts its running curve at the next
            # progress event, as one that watched all along would have it.
            self.history = snapshot.history
            self.running = []
            self.replot()
        elif progress is not None:
            self.add_progress(progress)

    def add_progress(self, event: BatchProgress) -> None:
        """Extend the running curve; redrawn once `REDRAW_INTERVAL` has passed since the last."""
        x = event.epoch - 1 + event.step / max(event.steps, 1)
        if self.running and self.running[-1][0] >= x:
            return
        self.running.append((x, event.accuracy, event.loss))
        if time.monotonic() - self._drawn_at >= REDRAW_INTERVAL:
            self.replot()

    def watch_show_loss(self) -> None:
        self.replot()

    def watch_target(self) -> None:
        self.replot()

    def watch_validation(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    # --- drawing ------------------------------------------------------------------------------
    def replot(self) -> None:
        """Redraw from the recorded data: clear, plot, refresh."""
        self._drawn_at = time.monotonic()
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        loss = self.show_loss
        self.border_title = "Loss (l: accuracy)" if loss else "Accuracy (l: loss)"
        if self.size.height >= 14:
            # A short plot keeps its rows for data rather than an axis caption.
            plt.xlabel("epoch")
        train_x = [float(e.epoch) for e in self.history]
        train_y: list[float | None] = [e.loss if loss else e.accuracy for e in self.history]
        # The running figure continues the train curve, so it moves during the very first epoch.
        train_x += [x for x, _, _ in self.running]
        train_y += [r_loss if loss else acc for _, acc, r_loss in self.running]
        val: list[tuple[float, float]] = []
        for e in self.history:
            value = e.val_loss if loss else e.val_accuracy
            if value is not None and math.isfinite(value):
                val.append((float(e.epoch), value))
        # The legend lives in the border: plotext's own sits top left, right over high accuracy.
        legend = f"[{TRAIN_COLOR}]⠤⠤ train[/]"
        if self.validation or val:
            legend += f"  [{VAL_COLOR}]{VAL_MARKER} validation[/]"
        self.border_subtitle = legend
        points = [
            (x, y)
            for x, y in zip(train_x, train_y, strict=True)
            if y is not None and math.isfinite(y)
        ]
        if points:
            # Distinct markers as well as colours, so the legend still reads under NO_COLOR.
            plt.plot(*zip(*points, strict=True), marker="braille", color=TRAIN_COLOR)
        if val:
            xs, ys = zip(*val, strict=True)
            plt.plot(xs, ys, marker="braille", color=VAL_COLOR)
            plt.scatter(xs, ys, marker=VAL_MARKER, color=VAL_COLOR)
        last = max([1.0, float(self.target), *train_x, *(x for x, _ in val)])
        right = max(math.ceil(last), 1)
        plt.xlim(0, right)
        plt.xticks(list(range(0, right + 1, max(1, math.ceil(right / 10)))))
        shown = [y for _, y in points] + [y for _, y in val]
        if loss:
            top = max(shown, default=1.0)
            low, high = 0.0, top * 1.1 if top > 0 else 1.0
        else:
            low, high = min(math.floor(min(shown, default=0.0) * 10) / 10, 0.9), 1.0
        ticks = nice_ticks(low, high, most=max(2, (self.size.height - 4) // 2))
        plt.ylim(min(low, ticks[0]), max(high, ticks[-1]))
        if not points and not val:
            # plotext draws no axes for an empty plot; a blank point keeps them on screen.
            plt.scatter([0.0], [ticks[0]], marker=" ")
        labels = [f"{t:g}" if loss else f"{t:.0%}" for t in ticks]
        plt.yticks(ticks, labels)
        self.refresh()
