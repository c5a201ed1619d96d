"""Filters, sorts, confusion counts and per-class scores, checked against plain numpy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.inspect.predictions import (
    PredictionFilter,
    Predictions,
    PredictionSort,
    accuracy,
    confusion_matrix,
    precision_recall,
    select,
    top_k,
)


def random_predictions(seed: int, n: int = 400) -> Predictions:
    """Softmax of random logits, nudged towards the labels so most are right but not all."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    logits = rng.normal(size=(n, 10)) * 2.0
    logits[np.arange(n), labels] += 2.5
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return Predictions((exp / exp.sum(axis=1, keepdims=True)).astype(np.float32), labels)


FILTERS = [
    PredictionFilter(),
    PredictionFilter(misclassified=True),
    PredictionFilter(true=4),
    PredictionFilter(predicted=9),
    PredictionFilter.pair(4, 9),
    PredictionFilter.pair(7, 7),
    PredictionFilter(misclassified=True, true=3),
]


def expected_indices(p: Predictions, f: PredictionFilter, sort: PredictionSort) -> list[int]:
    """The same selection written the slow, obvious way."""
    probs, labels = p.probabilities.astype(np.float64), p.labels.astype(int)
    rows = []
    for i in range(len(labels)):
        guess = int(np.argmax(probs[i]))
        if f.misclassified and guess == labels[i]:
            continue
        if f.true is not None and labels[i] != f.true:
            continue
        if f.predicted is not None and guess != f.predicted:
            continue
        rows.append(i)
    if sort is PredictionSort.CONFIDENCE:
        rows.sort(key=lambda i: (float(probs[i].max()), i))
    elif sort is PredictionSort.LOSS:
        rows.sort(key=lambda i: (math.log(max(float(probs[i, labels[i]]), 1e-7)), i))
    return rows


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: f.describe())
@pytest.mark.parametrize("sort", list(PredictionSort), ids=lambda s: s.value)
def test_select_matches_a_plain_loop(f: PredictionFilter, sort: PredictionSort) -> None:
    p = random_predictions(1)
    got = select(p, f, sort)
    assert got.tolist() == expected_indices(p, f, sort)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 60), true=st.none() | st.integers(0, 9))
def test_select_on_random_sets(seed: int, n: int, true: int | None) -> None:
    p = random_predictions(seed, n)
    for sort in PredictionSort:
        f = PredictionFilter(misclassified=bool(seed % 2), true=true)
        assert select(p, f, sort).tolist() == expected_indices(p, f, sort)


def test_sorts_put_the_interesting_digits_first() -> None:
    p = random_predictions(2)
    by_confidence = select(p, sort=PredictionSort.CONFIDENCE)
    top = p.probabilities.max(axis=1)
    assert top[by_confidence[0]] == top.min()
    by_loss = select(p, sort=PredictionSort.LOSS)
    true_prob = p.probabilities[np.arange(len(p.labels)), p.labels]
    assert true_prob[by_loss[0]] == true_prob.min()
    assert p.predicted[by_loss[0]] != p.labels[by_loss[0]]


def test_misclassified_is_exactly_the_errors() -> None:
    p = random_predictions(3)
    wrong = np.flatnonzero(p.probabilities.argmax(axis=1) != p.labels)
    assert len(wrong) > 0
    assert select(p, PredictionFilter(misclassified=True)).tolist() == wrong.tolist()


def test_filter_rejects_non_digits_and_describes_itself() -> None:
    with pytest.raises(ValueError, match="not a digit class"):
        PredictionFilter(true=10)
    with pytest.raises(ValueError, match="predicted = -1"):
        PredictionFilter(predicted=-1)
    assert PredictionFilter().describe() == "all"
    assert PredictionFilter().is_all
    assert PredictionFilter.pair(4, 9).describe() == "true 4 → predicted 9"
    assert PredictionFilter(misclassified=True, true=3).describe() == "misclassified, true 3"
    assert PredictionSort.LOSS.next() is PredictionSort.INDEX


def test_confusion_matrix_against_bincount() -> None:
    p = random_predictions(4, 1000)
    matrix = confusion_matrix(p.labels, p.predicted)
    assert matrix.shape == (10, 10)
    assert matrix.sum() == 1000
    for t in range(10):
        for q in range(10):
            assert matrix[t, q] == np.count_nonzero((p.labels == t) & (p.predicted == q))
    assert accuracy(matrix) == pytest.approx(p.accuracy)


def test_precision_and_recall() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2], dtype=np.uint8)
    guesses = np.array([0, 0, 1, 1, 1, 1], dtype=np.uint8)
    precision, recall = precision_recall(confusion_matrix(labels, guesses))
    assert precision[0] == 1.0 and precision[1] == pytest.approx(2 / 4)
    assert recall[0] == pytest.approx(2 / 3) and recall[1] == 1.0 and recall[2] == 0.0
    # Class 2 was never predicted and class 5 never occurs: undefined, not zero.
    assert np.isnan(precision[2]) and np.isnan(recall[5]) and np.isnan(precision[5])
    assert accuracy(np.zeros((10, 10), dtype=int)) == 0.0


def test_top_k() -> None:
    p = random_predictions(5, 50)
    classes, values = top_k(p.probabilities, 3)
    assert classes.shape == values.shape == (50, 3)
    assert (classes[:, 0] == p.predicted).all()
    assert (np.diff(values, axis=1) <= 0).all()
    expected = np.sort(p.probabilities, axis=1)[:, ::-1][:, :3]
    np.testing.assert_array_equal(values, expected)
    one_classes, one_values = top_k(np.array([0.1, 0.6, 0.3]), k=2)
    assert one_classes.tolist() == [1, 2] and one_values.tolist() == [0.6, 0.3]
    with pytest.raises(ValueError):
        top_k(p.probabilities, 0)


def test_predictions_know_their_guesses_accuracy_and_loss() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    probabilities = np.pad(probabilities, ((0, 0), (0, 7)))
    p = Predictions(probabilities, np.array([0, 1], dtype=np.uint8))
    assert p.predicted.tolist() == [0, 2]
    assert p.accuracy == 0.5
    assert p.loss == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2, rel=1e-6)
    empty = Predictions(np.zeros((0, 10), np.float32), np.zeros(0, np.uint8))
    assert (empty.accuracy, empty.loss) == (0.0, 0.0)


def test_cli_selection_windows_the_filtered_sorted_indices() -> None:
    from tui.core.settings.requests import PredictRequest
    from tui.errors import UsageError
    from tui.headless import select_indices

    def request(**options: Any) -> PredictRequest:
        return PredictRequest(model="model.keras", **options)

    p = random_predictions(6)
    wrong_fours = {"misclassified": True, "true": 4}
    expected = expected_indices(p, PredictionFilter(**wrong_fours), PredictionSort.LOSS)
    assert select_indices(request(index=1, count=3, sort="loss", **wrong_fours), p) == expected[1:4]
    assert select_indices(request(index=5, count=2), p) == [5, 6]
    nothing = request(misclassified=True, true=4, predicted=4)
    assert select_indices(nothing, p) == []
    with pytest.raises(UsageError, match="the selection has"):
        select_indices(request(index=len(expected), **wrong_fours), p)
    with pytest.raises(UsageError, match="the test set has 400 images"):
        select_indices(request(index=400), p)
    with pytest.raises(UsageError, match="count = 0"):
        select_indices(request(count=0), p)
    with pytest.raises(UsageError, match="not a digit class"):
        select_indices(request(true=10), p)
