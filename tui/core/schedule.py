"""Learning-rate schedules, per batch, from the learning rate a person set.

Computed from (base rate, steps done, total steps) alone, so that raising the epoch target
while training stretches a schedule instead of restarting it, and a live change of the base
rate scales what is left of it.
"""

from __future__ import annotations

import math

FLOOR = 0.01
"""A decaying schedule never goes below this share of the base rate."""


def scheduled_rate(schedule: str, base: float, done: int, total: int) -> float:
    """The learning rate for the next batch.

    Args:
        schedule: "constant" or "cosine" (see `config.LR_SCHEDULES`).
        base: the learning rate set by the hyperparameters or changed live.
        done: batches trained so far over the whole run.
        total: batches the run will train in all at the current epoch target.
    """
    if schedule == "constant":
        return base
    progress = min(max(done, 0) / max(total, 1), 1.0)
    if schedule == "cosine":
        return base * max(0.5 * (1.0 + math.cos(math.pi * progress)), FLOOR)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")
