"""Questions asked of test predictions: which digits to show, in what order, how good per class."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

NUM_CLASSES = 10

_LOSS_FLOOR = 1e-7
"""Probabilities are clipped here before the log, as Keras's cross-entropy does."""


@dataclass(frozen=True, eq=False)
class Predictions:
    """Class probabilities for a whole test set, beside its true labels."""

    probabilities: np.ndarray = field(repr=False)
    """(n, 10) float32, each row summing to 1."""
    labels: np.ndarray = field(repr=False)
    """(n,) true labels."""

    @property
    def predicted(self) -> np.ndarray:
        predicted: np.ndarray = self.probabilities.argmax(axis=1).astype("uint8")
        return predicted

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self.labels) else 0.0

    @property
    def loss(self) -> float:
        """Mean cross-entropy against the true labels (the loss Keras reports for `evaluate`)."""
        return float(losses(self.probabilities, self.labels).mean()) if len(self.labels) else 0.0


class PredictionSort(enum.Enum):
    """Orders for browsing predictions; the value is the CLI spelling."""

    INDEX = "index"
    """Test-set order."""
    CONFIDENCE = "confidence"
    """Least confident first (lowest top probability)."""
    LOSS = "loss"
    """Highest cross-entropy loss first: confidently wrong digits lead."""

    @property
    def label(self) -> str:
        """How the order is named on screen."""
        return _SORT_LABELS[self]

    def next(self) -> PredictionSort:
        """The following order, wrapping around; for a key that cycles through them."""
        members = list(PredictionSort)
        return members[(members.index(self) + 1) % len(members)]


_SORT_LABELS = {
    PredictionSort.INDEX: "test index",
    PredictionSort.CONFIDENCE: "least confident first",
    PredictionSort.LOSS: "highest loss first",
}


def _check_class(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value < NUM_CLASSES:
        raise ValueError(f"{name} = {value} is not a digit class; use 0 to {NUM_CLASSES - 1}.")


@dataclass(frozen=True)
class PredictionFilter:
    """Which predictions to keep. The conditions combine, so a (true, predicted) pair is both set.

    The default keeps everything.
    """

    misclassified: bool = False
    """Keep only digits whose predicted class differs from the true one."""
    true: int | None = None
    """Keep only digits of this true class."""
    predicted: int | None = None
    """Keep only digits predicted as this class."""

    def __post_init__(self) -> None:
        _check_class("true", self.true)
        _check_class("predicted", self.predicted)

    @classmethod
    def pair(cls, true: int, predicted: int) -> PredictionFilter:
        """Digits of class `true` that the model called `predicted` (a confusion-matrix cell)."""
        return cls(true=true, predicted=predicted)

    @property
    def is_all(self) -> bool:
        """Whether nothing is filtered out."""
        return self == PredictionFilter()

    def describe(self) -> str:
        """A short phrase for headers and the CLI, e.g. "true 4 → predicted 9"."""
        if self.true is not None and self.predicted is not None:
            text = f"true {self.true} → predicted {self.predicted}"
        elif self.true is not None:
            text = f"true {self.true}"
        elif self.predicted is not None:
            text = f"predicted {self.predicted}"
        else:
            return "misclassified" if self.misclassified else "all"
        return f"misclassified, {text}" if self.misclassified else text

    def mask(self, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Boolean (n,) mask of the digits this filter keeps."""
        keep = np.ones(len(labels), dtype=bool)
        if self.misclassified:
            keep &= labels != predicted
        if self.true is not None:
            keep &= labels == self.true
        if self.predicted is not None:
            keep &= predicted == self.predicted
        return keep


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """(n,) top class probability of each row."""
    top: np.ndarray = probabilities.max(axis=1)
    return top


def losses(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) sparse categorical cross-entropy of each row against its true label."""
    picked = probabilities[np.arange(len(labels)), labels.astype(np.intp)]
    loss: np.ndarray = -np.log(np.clip(picked, _LOSS_FLOOR, 1.0))
    return loss


def select(
    predictions: Predictions,
    filter: PredictionFilter | None = None,
    sort: PredictionSort = PredictionSort.INDEX,
) -> np.ndarray:
    """Test indices kept by `filter`, in `sort` order (ties keep test-set order).

    Returns:
        (k,) intp array of indices into the test set.
    """
    labels = np.asarray(predictions.labels)
    chosen = np.flatnonzero((filter or PredictionFilter()).mask(labels, predictions.predicted))
    if sort is PredictionSort.INDEX or len(chosen) == 0:
        return chosen
    probabilities = predictions.probabilities[chosen]
    if sort is PredictionSort.CONFIDENCE:
        key = confidence(probabilities)
    else:
        key = -losses(probabilities, labels[chosen])
    # A stable sort on an index-ordered selection breaks ties by test index.
    ordered: np.ndarray = chosen[np.argsort(key, kind="stable")]
    return ordered


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(10, 10) int64 counts: row = true class, column = predicted class."""
    flat = labels.astype(np.intp) * NUM_CLASSES + predicted.astype(np.intp)
    counts: np.ndarray = np.bincount(flat, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (by column) and recall (by row) of a confusion matrix.

    Returns:
        Two (10,) float64 arrays; NaN where a class was never predicted (precision) or never
        present (recall), since 0 would claim a failure that did not happen.
    """
    diagonal = np.diag(matrix).astype(np.float64)
    predicted_totals = matrix.sum(axis=0).astype(np.float64)
    true_totals = matrix.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_totals > 0, diagonal / predicted_totals, np.nan)
        recall = np.where(true_totals > 0, diagonal / true_totals, np.nan)
    return precision, recall


def accuracy(matrix: np.ndarray) -> float:
    """Fraction of the matrix on the diagonal; 0 for an empty matrix."""
    total = int(matrix.sum())
    return float(np.trace(matrix)) / total if total else 0.0


def top_k(probabilities: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most probable classes of each row, most probable first.

    Args:
        probabilities: (n, 10) rows, or a single (10,) row.
        k: how many classes to keep, 1 to 10.

    Returns:
        Classes and their probabilities, each (n, k), or (k,) for a single row. Ties go to the
        lower class.
    """
    if not 1 <= k <= NUM_CLASSES:
        raise ValueError(f"k = {k} must be from 1 to {NUM_CLASSES}.")
    rows = np.atleast_2d(probabilities)
    # Stable sort of the negated values keeps the lower class first among equals.
    classes = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(rows, classes, axis=1)
    if probabilities.ndim == 1:
        return classes[0], values[0]
    return classes, values
