"""Hyperparameters: a frozen, validated dataclass whose every field carries its spec (label,
help, bounds or choices), which the command line, the panel and every check read."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
PADDINGS = ("valid", "same")
LR_SCHEDULES = ("constant", "cosine", "onecycle")

IMAGE_SIZE = 28


@dataclass(frozen=True)
class Range:
    """The numbers a setting may take: from `low` to `high`, an open end excluded."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self, whole: bool) -> str:
        """What is allowed, as an error message says it: "a whole number from 1 to 1000" or
        "a number in (0, 1]"."""
        if whole:
            return f"a whole number from {self.low} to {self.high}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Setting:
    """One hyperparameter's spec: the CLI's flag and `--help`, the panel's row, tooltip and
    locking, and every range check read it here."""

    label: str
    """A short name that fits the panel (the flag is the field's name)."""
    help: str
    """What it does, in a sentence or two: the flag's help and the panel's tooltip."""
    bounds: Range | None = None
    """The numbers allowed (for a list, each item's); None for a choice or a switch."""
    choices: tuple[str, ...] = ()
    """The values allowed for text."""
    length: Range | None = None
    """For a list, how many items it may hold."""
    live: bool = False
    """May change while training runs (the panel applies it on Enter)."""
    architecture: bool = False
    """Part of how the network is built (its shape, optimizer, augmentation, seed): it cannot
    change while a model exists."""
    in_optimizer: bool = False
    """Kept by the optimizer a model is compiled with: the panel locks it while a model exists."""

    @property
    def locked_with_model(self) -> bool:
        """Fixed once a model is built: it changes only through a reset."""
        return self.architecture or self.in_optimizer


_SPEC = "setting"
"""The key of a field's `Setting` in its metadata."""


def setting(
    default: object,
    label: str,
    help: str,
    *,
    bounds: Range | None = None,
    choices: tuple[str, ...] = (),
    length: Range | None = None,
    live: bool = False,
    architecture: bool = False,
    in_optimizer: bool = False,
) -> Any:
    """A `Hyperparams` field with its spec (typed `Any`, as `dataclasses.field` is, so that
    `epochs: int = setting(5, ...)` type-checks)."""
    spec = Setting(label, help, bounds, choices, length, live, architecture, in_optimizer)
    return field(default=default, metadata={_SPEC: spec})


def _range_error(name: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{name} = {value!r} is out of range: {allowed}.")


def conv_output_side(side: int, kernel: int, padding: str, stride: int) -> int:
    """Side of a Conv2D's output for a square input of `side`, as Keras computes it."""
    if padding == "same":
        return -(-side // stride)
    return max(side - kernel, -1) // stride + 1


@dataclass(frozen=True)
class Hyperparams:
    """Everything that defines a training run. Invalid values raise `ValueError` on creation.

    Each field is declared with its `Setting`; adding one here gives it a flag with help, a row
    in the panel and its checks.
    """

    epochs: int = setting(
        5,
        "epochs",
        "Epoch target; it can be raised or lowered while training.",
        bounds=Range(1, 1000),
        live=True,
    )
    batch_size: int = setting(
        128, "batch size", "Samples per gradient step.", bounds=Range(1, 8192)
    )
    learning_rate: float = setting(
        1e-3,
        "learning rate",
        "Initial learning rate of the optimizer; while training, a new one applies from the "
        "next batch.",
        bounds=Range(0.0, 1.0, low_open=True),
        live=True,
    )
    optimizer: str = setting(
        "adam",
        "optimizer",
        "adam, adamw, sgd (with momentum) or rmsprop.",
        choices=OPTIMIZERS,
        architecture=True,
    )
    momentum: float = setting(
        0.9,
        "momentum",
        "Momentum for sgd; ignored by the other optimizers.",
        bounds=Range(0.0, 1.0, high_open=True),
        in_optimizer=True,
    )
    conv_filters: tuple[int, ...] = setting(
        (32, 64),
        "conv filters",
        "Filters of each Conv2D + MaxPooling2D block, e.g. 32,64 (1 to 4 blocks).",
        bounds=Range(1, 512),
        length=Range(1, 4),
        architecture=True,
    )
    convs_per_block: int = setting(
        1,
        "convs/block",
        "Conv2D layers in each block before its pooling: 2 or 3 stack small kernels VGG-style, "
        "each block seeing further, at several times the cost (pairs of 24-48-96: about 4 "
        "times the multiply-adds of single convs).",
        bounds=Range(1, 3),
        architecture=True,
    )
    kernel_size: int = setting(
        3, "kernel size", "Square kernel of every Conv2D.", bounds=Range(1, 7), architecture=True
    )
    first_stride: int = setting(
        1,
        "first stride",
        "Stride of the first Conv2D: 2 halves the image's side (14x14 with same padding) from "
        "there on, a quarter of the cost.",
        bounds=Range(1, 2),
        architecture=True,
    )
    padding: str = setting(
        "valid",
        "padding",
        "Conv2D padding: valid shrinks the image at each Conv2D; same keeps its size.",
        choices=PADDINGS,
        architecture=True,
    )
    dense_units: int = setting(
        128,
        "dense units",
        "Units of the hidden Dense layer after Flatten; 0 means none.",
        bounds=Range(0, 4096),
        architecture=True,
    )
    dropout: float = setting(
        0.25,
        "dropout",
        "Dropout rate before each Dense layer; 0 disables it.",
        bounds=Range(0.0, 1.0, high_open=True),
        architecture=True,
    )
    batch_norm: bool = setting(
        False, "batch norm", "Batch normalisation after each Conv2D.", architecture=True
    )
    output_activation: str = setting(
        "softmax",
        "output",
        "softmax, or sigmoid as the original script had it.",
        choices=OUTPUT_ACTIVATIONS,
        architecture=True,
    )
    augment: bool = setting(
        False,
        "augment",
        "Random shifts and small rotations of training images.",
        architecture=True,
    )
    clean_epochs: int = setting(
        0,
        "clean epochs",
        "The last N epochs of the epoch target train on the images as they are, augment "
        "switched off (it narrows the gap to the test images); 0 keeps it on to the end.",
        bounds=Range(0, 1000),
    )
    lr_schedule: str = setting(
        "constant",
        "LR schedule",
        "constant; cosine decay over the epoch target; or onecycle: a warm-up over its first "
        "20%, then cosine decay.",
        choices=LR_SCHEDULES,
    )
    validation_split: float = setting(
        0.1,
        "val split",
        "Fraction of the training set held out for validation (0 for none).",
        bounds=Range(0.0, 0.5),
    )
    train_size: int = setting(
        0,
        "train size",
        "Use only the first N training images; 0 means all.",
        bounds=Range(0, 1_000_000),
    )
    seed: int = setting(
        42,
        "seed",
        "Random seed for weights, shuffling and the validation split.",
        bounds=Range(0, 2**31 - 1),
        architecture=True,
    )

    def __post_init__(self) -> None:
        # Each field against its spec, its exact type first, so that "32" or 3.0 from a TOML
        # file or a form is caught here, not deep inside Keras.
        for f in fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))
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
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

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


