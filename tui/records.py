"""The commands over runs' records, `compare`, `note` and `audit`: their flags and requests.

Light to import (the command line builds every parser at start): the work is in `tui.compare`
and `tui.audit`, imported when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.errors import PROG, UsageError
from tui.flags import add_runs_dir_flag, flag


def add_record_commands(commands: Any) -> None:
    """`compare` and `note`: commands over runs' records, no TensorFlow."""
    compare = commands.add_parser(
        "compare", help="the settings that differ between runs, and what each reached"
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories or their names")
    flag(
        compare,
        "--format",
        choices=("table", "csv", "markdown"),
        help="table (default), or CSV or Markdown to keep",
    )
    add_runs_dir_flag(compare)
    note = commands.add_parser("note", help="write a note on a run, or tag it")
    note.add_argument("run", metavar="RUN", help="a run directory or its name")
    note.add_argument("text", nargs="?", metavar="TEXT", help="the note (replaces the old one)")
    flag(note, "--tag", action="append", metavar="TAG", help="add a tag (repeatable)")
    add_runs_dir_flag(note)


def run_record_command(command: str, args: argparse.Namespace) -> int:
    from rich.console import Console

    from tui.compare import CompareRequest, NoteRequest, run_compare, run_note
    from tui.core.runs.layout import RunError

    console = Console(highlight=False, soft_wrap=True)
    runs_dir = getattr(args, "runs_dir", None)
    try:
        if command == "compare":
            request = CompareRequest(tuple(args.runs), getattr(args, "format", "table"), runs_dir)
            return run_compare(request, console)
        tags = tuple(getattr(args, "tag", None) or ())
        if args.text is None and not tags:
            raise UsageError(f'say what to note: `{PROG} note RUN "text"` or --tag TAG.')
        return run_note(NoteRequest(args.run, args.text, tags, runs_dir), console)
    except RunError as err:
        raise UsageError(str(err)) from None


def add_audit_command(commands: Any) -> None:
    audit = commands.add_parser(
        "audit", help="a run's training digits its model doubts most, with their labels"
    )
    audit.add_argument("run", metavar="RUN", help="a run directory or its name")
    add_runs_dir_flag(audit)
    flag(audit, "--top", type=int, metavar="N", help="how many digits (default: 20)")
    flag(audit, "--label", type=int, metavar="D", help="only digits labelled D")
    flag(audit, "--predicted", type=int, metavar="D", help="only digits the model calls D")
    flag(
        audit,
        "--order",
        choices=("doubt", "loss"),
        help="doubt (default: how far another class outweighs the label) or loss",
    )
    flag(
        audit,
        "--write-exclude",
        metavar="FILE",
        help="write the indices shown to FILE, for `train --exclude-file`",
    )
    flag(audit, "--compact", action="store_true", help="half-size digits")
    flag(audit, "--no-color", action="store_true", help="plain characters, no colour")


def audit_request(args: argparse.Namespace) -> Any:
    """The `AuditRequest` for `mnist-tui audit`; raises UsageError."""
    from tui.audit import AuditRequest

    return AuditRequest(
        run=args.run,
        runs_dir=getattr(args, "runs_dir", None),
        top=getattr(args, "top", 20),
        label=getattr(args, "label", None),
        predicted=getattr(args, "predicted", None),
        order=getattr(args, "order", "doubt"),
        write_exclude=getattr(args, "write_exclude", None),
        compact=getattr(args, "compact", False),
        color=not getattr(args, "no_color", False),
    )
