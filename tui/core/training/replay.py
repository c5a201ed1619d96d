"""Makes an epoch's randomness a function of the seed and the epoch number: the data order and
every seeded layer (augmentation, dropout), so that a resumed run or a branch trains its epochs
as an unbroken run with the same settings would."""

from __future__ import annotations

from typing import Any

from tui.core.data.pipeline import EpochCursor
from tui.core.platform.runtime import import_keras

keras = import_keras()

SEED_STATE = "seed_generator_state"
"""The name Keras gives a seeded layer's generator state: [seed, counter]."""
EPOCH_STRIDE = 2**32
"""Counter values an epoch may use: a layer draws once a batch, far fewer than this."""


class EpochSeeds(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """At each epoch's start, point the pipeline's order and each seeded layer's counter at
    that epoch.

    A `.keras` archive does not keep the generators' counters (a reloaded model starts them at
    0), so without this a branch would augment its first epoch as its parent augmented epoch 1.
    """

    def __init__(self, cursor: EpochCursor) -> None:
        super().__init__()
        self.cursor = cursor

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.cursor.set(epoch)
        for variable in self.model.variables:
            if variable.name == SEED_STATE:
                seed = int(keras.ops.convert_to_numpy(variable)[0])
                variable.assign(keras.ops.convert_to_tensor([seed, epoch * EPOCH_STRIDE], "int64"))
