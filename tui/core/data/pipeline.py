"""The batches `fit` and `predict` read: tf.data pipelines with tf.data's autotuner off on
TensorFlow, NumPy batches (a `keras.utils.PyDataset`) on JAX and PyTorch.

Given NumPy arrays, Keras builds a pipeline whose parallel map starts tf.data's autotuning
thread. That thread sleeps between rounds, each sleep twice as long as the one before, and an
epoch's iterator, destroyed at the epoch boundary, waits for it to wake up. Training then stands
still with the CPU idle: up to 10 s between the two epochs of `fast` on a 2-core CPU
(2026-12-02), more between the later epochs of a long run, and again at the end of `fit` and of
each validation pass. These pipelines do the same work (shuffle the indices, gather a batch,
read one batch ahead) with nothing to wait for. JAX and PyTorch have no tf.data: there a batch
is sliced from the arrays in the training thread itself, so there is no thread to wait for either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tui.core.platform.runtime import import_keras

READ_AHEAD = 2
"""Batches prepared while the model works on the current one."""


def _on_tensorflow() -> bool:
    return bool(import_keras().backend.backend() == "tensorflow")


def _tf() -> Any:
    import_keras()
    import tensorflow as tf

    return tf


def _untuned(dataset: Any) -> Any:
    tf = _tf()
    options = tf.data.Options()
    options.autotune.enabled = False
    # Keras's own choice for its array pipelines: the graph rewrites cost more than they save.
    options.experimental_optimization.apply_default_optimizations = False
    return dataset.prefetch(READ_AHEAD).with_options(options)


class EpochCursor:
    """The epoch the training pipeline's next pass is for: its order is a function of the seed
    and this number alone, so a resumed run or a branch replays the order of an unbroken one.

    Each pass moves it on by one; `fit` sets it at each epoch's start (see
    `tui.core.training.replay`), so that a pass Keras takes to build a model counts for nothing.
    """

    def __init__(self, first: int = 0) -> None:
        tf = _tf()
        self.variable = tf.Variable(first, dtype=tf.int64, trainable=False)

    def set(self, epoch: int) -> None:
        self.variable.assign(epoch)


def training_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, cursor: EpochCursor | None = None
) -> Any:
    """Batches of (images, labels) in a new random order every epoch, the last one short.

    Args:
        x, y: the training arrays, copied once into tensors.
        batch_size: images per batch.
        seed: the order's seed: the same seed gives the same orders epoch after epoch.
        cursor: the epoch each pass is for (a new one starts at 0).
    """
    if not _on_tensorflow():
        return _array_batches(x, y, batch_size, seed)
    tf = _tf()
    images, labels = tf.constant(x), tf.constant(y)
    count = len(x)
    epoch = (cursor or EpochCursor()).variable

    def order(_: Any) -> Any:
        this = epoch.assign_add(1) - 1
        key = tf.stack([tf.constant(seed, tf.int64), this])
        return tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), key)

    indices = tf.data.Dataset.range(1).map(order).unbatch()
    batches = indices.batch(batch_size).map(
        lambda index: (tf.gather(images, index), tf.gather(labels, index))
    )
    return _untuned(batches)


def batches(x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 1024) -> Any:
    """`x` (with `y`, when given) in order, `batch_size` at a time: for validation and predict."""
    if not _on_tensorflow():
        return _array_batches(x, y, batch_size, None)
    tf = _tf()
    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    return _untuned(data.batch(batch_size))


def _array_batches(x: np.ndarray, y: np.ndarray | None, batch_size: int, seed: int | None) -> Any:
    """A `keras.utils.PyDataset` over the arrays, reshuffled after every epoch when `seed` is set.

    Built on call: the class derives from Keras's, which is imported only with the backend.
    """
    keras = import_keras()

    class ArrayBatches(keras.utils.PyDataset):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            # workers=1 without multiprocessing: Keras reads the batches in the training thread.
            super().__init__(workers=1, use_multiprocessing=False)
            self._random = None if seed is None else np.random.default_rng(seed)
            self._order = self._shuffled()

        def _shuffled(self) -> np.ndarray | None:
            return None if self._random is None else self._random.permutation(len(x))

        def __len__(self) -> int:
            return max(1, -(-len(x) // batch_size))

        def __getitem__(self, index: int) -> Any:
            chunk = slice(index * batch_size, (index + 1) * batch_size)
            rows = chunk if self._order is None else np.sort(self._order[chunk])
            return x[rows] if y is None else (x[rows], y[rows])

        def on_epoch_end(self) -> None:
            self._order = self._shuffled()

    return ArrayBatches()
