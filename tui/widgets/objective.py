"""A sweep's objective over its trials: each finished trial a point, the best so far a line."""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.core.experiments.study import TrialResult

COMPLETE_MARKER = "●"
PRUNED_MARKER = "x"
"""Pruned trials are crosses, so they stand apart from complete ones without colour too."""


class ObjectivePlot(PlotextPlot):  # type: ignore[misc]
    """The objective (best validation accuracy) of each trial by its number, redrawn through
    `replot()`; pruned trials at the value they had reached when stopped."""

    trials: reactive[tuple[TrialResult, ...]] = reactive(tuple)
    """The sweep's trials, in number order."""

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def watch_trials(self) -> None:
        self.replot()

    def replot(self) -> None:
        """Redraw from `trials`: clear, plot, refresh."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # The markers say themselves in the title: plotext's legend sits over the first trials.
        plt.title(f"Best val by trial, {PRUNED_MARKER} pruned")
        plt.xlabel("trial")
        scored = [t for t in self.trials if t.value is not None]
        complete = [t for t in scored if t.state == "complete"]
        pruned = [t for t in scored if t.state == "pruned"]
        if complete:
            best: list[float] = []
            for trial in complete:
                best.append(max(best[-1], trial.value or 0.0) if best else trial.value or 0.0)
            plt.plot([t.number for t in complete], best, marker="braille", color="green")
            plt.scatter(
                [t.number for t in complete],
                [t.value for t in complete],
                marker=COMPLETE_MARKER,
                color="cyan",
            )
        if pruned:
            plt.scatter(
                [t.number for t in pruned],
                [t.value for t in pruned],
                marker=PRUNED_MARKER,
                color="orange",
            )
        last = max(max((t.number for t in self.trials), default=1), 1)
        plt.xlim(-0.5, last + 0.5)
        plt.xticks(list(range(0, last + 1, max(1, math.ceil(last / 8)))))  # trials are whole
        self.refresh()
