"""Numbers as the widgets, screens and commands print them."""

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


def format_eta(seconds: float | None) -> str:
    """`1:05`, `0:09` or `1:02:03`; `-` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(samples_per_sec: float | None) -> str:
    """Samples per second in few columns: 870/s, 3.5k/s, 12k/s; `-` when unknown."""
    if samples_per_sec is None or not math.isfinite(samples_per_sec):
        return "-"
    if samples_per_sec < 1000:
        return f"{samples_per_sec:.0f}/s"
    if samples_per_sec < 10_000:
        return f"{samples_per_sec / 1000:.1f}k/s"
    return f"{samples_per_sec / 1000:.0f}k/s"


def format_number(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or `-` for a missing or non-finite figure."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def count(number: int, noun: str) -> str:
    """`1 run`, `2 runs`: a count with its noun in the singular or the plural (an -s plural)."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"
