"""The help screen: every key, what the panel does while training, where the logs go."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    (
        "t",
        "train; after a run ends, continue (to the epochs field if it is higher, "
        "else for another run of the same length)",
    ),
    ("s", "stop now (within 8 batches; the epoch in progress is rolled back)"),
    ("e", "stop after the epoch in progress"),
    ("p", "pause / resume"),
    ("+ / -", "raise / lower the epoch target (never below the epoch in progress)"),
    (
        "v",
        "prediction browser: arrows/PgUp/PgDn move, w what the model looked at, "
        "m misclassified, 0-9 a true class, p then 0-9 a predicted class, a all, o order, "
        "g go to an index",
    ),
    ("c", "confusion matrix: arrows move, Enter browses the digits of a cell"),
    (
        "d",
        "draw a digit: mouse or arrows (shift draws), space paints, x erases, c clears, "
        "[ ] brush size, w what the model looked at",
    ),
    ("m", "the model's layers: shapes, parameters, and each layer's health epoch by epoch"),
    ("k", "how the test digits cluster (PCA of the last hidden layer); Enter browses a spot"),
    (
        "a",
        "training digits: most doubted first (o: highest loss), ? a doubted label, 0-9 a "
        "label, p then 0-9 a predicted class, a all, Enter/w what the model looked at, x marks "
        "one to leave out, X the N most doubted, t trains a new run without the marked ones",
    ),
    ("l", "curves: accuracy / loss"),
    ("h", "show / hide the hyperparameter panel"),
    ("i", "show / hide the devices (what trains, GPU memory, CPU threads)"),
    ("r", "reset: a fresh model from the panel (asks first)"),
    (
        "R",
        "runs: past runs, branches under their parent; Enter resumes one here, b branches one, "
        "n writes its note and tags, / filters, space marks, c compares marked runs",
    ),
    ("b", "branch the run held here from one of its kept epochs; t then trains the branch"),
    ("W", "sweeps under ./sweeps: Enter opens one (trials, objective, importances)"),
    ("S", "save the model as models/<name>.keras"),
    ("Esc", "leave a field, back to the keys; closes a screen"),
    ("?", "this help"),
    (
        "q, Ctrl+C",
        "quit; while training, choose: leave it training in the background "
        "(mnist-tui attach comes back), or stop it",
    ),
)


class HelpScreen(ModalScreen[None]):
    """Keys and notes; any of Escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, log_path: str | None = None) -> None:
        super().__init__()
        self.log_path = log_path

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
        notes = Text.assemble(
            ("\nThe panel: ", "bold"),
            "Fields are checked as you type; training will not start while one is invalid. "
            "While training, epochs and learning rate apply live when you press Enter or leave "
            "the field. Once a model is trained, its network fields stay locked until a reset; "
            "batch size, schedule, validation split and train size apply when training "
            "continues.\n",
            ("\nRuns: ", "bold"),
            "Every training is recorded in runs/<time>-<preset>/ (or --runs-dir): "
            "hyperparameters, per-epoch metrics, the latest and best model, test predictions. "
            "t continues the same run; after r the next t starts a new one.\n",
            ("\nLogs: ", "bold"),
            "TensorFlow's own messages go to ",
            (self.log_path or "the terminal (no log file in this run)", "italic"),
            ".",
        )
        with VerticalScroll(id="help-dialog") as dialog:
            dialog.border_title = "mnist-tui keys"
            dialog.border_subtitle = "Esc closes"
            yield Static(keys)
            yield Static(notes)

    def action_close(self) -> None:
        self.dismiss(None)
