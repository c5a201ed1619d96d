"""The number formatters shared by the status bar, the runs list, the confusion matrix and the
headless trainer's lines; a figure that is unknown (None) never prints as a number."""

from __future__ import annotations

import math

import pytest

from tui.format import MISSING, format_eta, format_number, format_percent, format_rate


def test_format_percent_rounds_to_the_asked_decimals() -> None:
    assert format_percent(0.98765) == "98.77%"
    assert format_percent(0.98765, 1) == "98.8%"
    assert format_percent(0.98765, 0) == "99%"
    assert format_percent(1.0, 0) == "100%"


def test_a_missing_figure_is_a_dash_not_nan() -> None:
    assert format_percent(None) == MISSING == "—"
    assert format_percent(math.nan, 0) == "—"
    assert format_percent(None, missing="-") == "-"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (9.4, "0:09"), (65, "1:05"), (3599.6, "1:00:00"), (3723, "1:02:03")],
)
def test_format_eta_as_a_clock(seconds: float, shown: str) -> None:
    assert format_eta(seconds) == shown


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(870.4, "870/s"), (3499, "3.5k/s"), (12_400, "12k/s")],
)
def test_format_rate_in_few_columns(rate: float, shown: str) -> None:
    assert format_rate(rate) == shown


def test_format_number_follows_the_spec() -> None:
    assert format_number(0.123456, ".4f") == "0.1235"
    assert format_number(54000.0, ",.0f") == "54,000"


@pytest.mark.parametrize("unknown", [None, math.nan, math.inf, -math.inf])
def test_an_unknown_figure_is_a_dash(unknown: float | None) -> None:
    assert format_number(unknown, ".4f") == "-"
    assert format_rate(unknown) == "-"
    assert format_eta(unknown) == "-"
    assert format_eta(-1.0) == "-"


def test_a_count_of_one_is_singular() -> None:
    # Issue 29, case 16: the runs screen said "1 runs", the idle line "1 epochs done".
    from tui.format import count

    assert [count(n, "run") for n in (0, 1, 2, 1200)] == ["0 runs", "1 run", "2 runs", "1,200 runs"]
