"""What the model looks at in one digit: a saliency map over it, for the predicted class or any
other, and the strongest feature maps of each conv layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from tui.core.render import heat_legend, render_map, render_overlay
from tui.engine.handle import Seen, Tile
from tui.widgets.digit import ProbabilityBars
from tui.widgets.footer import FittingFooter

METHODS = ("smoothgrad", "gradient")
METHOD_NAMES = {"smoothgrad": "SmoothGrad", "gradient": "plain gradient"}
TILE_SIDE = 14
"""Feature maps wider than this are averaged down 2x2, so four fit beside each other."""


ExplainFn = Callable[[int | None, np.ndarray | None, int | None, str], Awaitable[Seen | None]]
"""(test index, or None and the drawn image; the class, None for the predicted; the method) to
what the model saw, awaited; None when it could not be asked (the asker has said why)."""


def _shrink(values: np.ndarray) -> np.ndarray:
    while values.shape[1] > TILE_SIDE:
        rows, cols = (values.shape[0] // 2) * 2, (values.shape[1] // 2) * 2
        values = values[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))
    return values


class InspectScreen(Screen[None]):
    """`0`-`9` explain another class, `g` switches SmoothGrad and the plain gradient."""

    DEFAULT_CSS = """
    InspectScreen {
        & #inspect-header { height: auto; padding: 0 1; background: $panel; }
        & #inspect-body { height: auto; padding: 1 1 0 1; }
        & #inspect-digit { width: 30; height: auto; }
        & #inspect-side { width: 1fr; height: auto; padding: 0 0 0 2; }
        & #inspect-maps { height: auto; padding: 1 1 0 1; }
        & .inspect-tiles { height: auto; }
        & .inspect-tile { width: 16; height: auto; }
        & #inspect-note { height: auto; color: $text-muted; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("0", "explain(0)", "Explain class", key_display="0-9"),
        *(Binding(str(k), f"explain({k})", f"Class {k}", show=False) for k in range(1, 10)),
        Binding("g", "next_method", "Method"),
    ]

    def __init__(
        self,
        explain: ExplainFn,
        image: np.ndarray,
        index: int | None,
        label: int | None,
        *,
        subject: str = "your drawing",
    ) -> None:
        """
        Args:
            explain: asks the model.
            image: the digit, (28, 28[, 1]) float in [0, 1] or uint8 (float when `index` is
                None: it is sent as drawn pixels).
            index: its test index, or None for digits sent as pixels (a drawing).
            label: its true class, when known.
            subject: what a digit sent as pixels is, for the header.
        """
        super().__init__()
        self.subject = subject
        self.explain_fn = explain
        self.image = image
        self.index = index
        self.label = label
        self.class_index: int | None = None
        self.method = METHODS[0]
        self.seen: Seen | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="inspect-header")
        with VerticalScroll():
            with Horizontal(id="inspect-body"):
                yield Static(id="inspect-digit")
                with Vertical(id="inspect-side"):
                    yield Static(id="inspect-verdict")
                    yield ProbabilityBars(top=3, id="inspect-bars")
                    yield Static(id="inspect-note")
            yield Vertical(id="inspect-maps")
        yield FittingFooter()

    def on_mount(self) -> None:
        # The feature maps run below 24 rows: the arrow and page keys scroll to them.
        self.query_one(VerticalScroll).focus()
        self._ask()

    @property
    def color(self) -> bool:
        return not self.app.no_color

    def _ask(self) -> None:
        what = "the predicted class" if self.class_index is None else f"class {self.class_index}"
        self.query_one("#inspect-header", Static).update(
            f"Asking the model what it looks at for {what}…"
        )
        self._explain()

    @work(exclusive=True, group="explain")
    async def _explain(self) -> None:
        """Ask the model; a newer question (another class or method) cancels this one."""
        image = None if self.index is not None else np.asarray(self.image, np.float32)
        seen = await self.explain_fn(self.index, image, self.class_index, self.method)
        if seen is None:
            self.query_one("#inspect-header", Static).update(
                Content.styled("The model could not be asked (see the notice).", "$error")
            )
            return
        self._show(seen)

    def _show(self, seen: Seen) -> None:
        self.seen = seen
        predicted = int(seen.probabilities.argmax())
        where = f"#{self.index}" if self.index is not None else self.subject
        truth = f"  true {self.label}" if self.label is not None else ""
        self.query_one("#inspect-header", Static).update(
            f"{where}{truth}  predicted {predicted}  ·  what makes it class {seen.class_index} "
            f"({METHOD_NAMES[self.method]}): 0-9 another class, g another method"
        )
        overlay = render_overlay(self.image, seen.saliency, color=self.color)
        legend = heat_legend(28, color=self.color)
        self.query_one("#inspect-digit", Static).update(
            Content.from_rich_text(overlay) + Content("\n") + Content.from_rich_text(legend)
        )
        verdict = "✓" if self.label is None or predicted == self.label else "✗"
        self.query_one("#inspect-verdict", Static).update(f"predicted {predicted} {verdict}")
        bars = self.query_one(ProbabilityBars)
        if self.label is not None:
            bars.true_label = self.label
        bars.probabilities = tuple(float(p) for p in seen.probabilities)
        self.query_one("#inspect-note", Static).update(
            "Brighter: the pixels that raise the class's score most (its input gradient"
            + (", averaged over noisy copies" if self.method == "smoothgrad" else "")
            + ")."
        )
        self._show_tiles(seen.tiles)

    def _show_tiles(self, tiles: list[Tile]) -> None:
        maps = self.query_one("#inspect-maps", Vertical)
        maps.remove_children()
        layers: dict[str, list[Tile]] = {}
        for tile in tiles:
            layers.setdefault(tile.layer, []).append(tile)
        for layer, shown in layers.items():
            row = Horizontal(classes="inspect-tiles")
            maps.mount(Static(f"{layer}: the channels that fired most for this digit"))
            maps.mount(row)
            for tile in shown:
                picture = render_map(_shrink(tile.values), color=self.color)
                caption = f"\n#{tile.channel} · {tile.mean:.2f}"
                row.mount(Static(Content.from_rich_text(picture) + caption, classes="inspect-tile"))

    def action_explain(self, digit: int) -> None:
        self.class_index = digit
        self._ask()

    def action_next_method(self) -> None:
        self.method = METHODS[(METHODS.index(self.method) + 1) % len(METHODS)]
        self._ask()

    def action_close(self) -> None:
        self.dismiss(None)
