"""The figures of a training-set audit: each digit's probabilities under one model, its loss,
and whether the model doubts its label (the rule every screen and command states)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tui.core.inspect.predictions import losses

DOUBT_OTHER = 0.5
"""A label is doubted when the model gives another class at least this probability..."""
DOUBT_LABEL = 0.1
"""...and its label less than this."""
DOUBT_RULE = (
    f"label doubted: the model gives another class >= {DOUBT_OTHER:.0%} and the label "
    f"< {DOUBT_LABEL:.0%}"
)
"""The rule in words, for every place that marks a doubted label."""

Order = Literal["doubt", "loss"]
ORDERS: tuple[Order, ...] = ("doubt", "loss")


@dataclass(frozen=True, eq=False)
class TrainingAudit:
    """Per-digit figures for a run's whole training set (validation part and any digits left
    out included), in the source's index order, under the model of one epoch."""

    model_file: str
    """The run's model file that was read: last.keras, else best.keras."""
    epoch: int
    """The epoch that model file holds."""
    stamp: str
    """The model file's size and modification time: a changed file is audited again."""
    fingerprint: str
    """The data's fingerprint (`DataInfo.fingerprint`)."""
    labels: np.ndarray = field(repr=False)
    """(n,) the recorded labels."""
    probabilities: np.ndarray = field(repr=False)
    """(n, 10) float32 class probabilities."""

    @property
    def predicted(self) -> np.ndarray:
        predicted: np.ndarray = self.probabilities.argmax(axis=1).astype(np.uint8)
        return predicted

    @property
    def label_probability(self) -> np.ndarray:
        """The probability the model gives each digit's label."""
        chosen: np.ndarray = np.take_along_axis(
            self.probabilities, self.labels.astype(np.int64)[:, None], axis=1
        )[:, 0]
        return chosen

    @property
    def loss(self) -> np.ndarray:
        """Each digit's cross-entropy against its label."""
        return losses(self.probabilities, self.labels)

    @property
    def doubt(self) -> np.ndarray:
        """How much more the model believes some other class than the label: from -1 (the
        label, surely) to 1 (another class, surely); the order of `--order doubt`."""
        others = self.probabilities.copy()
        rows = np.arange(len(others))
        others[rows, self.labels] = -1.0
        margin: np.ndarray = others.max(axis=1) - self.label_probability
        return margin

    @property
    def doubted(self) -> np.ndarray:
        """Whether each label is doubted by `DOUBT_RULE`."""
        others = self.probabilities.copy()
        others[np.arange(len(others)), self.labels] = 0.0
        flagged: np.ndarray = (others.max(axis=1) >= DOUBT_OTHER) & (
            self.label_probability < DOUBT_LABEL
        )
        return flagged

    def ranked(
        self, order: Order = "doubt", label: int | None = None, predicted: int | None = None
    ) -> np.ndarray:
        """Training indices, most doubted (or highest loss) first, of the digits with that
        label and that prediction (None: any)."""
        keep = np.ones(len(self.labels), bool)
        if label is not None:
            keep &= self.labels == label
        if predicted is not None:
            keep &= self.predicted == predicted
        chosen = np.flatnonzero(keep)
        score = (self.doubt if order == "doubt" else self.loss)[chosen]
        # Stable, so that ties keep index order and a listing is repeatable.
        ranked: np.ndarray = chosen[np.argsort(-score, kind="stable")]
        return ranked
