"""The percentage formatter shared by the status bar, the runs list and the confusion matrix."""

from __future__ import annotations

import math

from tui.format import MISSING, format_percent


def test_format_percent_rounds_to_the_asked_decimals() -> None:
    assert format_percent(0.98765) == "98.77%"
    assert format_percent(0.98765, 1) == "98.8%"
    assert format_percent(0.98765, 0) == "99%"
    assert format_percent(1.0, 0) == "100%"


def test_a_missing_figure_is_a_dash_not_nan() -> None:
    assert format_percent(None) == MISSING == "—"
    assert format_percent(math.nan, 0) == "—"
    assert format_percent(None, missing="-") == "-"
