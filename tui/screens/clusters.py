"""How the digits cluster: the test set's penultimate-layer features on their two principal
axes, one mark per digit (its class's own numeral, so it reads without colour), mistakes
marked; a cursor picks a spot and Enter browses the digits there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.widgets.footer import FittingFooter

CLASS_COLORS = (
    "red", "orange", "yellow", "green", "cyan", "blue+", "magenta+", "white", "gray", "green+",
)  # fmt: skip
"""One per class; the marks are the classes' numerals too, so they read without colour."""
STEPS = 40
"""Cursor steps across each axis."""
MISTAKE = "✗"
CURSOR = "◆"


class ClusterPlot(PlotextPlot):  # type: ignore[misc]
    """The scatter, drawn through one `replot()`."""

    cursor: reactive[tuple[float, float]] = reactive((0.0, 0.0))

    def __init__(self, points: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> None:
        super().__init__(id="clusters-plot")
        self.points, self.labels, self.predicted = points, labels, predicted
        low, high = points.min(axis=0), points.max(axis=0)
        self.low, self.high = low, np.where(high > low, high, low + 1.0)
        self.step = (self.high - self.low) / STEPS
        self.set_reactive(
            ClusterPlot.cursor, (float(points[:, 0].mean()), float(points[:, 1].mean()))
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def watch_cursor(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()

    def move(self, dx: int, dy: int) -> None:
        x, y = self.cursor
        x = float(np.clip(x + dx * self.step[0], self.low[0], self.high[0]))
        y = float(np.clip(y + dy * self.step[1], self.low[1], self.high[1]))
        self.cursor = (x, y)

    def under_cursor(self) -> np.ndarray:
        """Test indices within a step of the cursor; else the 20 nearest."""
        return self.near_cursor()[0]

    def near_cursor(self) -> tuple[np.ndarray, bool]:
        """`under_cursor`, and whether they are under it (False: the nearest, none being there)."""
        offset = np.abs(self.points - np.asarray(self.cursor)) / self.step
        inside = np.flatnonzero((offset <= 1.0).all(axis=1))
        if len(inside):
            return inside, True
        return np.argsort((offset**2).sum(axis=1))[:20], False

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        wrong = self.labels != self.predicted
        for digit in range(10):
            chosen = (self.labels == digit) & ~wrong
            if chosen.any():
                xs, ys = self.points[chosen].T
                plt.scatter(xs.tolist(), ys.tolist(), marker=str(digit), color=CLASS_COLORS[digit])
        if wrong.any():
            xs, ys = self.points[wrong].T
            plt.scatter(xs.tolist(), ys.tolist(), marker=MISTAKE, color="red+")
        plt.scatter([self.cursor[0]], [self.cursor[1]], marker=CURSOR, color="white+")
        plt.xticks([])
        plt.yticks([])
        plt.xlim(float(self.low[0]), float(self.high[0]))
        plt.ylim(float(self.low[1]), float(self.high[1]))
        self.refresh()


class ClustersScreen(Screen[None]):
    """Arrows move the cursor (shift: faster), Enter browses the digits under it."""

    DEFAULT_CSS = """
    ClustersScreen {
        & #clusters-header { height: auto; padding: 0 1; background: $panel; }
        & #clusters-plot { height: 1fr; }
        & #clusters-under { height: auto; padding: 0 1; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "browse", "Browse these"),
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("up", "move(0, 1)", show=False),
        Binding("down", "move(0, -1)", show=False),
        Binding("shift+left", "move(-5, 0)", show=False),
        Binding("shift+right", "move(5, 0)", show=False),
        Binding("shift+up", "move(0, 5)", show=False),
        Binding("shift+down", "move(0, -5)", show=False),
    ]

    def __init__(
        self,
        labels: np.ndarray,
        predicted: np.ndarray,
        browse: Callable[[np.ndarray, str], None],
        project: Callable[[], Awaitable[np.ndarray | None]],
    ) -> None:
        """
        Args:
            labels: (n,) true classes; `predicted`: (n,) the model's, in test-set order.
            browse: opens the browser on some test indices, with a label for its header.
            project: asks for the (n, 2) projected features, awaited (the screen says
                meanwhile that they are being projected); None when they cannot be had.
        """
        super().__init__()
        self.labels, self.predicted = labels, predicted
        self.browse_fn = browse
        self.project = project
        self.plot: ClusterPlot | None = None

    def compose(self) -> ComposeResult:
        wrong = int((self.labels != self.predicted).sum())
        yield Static(
            f"How the test digits cluster: their features before the last layer on the two "
            f"principal axes (PCA)  ·  each digit drawn as its class  ·  {MISTAKE}: the "
            f"{wrong:,} the model gets wrong  ·  {CURSOR}: the cursor",
            id="clusters-header",
        )
        yield Static(
            f"Projecting {len(self.labels):,} digits (a second or so)…", id="clusters-under"
        )
        yield FittingFooter()

    def on_mount(self) -> None:
        self._fetch()

    @work(exclusive=True, group="clusters")
    async def _fetch(self) -> None:
        """Projecting takes a second or so: keys (esc) keep working meanwhile, and closing the
        screen cancels the wait."""
        points = await self.project()
        if points is None:
            self.show_failure("The engine could not project the digits (see the notice).")
        elif len(points) != len(self.labels):
            self.show_failure("The engine's test set changed meanwhile: esc, then k again.")
        else:
            self.show(points)

    def show(self, points: np.ndarray) -> None:
        """Draw the projected points (one per label, in the same order)."""
        self.plot = ClusterPlot(points, self.labels, self.predicted)
        self.mount(self.plot, before="#clusters-under")
        self._describe()
        self.refresh_bindings()

    def show_failure(self, reason: str) -> None:
        """Say why there is nothing to draw."""
        self.query_one("#clusters-under", Static).update(Content.styled(reason, "$error"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.plot is not None or action not in ("move", "browse")

    def action_move(self, dx: int, dy: int) -> None:
        if self.plot is not None:
            self.plot.move(dx, dy)
            self._describe()

    def _describe(self) -> None:
        if self.plot is None:
            return
        under, inside = self.plot.near_cursor()
        labels = self.plot.labels[under]
        counts = np.bincount(labels, minlength=10)
        most = [int(d) for d in np.argsort(-counts, kind="stable")[:3] if counts[d]]
        parts = [f"{d}: {counts[d]}" for d in most]
        if others := len(under) - sum(int(counts[d]) for d in most):
            parts.append(f"{others} of other digits")
        wrong = int((labels != self.plot.predicted[under]).sum())
        where = "Under the cursor" if inside else "None under the cursor; the nearest"
        count = f"{len(under)} {'digit' if len(under) == 1 else 'digits'}"
        self.query_one("#clusters-under", Static).update(
            f"{where}: {count} ({', '.join(parts)}); {wrong} wrong. Enter browses them."
        )

    def action_browse(self) -> None:
        if self.plot is None:
            return
        under = self.plot.under_cursor()
        self.browse_fn(under, f"{len(under)} digits near the cursor")

    def action_close(self) -> None:
        self.dismiss(None)
