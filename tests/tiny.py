"""TINY: the small network that app and run-directory tests train on real MNIST slices."""

from __future__ import annotations

from tui.core.settings.hyperparams import Hyperparams

TINY = Hyperparams(
    epochs=2,
    batch_size=64,
    conv_filters=(8,),
    dense_units=16,
    dropout=0.0,
    train_size=1000,
    validation_split=0.1,
)
"""A model that trains an epoch of 900 images in well under a second on a CPU."""
