"""The one-line error that every command, the engine and the core show for an exception."""

from __future__ import annotations

from tui.errors import error_line


def test_an_error_line_is_the_first_line_without_colours_or_links() -> None:
    # As Keras colours its messages, and a terminal link around a word.
    coloured = ValueError(
        "\x1b[1;31mInvalid\x1b[0m input shape \x1b]8;;https://keras.io\x1b\\(docs)\x1b]8;;\x1b\\"
        "\nTraceback-like second line"
    )
    assert error_line(coloured) == "ValueError: Invalid input shape (docs)"
    assert error_line(RuntimeError("x" * 500), limit=10) == "RuntimeError: xxxxxxxxxx"
    assert error_line(KeyError()) == "KeyError"
