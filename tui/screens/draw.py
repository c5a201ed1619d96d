"""Draw a digit and watch the model's class probabilities change as you draw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from tui.core.data.preprocess import preprocess_drawing
from tui.core.render import render_digit
from tui.screens.browser import NO_MODEL
from tui.screens.inspect import ExplainFn
from tui.widgets.canvas import Canvas
from tui.widgets.digit import ProbabilityBars
from tui.widgets.footer import FittingFooter

PredictFn: TypeAlias = Callable[[np.ndarray], np.ndarray]
"""Maps (k, 28, 28, 1) float32 images in [0, 1] to (k, 10) class probabilities."""

MIN_INTERVAL = 0.05
"""Seconds between two predictions at most: a drag paints faster than that, and each
prediction costs CPU that the screen needs to stay smooth."""


@dataclass
class DrawingPredicted(Message):
    """The model has looked at the drawing (posted from the prediction thread)."""

    image: np.ndarray
    """The preprocessed (28, 28, 1) image the model saw."""
    probabilities: np.ndarray
    """(10,) class probabilities."""
    generation: int
    """The screen's `_generation` when the drawing was taken: a stale one is not shown."""


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

    def __init__(self, predict_fn: PredictFn | None, *, explain: ExplainFn | None = None) -> None:
        """
        Args:
            predict_fn: the model, as a function from images to probabilities; None before
                there is one (the canvas still works, nothing is predicted).
            explain: asks the model what it looked at in the drawing (`w`).
        """
        super().__init__()
        self.predict_fn = predict_fn
        self.explain = explain
        self.last_image: np.ndarray | None = None
        """The drawing as the model last saw it, (28, 28, 1)."""
        self._lock = threading.Lock()
        self._pending: tuple[int, np.ndarray] | None = None
        """The newest drawing not yet predicted, with its generation; older ones are dropped,
        never queued."""
        self._predicting = False
        self._generation = 0
        """Counts the times the canvas was emptied (on the UI thread): a prediction of a drawing
        from before then arrives too late to be shown."""
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
        if self.predict_fn is None:
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
        if self.predict_fn is None:
            return
        if not event.pixels.any():
            with self._lock:
                self._generation += 1
                self._pending = None
            self.last_probabilities = None
            self.last_image = None
            self.query_one(ProbabilityBars).probabilities = None
            self.query_one("#draw-seen", Static).update("")
            self._show_verdict()
            return
        with self._lock:
            self._pending = (self._generation, event.pixels)
            if self._predicting:
                return
            self._predicting = True
        self._predict()

    @work(thread=True, exit_on_error=False, group="draw-predict")
    def _predict(self) -> None:
        """Predict the newest drawing until none is waiting; runs in a thread."""
        predict_fn = self.predict_fn
        assert predict_fn is not None
        try:
            while True:
                with self._lock:
                    pending, self._pending = self._pending, None
                    if pending is None:
                        self._predicting = False
                        return
                generation, pixels = pending
                started = time.monotonic()
                image = preprocess_drawing(pixels)
                probabilities = np.asarray(predict_fn(image[np.newaxis]), dtype=np.float32)
                self.post_message(DrawingPredicted(image, probabilities[0], generation))
                # Throttle, not synchronise: newer drawings pile up into one while we wait.
                time.sleep(max(0.0, MIN_INTERVAL - (time.monotonic() - started)))
        except BaseException:
            with self._lock:
                self._predicting = False
            raise

    @on(DrawingPredicted)
    def _show_prediction(self, event: DrawingPredicted) -> None:
        if event.generation != self._generation:
            return  # the canvas was cleared while the model looked at the old drawing
        self.last_probabilities = event.probabilities
        self.last_image = event.image
        self.query_one(ProbabilityBars).probabilities = tuple(float(p) for p in event.probabilities)
        self.query_one("#draw-seen", Static).update(
            Content("What the model sees:\n")
            + Content.from_rich_text(render_digit(event.image, compact=True))
        )
        self._show_verdict()

    @on(Worker.StateChanged)
    def _prediction_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group == "draw-predict":
            error = event.worker.error
            self.query_one("#draw-verdict", Static).update(
                Content.styled(f"Prediction failed: {type(error).__name__}: {error}", "$error")
            )

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
