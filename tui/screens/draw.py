"""Draw a digit and watch the model's class probabilities change as you draw."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeAlias

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from tui.core.data.preprocess import preprocess_drawing
from tui.core.render import render_digit
from tui.screens.browser import NO_MODEL
from tui.screens.inspect import ExplainFn
from tui.widgets.canvas import Canvas
from tui.widgets.digit import ProbabilityBars
from tui.widgets.footer import FittingFooter

ClassifyFn: TypeAlias = Callable[[np.ndarray], Awaitable[np.ndarray | None]]
"""Maps (k, 28, 28, 1) float32 images in [0, 1] to (k, 10) class probabilities, awaited; None
when the model could not be asked (the asker has said why)."""


class DrawScreen(Screen[None]):
    """A canvas on the left; on the right what the model sees and its ten class probabilities."""

    DEFAULT_CSS = """
    DrawScreen {
        & #draw-header { height: 1; padding: 0 1; background: $panel; }
        & #draw-body { height: 1fr; }
        & #draw-side { width: 1fr; min-width: 30; padding: 0 1 0 2; }
        & #draw-verdict { height: auto; margin-bottom: 1; }
        & #draw-seen { height: auto; margin-top: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("w", "inspect", "Why?"),
    ]

    def __init__(self, classify: ClassifyFn | None, *, explain: ExplainFn | None = None) -> None:
        """
        Args:
            classify: the model, as a function from images to probabilities; None before
                there is one (the canvas still works, nothing is predicted).
            explain: asks the model what it looked at in the drawing (`w`).
        """
        super().__init__()
        self.classify = classify
        self.explain = explain
        self.last_image: np.ndarray | None = None
        """The drawing as the model last saw it, (28, 28, 1)."""
        self.last_probabilities: np.ndarray | None = None
        """What the model said about the latest drawing it saw."""

    def compose(self) -> ComposeResult:
        yield Static(
            "Draw a digit · mouse: click, drag · arrows move, space paints, shift+arrows draw",
            id="draw-header",
        )
        with Horizontal(id="draw-body"):
            yield Canvas(id="draw-canvas")
            with Vertical(id="draw-side"):
                yield Static(id="draw-verdict")
                yield ProbabilityBars(id="draw-bars")
                yield Static(id="draw-seen")
        yield FittingFooter()

    def on_mount(self) -> None:
        canvas = self.query_one(Canvas)
        self.watch(canvas, "brush", self._show_verdict)
        self._fit_canvas()
        canvas.focus()

    def on_resize(self) -> None:
        self._fit_canvas()

    def _fit_canvas(self) -> None:
        # Bigger pixels are easier to hit with the mouse, when they fit beside the bars.
        width, height = self.size
        self.query_one(Canvas).zoom = 2 if width >= 56 + 2 + 40 and height >= 28 + 2 + 2 else 1

    def _show_verdict(self) -> None:
        verdict = self.query_one("#draw-verdict", Static)
        canvas = self.query_one(Canvas)
        brush = f"brush {canvas.brush}  ·  "
        if self.classify is None:
            verdict.update(brush + NO_MODEL)
        elif self.last_probabilities is None:
            verdict.update(brush + "Draw something.")
        else:
            best = int(self.last_probabilities.argmax())
            verdict.update(
                Content.assemble(
                    brush + "Looks like ",
                    (str(best), "bold $accent"),
                    f" ({self.last_probabilities[best]:.0%})",
                )
            )

    @on(Canvas.Changed)
    def _drawing_changed(self, event: Canvas.Changed) -> None:
        if self.classify is None:
            return
        if event.pixels.any():
            self._predict(event.pixels)
            return
        # Cleared: an answer about the old drawing must not come back to show it.
        self.workers.cancel_group(self, "draw-predict")
        self.last_probabilities = None
        self.last_image = None
        self.query_one(ProbabilityBars).probabilities = None
        self.query_one("#draw-seen", Static).update("")
        self._show_verdict()

    @work(exclusive=True, group="draw-predict")
    async def _predict(self, pixels: np.ndarray) -> None:
        """Ask the model about the drawing; a newer drawing cancels this request, so only the
        newest one's answer is ever shown."""
        assert self.classify is not None
        image = preprocess_drawing(pixels)
        probabilities = await self.classify(image[np.newaxis])
        if probabilities is None:
            self.query_one("#draw-verdict", Static).update(
                Content.styled("The model could not be asked (see the notice).", "$error")
            )
            return
        self.last_probabilities = probabilities = np.asarray(probabilities[0], np.float32)
        self.last_image = image
        self.query_one(ProbabilityBars).probabilities = tuple(float(p) for p in probabilities)
        self.query_one("#draw-seen", Static).update(
            Content("What the model sees:\n")
            + Content.from_rich_text(render_digit(image, compact=True))
        )
        self._show_verdict()

    def action_inspect(self) -> None:
        """What the model looked at in the drawing."""
        from tui.screens.inspect import InspectScreen

        if self.explain is None:
            self.notify("No model to ask yet: train one (t) or open one.", severity="warning")
            return
        if self.last_image is None:
            self.notify("Draw a digit first.", severity="warning")
            return
        self.app.push_screen(InspectScreen(self.explain, self.last_image, None, None))

    def action_close(self) -> None:
        self.dismiss(None)
