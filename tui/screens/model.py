"""What the layers do: every layer as `model.summary()` lists it, and each learning layer's
health epoch by epoch while training runs (weight norm, update size, dead units), marked where
it goes wrong."""

from __future__ import annotations

import math
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.core.training.events import LayerFigures, LayerInfo
from tui.core.training.snapshot import Snapshot
from tui.widgets.footer import FittingFooter

SPARKS = "▁▂▃▄▅▆▇█"
TREND_MIN, TREND_MAX = 3, 16
"""Epochs each trend shows (the latest): as many as the width allows, within these."""
TITLES = ("layer", "kind", "output", "params", "norm", "update", "dead", "")
PADDING = 2
"""A DataTable cell's padding, both sides together."""
WARNING = "⚠"
SHORT_KINDS = {"MaxPooling2D": "MaxPool2D", "BatchNormalization": "BatchNorm"}


def sparkline(values: list[float | None], *, log: bool = False) -> str:
    """One character per value, low to high; `log` for figures spanning decades."""
    shown = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not shown:
        return ""
    scale = [math.log10(v) if log else v for v in shown]
    low, high = min(scale), max(scale)
    out = []
    for value in values:
        if value is None or not math.isfinite(value) or (log and value <= 0):
            out.append(" ")
            continue
        x = math.log10(value) if log else value
        level = 0 if high == low else round((x - low) / (high - low) * (len(SPARKS) - 1))
        out.append(SPARKS[level])
    return "".join(out)


def _with_trend(figure: str, trend: str) -> Text:
    return Text.assemble(figure, (f" {trend}" if trend.strip() else "", "cyan"))


def _figure(value: float | None, digits: int) -> str:
    """`digits` significant digits, trailing zeros kept so that a column reads evenly (0.20)."""
    return "-" if value is None else format(value, f"#.{digits}g").rstrip(".")


def _described(layer: LayerInfo) -> tuple[str, str, str, str]:
    """A layer's name, kind, output shape and parameter count as the table shows them."""
    shape = "x".join("?" if d is None else str(d) for d in layer.output_shape[1:])
    return layer.name, SHORT_KINDS.get(layer.kind, layer.kind), shape, f"{layer.params:,}"


def _figures(figures: LayerFigures | None) -> tuple[str, str, str]:
    """A layer's latest weight norm, update size and dead share as the table shows them."""
    if figures is None:
        return "-", "-", "-"
    dead = figures.dead_share
    return (
        _figure(figures.weight_norm, 3),
        _figure(figures.update_ratio, 2),
        "-" if dead is None else f"{dead:.0%}",
    )


class ModelScreen(Screen[None]):
    """Bound to the app's snapshot: redrawn when the layers or their figures change."""

    DEFAULT_CSS = """
    ModelScreen {
        & #model-header { height: auto; padding: 0 1; background: $panel; }
        & #model-table { height: auto; max-height: 1fr; margin: 1 0 0 0; }
        & #model-problems { height: auto; padding: 1 1 0 1; color: $text-warning; }
        & #model-help { height: auto; padding: 1 1 0 1; color: $text-muted; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Static(id="model-header")
        yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="model-problems")
        yield Static(
            "norm: size of the weights · update: how far one epoch moved them, relative to their "
            "size (log scale) · dead: ReLU units that never fired on a fixed batch of 256 "
            "training images. Each with its trend over the last epochs.",
            id="model-help",
        )
        yield FittingFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for title in TITLES:
            table.add_column(title, key=title or "mark")
        self.show(self.snapshot)
        table.focus()
        self.watch(self.app, "snapshot", self._follow, init=False)

    def _follow(self, snapshot: Snapshot) -> None:
        # Progress changes the snapshot several times a second; the table only once an epoch.
        if (
            snapshot.layers is not self.snapshot.layers
            or snapshot.health is not self.snapshot.health
        ):
            self.show(snapshot)

    def on_resize(self) -> None:
        self.show(self.snapshot)  # the trends take the width there is

    def show(self, snapshot: Snapshot) -> None:
        """Redraw from the engine's state (the layers, and their figures so far)."""
        self.snapshot = snapshot
        header = self.query_one("#model-header", Static)
        if not snapshot.layers:
            header.update("The model's layers: none yet (train one with t, or open one).")
            self.query_one(DataTable).clear()
            return
        params = sum(layer.params for layer in snapshot.layers)
        epochs = len(snapshot.health)
        header.update(
            f"The model's layers  ·  {len(snapshot.layers)} layers, {params:,} parameters  ·  "
            f"health after {epochs} epoch{'s' if epochs != 1 else ''}"
        )
        latest = snapshot.health[-1] if snapshot.health else None
        now = {f.layer: f for f in latest.layers} if latest else {}
        figures_now = [_figures(now.get(layer.name)) for layer in snapshot.layers]
        trend = self._trend_length(snapshot, figures_now)
        recent = snapshot.health[-trend:]
        history: dict[str, list[LayerFigures | None]] = {
            layer.name: [next((f for f in h.layers if f.layer == layer.name), None) for h in recent]
            for layer in snapshot.layers
        }
        troubled = {problem.layer for problem in (latest.problems if latest else ())}
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for layer, (norm, update, dead) in zip(snapshot.layers, figures_now, strict=True):
            past = history[layer.name]
            mark = Text(WARNING, style="bold yellow") if layer.name in troubled else Text("")
            table.add_row(
                *_described(layer)[:3],
                Text(f"{layer.params:,}", justify="right"),
                _with_trend(norm, sparkline([f.weight_norm if f else None for f in past])),
                _with_trend(
                    update, sparkline([f.update_ratio if f else None for f in past], log=True)
                ),
                _with_trend(dead, sparkline([f.dead_share if f else None for f in past])),
                mark,
            )
        if 0 <= row < table.row_count:
            table.move_cursor(row=row)
        problems = latest.problems if latest else ()
        self.query_one("#model-problems", Static).update(
            "\n".join(f"{WARNING} {p.text}" for p in problems)
        )

    def _trend_length(self, snapshot: Snapshot, figures: list[tuple[str, str, str]]) -> int:
        """The longest trend (in epochs) with which the table fits the terminal's width, so
        that no column is cut ("dead" read "dea" at 80 columns)."""
        texts = [
            (*_described(layer), *f) for layer, f in zip(snapshot.layers, figures, strict=True)
        ]
        widest = [
            max([len(title), *(len(row[i]) for row in texts)])
            for i, title in enumerate(TITLES[:-1])
        ]
        # Room: the screen less the scrollbar and the warning mark's column.
        room = self.app.size.width - 1 - (len(WARNING) + PADDING)
        for trend in range(TREND_MAX, TREND_MIN, -1):
            width = sum(
                max(len(TITLES[i]), widest[i] + (1 + trend if i >= 4 else 0)) + PADDING
                for i in range(len(widest))
            )
            if width <= room:
                return trend
        return TREND_MIN

    def action_close(self) -> None:
        self.dismiss(None)
