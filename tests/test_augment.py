"""The augmentation layer on real digits (the bundled sample), and a model that has it saved by
one process and opened by another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from tiny import TINY

from tui.core.data.augment import AugmentationSwitch
from tui.core.data.mnist import load_sample
from tui.core.training.events import Notice
from tui.core.training.model import build_model

AUGMENTED = TINY.with_changes(conv_filters=(4,), dense_units=0, augment=True)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.asarray(load_sample().x_test[:16], dtype="float32")


def test_augmentation_varies_training_images_and_leaves_inference_alone(
    digits: np.ndarray,
) -> None:
    layer = build_model(AUGMENTED, compile_model=False).get_layer("augment")
    assert np.array_equal(np.asarray(layer(digits, training=False)), digits)
    turned = np.asarray(layer(digits, training=True))
    assert turned.shape == digits.shape
    assert not np.allclose(turned, digits, atol=0.05)
    layer.active = False
    assert np.array_equal(np.asarray(layer(digits, training=True)), digits)


def test_a_saved_augmented_model_opens_in_a_fresh_process_and_predicts_alike(
    tmp_path: Path, digits: np.ndarray
) -> None:
    model = build_model(AUGMENTED, compile_model=False)
    path, images, predicted = tmp_path / "augmented.keras", tmp_path / "x.npy", tmp_path / "p.npy"
    model.save(path)
    np.save(images, digits)
    script = (
        "import sys, numpy as np\n"
        "from tui.core.runs.resume import load_model_file\n"
        "model = load_model_file(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(images), str(predicted)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.allclose(np.load(predicted), model.predict(digits, verbose=0), atol=1e-6)


def test_a_model_saved_before_clean_epochs_says_its_augmentation_stays_on(
    digits: np.ndarray,
) -> None:
    """Models saved before the `Augmentation` layer have Keras's two layers, which no switch
    reaches: training one with clean epochs says so instead of claiming the last are clean."""
    old = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.RandomRotation(0.04, fill_mode="constant"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    old.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    said: list[object] = []
    switch = AugmentationSwitch(lambda: 2, 1, said.append)
    old.fit(digits, np.zeros(len(digits)), epochs=2, verbose=0, callbacks=[switch])
    assert [(n.level, n.text.split(" (")[0]) for n in said if isinstance(n, Notice)] == [
        ("warning", "This model's augmentation cannot be switched off")
    ]
