"""Exclude files: the training digits to leave out, as indices one per line or comma-separated."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tui.core.data.mnist import DataError

COMMENT = "#"
"""Starts a comment: the rest of the line is ignored (`--write-exclude` says what it wrote)."""


def read_exclude_file(path: str | Path) -> tuple[int, ...]:
    """The indices an exclude file names, sorted, each once.

    Raises:
        DataError: the file cannot be read, or a line holds something other than whole numbers
            of 0 or more (the sentence names the line).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"exclude file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not text"
        raise DataError(f"exclude file {path} cannot be read ({reason})") from None
    found: set[int] = set()
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split(COMMENT, 1)[0]
        for part in content.replace(",", " ").split():
            if not (part.isascii() and part.isdigit()):
                raise DataError(
                    f"exclude file {path} line {number}: {part!r} is not a training index (a "
                    "whole number of 0 or more; one a line, or separated by commas)"
                )
            found.add(int(part))
    return tuple(sorted(found))


def write_exclude_file(path: str | Path, indices: Iterable[int], note: str) -> Path:
    """Write indices one a line under a comment line saying what they are; returns the path."""
    target = Path(path).expanduser()
    lines = [f"{COMMENT} {note}", *(str(int(i)) for i in indices)]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