def spec_of(f: Field[Any]) -> Setting:
    """The `Setting` a `Hyperparams` field was declared with."""
    spec = f.metadata.get(_SPEC)
    if not isinstance(spec, Setting):
        raise TypeError(f"Hyperparams.{f.name} has no Setting: declare it with setting(...).")
    return spec


SETTINGS: dict[str, Setting] = {f.name: spec_of(f) for f in fields(Hyperparams)}
"""Every field's spec, in the fields' order."""
_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Hyperparams)}


def _checked(f: Field[Any], value: Any) -> Any:
    """`value` as field `f` holds it (a list becomes a tuple, a whole number a float).

    Raises:
        ValueError: naming the field, the value and what is allowed.
    """
    name, kind, spec = f.name, str(f.type), spec_of(f)
    if kind.startswith("tuple"):
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"{name} = {value!r} must be a list of whole numbers, e.g. 32,64.")
        # The one list setting is conv_filters: its items are blocks of filters.
        if spec.length is not None and len(value) not in spec.length:
            raise ValueError(
                f"{name} has {len(value)} blocks; use {spec.length.low} to {spec.length.high} "
                "(e.g. 32,64)."
            )
        for n in value:
            if spec.bounds is not None and n not in spec.bounds:
                allowed = f"each block from {spec.bounds.low} to {spec.bounds.high} filters"
                raise _range_error(name, n, allowed)
        return value
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{name} = {value!r} must be a whole number.")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} = {value!r} must be a number.")
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value!r} must be a finite number.")
        value = float(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name} = {value!r} must be true or false.")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"{name} = {value!r} must be text.")
    if spec.bounds is not None and value not in spec.bounds:
        raise _range_error(name, value, spec.bounds.describe(whole=kind == "int"))
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{name} = {value!r} is not one of: {', '.join(spec.choices)}.")
    return value


def check_setting(name: str, value: Any) -> Any:
    """`value` for field `name` checked on its own, as `Hyperparams` checks it (for a live change
    that does not build a whole set).

    Raises:
        ValueError: the same sentence `Hyperparams` would say.
    """
    return _checked(_FIELDS[name], value)


INT_BOUNDS: dict[str, tuple[int, int]] = {
    name: (int(spec.bounds.low), int(spec.bounds.high))
    for name, spec in SETTINGS.items()
    if spec.bounds is not None and _FIELDS[name].type == "int"
}
# name: (low, high, low is open, high is open)
FLOAT_BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    name: (spec.bounds.low, spec.bounds.high, spec.bounds.low_open, spec.bounds.high_open)
    for name, spec in SETTINGS.items()
    if spec.bounds is not None and _FIELDS[name].type == "float"
}
CHOICES: dict[str, tuple[str, ...]] = {
    name: spec.choices for name, spec in SETTINGS.items() if spec.choices
}
ARCHITECTURE_FIELDS = frozenset(name for name, spec in SETTINGS.items() if spec.architecture)
"""Fields that make the network what it is; they cannot change while a model exists."""
LIVE_FIELDS = frozenset(name for name, spec in SETTINGS.items() if spec.live)
"""Fields that may change while training runs."""
