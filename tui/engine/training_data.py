"""The engine's answers about the training digits: the audit of the model it holds, the marks a
run keeps, and a run without the marked digits (what the training-digits screen asks)."""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tui.core.experiments.audit import audit_held_model
from tui.core.experiments.leave_out import (
    LeaveOutError,
    claim_round_without,
    read_marked,
    save_marked,
)
from tui.core.runs.layout import RunError
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.controller import ControllerError, Job, TrainingController
from tui.core.training.events import StopReason
from tui.core.training.phase import BUSY
from tui.engine import protocol as p
from tui.engine.arrays import pack

if TYPE_CHECKING:
    from tui.core.inspect.reader import ModelReader


def audit(controller: TrainingController) -> p.TrainingFigures:
    """Every training digit under the model held now; refused while it trains (the figures
    would be of no model that is ever saved)."""
    snapshot = controller.snapshot
    if snapshot.phase in BUSY and snapshot.model is not None:
        raise ControllerError(
            "Training is running; the training digits are audited once it stops (s, or wait)."
        )
    data = controller.data
    if data is None:
        raise ControllerError("MNIST is not loaded yet.")
    started = time.perf_counter()

    def predict(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        from tui.core.training.adapter import ModelMismatch
        from tui.core.training.session import EVAL_BATCH

        def read(model: ModelReader) -> np.ndarray:
            try:
                found = model.adapter.predict(images, labels, EVAL_BATCH)[0]
            except ModelMismatch as err:
                raise ValueError(f"the model cannot read the training digits: {err}") from None
            probabilities: np.ndarray = found.probabilities
            return probabilities

        return controller.ask(read)

    try:
        held = audit_held_model(predict, data, snapshot.run or None, snapshot.epochs_done)
    except RunError as err:
        raise ControllerError(str(err)) from None
    pixels = np.rint(held.data.x_train[..., 0] * 255.0).astype(np.uint8)
    return p.TrainingFigures(
        pack(held.audit.probabilities),
        pack(held.audit.labels, "uint8"),
        zlib.compress(pixels.tobytes(), 1),
        held.audit.model_file,
        held.audit.epoch,
        held.reused,
        str(held.recorded or ""),
        time.perf_counter() - started,
        _marks(snapshot.run, data.excluded),
        data.excluded,
    )


def _marks(run: str, left_out: tuple[int, ...]) -> tuple[int, ...]:
    """The marks the run keeps; before any were made, the digits its data leaves out already,
    so that a run without more digits is one without these too (unless they are unmarked)."""
    kept = read_marked(run) if run else None
    return left_out if kept is None else kept


def keep_marks(controller: TrainingController, indices: Sequence[int]) -> None:
    """Save the marks in the run the engine holds."""
    run = controller.snapshot.run
    if not run:
        raise ControllerError("There is no run to keep the marks in; train one first (t).")
    try:
        save_marked(run, indices)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ControllerError(f"The marks cannot be saved in {run}: {reason}.") from None


def claim_without(
    controller: TrainingController,
    indices: Sequence[int],
    hparams: Hyperparams | None,
    preset: str | None,
) -> Job[StopReason]:
    """Keep the marks in the run they were made on, then claim a fresh run without them."""
    if controller.snapshot.run and indices:
        keep_marks(controller, indices)
    try:
        return claim_round_without(controller, indices, hparams, preset)
    except LeaveOutError as err:
        raise ControllerError(str(err)) from None
