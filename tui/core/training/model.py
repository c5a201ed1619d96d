"""Build the convolutional network and its optimizer from `Hyperparams`."""

from __future__ import annotations

from typing import Any

from tui.core.platform.distribute import steps_per_execution as batches_per_call
from tui.core.platform.runtime import import_keras
from tui.core.settings.hyperparams import Hyperparams

NUM_CLASSES = 10


def build_model(
    hparams: Hyperparams,
    *,
    compile_model: bool = True,
    steps_per_execution: int | None = None,
) -> Any:
    """A `keras.Model` for 28x28x1 MNIST images, compiled unless told otherwise.

    The layout is the classic one: blocks of `convs_per_block` Conv2D layers and a MaxPooling2D,
    Flatten, an optional hidden Dense layer, then Dense(10). Softmax output unless the
    hyperparameters ask for sigmoid (the original script did, and the `seed` preset keeps it to
    compare against).
    """
    from tui.core.data.augment import augmentation_layers  # defines a Keras layer: Keras on import

    keras = import_keras()
    layers = keras.layers
    keras.utils.set_random_seed(hparams.seed)
    stack: list[Any] = [keras.Input(shape=(28, 28, 1), name="image"), *augmentation_layers(hparams)]
    for index, filters in enumerate(hparams.conv_filters, start=1):
        # A block's convolutions are conv2, conv2b, conv2c: the first keeps the one-conv name.
        for conv in range(hparams.convs_per_block):
            suffix = chr(ord("a") + conv) if conv else ""
            stack.append(
                layers.Conv2D(
                    filters,
                    hparams.kernel_size,
                    strides=hparams.stride_of(index - 1) if conv == 0 else 1,
                    padding=hparams.padding,
                    use_bias=not hparams.batch_norm,
                    activation=None if hparams.batch_norm else "relu",
                    name=f"conv{index}{suffix}",
                )
            )
            if hparams.batch_norm:
                # Keras's default momentum (0.99) needs thousands of steps before the moving
                # statistics forget their initial variance of 1; short runs on small subsets
                # then predict at chance in inference mode. 0.9 settles within ~50 steps.
                stack += [layers.BatchNormalization(momentum=0.9), layers.Activation("relu")]
        stack.append(layers.MaxPooling2D(2, name=f"pool{index}"))
    stack.append(layers.Flatten())
    if hparams.dense_units:
        if hparams.dropout:
            stack.append(layers.Dropout(hparams.dropout, seed=hparams.seed))
        stack.append(layers.Dense(hparams.dense_units, activation="relu", name="hidden"))
    if hparams.dropout:
        stack.append(layers.Dropout(hparams.dropout, seed=hparams.seed + 1))
    # float32 even under a mixed_float16 policy: a float16 softmax and loss lose too much precision.
    stack.append(
        layers.Dense(
            NUM_CLASSES, activation=hparams.output_activation, dtype="float32", name="output"
        )
    )

    model = keras.Sequential(stack, name="mnist_cnn")
    if compile_model:
        compile_for(model, hparams, steps_per_execution=steps_per_execution)
    return model


def portable(model: Any) -> Any:
    """`model` as plain Keras opens it, with no import of ours: without its `Augmentation` layer.

    The same layers (weights shared, nothing copied), the same compiled optimizer and its state;
    only the training-time augmentation in front is left out, which inference skips anyway.
    Every model the tool saves goes through this; `with_augmentation` puts the layer back.
    """
    from tui.core.data.augment import Augmentation

    kept = [layer for layer in model.layers if not isinstance(layer, Augmentation)]
    if len(kept) == len(model.layers):
        return model
    keras = import_keras()
    image = keras.Input(shape=model.input_shape[1:], name="image")
    plain = keras.Sequential([image, *kept], name=model.name)
    if model.optimizer is not None:
        plain.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            metrics=["accuracy"],
            steps_per_execution=model.steps_per_execution,
        )
    return plain


def with_augmentation(loaded: Any, hparams: Hyperparams) -> Any:
    """A model saved by `portable`, with the augmentation its hyperparameters ask for back in
    front: the same weights and optimizer state, in fresh layers of the hyperparameters' model.

    Returned unchanged when there is nothing to add (no augmentation asked for, a model saved
    with the layer inside, one that does not match its hyperparameters).
    """
    from tui.core.data.augment import Augmentation

    if not hparams.augment or any(isinstance(layer, Augmentation) for layer in loaded.layers):
        return loaded
    # Fresh layers rather than the loaded ones: a layer used by two models answers `.output`
    # for the first, and the layer views (saliency, feature maps) read it on the second.
    model = build_model(hparams, compile_model=False)
    layers = [layer for layer in model.layers if not isinstance(layer, Augmentation)]
    if len(layers) != len(loaded.layers):
        return loaded
    try:
        for layer, source in zip(layers, loaded.layers, strict=True):
            layer.set_weights(source.get_weights())
    except ValueError:  # other shapes: not the model these hyperparameters build
        return loaded
    if loaded.optimizer is None:
        return model
    optimizer = type(loaded.optimizer).from_config(loaded.optimizer.get_config())
    model.compile(
        optimizer=optimizer,
        loss=loaded.loss,
        metrics=["accuracy"],
        steps_per_execution=loaded.steps_per_execution,
    )
    optimizer.build(model.trainable_variables)
    for variable, saved in zip(optimizer.variables, loaded.optimizer.variables, strict=True):
        variable.assign(saved)
    return model


def set_steps_per_execution(model: Any, steps: int) -> None:
    """Run `steps` batches per call from now on, also for a model loaded from a file (Keras
    restores the setting it was saved with, which may not suit the strategy it now runs under)."""
    if model.steps_per_execution != steps:
        model.steps_per_execution = steps
        # Keras builds these once with the setting inside; rebuilt on next use.
        model.train_function = model.test_function = model.predict_function = None


def build_optimizer(hparams: Hyperparams) -> Any:
    """The optimizer named by the hyperparameters, at their learning rate."""
    keras = import_keras()
    lr = hparams.learning_rate
    if hparams.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if hparams.optimizer == "adamw":
        return keras.optimizers.AdamW(lr)
    if hparams.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=hparams.momentum)
    if hparams.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    raise ValueError(f"unknown optimizer {hparams.optimizer!r}")  # config validation prevents it


def compile_for(
    model: Any, hparams: Hyperparams, *, steps_per_execution: int | None = None
) -> None:
    """Compile with the chosen optimizer, sparse categorical cross-entropy and accuracy (and as
    many batches per call as the backend takes, unless told)."""
    model.compile(
        optimizer=build_optimizer(hparams),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=batches_per_call()
        if steps_per_execution is None
        else steps_per_execution,
    )
