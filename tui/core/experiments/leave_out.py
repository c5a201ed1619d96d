"""Leaving training digits out: the marks a run keeps, and a fresh run trained without them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.data.exclusion import read_exclude_file, write_exclude_file
from tui.core.data.mnist import DataError
from tui.core.experiments.audit import full_training_data
from tui.core.runs.layout import RunError
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import DataLoaded
from tui.core.training.phase import Action
from tui.core.training.snapshot import refusal

if TYPE_CHECKING:
    from tui.core.training.controller import Job, TrainingController
    from tui.core.training.events import StopReason

LEAVE_OUT_FILE = "leave-out.txt"
"""Where a run keeps the training digits marked on the training-digits screen, as an exclude
file: `mnist-tui train --exclude-file RUN/leave-out.txt` reads it too."""


def save_marked(run_path: str | Path, indices: Sequence[int]) -> Path:
    """Keep the training digits marked to leave out in the run (none marked is a file of no
    indices, so that `read_marked` tells it from marks never made). Returns the file;
    `OSError` when it cannot be written."""
    target = Path(run_path) / LEAVE_OUT_FILE
    note = f"{len(indices)} training digits marked to leave out on the training-digits screen"
    return write_exclude_file(target, sorted(indices), note)


def read_marked(run_path: str | Path) -> tuple[int, ...] | None:
    """The training digits a run's leave-out file marks; None when none were ever marked there
    or the file cannot be read (marks are a convenience: a bad file starts them afresh)."""
    target = Path(run_path) / LEAVE_OUT_FILE
    if not target.exists():
        return None
    try:
        return read_exclude_file(target)
    except DataError:
        return None


class LeaveOutError(Exception):
    """A run without some digits that cannot start; str(err) is the sentence to show."""


def claim_round_without(
    controller: TrainingController,
    indices: Sequence[int],
    hparams: Hyperparams | None = None,
    preset: str | None = None,
) -> Job[StopReason]:
    """A fresh model and run, trained on the controller's data source without the training
    digits at `indices` (source indices, as the audit numbers them); the run records them in
    run.json's data as `--exclude-file` does. Its model is set aside first.

    Loads the source again when the data in force already leaves others out (seconds).

    Raises:
        LeaveOutError: not now (training), nothing marked, or indices the data cannot leave
            out; one sentence.
    """
    refused = refusal(controller.snapshot, Action.TRAIN)
    if refused is not None:
        raise LeaveOutError(refused.reason)
    if not indices:
        raise LeaveOutError("No training digits are marked to leave out.")
    if controller.data is None:
        raise LeaveOutError("MNIST is not loaded yet.")
    try:
        data = full_training_data(controller.data).excluding(tuple(indices))
    except (DataError, RunError) as err:
        raise LeaveOutError(str(err).rstrip(".") + ".") from None
    if controller.snapshot.model is not None:
        controller.reset()  # a new run from a new model: t then `R` compares the two
    controller.data = data
    controller.publish(DataLoaded(data.info, f"{len(data.excluded):,} training digits left out"))
    return controller.claim_round(hparams, preset)
