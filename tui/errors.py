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
    text = _strip_ansi(str(err)).strip()
    lines = text.splitlines()
    first = lines[0][:limit] if lines else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _strip_ansi(text: str) -> str:
    out: list[str] = []
    skipping = False
    for char in text:
        if char == "\x1b":
            skipping = True
            continue
        if skipping:
            # A CSI sequence ends with a letter (`\x1b[1;31m`).
            if char.isalpha():
                skipping = False
            continue
        out.append(char)
    return "".join(out)
