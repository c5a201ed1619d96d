"""The cells of the runs table: what each column shows of a run, and the filter's match."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from tui.format import format_percent

if TYPE_CHECKING:
    from tui.core.runs.catalog import RunSummary

MARK = "●"
"""Shown beside a run marked for comparison."""
WARNING = "⚠"
"""Starts the note of a broken run, so it stands out without colour too."""
LIVE = "● live"
"""In the time column of a run that is training now: a word, so it reads without colour."""
BRANCH = "└"
"""Starts the first cell of a branch, under its parent (indented one step a generation)."""
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "),
    ("started", "started"),
    ("preset", "preset"),
    ("epochs", "epochs"),
    ("best", "best val"),
    ("test", "test"),
    ("time", "time"),
    ("note", "note"),
)
"""(key, label) of the table's columns, left to right."""


def best_cell(summary: RunSummary) -> Text:
    """The best validation accuracy; for a run without a validation set, its best training
    accuracy, said to be that (never passed off as validation)."""
    if summary.best_val_accuracy is not None or summary.best_accuracy is None:
        return Text(format_percent(summary.best_val_accuracy), justify="right")
    return Text.assemble(
        format_percent(summary.best_accuracy), (" train", "dim italic"), justify="right"
    )


def test_cell(summary: RunSummary, mixed: bool) -> Text:
    """The test accuracy, with the size of its test set when the listed runs differ in it."""
    text = Text(format_percent(summary.test_accuracy), justify="right")
    if mixed and summary.test_accuracy is not None and summary.test_samples is not None:
        count = summary.test_samples
        size = f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"{count:,}"
        text.append(f" of {size}", "dim")
    return text


def started_cell(summary: RunSummary, depth: int) -> str:
    """When the run started; a branch's cell starts with `└` and the parent's epoch it
    branches at, indented one step a generation."""
    started = "?" if summary.started is None else f"{summary.started:%Y-%m-%d %H:%M}"
    if depth == 0:
        return started
    return f"{'  ' * (depth - 1)}{BRANCH}@{summary.parent_epoch} {started}"


def note_cell(summary: RunSummary, warning: str) -> Text:
    """A broken run's problem (in the warning style), else its note and `#tags`; the table cuts
    a long one at its edge, the detail below shows it whole."""
    if summary.problem:
        return Text(f"{WARNING} {summary.problem}", style=warning)
    text = Text(summary.note)
    for tag in summary.tags:
        text.append(f" #{tag}", "italic")
    return text


def matches(summary: RunSummary, words: list[str]) -> bool:
    """Whether every word (case aside) is in the run's name, preset, note or `#tags`."""
    haystack = " ".join(
        [summary.name, summary.preset, summary.note, *(f"#{t}" for t in summary.tags)]
    ).casefold()
    return all(word.casefold() in haystack for word in words)


def format_duration(seconds: float) -> str:
    """`42s`, `3m 05s` or `1h 02m`: a training time at a glance."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
