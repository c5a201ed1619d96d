"""The script mnist-tui started from, as plain Keras with no mnist-tui code: load MNIST, scale
to [0, 1], Conv32-Pool-Conv64-Pool-Flatten-Dense64-Dense10 with a sigmoid output, Adam,
batch 32, 5 epochs, evaluate. `bench_time_to_accuracy.py` times it as a whole process.

Usage: python original_script.py MNIST_NPZ
"""

import sys

import keras
import numpy as np

with np.load(sys.argv[1]) as mnist:
    x_train = (mnist["x_train"].astype("float32") / 255.0)[..., np.newaxis]
    x_test = (mnist["x_test"].astype("float32") / 255.0)[..., np.newaxis]
    y_train, y_test = mnist["y_train"], mnist["y_test"]

keras.utils.set_random_seed(42)
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"Test accuracy: {accuracy:.2%}")
