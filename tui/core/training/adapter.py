"""How a model is fed digits and how its outputs are read, for models from elsewhere too.

mnist-tui's own models take (n, 28, 28, 1) images and give 10 probabilities. A model brought
along may take (n, 28, 28) or (n, 784), and may give raw scores (logits) or sigmoid outputs;
`ModelAdapter` finds out which, once, and says so. Anything it cannot feed or read is a
`ModelMismatch` with one sentence saying what the model expects and what mnist-tui offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tui.core.inspect.predictions import NUM_CLASSES, Predictions
from tui.core.platform.runtime import to_numpy

LAYOUTS = {(28, 28, 1): "28x28x1", (28, 28): "28x28", (784,): "784 values"}
"""Input shapes (without the batch) that MNIST digits can be given as."""
OFFERED = "28x28 grey digits (as 28x28x1, 28x28 or 784 values)"


class ModelMismatch(Exception):
    """The model cannot be fed MNIST digits or read as 10 classes; str(err) says why."""


@dataclass(frozen=True)
class ModelAdapter:
    """Feeds a model (n, 28, 28, 1) float images in the layout it takes."""

    model: Any
    input_shape: tuple[int, ...]
    """The model's input without the batch axis, one of `LAYOUTS`."""
    notes: tuple[str, ...] = ()
    """What a person should know about how the model is used (empty for mnist-tui's own)."""

    @classmethod
    def for_model(cls, model: Any) -> ModelAdapter:
        """Check that `model` takes digits and gives 10 scores.

        Raises:
            ModelMismatch: several inputs or outputs, an input it cannot be fed, not 10 outputs.
        """
        inputs = _shape(model, "input_shape", "inputs")
        outputs = _shape(model, "output_shape", "outputs")
        taken = tuple(d or 0 for d in inputs[1:])
        if taken not in LAYOUTS:
            raise ModelMismatch(
                f"the model expects input {_show(tuple(inputs[1:]))}; mnist-tui feeds it {OFFERED}."
            )
        classes = outputs[-1] if outputs else None
        if len(outputs) != 2 or classes != NUM_CLASSES:
            raise ModelMismatch(
                f"the model gives output {_show(tuple(outputs[1:]))}; mnist-tui reads 10 class "
                "scores, one per digit."
            )
        notes = () if taken == (28, 28, 1) else (f"fed as {LAYOUTS[taken]}",)
        return cls(model, taken, notes)

    def feed(self, images: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) images reshaped to what the model takes."""
        return images.reshape((len(images), *self.input_shape))

    def predict(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int = 1024
    ) -> tuple[Predictions, tuple[str, ...]]:
        """Probabilities for every image, and how the outputs were read (as notes)."""
        from tui.core.data.pipeline import batches

        fed = batches(self.feed(images), batch_size=batch_size)
        outputs = np.asarray(self.model.predict(fed, verbose=0), np.float32)
        probabilities, note = read_scores(outputs)
        return Predictions(probabilities, labels), (*self.notes, *((note,) if note else ()))

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for a few images (a drawing), from any thread."""
        outputs = to_numpy(self.model(self.feed(images), training=False))
        return read_scores(outputs)[0]


def read_scores(outputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows that sum to 1, and a note when the outputs were not probabilities already.

    Raw scores (any outside [0, 1]) go through a softmax; outputs in [0, 1] that do not sum to
    1 (a sigmoid layer, as the original script had) are divided by their sum, as Keras's
    cross-entropy does.
    """
    if not np.all(np.isfinite(outputs)):
        raise ModelMismatch("the model gives NaN or infinite outputs for MNIST digits.")
    if outputs.size and (outputs.min() < 0.0 or outputs.max() > 1.0):
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        softmax: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return softmax, "its outputs are raw scores: shown after a softmax"
    sums = outputs.sum(axis=1, keepdims=True)
    if np.allclose(sums, 1.0, atol=1e-3):
        return outputs, ""
    normalised: np.ndarray = (outputs / np.maximum(sums, 1e-7)).astype(np.float32)
    return normalised, "its outputs do not sum to 1 (sigmoid?): divided by their sum"


def _shape(model: Any, attribute: str, plural: str) -> tuple[int | None, ...]:
    try:
        shape = getattr(model, attribute)
    except (AttributeError, ValueError):
        raise ModelMismatch(
            f"the model has no defined {plural}; save it after building it."
        ) from None
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ModelMismatch(f"the model has {len(shape)} {plural}; mnist-tui needs one.")
        shape = shape[0]
    return tuple(shape)


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
