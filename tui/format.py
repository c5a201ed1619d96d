"""Numbers as the widgets and screens print them."""

from __future__ import annotations

import math

MISSING = "—"
"""Printed in place of a figure that does not exist (yet)."""


def format_percent(value: float | None, decimals: int = 2, *, missing: str = MISSING) -> str:
    """`0.98765` as `98.77%`; `missing` for a figure that is None or NaN.

    Args:
        value: a fraction (1.0 is 100%), or None when there is none.
        decimals: digits after the decimal point.
        missing: what stands for a missing figure.
    """
    if value is None or math.isnan(value):
        return missing
    return f"{value:.{decimals}%}"
