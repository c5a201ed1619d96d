"""Augmentation at the model's input (training only) and the switch that turns it off at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tui.core.platform.runtime import import_keras
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.callback import EventSink
from tui.core.training.events import Notice

# A Keras layer is defined below, so this module imports Keras: import it only where a model is
# built, trained or loaded.
keras = import_keras()

ROTATION = 0.04
"""Largest random turn, as a fraction of a full turn (about 14 degrees)."""
SHIFT = 0.1
"""Largest random shift, as a fraction of the image's side (about 3 pixels)."""


@keras.saving.register_keras_serializable(package="mnist_tui")
class Augmentation(keras.layers.Layer):  # type: ignore[misc,name-defined]
    """The variations of the training images in one layer, so that they can be switched off: a
    random turn, then a random shift, of the whole digit.

    In inference, or while `active` is false, images pass through unchanged. `active` is read
    when Keras traces its training step: after changing it, have the model make its train
    function again (`AugmentationSwitch` does both).
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.active = True
        self.steps = [
            keras.layers.RandomRotation(ROTATION, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant", seed=seed),
        ]

    def build(self, input_shape: Any) -> None:
        for step in self.steps:
            step.build(input_shape)
        super().build(input_shape)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training or not self.active:
            return images
        for step in self.steps:
            images = step(images, training=True)
        return images

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "seed": self.seed}


def augmentation_layers(hparams: Hyperparams) -> list[Any]:
    """The model's input layers that vary training images: one `Augmentation` when the
    hyperparameters ask for it, else none."""
    return [Augmentation(seed=hparams.seed, name="augment")] if hparams.augment else []


class AugmentationSwitch(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Train the last `clean_epochs` epochs of the target on the images as they are (with 0, keep
    augmentation on, also on a model whose earlier round ended with it off).

    Augmentation leaves a gap between the images a model trains on and the ones it is tested
    on; a few epochs without it at the end, at the schedule's low learning rate, close it
    (He et al. 2019, "Data augmentation revisited"). The target is read at each epoch's start,
    so raising it while training turns augmentation back on until the new last epochs.
    """

    def __init__(self, epoch_target: Callable[[], int], clean_epochs: int, sink: EventSink) -> None:
        super().__init__()
        self.epoch_target = epoch_target
        self.clean_epochs = clean_epochs
        self.sink = sink

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.clean_epochs and not self._layers():
            self.sink(
                Notice(
                    "This model's augmentation cannot be switched off (it was saved before "
                    "clean epochs existed): it stays on to the end.",
                    "warning",
                )
            )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        active = epoch < self.epoch_target() - self.clean_epochs
        layers = self._layers()
        if not any(layer.active != active for layer in layers):
            return
        for layer in layers:
            layer.active = active
        self.model.make_train_function(force=True)
        if active:
            self.sink(Notice(f"Augmentation on again from epoch {epoch + 1}."))
        else:
            self.sink(
                Notice(
                    f"Augmentation off from epoch {epoch + 1}: the last epochs train on the "
                    "images as they are."
                )
            )

    def _layers(self) -> list[Augmentation]:
        return [layer for layer in self.model.layers if isinstance(layer, Augmentation)]
