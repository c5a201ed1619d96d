"""The accuracy curves of several runs overlaid in one plot, one marker and colour per run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.core.training.events import EpochEnded

MARKERS = ("●", "■", "▲", "◆", "+", "x", "o", "*")
"""One marker per run, so the runs stay apart in the plot and legend without colour."""
COLORS = ("cyan", "orange", "green", "magenta", "blue+", "red+", "gray+", "white")
"""One colour per run, in the same order as `MARKERS`."""


@dataclass(frozen=True)
class RunCurve:
    """The accuracy per epoch of one run, as the compare plot draws it."""

    name: str
    """Shown in the legend: the run directory's name."""
    epochs: tuple[int, ...]
    """1-based epoch numbers, ascending."""
    accuracy: tuple[float, ...]
    """Accuracy at each of `epochs`."""
    metric: str
    """"validation" or "train": which accuracy the run had to offer."""
    shared: int = 0
    """Leading points that lie on another plotted curve (a branch's branch point on its
    parent's): the line starts there, the marker there stays the parent's."""

    @classmethod
    def from_history(cls, name: str, history: Sequence[EpochEnded], since: int = 1) -> RunCurve:
        """Validation accuracy when the run kept a validation split, else training accuracy,
        from epoch `since` on (a branch beside its parent: from its branch point, the point it
        shares with the parent's curve).

        Epochs whose value is missing or not finite are left out rather than drawn as zero.
        """
        history = [e for e in history if e.epoch >= since]
        validated = any(
            e.val_accuracy is not None and math.isfinite(e.val_accuracy) for e in history
        )
        points = [
            (e.epoch, e.val_accuracy if validated else e.accuracy)
            for e in sorted(history, key=lambda e: e.epoch)
        ]
        kept = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
        return cls(
            name=name,
            epochs=tuple(x for x, _ in kept),
            accuracy=tuple(y for _, y in kept),
            metric="validation" if validated else "train",
            shared=1 if since > 1 and kept and kept[0][0] == since else 0,
        )

    @property
    def own(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The points this run's marker is drawn on: all but the `shared` ones (all of them
        for a branch with no epoch of its own yet, so its legend still has a marker)."""
        start = self.shared if len(self.epochs) > self.shared else 0
        return self.epochs[start:], self.accuracy[start:]


def marker_for(index: int) -> str:
    """The marker of the `index`-th run (0-based); markers repeat after eight runs."""
    return MARKERS[index % len(MARKERS)]


class ComparePlot(PlotextPlot):  # type: ignore[misc]
    """Accuracy per epoch of two or more runs in one plot, redrawn through `replot()`."""

    curves: reactive[tuple[RunCurve, ...]] = reactive(tuple)
    """The runs to overlay, in legend order; the n-th gets `MARKERS[n]` and `COLORS[n]`."""

    def __init__(
        self,
        curves: Sequence[RunCurve] = (),
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(ComparePlot.curves, tuple(curves))

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def watch_curves(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        # The legend's headroom is a number of rows, so the y range depends on the height.
        self.replot()

    def _top(self, bottom: float) -> float:
        """The top of the y axis: 1.0 plus room above it for the legend.

        Plotext draws the legend over the top-left corner of the data, where the first epochs
        of good runs sit, so the axis is stretched until the legend's rows are clear of 1.0.
        """
        legend_rows = sum(1 for curve in self.curves if curve.epochs) + 1
        # The title, the frame, the tick labels and the x label take five rows.
        height: int = self.size.height  # typed here: PlotextPlot is untyped to mypy
        canvas_rows = height - 5
        data_rows = canvas_rows - legend_rows
        if data_rows < 4:
            return 1.0  # too small to spare the rows: better a covered corner than no plot
        return 1.0 + (1.0 - bottom) * legend_rows / data_rows

    def replot(self) -> None:
        """Redraw from `curves`: clear, plot, refresh."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        metrics = {curve.metric for curve in self.curves}
        plt.title(
            "Validation accuracy" if metrics == {"validation"} else "Accuracy (validation or train)"
        )
        plt.xlabel("epoch")
        drawn = [(i, curve) for i, curve in enumerate(self.curves) if curve.epochs]
        # A braille line joins the epochs; the labelled markers sit on the epochs themselves,
        # drawn after every line, so no line (a branch's leaving its parent's point, one crossing
        # another) covers a point: each point says which run it belongs to.
        for index, curve in drawn:
            plt.plot(
                curve.epochs, curve.accuracy, marker="braille", color=COLORS[index % len(COLORS)]
            )
        for index, curve in drawn:
            label = curve.name if curve.metric == "validation" else f"{curve.name} (train)"
            color = COLORS[index % len(COLORS)]
            plt.scatter(*curve.own, label=label, marker=marker_for(index), color=color)
        last = max((e for curve in self.curves for e in curve.epochs), default=1)
        right = max(last, 1)
        plt.xlim(0, right)
        plt.xticks(list(range(0, right + 1, max(1, math.ceil(right / 10)))))
        values = [y for curve in self.curves for y in curve.accuracy]
        bottom = min(math.floor(min(values, default=0.0) * 10) / 10, 0.9)
        plt.ylim(bottom, self._top(bottom))
        ticks = [round(bottom + i / 10, 1) for i in range(round((1.0 - bottom) * 10) + 1)]
        step = max(1, len(ticks) // 6)
        shown = ticks[::step]
        plt.yticks(shown if shown[-1] == 1.0 else [*shown, 1.0])
        self.refresh()
