"""The training digits as the model sees them: most doubted (or highest loss) first, filtered by
label and prediction, with the doubted marked; marks to leave out, and a run without them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from tui.core.experiments.doubt import DOUBT_RULE, ORDERS, Order
from tui.core.inspect.predictions import confidence
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.phase import Action
from tui.core.training.snapshot import refusal
from tui.engine import protocol as p
from tui.engine.handle import EngineHandle, TrainingDigits
from tui.screens.browser import GoToIndex
from tui.widgets.digit import DigitDetail, DigitGrid
from tui.widgets.footer import FittingFooter

if TYPE_CHECKING:
    from tui.app import MnistApp

DOUBTED_MARK = "?"
"""After a card's index: the model doubts its label."""
LEFT_OUT_MARK = "✕"
"""After a card's index: marked to leave out."""
LEGEND = f"{DOUBTED_MARK} {DOUBT_RULE}"
"""The line under the header: the rule, stated where the marks are (74 columns)."""
ORDER_NAMES: dict[Order, str] = {"doubt": "most doubted first", "loss": "highest loss first"}

Settings = Callable[[], "tuple[Hyperparams, str] | str"]
"""The settings a new run trains with and its preset, or why they cannot be used."""


class TrainingDigitsScreen(Screen[None]):
    """Every training digit under the model the app holds, a page at a time.

    Keys: arrows, PgUp/PgDn, Home/End move; `o` changes the order; `0`-`9` keep one label, `p`
    then a digit one predicted class, `a` shows all again; Enter or `w` what the model looks at;
    `x` marks a digit to leave out, `X` (or `L`) the N most doubted; `t` trains a new run
    without the marked digits; escape closes.
    """

    app: MnistApp  # type: ignore[assignment]  # (Textual types it as App)

    DEFAULT_CSS = """
    TrainingDigitsScreen {
        & #digits-header { height: auto; padding: 0 1; background: $panel; }
        & #digits-legend { height: auto; padding: 0 1; color: $text-muted; }
        & #digits-body { height: 1fr; }
        & #digits-message { width: 1fr; height: 1fr; content-align: center middle; }
        & DigitDetail { border-left: vkey $panel-lighten-2; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter,w", "inspect", "Why?", key_display="⏎/w"),
        Binding("x", "mark", "Leave out"),
        Binding("X,L", "mark_most_doubted", "Most doubted", key_display="X"),
        Binding("t", "train_without", "Train without"),
        Binding("o", "next_order", "Order"),
        Binding("0", "label(0)", "Label", key_display="0-9"),
        *(Binding(str(k), f"label({k})", f"Label {k}", show=False) for k in range(1, 10)),
        Binding("p", "expect_predicted", "Predicted…"),
        Binding("a", "show_all", "All"),
    ]

    order: reactive[Order] = reactive("doubt", init=False)
    label: reactive[int | None] = reactive(None, init=False)
    """Only digits with this label; None: any."""
    predicted: reactive[int | None] = reactive(None, init=False)
    """Only digits the model calls this; None: any."""
    awaiting_predicted: reactive[bool] = reactive(False, init=False)
    """`p` was pressed: the next digit key picks a predicted class instead of a label."""

    def __init__(self, handle: EngineHandle, settings: Settings) -> None:
        """
        Args:
            handle: the engine, asked for the audit and told the marks.
            settings: the settings a run without the marked digits trains with (the panel's).
        """
        super().__init__()
        self.handle = handle
        self.settings = settings
        self.digits: TrainingDigits | None = None
        self.marked: set[int] = set()
        self._doubted = np.zeros(0, bool)
        self._loss = np.zeros(0, np.float32)
        self._started = 0.0
        self._ticker: Timer | None = None
        self._train_asked = False
        """A run without the marked digits was asked for and has not been refused."""

    def compose(self) -> ComposeResult:
        yield Static("Training digits", id="digits-header")
        yield Static(LEGEND, id="digits-legend")
        with Horizontal(id="digits-body"):
            yield Static(id="digits-message")
        yield FittingFooter()

    def on_mount(self) -> None:
        self._started = time.monotonic()
        self._ticker = self.set_interval(0.5, self._show_progress)
        self._show_progress()
        self._audit()

    def _show_progress(self) -> None:
        seconds = time.monotonic() - self._started
        self._say(
            "Auditing every training digit under the model (full MNIST takes seconds)… "
            f"{seconds:.0f} s"
        )

    def _say(self, text: str) -> None:
        self.query_one("#digits-message", Static).update(text)

    @work(exclusive=True, group="audit")
    async def _audit(self) -> None:
        answer = await self.handle.training_digits()
        if self._ticker is not None:
            self._ticker.stop()
        if isinstance(answer, str):
            self._say(answer)  # no model, a model that cannot be read, training: one line
            return
        audit = answer.audit
        self.marked = set(answer.marked)
        self._doubted = audit.doubted
        self._loss = audit.loss
        body = self.query_one("#digits-body", Horizontal)
        await body.remove_children()
        await body.mount(
            DigitGrid(
                answer.images,
                audit.labels,
                audit.predicted,
                confidence(audit.probabilities),
                notes=self._notes,
                id="digits-grid",
            ),
            DigitDetail(),
        )
        self.digits = answer  # only now: the keys that act on the grid find it mounted
        self._reselect(keep=False)
        self.grid.focus()

    @property
    def grid(self) -> DigitGrid:
        return self.query_one(DigitGrid)

    def _notes(self, index: int) -> str:
        doubted = DOUBTED_MARK if self._doubted[index] else ""
        marked = LEFT_OUT_MARK if index in self.marked else ""
        return f" {doubted}{marked}" if doubted or marked else ""

    def _reselect(self, *, keep: bool = True) -> None:
        if self.digits is None:
            return
        grid = self.grid
        order = self.digits.audit.ranked(self.order, self.label, self.predicted)
        grid.set_order(order, keep=grid.selected_index if keep else None)
        self._update_header()

    def _update_header(self) -> None:
        digits = self.digits
        if digits is None:
            return
        audit = digits.audit
        total = len(audit.labels)
        shown = len(self.grid.order)
        filters = [
            *([f"label {self.label}"] if self.label is not None else []),
            *([f"predicted {self.predicted}"] if self.predicted is not None else []),
        ]
        kept = "audit.npz reused" if digits.reused else f"audited in {digits.seconds:.1f} s"
        parts = [
            f"Training digits, {audit.model_file} epoch {audit.epoch} ({kept})",
            f"{', '.join(filters) or 'all'}: {shown:,} of {total:,}",
            ORDER_NAMES[self.order],
            f"{int(self._doubted.sum()):,} {DOUBTED_MARK} doubted",
            f"{len(self.marked):,} {LEFT_OUT_MARK} marked to leave out",
        ]
        if digits.left_out:
            parts.append(f"its data leaves out {len(digits.left_out):,}")
        if self.awaiting_predicted:
            parts = ["predicted class? press 0-9", *parts]
        self.query_one("#digits-header", Static).update("  ·  ".join(parts))

    def watch_order(self) -> None:
        self._reselect()

    def watch_label(self) -> None:
        self._reselect()

    def watch_predicted(self) -> None:
        self._reselect()

    def watch_awaiting_predicted(self) -> None:
        self._update_header()

    @on(DigitGrid.Highlighted)
    def _show_detail(self, event: DigitGrid.Highlighted) -> None:
        if self.digits is None:
            return
        detail = self.query_one(DigitDetail)
        index = event.index
        if index is None:
            detail.show(None, None, 0, None)
            return
        audit = self.digits.audit
        notes = [
            *(["label doubted"] if self._doubted[index] else []),
            *(["marked to leave out"] if index in self.marked else []),
        ]
        detail.show(
            index,
            self.digits.images[index],
            int(audit.labels[index]),
            audit.probabilities[index],
            f"loss {self._loss[index]:.2f}" + "".join(f"\n{note}" for note in notes),
        )

    # --- actions ---------------------------------------------------------------------------------
    def _selected(self) -> int | None:
        index = self.grid.selected_index if self.digits is not None else None
        if index is None:
            self.notify("No digit is selected.", severity="warning")
        return index

    def action_inspect(self) -> None:
        """What the model looks at in the selected training digit."""
        from tui.screens.inspect import InspectScreen

        index = self._selected()
        if index is None or self.digits is None:
            return
        image = self.digits.images[index].astype(np.float32) / 255.0
        label = int(self.digits.audit.labels[index])
        self.app.push_screen(
            InspectScreen(
                self.handle.explain, image, None, label, subject=f"training digit #{index}"
            )
        )

    def action_close(self) -> None:
        if self.awaiting_predicted:
            self.awaiting_predicted = False
        else:
            self.dismiss(None)

    def action_next_order(self) -> None:
        self.order = ORDERS[(ORDERS.index(self.order) + 1) % len(ORDERS)]

    def action_label(self, digit: int) -> None:
        if self.awaiting_predicted:
            self.awaiting_predicted = False
            self.predicted = None if self.predicted == digit else digit
        else:
            self.label = None if self.label == digit else digit

    def action_expect_predicted(self) -> None:
        self.awaiting_predicted = not self.awaiting_predicted

    def action_show_all(self) -> None:
        self.awaiting_predicted = False
        self.label = self.predicted = None

    def action_mark(self) -> None:
        index = self._selected()
        if index is None:
            return
        self.marked.symmetric_difference_update({index})
        self._marks_changed()
        self.grid.action_move(1, 0)  # on to the next, as marking a list goes

    def action_mark_most_doubted(self) -> None:
        if self.digits is None:
            return
        shown = self.digits.audit.ranked("doubt", self.label, self.predicted)
        doubted = int(self._doubted[shown].sum())
        self.app.push_screen(
            GoToIndex(
                len(shown) + 1,
                prompt="Most doubted to leave out",
                what="a count of digits shown",
                value=str(doubted) if doubted else "",
            ),
            self._mark_most_doubted,
        )

    def _mark_most_doubted(self, count: int | None) -> None:
        if count is None or self.digits is None:
            return
        shown = self.digits.audit.ranked("doubt", self.label, self.predicted)
        self.marked.update(int(i) for i in shown[:count])
        self._marks_changed()

    def _marks_changed(self) -> None:
        self.grid.redraw()
        self.grid.post_message(DigitGrid.Highlighted(self.grid, self.grid.selected_index))
        self._update_header()
        self._keep_marks()

    @work(exclusive=True, group="marks")
    async def _keep_marks(self) -> None:
        """Tell the engine, which keeps them in the run as leave-out.txt (a newer mark
        supersedes an older one on its way)."""
        await self.handle.command(p.SaveLeaveOut, quiet=True, indices=tuple(sorted(self.marked)))

    def action_train_without(self) -> None:
        if self._train_asked:
            return  # one new run: a second t while the first is on its way would be refused
        refused = refusal(self.app.snapshot, Action.TRAIN)
        if refused is not None:
            self.notify(refused.reason, severity="warning")
            return
        if not self.marked:
            self.notify(
                "No digits are marked to leave out: x marks one, X the most doubted.",
                severity="warning",
            )
            return
        settings = self.settings()
        if isinstance(settings, str):
            self.notify(settings, title="Fix the panel first", severity="error")
            return
        self._train_asked = True
        self._train_without(*settings)

    @work(group="train")
    async def _train_without(self, hparams: Hyperparams, preset: str) -> None:
        """Ask for the run in a worker: with digits already left out, the engine loads the
        source again first (seconds), and the screen stays live meanwhile."""
        count, before = len(self.marked), self.app.snapshot.run
        reply = await self.handle.command(
            p.TrainWithout, indices=tuple(sorted(self.marked)), hparams=hparams, preset=preset
        )
        if reply is None:
            self._train_asked = False  # refused (said in a notice): t may try again
            return
        since = f" with {before.rsplit('/', 1)[-1]}" if before else ""
        self.notify(
            f"A new run trains without {count:,} training digits; R then c compares it{since}."
        )
        self.dismiss(None)
