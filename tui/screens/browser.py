"""The prediction browser: test digits beside what the model called them, filtered and sorted."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.validation import Number
from textual.widgets import Input, Label, Static

from tui.core.inspect.predictions import (
    PredictionFilter,
    Predictions,
    PredictionSort,
    confidence,
    select,
)
from tui.screens.inspect import ExplainFn
from tui.widgets.digit import DigitDetail, DigitGrid
from tui.widgets.footer import FittingFooter

NO_MODEL = "No model yet: press t to train, or start with --model PATH."
"""Shown by the prediction screens when there is nothing to show."""


class GoToIndex(ModalScreen[int | None]):
    """Asks for a test index (or another number in a range); dismisses with it, or None when
    cancelled."""

    DEFAULT_CSS = """
    GoToIndex {
        align: center middle;
        & > Vertical { width: 44; height: auto; border: round $accent; padding: 0 1; }
        & Input { width: 1fr; }
        & #goto-error { height: auto; color: $error; }
    }
    """

    AUTO_FOCUS = "Input"
    """Its own, not the app's (which may name a widget of the dashboard)."""
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        count: int,
        *,
        prompt: str = "Go to test index",
        what: str = "a test index",
        value: str = "",
    ) -> None:
        """
        Args:
            count: the number asked for is 0 to `count - 1`.
            prompt: the question, before the range.
            what: what the number is, for the line that refuses one out of range.
            value: what the field holds at first.
        """
        super().__init__()
        self.count = count
        self.prompt = prompt
        self.what = what
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.prompt} (0 to {self.count - 1}):")
            yield Input(
                self.value,
                type="integer",
                validators=[Number(minimum=0, maximum=self.count - 1)],
                validate_on=["changed", "submitted"],
            )
            yield Label(id="goto-error")

    @on(Input.Changed)
    @on(Input.Submitted)
    def _check(self, event: Input.Changed | Input.Submitted) -> None:
        result = event.validation_result
        error = "" if result is None or result.is_valid or not event.value else f"not {self.what}"
        self.query_one("#goto-error", Label).update(
            f"{event.value} is {error}; use 0 to {self.count - 1}." if error else ""
        )
        if isinstance(event, Input.Submitted) and event.value and not error:
            self.dismiss(int(event.value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class PredictionBrowser(Screen[None]):
    """Every test digit with its true and predicted class, a page at a time.

    Keys: arrows, PgUp/PgDn, Home/End move; `g` goes to a test index; `m` toggles misclassified;
    `0`-`9` keep one true class, `p` then a digit one predicted class, `a` shows all again;
    `o` changes the order; escape closes.
    """

    DEFAULT_CSS = """
    PredictionBrowser {
        & #browser-header { height: auto; padding: 0 1; background: $panel; }
        & #browser-body { height: 1fr; }
        & #browser-empty { width: 1fr; height: 1fr; content-align: center middle; }
        & DigitDetail { border-left: vkey $panel-lighten-2; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("w", "inspect", "Why?"),
        Binding("m", "toggle_misclassified", "Misclassified"),
        Binding("0", "digit(0)", "True class", key_display="0-9"),
        *(Binding(str(k), f"digit({k})", f"True class {k}", show=False) for k in range(1, 10)),
        Binding("p", "expect_predicted", "Predicted…"),
        Binding("a", "show_all", "All"),
        Binding("o", "next_sort", "Order"),
        Binding("g", "go_to", "Go to #"),
    ]

    prediction_filter: reactive[PredictionFilter] = reactive(PredictionFilter, init=False)
    """Which digits are browsed."""
    prediction_sort: reactive[PredictionSort] = reactive(PredictionSort.INDEX, init=False)
    """In what order."""
    awaiting_predicted: reactive[bool] = reactive(False, init=False)
    """`p` was pressed: the next digit key picks a predicted class instead of a true one."""

    def __init__(
        self,
        predictions: Predictions | None,
        images: np.ndarray | None,
        *,
        filter: PredictionFilter | None = None,
        sort: PredictionSort = PredictionSort.INDEX,
        within: np.ndarray | None = None,
        within_label: str = "",
        explain: ExplainFn | None = None,
    ) -> None:
        """
        Args:
            predictions: test-set probabilities and labels, or None before there is a model.
            images: the test images those predictions are for, (n, 28, 28[, 1]).
            filter: which digits to show first; all of them by default.
            sort: the order to show them in.
            within: test indices to browse among (digits picked on the cluster plot); None:
                the whole test set.
            within_label: what `within` is, for the header.
            explain: asks the model what it looked at (`w`); None when nobody can answer.
        """
        super().__init__()
        if (
            predictions is not None
            and images is not None
            and len(images) != len(predictions.labels)
        ):
            raise ValueError(
                f"{len(images)} images but {len(predictions.labels)} predictions; "
                "they must be the same test set."
            )
        self.predictions = predictions if images is not None else None
        self.images = images
        self.within = within
        self.within_label = within_label
        self.explain = explain
        self.set_reactive(PredictionBrowser.prediction_filter, filter or PredictionFilter())
        self.set_reactive(PredictionBrowser.prediction_sort, sort)
        if self.predictions is not None:
            self._predicted = self.predictions.predicted
            self._confidence = confidence(self.predictions.probabilities)

    def compose(self) -> ComposeResult:
        yield Static(id="browser-header")
        if self.predictions is None or self.images is None:
            yield Static(NO_MODEL, id="browser-empty")
        else:
            with Horizontal(id="browser-body"):
                yield DigitGrid(
                    self.images,
                    self.predictions.labels,
                    self._predicted,
                    self._confidence,
                    id="browser-grid",
                )
                yield DigitDetail()
        yield FittingFooter()

    def on_mount(self) -> None:
        # The app's predictions change when the engine has new ones (an epoch trained, a run
        # opened): the digits shown stay, their verdicts follow.
        self.watch(self.app, "predictions", self._new_predictions, init=False)
        self._show_first()

    def _show_first(self) -> None:
        if self.predictions is None:
            self.query_one("#browser-header", Static).update("Predictions")
            return
        self._reselect(keep_selection=False)
        self.query_one(DigitGrid).focus()

    async def _new_predictions(self, predictions: Predictions | None) -> None:
        if self.images is None or (
            predictions is not None and len(predictions.labels) != len(self.images)
        ):
            return  # not for these images: another test set is on its way
        had = self.predictions is not None
        self.predictions = predictions
        if predictions is not None:
            self._predicted = predictions.predicted
            self._confidence = confidence(predictions.probabilities)
        if had and predictions is not None:
            grid = self.grid
            grid.predicted, grid.confidence = self._predicted, self._confidence
            self._reselect()
        else:
            await self.recompose()
            self._show_first()

    @property
    def grid(self) -> DigitGrid:
        return self.query_one(DigitGrid)

    def _reselect(self, *, keep_selection: bool = True) -> None:
        """Recompute the browsed indices, keeping the selected digit when it still qualifies."""
        if self.predictions is None:
            return
        grid = self.grid
        order = select(self.predictions, self.prediction_filter, self.prediction_sort)
        if self.within is not None:
            order = order[np.isin(order, self.within)]
        grid.set_order(order, keep=grid.selected_index if keep_selection else None)
        self._update_header()

    def _update_header(self) -> None:
        if self.predictions is None:
            return
        total = len(self.predictions.labels)
        shown = len(self.grid.order)
        count = f"{shown:,} digits" if shown == total else f"{shown:,} of {total:,}"
        parts = [
            *([self.within_label] if self.within_label else []),
            f"filter: {self.prediction_filter.describe()}",
            self.prediction_sort.label,
            count,
            f"accuracy {self.predictions.accuracy:.1%}",
        ]
        if self.awaiting_predicted:
            parts = ["predicted class? press 0-9", *parts]
        self.query_one("#browser-header", Static).update("  ·  ".join(parts))

    def watch_prediction_filter(self) -> None:
        self._reselect()

    def watch_prediction_sort(self) -> None:
        self._reselect()

    def watch_awaiting_predicted(self) -> None:
        self._update_header()

    @on(DigitGrid.Highlighted)
    def _show_detail(self, event: DigitGrid.Highlighted) -> None:
        if self.predictions is None or self.images is None:
            return
        detail = self.query_one(DigitDetail)
        if event.index is None:
            detail.show(None, None, 0, None)
        else:
            detail.show(
                event.index,
                self.images[event.index],
                int(self.predictions.labels[event.index]),
                self.predictions.probabilities[event.index],
            )

    # --- actions ---------------------------------------------------------------------------------
    def action_inspect(self) -> None:
        """What the model looked at in the selected digit."""
        from tui.screens.inspect import InspectScreen

        index = self.grid.selected_index if self.predictions is not None else None
        if index is None or self.images is None or self.predictions is None:
            self.notify("No digit is selected.", severity="warning")
            return
        if self.explain is None:
            self.notify("No model to ask; train one (t) or open one.", severity="warning")
            return
        label = int(self.predictions.labels[index])
        self.app.push_screen(InspectScreen(self.explain, self.images[index], index, label))

    def action_close(self) -> None:
        if self.awaiting_predicted:
            self.awaiting_predicted = False
        else:
            self.dismiss(None)

    def action_toggle_misclassified(self) -> None:
        current = self.prediction_filter
        self.prediction_filter = PredictionFilter(
            not current.misclassified, current.true, current.predicted
        )

    def action_digit(self, digit: int) -> None:
        current = self.prediction_filter
        if self.awaiting_predicted:
            self.awaiting_predicted = False
            predicted = None if current.predicted == digit else digit
            self.prediction_filter = PredictionFilter(
                current.misclassified, current.true, predicted
            )
        else:
            true = None if current.true == digit else digit
            self.prediction_filter = PredictionFilter(
                current.misclassified, true, current.predicted
            )

    def action_expect_predicted(self) -> None:
        self.awaiting_predicted = not self.awaiting_predicted

    def action_show_all(self) -> None:
        self.awaiting_predicted = False
        self.prediction_filter = PredictionFilter()

    def action_next_sort(self) -> None:
        self.prediction_sort = self.prediction_sort.next()

    def action_go_to(self) -> None:
        if self.predictions is None:
            return
        self.app.push_screen(GoToIndex(len(self.predictions.labels)), self._go_to)

    def _go_to(self, index: int | None) -> None:
        if index is None or self.predictions is None:
            return
        if self.within is not None and index not in self.within:
            # Showing all would still only show these digits: say so instead.
            what = self.within_label or "the digits shown here"
            self.notify(f"#{index} is not among {what}; esc, then g in the full browser.")
            return
        if not self.grid.go_to_index(index):
            # The digit is outside the filter: show everything rather than refuse.
            self.notify(f"#{index} is not in “{self.prediction_filter.describe()}”; showing all.")
            self.prediction_filter = PredictionFilter()
            self.grid.go_to_index(index)
