"""Reopening runs and models: resume a run where its last complete epoch left it, repairing
what a kill can leave behind; open a `.keras` file with one sentence when it cannot be used."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tui.core.data.augment  # noqa: F401  (registers its layer with Keras: models that have it load)
from tui.core.platform.runtime import import_keras
from tui.core.runs.catalog import archive_problem
from tui.core.runs.layout import (
    BEST_MODEL,
    LAST_MODEL,
    METRICS_CSV,
    RunDirectory,
    RunError,
    cut_metrics,
)
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import EpochEnded
from tui.core.training.model import with_augmentation
from tui.errors import error_line

keras = import_keras()


@dataclass
class ResumedRun:
    """A run reopened to continue training."""

    run_dir: RunDirectory
    hparams: Hyperparams
    model: Any
    """The compiled model with its optimizer state, or None when no epoch had completed."""
    epochs_done: int
    history: list[EpochEnded] = field(default_factory=list)
    """The completed epochs, rebuilt from metrics.csv."""


def resume(path: str | Path) -> ResumedRun:
    """Reopen a run to continue training from its last saved epoch.

    Load it inside a strategy's scope to train it under that strategy. The epoch count comes
    from run.json, cross-checked with the optimizer's step counter in last.keras: a kill between
    renaming last.keras and rewriting run.json leaves the model one epoch ahead, and the counter
    tells. metrics.csv is cut back to the saved epochs so that the epoch in progress at the kill
    (if its row was written) is not recorded twice.

    Raises:
        RunError: not a run directory, bad hyperparameters, or a model that cannot be loaded.
    """
    run = RunDirectory.open(path)
    model: Any = None
    epochs_done = 0
    last = run.path / LAST_MODEL
    if last.exists():
        model, problem = try_load_model(last)
        if model is None:
            raise RunError(
                f"run {run.name}: {LAST_MODEL} cannot be loaded ({problem}); copy {BEST_MODEL} "
                "over it to continue from the best epoch, or start a new run."
            )
        model = with_augmentation(model, run.hparams)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        saved = run.info.get("saved", {})
        epochs_done = int(saved.get("epoch", 0))
        if iterations > int(saved.get("iterations", 0)):
            epochs_done += 1
            run.record_save(epochs_done, iterations, None)
    elif run.epochs_saved:
        raise RunError(
            f"run {run.name}: {LAST_MODEL} is missing although {run.epochs_saved} epochs were "
            f"saved; copy best.keras to {LAST_MODEL} to continue from the best epoch."
        )
    history = run.load_history()
    if len(history) > epochs_done:
        history = history[:epochs_done]
        cut_metrics(run.path / METRICS_CSV, epochs_done)
    elif epochs_done == 0:
        with contextlib.suppress(FileNotFoundError):
            (run.path / METRICS_CSV).unlink()
    return ResumedRun(run, run.hparams, model, epochs_done, history)


def load_model_file(path: str | Path) -> Any:
    """A saved `.keras` model (to browse or draw with); `RunError` with one sentence if unusable."""
    path = Path(path)
    if path.is_dir():
        raise RunError(
            f"{path} is a folder, not a model file; pass a .keras file (a run's last.keras or "
            "best.keras, or one saved with S or --out)."
        )
    if not path.is_file():
        raise RunError(f"model file {path} does not exist; pass a .keras file saved by mnist-tui.")
    model, problem = try_load_model(path)
    if model is not None:
        return model
    raise RunError(f"model file {path} cannot be loaded ({problem}); pass another .keras file.")


def try_load_model(path: Path) -> tuple[Any, str | None]:
    """The loaded model and None, or None and what is wrong with the file."""
    problem = archive_problem(path, thorough=True)
    if problem is None:
        try:
            return keras.saving.load_model(path), None
        except Exception as err:  # Keras raises many types for a bad archive
            problem = error_line(err, limit=200)
    return None, problem
