"""The batches fit and predict read: every image once an epoch, a new order each epoch, and
tf.data's autotuner off (its thread made every epoch boundary wait, up to 10 s on `fast`)."""

from __future__ import annotations

import numpy as np

from tui.core.data.pipeline import batches, training_batches


def _epoch(dataset: object) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, labels = [], []
    for x, y in dataset:  # type: ignore[attr-defined]
        images.append(x.numpy())
        labels.append(y.numpy())
    return images, labels


def test_every_image_once_an_epoch_with_its_label_in_a_new_order_each_epoch() -> None:
    # Image i is filled with i, its label is i, so a pair that came apart would show.
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    y = np.arange(10)
    dataset = training_batches(x, y, batch_size=4, seed=3)

    first_images, first_labels = _epoch(dataset)
    second_images, second_labels = _epoch(dataset)

    assert [len(b) for b in first_labels] == [4, 4, 2]  # the last batch is short, not dropped
    for images, labels in ((first_images, first_labels), (second_images, second_labels)):
        order = np.concatenate(labels)
        assert sorted(order) == list(range(10))
        assert np.array_equal(np.concatenate(images)[:, 0, 0, 0], order)
    assert not np.array_equal(np.concatenate(first_labels), np.concatenate(second_labels))


def test_the_same_seed_gives_the_same_order_and_another_seed_another() -> None:
    x, y = np.zeros((50, 2, 2, 1), np.float32), np.arange(50)

    def order(seed: int) -> np.ndarray:
        return np.concatenate(_epoch(training_batches(x, y, 8, seed))[1])

    assert np.array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))


def test_validation_and_prediction_batches_keep_the_order() -> None:
    x, y = np.arange(7, dtype=np.float32).reshape(7, 1), np.arange(7)

    labelled = [b[1].numpy() for b in batches(x, y, batch_size=3)]
    images_only = [b.numpy() for b in batches(x, batch_size=3)]

    assert [list(b) for b in labelled] == [[0, 1, 2], [3, 4, 5], [6]]
    assert np.array_equal(np.concatenate(images_only)[:, 0], np.arange(7))


def test_no_pipeline_runs_the_autotuner() -> None:
    x, y = np.zeros((4, 2, 2, 1), np.float32), np.arange(4)

    for dataset in (training_batches(x, y, 2, 0), batches(x, y), batches(x)):
        assert dataset.options().autotune.enabled is False
