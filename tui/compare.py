"""The headless commands over many runs' records: `compare` (a table of what differed and what
each run reached, or CSV or Markdown) and `note` (a run's note and tags). No TensorFlow."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from tui.core.experiments.branch import find_run
from tui.core.experiments.compare import Comparison, annotate, compare
from tui.errors import EXIT_OK

FORMATS = ("table", "csv", "markdown")


@dataclass(frozen=True)
class CompareRequest:
    """`mnist-tui compare`."""

    runs: tuple[str, ...]
    """Run directories, or their folder names under `runs_dir`."""
    format: str = "table"
    runs_dir: str | None = None


@dataclass(frozen=True)
class NoteRequest:
    """`mnist-tui note`."""

    run: str
    text: str | None = None
    """The note, replacing any earlier one; None leaves it as it is."""
    tags: tuple[str, ...] = ()
    runs_dir: str | None = None


def run_compare(request: CompareRequest, console: Console) -> int:
    comparison = compare([find_run(name, request.runs_dir) for name in request.runs])
    if request.format == "csv":
        console.file.write(as_csv(comparison))
    elif request.format == "markdown":
        console.file.write(as_markdown(comparison))
    else:
        console.print(as_table(comparison))
        if not comparison.settings:
            console.print("No setting differs between these runs.", highlight=False)
    return EXIT_OK


def as_table(comparison: Comparison) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in comparison.header():
        table.add_column(title, overflow="fold", no_wrap=title == "run")
    for row in comparison.rows():
        table.add_row(*row)
    return table


def as_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(comparison.header())
    writer.writerows(comparison.rows())
    return out.getvalue()


def as_markdown(comparison: Comparison) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"

    header = comparison.header()
    text = line(header) + line(["---"] * len(header))
    return text + "".join(line(row) for row in comparison.rows())


def run_note(request: NoteRequest, console: Console) -> int:
    path = find_run(request.run, request.runs_dir)
    info = annotate(path, request.text, request.tags)
    tags = ", ".join(info.get("tags") or []) or "none"
    console.print(f"{path.name}: note {info.get('note', '')!r}; tags: {tags}", highlight=False)
    return EXIT_OK
