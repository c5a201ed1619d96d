"""The layers' health, epoch by epoch: a Keras callback that measures every learning layer on a
fixed probe batch after each epoch and tells it as an event (see `tui.core.inspect.views`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tui.core.inspect.views import LayerHealth, LayerHealthProbe, health_problems, layer_table
from tui.core.platform.runtime import import_keras
from tui.core.training.callback import EventSink
from tui.core.training.events import LayerFigures, LayerHealthMeasured, LayerInfo

keras = import_keras()

PROBE_IMAGES = 256
"""The fixed batch the dead-unit shares are measured on: the first training images."""


def describe_layers(model: Any) -> tuple[LayerInfo, ...]:
    """The model's layers as `model.summary()` lists them."""
    return tuple(
        LayerInfo(row.name, row.kind, tuple(row.output_shape), row.params, row.trainable)
        for row in layer_table(model)
    )


def figures(rows: list[LayerHealth]) -> tuple[LayerFigures, ...]:
    def finite(value: float | None) -> float | None:
        return value if value is not None and np.isfinite(value) else None

    return tuple(
        LayerFigures(
            row.layer,
            finite(row.weight_norm),
            finite(row.update_ratio),
            row.dead_share,
            row.finite,
        )
        for row in rows
    )


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
        rows = self.probe.measure()
        self.sink(LayerHealthMeasured(epoch + 1, figures(rows), tuple(health_problems(rows))))


def make_probe(model: Any, images: np.ndarray) -> LayerHealthProbe | None:
    """A probe for `model`, or None for a model it cannot look into (from elsewhere)."""
    try:
        return LayerHealthProbe(model, images[:PROBE_IMAGES])
    except (ValueError, TypeError):
        return None
