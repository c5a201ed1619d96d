"""Reopening runs and models: resume a run where its last complete epoch left it, repairing
what a kill can leave behind; open a `.keras` file with one sentence when it cannot be used."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tui.core.data.augment  # noqa: F401  (registers its layer with Keras: models that have it load)
from tui.core.platform.distribute import steps_per_execution as batches_per_call
from tui.core.platform.runtime import import_keras
from tui.core.runs.catalog import archive_problem
from tui.core.runs.layout import (
    BEST_MODEL,
    DAMAGED,
    LAST_MODEL,
    METRICS_CSV,
    RunDirectory,
    RunError,
    cut_metrics,
    read_metrics,
)
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import EpochEnded
from tui.core.training.model import set_steps_per_execution, with_augmentation
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
    repairs: list[str] = field(default_factory=list)
    """What was repaired in the run's files and what was lost, a sentence each."""


def resume(path: str | Path) -> ResumedRun:
    """Reopen a run to continue training from its last saved epoch.

    Load it inside a strategy's scope to train it under that strategy. The epoch count comes
    from run.json, cross-checked with the optimizer's step counter in last.keras: a kill between
    renaming last.keras and rewriting run.json leaves the model one epoch ahead, and the counter
    tells. metrics.csv is cut back to the saved epochs so that the epoch in progress at the kill
    (if its row was written) is not recorded twice, and a torn or garbled row is dropped so that
    the next one is never appended to it. A run.json that cannot be read is rebuilt from the
    other files. Each repair that loses something is said in `repairs`.

    Raises:
        RunError: not a run directory, bad hyperparameters, or a model that cannot be loaded.
    """
    run = RunDirectory.open(path)
    rebuilt = run.info_damage is not None
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
        if rebuilt:
            # No record of the steps taken: metrics.csv's rows say how far the model got.
            epochs_done = epochs_done if iterations else 0
            run.info["saved"] = {"epoch": epochs_done, "iterations": iterations}
        elif iterations > int(saved.get("iterations", 0)):
            epochs_done += 1
            run.record_save(epochs_done, iterations, None)
    elif run.epochs_saved:
        raise RunError(
            f"run {run.name}: {LAST_MODEL} is missing although {run.epochs_saved} epochs were "
            f"saved; copy best.keras to {LAST_MODEL} to continue from the best epoch."
        )
    repairs = [line for line in [run.repair_info()] if line]
    history, said = _repair_metrics(run, epochs_done)
    return ResumedRun(run, run.hparams, model, epochs_done, history, repairs + said)


def _repair_metrics(run: RunDirectory, epochs_done: int) -> tuple[list[EpochEnded], list[str]]:
    """metrics.csv cut to the `epochs_done` epochs the model holds, with no torn or garbled
    line left; the history it then holds, and what was lost, a sentence each."""
    target = run.path / METRICS_CSV
    read = read_metrics(run.path, run.hparams, run.info)
    said: list[str] = []
    if read.unreadable is not None:
        os.replace(target, run.path / (METRICS_CSV + DAMAGED))
        said.append(
            f"{METRICS_CSV} {read.unreadable}: it is kept as {METRICS_CSV}{DAMAGED}, and the "
            f"curves of the {epochs_done} epochs before this resume are lost"
        )
        return [], said
    if read.torn:
        said.append(f"{METRICS_CSV}'s last row was cut short while it was written; it is dropped")
    if read.bad_lines:
        lines = ", ".join(map(str, read.bad_lines))
        said.append(f"{METRICS_CSV} line {lines} held no row of numbers; dropped")
    unsaved = [e.epoch for e in read.history if e.epoch > epochs_done]
    if len(unsaved) > 1:  # one is the epoch in progress at a kill, which the promise allows
        said.append(
            f"epochs {unsaved[0]}-{unsaved[-1]} were trained but their model was never saved "
            f"(the recording had stopped: a full disk?); training goes on from epoch "
            f"{epochs_done}, the model {LAST_MODEL} holds"
        )
    history = [e for e in read.history if e.epoch <= epochs_done]
    missing = sorted(set(range(1, epochs_done + 1)) - {e.epoch for e in history})
    if missing and target.exists():
        said.append(f"{METRICS_CSV} has no row for epoch {_ranges(missing)}; the curves skip it")
    if target.exists() and (read.torn or read.bad_lines or unsaved):
        cut_metrics(target, epochs_done)
    if epochs_done == 0:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    return history, said


def _ranges(epochs: list[int]) -> str:
    """[1, 2, 3, 7] as "1-3, 7"."""
    spans: list[list[int]] = []
    for epoch in epochs:
        if spans and epoch == spans[-1][-1] + 1:
            spans[-1].append(epoch)
        else:
            spans.append([epoch])
    return ", ".join(f"{s[0]}-{s[-1]}" if len(s) > 1 else str(s[0]) for s in spans)


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
            model = keras.saving.load_model(path)
        except Exception as err:  # Keras raises many types for a bad archive
            problem = error_line(err, limit=200)
        else:
            # The file keeps the batches per call it was trained with; this backend may take
            # fewer (a model saved on TensorFlow, opened on PyTorch).
            set_steps_per_execution(model, min(model.steps_per_execution, batches_per_call()))
            return model, None
    return None, problem
