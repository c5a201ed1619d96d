"""Tests for tui.core.render: half-block digits in colour and plain shades."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.text import Text

from tui.core.data.mnist import MnistData
from tui.core.render import SHADES, UPPER_HALF, render_digit


def cell_styles(text: Text) -> list[list[Style]]:
    """The effective style of every cell, line by line."""
    lines = text.plain.split("\n")
    styles: list[list[Style]] = []
    offset = 0
    for line in lines:
        row = []
        for col in range(len(line)):
            position = offset + col
            style = Style()
            for span in text.spans:
                if span.start <= position < span.end:
                    style += (
                        span.style if isinstance(span.style, Style) else Style.parse(span.style)
                    )
            row.append(style)
        styles.append(row)
        offset += len(line) + 1
    return styles


def grey(level: int) -> Color:
    return Color.from_rgb(level, level, level)


@pytest.mark.parametrize(
    ("compact", "lines", "cells"), [(False, 14, 28), (True, 7, 14)], ids=["full", "compact"]
)
@pytest.mark.parametrize("color", [True, False], ids=["colour", "plain"])
def test_dimensions(
    mnist_small: MnistData, compact: bool, lines: int, cells: int, color: bool
) -> None:
    text = render_digit(mnist_small.x_test[0], compact=compact, color=color)
    rows = text.plain.split("\n")
    assert len(rows) == lines
    assert all(len(row) == cells for row in rows)
    assert Console(width=200).measure(text).maximum == cells


def test_black_image_is_all_background() -> None:
    text = render_digit(np.zeros((28, 28), np.float32))
    assert set(text.plain) <= {" ", "\n"}
    for row in cell_styles(text):
        for style in row:
            assert style.bgcolor == grey(0)
            assert style.color is None


def test_bright_top_pixel_sets_foreground() -> None:
    image = np.zeros((28, 28, 1), np.float32)
    image[4, 10] = 1.0  # top pixel of line 2, column 10
    text = render_digit(image)
    assert text.plain.split("\n")[2][10] == UPPER_HALF
    style = cell_styles(text)[2][10]
    assert style.color == grey(255)
    assert style.bgcolor == grey(0)
    # Its neighbours are untouched.
    assert cell_styles(text)[2][11].color is None


def test_bright_bottom_pixel_sets_background() -> None:
    image = np.zeros((28, 28), np.uint8)
    image[5, 10] = 200
    style = cell_styles(render_digit(image))[2][10]
    assert style.color == grey(0)
    assert style.bgcolor == grey(200)


def test_compact_averages_blocks() -> None:
    image = np.zeros((28, 28), np.uint8)
    image[0:2, 0:2] = 200  # one full 2x2 block: top pixel of compact cell (0, 0)
    image[2, 2] = 100  # a quarter of a block: bottom pixel of compact cell (0, 1)
    styles = cell_styles(render_digit(image, compact=True))
    assert styles[0][0].color == grey(200)
    assert styles[0][1].bgcolor == grey(25)


def test_plain_has_no_styles_and_uses_shades(mnist_small: MnistData) -> None:
    text = render_digit(mnist_small.x_test[0], color=False)
    assert text.spans == []
    assert not text.style
    assert set(text.plain) <= {*SHADES, "\n"}
    assert SHADES[-1] in text.plain  # the stroke shows


def test_plain_picks_the_brighter_pixel() -> None:
    image = np.zeros((28, 28), np.uint8)
    image[1, 0] = 255  # only the bottom pixel of the first cell
    assert render_digit(image, color=False).plain[0] == SHADES[-1]


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("color", [True, False])
def test_uint8_and_float_agree(mnist_small: MnistData, compact: bool, color: bool) -> None:
    as_float = mnist_small.x_test[7]
    as_uint8 = np.rint(as_float[..., 0] * 255).astype(np.uint8)
    a = render_digit(as_float, compact=compact, color=color)
    b = render_digit(as_uint8, compact=compact, color=color)
    assert a.plain == b.plain
    assert a.spans == b.spans


def test_prints_as_truecolor_half_blocks(mnist_small: MnistData) -> None:
    out = io.StringIO()
    Console(file=out, color_system="truecolor", width=80).print(render_digit(mnist_small.x_test[0]))
    printed = out.getvalue()
    assert UPPER_HALF in printed
    assert "\x1b[" in printed
    assert len(printed.rstrip("\n").split("\n")) == 14


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="28x28"):
        render_digit(np.zeros((27, 28)))
