"""What the command line asks for, as typed values: the CLI builds them from argparse, and the
headless commands, the app and the engine take them, so that none of those sees argparse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui.core.platform.placement import DistributeOptions
from tui.core.settings.hyperparams import Hyperparams

DEFAULT_MODELS_DIR = "models"
"""Where `S` and `mnist-tui train` save models unless told otherwise."""


@dataclass(frozen=True)
class Setup:
    """How a training controller is set up: the same for the app's engine and `train`."""

    hparams: Hyperparams
    """The starting hyperparameters (the preset's, the config file's, the flags')."""
    preset: str = "default"
    data_path: str | None = None
    """`--data`; None finds MNIST ($MNIST_TUI_DATA, the Keras cache, a download, the sample).
    Given, it also lets a resumed run continue on other data than it was trained on."""
    runs_dir: str | None = None
    """Where run directories go; None means $MNIST_TUI_RUNS, else ./runs."""
    tensorboard: bool = False
    distribute: DistributeOptions = field(default_factory=DistributeOptions)
    models_dir: str = DEFAULT_MODELS_DIR
    progress_interval: float = 1.0
    """Seconds between two progress events."""
    record: bool = True
    """Write run directories; off for the non-chief workers of a multi-worker cluster."""
    keep_checkpoints: int | None = None
    """`--keep-checkpoints`: a run keeps the checkpoints of its newest this many epochs (and of
    its best and last); None keeps them all while they are small (`tui.core.runs.checkpoints`)."""
    exclude: tuple[int, ...] = ()
    """Training digits to leave out, by index (`--exclude-file`); the run records them."""


@dataclass(frozen=True)
class AppOptions:
    """`mnist-tui` with no command: the app on a new engine."""

    setup: Setup
    resume: str | None = None
    """A run directory to reopen (`--resume`)."""
    model: str | None = None
    """A saved model to browse and draw with (`--model`)."""


@dataclass(frozen=True)
class TrainRequest:
    """`mnist-tui train`."""

    setup: Setup
    resume: str | None = None
    """A run directory to continue (`--resume`); `resume_epochs` may set its new target."""
    resume_epochs: int | None = None
    out: str | None = None
    """Where to save the model: a `.keras` file, or a folder for a timestamped name."""
    overwrite: bool = False
    """Replace an existing `--out` file rather than refuse before training."""
    save_config: str | None = None
    detach: bool = False
    """Train in a background engine and return at once (`--detach`)."""
    tta: bool = False
    """After the test accuracy, also the accuracy with test-time augmentation (`--tta`)."""
    branch_from: str | None = None
    """`--from RUN[@EPOCH]`: train a branch of that run from that epoch (None: a new run)."""
    branch_changes: tuple[tuple[str, Any], ...] = ()
    """The settings typed with `--from`, applied over the parent's."""


@dataclass(frozen=True)
class EvaluateRequest:
    """`mnist-tui evaluate`."""

    model: str
    data_path: str | None = None
    tta: bool = False
    """Also the accuracy with test-time augmentation (`--tta`)."""


@dataclass(frozen=True)
class PredictRequest:
    """`mnist-tui predict`: which test digits to show, and how."""

    model: str
    data_path: str | None = None
    index: int = 0
    """Position of the first image shown within the filtered, sorted selection."""
    count: int = 8
    misclassified: bool = False
    true: int | None = None
    """Only digits of this true class."""
    predicted: int | None = None
    """Only digits predicted as this class."""
    sort: str = "index"
    """A `PredictionSort` value (kept as text: this module is imported before numpy is)."""
    compact: bool = False
    color: bool = True


@dataclass(frozen=True)
class AttachRequest:
    """`mnist-tui attach [RUN]`: the newest live engine, or the one training RUN."""

    run: str | None = None
    runs_dir: str | None = None


@dataclass(frozen=True)
class StopRequest:
    """`mnist-tui stop RUN`: after the epoch in progress, or at once."""

    run: str | None
    now: bool = False
    runs_dir: str | None = None
