"""The layers' health, epoch by epoch: the model's layer table, a probe that measures every
learning layer on a fixed batch, and the Keras callback that tells its figures and problems
(see `tui.core.inspect.problems`) as an event after each epoch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tui.core.inspect.graph import as_batch, outputs_of, relu_output, submodel
from tui.core.inspect.problems import find_problems
from tui.core.platform.runtime import import_keras, to_numpy
from tui.core.training.callback import EventSink
from tui.core.training.events import LayerFigures, LayerHealthMeasured, LayerInfo

keras = import_keras()

PROBE_IMAGES = 256
"""The fixed batch the dead-unit shares are measured on: the first training images."""


def describe_layers(model: Any) -> tuple[LayerInfo, ...]:
    """What `model.summary()` lists, as data: one row per layer, in model order, its shape with
    the batch dimension first (None) and its parameters as `model.count_params()` counts them."""
    return tuple(
        LayerInfo(
            layer.name,
            type(layer).__name__,
            tuple(None if size is None else int(size) for size in layer.output.shape),
            int(layer.count_params()),
            bool(layer.trainable),
        )
        for layer in model.layers
    )


class LayerHealthProbe:
    """Measures every learning layer of a model, one call per epoch.

    Lists the layers with trainable weights except normalisation layers, whose scale and shift
    say little about dead units or stalled learning. The probe keeps a copy of the weights it
    last saw, so each `measure()` after the first reports how far they moved.

    Args:
        model: A built Keras model with a 28x28x1 input.
        probe_images: A fixed batch, e.g. 256 test images; the same each call so that
            dead-unit shares are comparable between epochs.
    """

    def __init__(self, model: Any, probe_images: np.ndarray) -> None:
        norms = (
            keras.layers.BatchNormalization,
            keras.layers.LayerNormalization,
            keras.layers.GroupNormalization,
        )
        self._probe = as_batch(probe_images, "probe_images")
        if len(self._probe) == 0:
            raise ValueError("probe_images is empty; dead units need at least one image.")
        self._layers = [
            layer
            for layer in model.layers
            if layer.trainable_weights and not isinstance(layer, norms)
        ]
        self._previous: dict[str, list[np.ndarray]] = {}
        self._relu_names: list[str] = []
        reduced = []
        for layer in self._layers:
            tensor = relu_output(model, layer)
            if tensor is None:
                continue
            self._relu_names.append(layer.name)
            # Only "ever positive?" per unit is needed: reduce the spatial axes inside the
            # graph, so a 256-image batch returns (256, channels), not every activation.
            spatial = tuple(range(1, len(tensor.shape) - 1))
            reduced.append(keras.ops.max(tensor, axis=spatial) if spatial else tensor)
        self._relu_model = submodel(model, reduced) if reduced else None

    def measure(self) -> tuple[LayerFigures, ...]:
        """Each learning layer's figures now, in model order; one forward pass of the probe.

        The weight norm is the L2 norm of all the layer's weights together; the update ratio,
        ||W_now - W_prev|| / ||W_prev|| since the previous measurement (None the first time, and
        when the previous weights were all zero); the dead share, the share of the ReLU units
        (channels of a conv layer, units of a dense one) that output zero for every probe image
        (None when no ReLU follows the layer). A figure that is not finite is None.
        """
        dead: dict[str, float] = {}
        if self._relu_model is not None:
            peaks = outputs_of(self._relu_model, self._probe)
            for name, peak in zip(self._relu_names, peaks, strict=True):
                per_unit = peak.max(axis=0)
                dead[name] = float(np.mean(per_unit <= 0))

        rows = []
        for layer in self._layers:
            weights = [np.array(to_numpy(v), copy=True) for v in layer.weights]
            previous = self._previous.get(layer.name)
            rows.append(
                LayerFigures(
                    layer.name,
                    _finite(_norm(weights)),
                    _finite(_update_ratio(weights, previous)),
                    dead.get(layer.name),
                    all(bool(np.isfinite(w).all()) for w in weights),
                )
            )
            self._previous[layer.name] = weights
        return tuple(rows)


def _norm(arrays: list[np.ndarray]) -> float:
    # float64 sums: a million float32 squares lose digits the update ratio needs.
    return math.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays))


def _update_ratio(now: list[np.ndarray], before: list[np.ndarray] | None) -> float | None:
    if before is None or len(before) != len(now):
        return None
    size = _norm(before)
    if size == 0 or not math.isfinite(size):
        return None
    return _norm([a - b for a, b in zip(now, before, strict=True)]) / size


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class HealthCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """After each epoch (last in the list, once it is recorded), one probe of every layer.

    The probe is a forward pass of `PROBE_IMAGES` images and a copy of the weights: a few tens of
    milliseconds an epoch, beside epochs of seconds.
    """

    def __init__(self, probe: LayerHealthProbe, sink: EventSink) -> None:
        super().__init__()
        self.probe = probe
        self.sink = sink

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        figures = self.probe.measure()
        self.sink(LayerHealthMeasured(epoch + 1, figures, find_problems(figures)))


def make_probe(model: Any, images: np.ndarray) -> LayerHealthProbe | None:
    """A probe for `model`, or None for a model it cannot look into (from elsewhere)."""
    try:
        return LayerHealthProbe(model, images[:PROBE_IMAGES])
    except (ValueError, TypeError):
        return None
