"""The flags the commands share, each built from what it sets: every hyperparameter from its
spec (`tui.core.settings.hyperparams.SETTINGS`), the set-up, the data, the runs and the app's.

Every flag is absent unless typed (argparse's SUPPRESS; see `tui.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from tui.core.platform.backend import BACKENDS
from tui.core.platform.placement import STRATEGIES
from tui.core.settings import presets
from tui.core.settings.hyperparams import SETTINGS, Hyperparams


def converter(name: str, kind: str) -> Callable[[str], Any]:
    """Parse a flag's text into the field's type, with a message naming the field on failure."""

    def whole(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a whole number.") from None

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a number.") from None

    def filters(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} = {text!r} must be whole numbers separated by commas, e.g. 32,64."
            ) from None

    if kind == "int":
        return whole
    if kind == "float":
        return number
    if kind.startswith("tuple"):
        return filters
    return str


_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}


def flag(parser: argparse.ArgumentParser | Any, *names: str, **options: Any) -> None:
    """`add_argument` with the default left out: an untyped flag leaves no attribute."""
    parser.add_argument(*names, default=argparse.SUPPRESS, **options)


def add_hyperparam_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Hyperparams field, generated so the field list lives only in the core.

    Range and choice checks are left to Hyperparams, whose sentences name the field, the value
    and what is allowed.
    """
    group = parser.add_argument_group(
        "hyperparameters", "each overrides --config, which overrides --preset"
    )
    base = presets.preset(presets.DEFAULT_PRESET)
    for f in fields(Hyperparams):
        option = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = getattr(base, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{SETTINGS[f.name].help} (default: {shown})".replace("%", "%%")
        if kind == "bool":
            flag(group, option, dest=f.name, action=argparse.BooleanOptionalAction, help=text)
            continue
        choices = SETTINGS[f.name].choices
        metavar = "{" + ",".join(choices) + "}" if choices else _METAVARS.get(kind, "N,...")
        flag(group, option, dest=f.name, type=converter(f.name, kind), metavar=metavar, help=text)


def add_setup_flags(parser: argparse.ArgumentParser) -> None:
    """--preset, --config, --data, the devices and the runs: what the app and `train` share."""
    flag(
        parser,
        "--preset",
        metavar="{" + ",".join(presets.PRESETS) + "}",
        help=f"starting hyperparameters (default: {presets.DEFAULT_PRESET})",
    )
    flag(parser, "--config", metavar="FILE.toml", help="hyperparameters from a TOML file")
    add_data_flag(parser)
    add_runs_dir_flag(parser)
    flag(
        parser,
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into the run directory's tensorboard/ folder "
        "(needs `pip install tensorboard`)",
    )
    group = parser.add_argument_group("devices", "where training runs (not hyperparameters)")
    add_backend_flag(group)
    flag(
        group,
        "--strategy",
        choices=STRATEGIES,
        help="default: one device; mirrored: every local GPU (or two logical CPUs without one); "
        "multiworker: several processes described by $TF_CONFIG (default: default)",
    )
    flag(
        group,
        "--devices",
        metavar="LIST",
        help="for --strategy mirrored, the devices to use, e.g. gpu:0,gpu:1 or cpu:0,cpu:1",
    )
    flag(
        group,
        "--mixed-precision",
        action="store_true",
        help="compute in float16 with float32 weights and output (faster on recent GPUs)",
    )


def add_backend_flag(parser: argparse.ArgumentParser | Any) -> None:
    flag(
        parser,
        "--backend",
        choices=BACKENDS,
        help="the Keras backend that trains: tensorflow, jax or torch (default: $KERAS_BACKEND, "
        "else tensorflow); an engine started from here runs on it too",
    )


def add_data_flag(parser: argparse.ArgumentParser) -> None:
    flag(
        parser,
        "--data",
        metavar="PATH",
        help="mnist.npz or a folder of IDX files (default: $MNIST_TUI_DATA, the Keras cache, "
        "a download, then the bundled sample)",
    )


def add_tta_flag(parser: argparse.ArgumentParser) -> None:
    flag(
        parser,
        "--tta",
        action="store_true",
        help="also the test accuracy with test-time augmentation: each digit's probabilities "
        "averaged with those of its 8 one-pixel shifts (8 more predictions a digit)",
    )


def add_runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    flag(
        parser,
        "--runs-dir",
        metavar="DIR",
        help="where run directories go (default: $MNIST_TUI_RUNS, else ./runs)",
    )


def add_app_flags(parser: argparse.ArgumentParser) -> None:
    flag(
        parser,
        "--resume",
        metavar="RUN_DIR",
        help="open a run directory: its curves, hyperparameters and model; t continues it",
    )
    flag(
        parser,
        "--model",
        metavar="PATH",
        help="open a saved .keras model to browse its predictions (v, c) and draw (d)",
    )
