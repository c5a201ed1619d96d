"""ModelReader: what viewers ask of a model and the test set it was evaluated on (probabilities
for a drawing, the test set under test-time augmentation, what the model looks at in a digit,
the clusters). Any thread: the model is read, never changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tui.core.inspect.predictions import Predictions

if TYPE_CHECKING:
    from tui.core.data.mnist import MnistData
    from tui.core.inspect.views import Explanation, SaliencyMethod
    from tui.core.training.adapter import ModelAdapter


class ModelReader:
    """One model, read; each question raises `ValueError` with the sentence to show."""

    def __init__(
        self, adapter: ModelAdapter, data: MnistData | None, plain: Predictions | None
    ) -> None:
        """
        Args:
            adapter: the model, fed digits and read as ten scores.
            data: the data it was evaluated on (None while MNIST loads).
            plain: its published test-set predictions, if any.
        """
        self.adapter = adapter
        self.data = data
        self.plain = plain

    def _test_set(self) -> MnistData:
        if self.data is None:
            raise ValueError("MNIST is not loaded yet.")
        return self.data

    def classify(self, images: np.ndarray) -> np.ndarray:
        """(n, 10) probabilities for (n, 28, 28, 1) float images (a drawing)."""
        return self.adapter.classify(images)

    def predict_shifted(self) -> Predictions:
        """The test set's probabilities averaged over each digit and its one-pixel shifts
        (`tui.core.inspect.tta`); the published predictions stay the plain ones."""
        from tui.core.inspect.tta import predict_shifted
        from tui.core.training.adapter import ModelMismatch
        from tui.core.training.session import EVAL_BATCH

        data, adapter, plain = self._test_set(), self.adapter, self.plain
        labels = data.y_test
        # The plain pass is the published predictions, when they are of this test set.
        base = None
        if plain is not None and len(plain.labels) == len(labels):
            base = plain.probabilities
        try:
            return predict_shifted(
                lambda images: adapter.predict(images, labels, EVAL_BATCH)[0].probabilities,
                data.x_test,
                labels,
                base=base,
            )
        except ModelMismatch as err:
            raise ValueError(f"test-time augmentation failed: {err}") from None

    def explain(
        self, image: np.ndarray, class_index: int | None, method: SaliencyMethod
    ) -> Explanation:
        """What the model looks at in `image` ((28, 28, 1) float): its probabilities, the
        saliency map for `class_index` (the predicted class when None) and the strongest feature
        maps of each conv layer."""
        from tui.core.inspect.views import explain

        probabilities = self.classify(image[np.newaxis])[0]
        return explain(self.adapter.model, image, probabilities, class_index, method)

    def clusters(self) -> np.ndarray:
        """The test set's penultimate-layer features projected on their two principal axes,
        (n, 2) float32, in test-set order."""
        from tui.core.inspect.views import clusters

        return clusters(self.adapter.model, self._test_set().x_test)
