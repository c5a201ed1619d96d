"""Reaching inside a Keras model: its one 28x28x1 input, submodels over its layers (sharing their
weights), the ReLU after a layer, and batches of images in the shape it takes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tui.core.platform.runtime import import_keras, to_numpy

IMAGE_SHAPE = (28, 28, 1)


def single_input(model: Any) -> Any:
    """The model's one symbolic input; a clear error for unbuilt or multi-input models."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if len(inputs) != 1:
        raise ValueError(
            "The model must be built with a single 28x28x1 input (e.g. keras.Input((28, 28, 1))) "
            f"before it can be inspected; it has {len(inputs)} symbolic inputs."
        )
    shape = tuple(inputs[0].shape[1:])
    if shape != IMAGE_SHAPE:
        raise ValueError(f"The model's input is {shape}; inspection expects 28x28x1 images.")
    return inputs[0]


def submodel(model: Any, outputs: Any) -> Any:
    """A functional model sharing `model`'s layers (and so its current weights) up to `outputs`."""
    keras = import_keras()
    return keras.Model(single_input(model), outputs)


def is_plain_relu(layer: Any) -> bool:
    """Whether `layer` is a plain ReLU: an Activation("relu") or a ReLU layer without leak."""
    keras = import_keras()
    if isinstance(layer, keras.layers.ReLU):
        return (
            not layer.negative_slope and not layer.threshold and layer.max_value in (None, math.inf)
        )
    if isinstance(layer, keras.layers.Activation):
        return layer.activation is keras.activations.relu
    return False


def only_consumer(model: Any, tensor: Any) -> Any | None:
    """The only layer of `model` that takes `tensor` as its input, or None if none or several."""
    found = []
    for layer in model.layers:
        try:
            layer_input = layer.input
        except (AttributeError, ValueError):  # a shared layer has no single input
            continue
        if layer_input is tensor:
            found.append(layer)
    return found[0] if len(found) == 1 else None


def relu_output(model: Any, layer: Any) -> Any | None:
    """The tensor after the ReLU that `layer` ends in, or None if no ReLU follows it.

    That is the layer's own output when it has activation="relu"; otherwise the output of a ReLU
    straight after it, or after a BatchNormalization straight after it (conv -> BN -> ReLU).
    """
    keras = import_keras()
    if getattr(layer, "activation", None) is keras.activations.relu:
        return layer.output
    after = only_consumer(model, layer.output)
    if after is not None and isinstance(after, keras.layers.BatchNormalization):
        after = only_consumer(model, after.output)
    if after is not None and is_plain_relu(after):
        return after.output
    return None


def outputs_of(submodel: Any, images: np.ndarray) -> list[np.ndarray]:
    """`submodel`'s outputs for `images` in inference mode, as float32 arrays, always a list."""
    outputs = submodel(images, training=False)
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]  # a model with one output returns it bare
    return [to_numpy(output) for output in outputs]


def as_batch(images: np.ndarray, what: str) -> np.ndarray:
    """(n, 28, 28, 1) float32 from (n, 28, 28) or (n, 28, 28, 1) images."""
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim != 4 or batch.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{what} must be 28x28 images, got shape {np.shape(images)}.")
    return batch


def one_image(image: np.ndarray) -> np.ndarray:
    """(1, 28, 28, 1) float32 from a (28, 28) or (28, 28, 1) image."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.shape == IMAGE_SHAPE[:2]:
        pixels = pixels[..., np.newaxis]
    if pixels.shape != IMAGE_SHAPE:
        raise ValueError(f"An image must be 28x28 (optionally x1), got shape {np.shape(image)}.")
    return pixels[np.newaxis]
