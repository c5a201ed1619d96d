"""What looks wrong in a layer's health figures: the `LayerProblem`s, the thresholds that find
them, and the sentence each one is shown as (in the log and on the model screen)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from tui.core.training.events import LayerFigures

ProblemKind: TypeAlias = Literal["diverged", "dead units", "vanishing updates", "exploding updates"]

DEAD_SHARE = 0.5
"""A layer is reported when more than this share of its ReLU units are dead."""
VANISHING = 1e-6
"""An update ratio below this: the layer has stopped learning."""
EXPLODING = 1.0
"""An update ratio above this: one epoch changed the weights by more than their own size."""


class LayerProblem(msgspec.Struct, frozen=True):
    """One thing wrong with one learning layer after an epoch."""

    layer: str
    kind: ProblemKind
    figure: float | None = None
    """The figure that tells: the dead share (0 to 1) or the update ratio; None when diverged."""

    @property
    def text(self) -> str:
        """The sentence a person reads, naming the layer and the figure."""
        figure = self.figure if self.figure is not None else float("nan")
        if self.kind == "dead units":
            return (
                f"{self.layer}: {figure:.0%} of its ReLU units output zero for every probe "
                "image (dead units)."
            )
        if self.kind == "vanishing updates":
            return (
                f"{self.layer}: its weights moved by only {figure:.2g} of their size since the "
                "last check (vanishing updates)."
            )
        if self.kind == "exploding updates":
            return (
                f"{self.layer}: its weights moved by {figure:.2g} times their size since the "
                "last check (exploding updates)."
            )
        return (
            f"{self.layer} has NaN or infinite weights: training has diverged; lower the "
            "learning rate and start again."
        )


def find_problems(figures: Iterable[LayerFigures]) -> tuple[LayerProblem, ...]:
    """Every problem in one epoch's figures, layer by layer in model order; empty when healthy."""
    problems: list[LayerProblem] = []
    for row in figures:
        if not row.finite:
            problems.append(LayerProblem(row.layer, "diverged"))
            continue  # its other figures are NaN too and would only repeat the news
        if row.dead_share is not None and row.dead_share > DEAD_SHARE:
            problems.append(LayerProblem(row.layer, "dead units", row.dead_share))
        ratio = row.update_ratio
        if ratio is not None and ratio < VANISHING:
            problems.append(LayerProblem(row.layer, "vanishing updates", ratio))
        elif ratio is not None and ratio > EXPLODING:
            problems.append(LayerProblem(row.layer, "exploding updates", ratio))
    return tuple(problems)
