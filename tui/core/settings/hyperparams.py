"""Hyperparameters: a frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
PADDINGS = ("valid", "same")
LR_SCHEDULES = ("constant", "cosine", "onecycle")

#: Fields that change the network's shape; they cannot change while a model exists.
ARCHITECTURE_FIELDS = frozenset(
    {
        "conv_filters",
        "convs_per_block",
        "kernel_size",
        "first_stride",
        "padding",
        "dense_units",
        "dropout",
        "batch_norm",
        "output_activation",
        "augment",
        "optimizer",
        "seed",
    }
)

#: Fields that may change while training runs.
LIVE_FIELDS = frozenset({"epochs", "learning_rate"})

IMAGE_SIZE = 28


def _range_error(name: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{name} = {value!r} is out of range: {allowed}.")


def conv_output_side(side: int, kernel: int, padding: str, stride: int) -> int:
    """Side of a Conv2D's output for a square input of `side`, as Keras computes it."""
    if padding == "same":
        return -(-side // stride)
    return max(side - kernel, -1) // stride + 1


@dataclass(frozen=True)
class Hyperparams:
    """Everything that defines a training run. Invalid values raise `ValueError` on creation."""

    epochs: int = 5
    """Epoch target (can be raised or lowered while training)."""
    batch_size: int = 128
    """Samples per gradient step."""
    learning_rate: float = 1e-3
    """Initial learning rate of the optimizer."""
    optimizer: str = "adam"
    """One of adam, adamw, sgd (with momentum), rmsprop."""
    momentum: float = 0.9
    """Momentum for sgd; ignored by the other optimizers."""
    conv_filters: tuple[int, ...] = (32, 64)
    """Filters of each Conv2D + MaxPooling2D block, 1 to 4 blocks."""
    convs_per_block: int = 1
    """Conv2D layers in each block before its pooling: 2 or 3 stack small kernels VGG-style, each
    block seeing further; the later ones read the block's own width, so pairs of 24-48-96 cost
    about 4 times the multiply-adds of single convs."""
    kernel_size: int = 3
    """Square kernel of every Conv2D."""
    first_stride: int = 1
    """Stride of the first Conv2D; 2 halves the image's side (14x14 with same padding) from
    there on, a quarter of the cost."""
    padding: str = "valid"
    """Conv2D padding: valid (shrinks the image) or same."""
    dense_units: int = 128
    """Units of the hidden Dense layer after Flatten; 0 means none."""
    dropout: float = 0.25
    """Dropout rate before each Dense layer; 0 disables it."""
    batch_norm: bool = False
    """Batch normalisation after each Conv2D."""
    output_activation: str = "softmax"
    """softmax, or sigmoid as the original script had it."""
    augment: bool = False
    """Random shifts and small rotations of training images."""
    clean_epochs: int = 0
    """The last N epochs of the epoch target train on the images as they are, augment switched
    off (it narrows the gap to the test images); 0 keeps it on to the end."""
    lr_schedule: str = "constant"
    """constant; cosine decay over the epoch target; or onecycle: a warm-up over its first 20%,
    then cosine decay."""
    validation_split: float = 0.1
    """Fraction of the training set held out for validation (0 for none)."""
    train_size: int = 0
    """Use only the first N training images; 0 means all."""
    seed: int = 42
    """Random seed for weights, shuffling and the validation split."""

    def __post_init__(self) -> None:
        # Coerce exact types first so that "32" or 3.0 from a TOML file or a form is caught here,
        # not deep inside Keras.
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if f.name == "conv_filters":
                if isinstance(value, list):
                    object.__setattr__(self, f.name, tuple(value))
                    value = tuple(value)
                if not isinstance(value, tuple) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                ):
                    raise ValueError(
                        f"conv_filters = {value!r} must be a list of whole numbers, e.g. 32,64."
                    )
            elif f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{f.name} = {value!r} must be a whole number.")
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{f.name} = {value!r} must be a number.")
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(f"{f.name} = {value!r} must be a finite number.")
                object.__setattr__(self, f.name, number)
            elif f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name} = {value!r} must be true or false.")
            elif f.type == "str" and not isinstance(value, str):
                raise ValueError(f"{f.name} = {value!r} must be text.")
        for name, (low, high) in INT_BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise _range_error(name, value, f"a whole number from {low} to {high}")
        for name, (lowest, highest, low_open, high_open) in FLOAT_BOUNDS.items():
            value = getattr(self, name)
            above = value > lowest if low_open else value >= lowest
            below = value < highest if high_open else value <= highest
            if not (above and below):
                left = "(" if low_open else "["
                right = ")" if high_open else "]"
                allowed = f"a number in {left}{lowest:g}, {highest:g}{right}"
                raise _range_error(name, value, allowed)
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name} = {value!r} is not one of: {', '.join(choices)}.")
        if not 1 <= len(self.conv_filters) <= 4:
            raise ValueError(
                f"conv_filters has {len(self.conv_filters)} blocks; use 1 to 4 (e.g. 32,64)."
            )
        for n in self.conv_filters:
            if not 1 <= n <= 512:
                raise _range_error("conv_filters", n, "each block from 1 to 512 filters")
        if self.feature_map_size() < 1:
            strided = self.first_stride > 1
            # Only what would help: with same padding the kernel does not shrink the image.
            remedies = ["fewer blocks"]
            if self.convs_per_block > 1:
                remedies.append("fewer convs per block")
            if self.padding == "valid":
                remedies += ["a smaller kernel", "same padding"]
            if strided:
                remedies.append("a first stride of 1")
            raise ValueError(
                f"conv_filters: {len(self.conv_filters)} blocks"
                f"{f' of {self.convs_per_block} convs' if self.convs_per_block > 1 else ''} "
                f"with kernel {self.kernel_size} "
                f"and {self.padding} padding{' after a first stride of 2' if strided else ''} "
                f"shrink the 28x28 image to nothing; use {', '.join(remedies[:-1])} or "
                f"{remedies[-1]}."
            )

    def feature_map_size(self) -> int:
        """Side of the feature map after the last conv block (0 if the image vanishes)."""
        side = IMAGE_SIZE
        for index, _ in enumerate(self.conv_filters):
            for conv in range(self.convs_per_block):
                stride = self.stride_of(index) if conv == 0 else 1
                side = conv_output_side(side, self.kernel_size, self.padding, stride)
            if side < 2:
                return 0
            side //= 2
        return side

    def stride_of(self, block: int) -> int:
        """The stride of the first Conv2D of `block` (counted from 0); the others have 1."""
        return self.first_stride if block == 0 else 1

    def with_changes(self, **changes: Any) -> Hyperparams:
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists), ready for TOML or JSON."""
        out = dataclasses.asdict(self)
        out["conv_filters"] = list(self.conv_filters)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: Hyperparams | None = None) -> Hyperparams:
        """Build from a mapping; unknown keys are an error, missing keys come from `base`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        return replace(base or cls(), **dict(values))

    def architecture_summary(self) -> str:
        """One line such as `Conv32-Pool-Conv64-Pool-Flatten-Dense128-Dense10(softmax)`; a block
        of two convolutions reads `Conv32x2-Pool`, or `Conv32/2-Conv32-Pool` when the first has
        stride 2."""
        parts = []
        for i, n in enumerate(self.conv_filters):
            repeat = self.convs_per_block
            if self.stride_of(i) > 1:
                convs = [f"Conv{n}/{self.stride_of(i)}"] + [f"Conv{n}"] * (repeat - 1)
            else:
                convs = [f"Conv{n}x{repeat}" if repeat > 1 else f"Conv{n}"]
            parts.append("-".join([*convs, "Pool"]))
        parts.append("Flatten")
        if self.dense_units:
            parts.append(f"Dense{self.dense_units}")
        parts.append(f"Dense10({self.output_activation})")
        return "-".join(parts)


INT_BOUNDS: dict[str, tuple[int, int]] = {
    "epochs": (1, 1000),
    "batch_size": (1, 8192),
    "convs_per_block": (1, 3),
    "clean_epochs": (0, 1000),
    "kernel_size": (1, 7),
    "first_stride": (1, 2),
    "dense_units": (0, 4096),
    "train_size": (0, 1_000_000),
    "seed": (0, 2**31 - 1),
}
# name: (low, high, low is open, high is open)
FLOAT_BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.0, 1.0, True, False),
    "momentum": (0.0, 1.0, False, True),
    "dropout": (0.0, 1.0, False, True),
    "validation_split": (0.0, 0.5, False, False),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "output_activation": OUTPUT_ACTIVATIONS,
    "padding": PADDINGS,
    "lr_schedule": LR_SCHEDULES,
}
