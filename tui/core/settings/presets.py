"""The named presets: sets of hyperparameters with a line saying what each is for."""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.core.settings.hyperparams import Hyperparams


@dataclass(frozen=True)
class Preset:
    """A named set of hyperparameters with a line saying what it is for."""

    name: str
    description: str
    hparams: Hyperparams = field(default_factory=Hyperparams)


FAST = Hyperparams(
    epochs=2,
    batch_size=256,
    learning_rate=8e-3,
    conv_filters=(24, 48, 96),
    kernel_size=4,
    first_stride=2,
    padding="same",
    batch_norm=True,
    dense_units=128,
    dropout=0.0,
    lr_schedule="onecycle",
    validation_split=0.0,
)
"""The time to 99% on a CPU (README: Presets); `fast-gpu` keeps its network, not its steps."""

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "default",
            "A sound small CNN: softmax, dropout, 10% validation, 5 epochs.",
            Hyperparams(),
        ),
        Preset(
            "seed",
            "The original mnist_cnn.py exactly: sigmoid output, Adam, batch 32, 5 epochs.",
            Hyperparams(
                epochs=5,
                batch_size=32,
                learning_rate=1e-3,
                optimizer="adam",
                conv_filters=(32, 64),
                kernel_size=3,
                padding="valid",
                dense_units=64,
                dropout=0.0,
                output_activation="sigmoid",
                validation_split=0.0,
            ),
        ),
        Preset(
            "keras-example",
            "The Keras 'simple MNIST convnet': dropout 0.5, batch 128, 15 epochs.",
            Hyperparams(
                epochs=15,
                batch_size=128,
                conv_filters=(32, 64),
                dense_units=0,
                dropout=0.5,
                validation_split=0.1,
            ),
        ),
        Preset(
            "fast",
            "99% on full MNIST soonest on a CPU: a stride-2 first conv, batch 256, one-cycle LR, "
            "2 epochs.",
            FAST,
        ),
        Preset(
            "fast-gpu",
            "fast's network for a GPU, where a step costs about the same at any small batch: "
            "batch 512 and a higher one-cycle LR over 3 epochs, 3/4 of fast's steps.",
            # fast's network (its accuracy is known) in bigger, fewer steps.
            FAST.with_changes(epochs=3, batch_size=512, learning_rate=1.2e-2),
        ),
        Preset(
            "best",
            "99.63-99.74% on full MNIST, 99.705% on average over eight runs: pairs of 3x3 convs "
            "with batch norm, dropout, cosine LR over 25 epochs, augmentation but for the last 6.",
            Hyperparams(
                epochs=25,
                batch_size=128,
                learning_rate=3e-3,
                conv_filters=(24, 48, 96),
                convs_per_block=2,
                padding="same",
                batch_norm=True,
                dense_units=128,
                dropout=0.3,
                augment=True,
                clean_epochs=6,
                lr_schedule="cosine",
                validation_split=0.05,
            ),
        ),
    )
}

DEFAULT_PRESET = "default"


def preset(name: str) -> Hyperparams:
    """Hyperparameters of a named preset; an unknown name is a `ValueError` listing them."""
    try:
        return PRESETS[name].hparams
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.") from None
