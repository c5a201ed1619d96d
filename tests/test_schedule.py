"""The learning-rate schedules, as the per-batch callback asks them: from (base, done, total)."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from tui.core.training.schedule import FLOOR, WARMUP, WARMUP_START, scheduled_rate

BASE = 4e-3


def test_one_cycle_warms_up_from_a_tenth_peaks_then_decays_to_the_floor() -> None:
    total = 1000
    rates = [scheduled_rate("onecycle", BASE, done, total) for done in range(total + 1)]
    peak = int(WARMUP * total)
    assert math.isclose(rates[0], WARMUP_START * BASE)
    assert math.isclose(max(rates), BASE) and math.isclose(rates[peak], BASE)
    assert all(a < b for a, b in itertools.pairwise(rates[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert math.isclose(rates[-1], FLOOR * BASE)


@given(
    schedule=st.sampled_from(["constant", "cosine", "onecycle"]),
    share=st.floats(0.0, 1.0),
    total=st.integers(1, 100_000),
)
def test_a_schedule_depends_on_the_share_of_the_run_done_only(
    schedule: str, share: float, total: int
) -> None:
    # What lets a raised epoch target stretch a schedule instead of restarting it.
    done = round(share * total)
    rate = scheduled_rate(schedule, BASE, done, total)
    assert FLOOR * BASE * 0.999 <= rate <= BASE * 1.001
    assert math.isclose(rate, scheduled_rate(schedule, BASE, done * 3, total * 3), rel_tol=1e-9)
    # A live change of the base rate scales what is left of the schedule.
    assert math.isclose(scheduled_rate(schedule, 2 * BASE, done, total), 2 * rate, rel_tol=1e-9)
