"""Exit codes, the one-line error and `UsageError`: shared by the CLI, the headless commands,
the engine and the core, so that every failure reads the same way wherever it surfaces."""

from __future__ import annotations

import sys

PROG = "mnist-tui"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the person at the keyboard; str(err) is the sentence to show."""


def say_error(message: str) -> None:
    """`mnist-tui: error: <message>` on stderr, the only way a command reports a failure."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def error_line(err: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, short enough for a log line or a stop message.

    ANSI escape sequences (Keras colours some of its exceptions) are removed.
    """
    # Imported here: Rich costs a command that never fails nothing at start-up.
    from rich.text import Text

    text = Text.from_ansi(str(err)).plain.strip()
    lines = text.splitlines()
    first = lines[0][:limit] if lines else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
