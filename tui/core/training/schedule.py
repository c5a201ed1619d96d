"""Learning-rate schedules, per batch, from the learning rate a person set.

Computed from (base rate, steps done, total steps) alone, so that raising the epoch target
while training stretches a schedule instead of restarting it, and a live change of the base
rate scales what is left of it.
"""

from __future__ import annotations

import math

FLOOR = 0.01
"""A decaying schedule never goes below this share of the base rate."""
WARMUP = 0.2
"""The share of the run a one-cycle schedule spends warming up."""
WARMUP_START = 0.1
"""Where the warm-up starts, as a share of the base rate."""


def scheduled_rate(schedule: str, base: float, done: int, total: int) -> float:
    """The learning rate for the next batch.

    Args:
        schedule: "constant", "cosine" or "onecycle" (see `config.LR_SCHEDULES`).
        base: the learning rate set by the hyperparameters or changed live.
        done: batches trained so far over the whole run.
        total: batches the run will train in all at the current epoch target.
    """
    if schedule == "constant":
        return base
    progress = min(max(done, 0) / max(total, 1), 1.0)
    if schedule == "cosine":
        return base * _cosine(progress)
    if schedule == "onecycle":
        # Up linearly from a tenth of the rate, then down as the cosine schedule does: the
        # large steps in the middle are what lets a short run get far (Smith's one-cycle).
        if progress < WARMUP:
            return base * (WARMUP_START + (1.0 - WARMUP_START) * progress / WARMUP)
        return base * _cosine((progress - WARMUP) / (1.0 - WARMUP))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def _cosine(progress: float) -> float:
    return max(0.5 * (1.0 + math.cos(math.pi * progress)), FLOOR)
