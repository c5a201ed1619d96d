"""The training-set audit: each training digit's loss under a run's model; the labels it doubts."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tui.core.data.mnist import DataError, MnistData, load_recorded
from tui.core.experiments.doubt import TrainingAudit
from tui.core.runs.files import write_atomic
from tui.core.runs.layout import BEST_MODEL, LAST_MODEL, RunDirectory, RunError

AUDIT_FILE = "audit.npz"
"""Where a run keeps its audit, beside the model it was computed with."""


def model_of(run: RunDirectory) -> tuple[Path, int]:
    """The model file to audit and its epoch: last.keras (the model the run holds now), else
    best.keras; `RunError` when the run has neither."""
    last = run.path / LAST_MODEL
    if last.exists():
        return last, run.epochs_saved
    best = run.path / BEST_MODEL
    if best.exists():
        recorded = run.info.get("best") or {}
        return best, int(recorded.get("epoch", 0)) if isinstance(recorded, dict) else 0
    raise RunError(
        f"run {run.name} has no model to audit ({LAST_MODEL} and {BEST_MODEL} are missing); "
        "train it first."
    )


def _stamp(path: Path) -> str:
    status = path.stat()
    return f"{status.st_size}:{status.st_mtime_ns}"


def training_data(run: RunDirectory) -> MnistData:
    """The whole training source the run recorded, digits it left out included.

    Raises:
        RunError: the run has no data identity, or its data is gone or changed.
    """
    info = run.data
    if info is None:
        raise RunError(
            f"run {run.name} has no record of its data's fingerprint ({run.data_label}); "
            "its training digits cannot be found again."
        )
    try:
        return load_recorded(dataclasses.replace(info, excluded=()))
    except DataError as err:
        raise RunError(
            f"run {run.name} was trained on {info.describe()}, but {err}; its training "
            "digits cannot be audited."
        ) from None


def audit_run(path: str | Path, *, reuse: bool = True) -> tuple[TrainingAudit, MnistData, bool]:
    """The audit of a run's training set under its model: read from audit.npz when that was
    made with the same model file and data, else computed (one batched prediction over the
    training set) and written there.

    Returns:
        The audit, the training data it belongs to, and whether it was reused.

    Raises:
        RunError: not a run, no usable model, or data that cannot be had; one sentence.
    """
    run = RunDirectory.open(path)
    model_path, epoch = model_of(run)
    data = training_data(run)
    stamp = _stamp(model_path)
    if reuse:
        cached = read_audit(run.path / AUDIT_FILE)
        if (
            cached is not None
            and cached.stamp == stamp
            and cached.model_file == model_path.name
            and cached.fingerprint == data.fingerprint
        ):
            return cached, data, True
    from tui.core.runs.resume import load_model_file
    from tui.core.training.adapter import ModelAdapter, ModelMismatch
    from tui.core.training.session import EVAL_BATCH

    model = load_model_file(model_path)
    try:
        predictions, _ = ModelAdapter.for_model(model).predict(
            data.x_train, data.y_train, EVAL_BATCH
        )
    except ModelMismatch as err:
        raise RunError(f"run {run.name}: {model_path.name} cannot be audited: {err}") from None
    audit = TrainingAudit(
        model_path.name, epoch, stamp, data.fingerprint, data.y_train, predictions.probabilities
    )
    with contextlib.suppress(OSError):  # a read-only run is still audited, only not kept
        write_audit(run.path / AUDIT_FILE, audit)
    return audit, data, False


def full_training_data(data: MnistData) -> MnistData:
    """`data` with the training digits it leaves out back in (its source loaded again, and
    checked); `RunError` when they cannot be had."""
    if not data.excluded:
        return data
    try:
        return load_recorded(dataclasses.replace(data.info, excluded=()))
    except DataError as err:
        raise RunError(
            f"the {len(data.excluded):,} training digits {data.describe()} leaves out cannot be "
            f"loaded again: {err}."
        ) from None


@dataclass(frozen=True, eq=False)
class HeldAudit:
    """The audit of a model held in memory (the engine's), and whether the run kept it."""

    audit: TrainingAudit
    data: MnistData
    """The whole training source the figures are for (digits left out included)."""
    reused: bool
    """Read back from the run's audit.npz rather than computed."""
    recorded: Path | None
    """The audit.npz it is kept in; None when no run file holds this model (nothing kept)."""


Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(images, labels) to (n, 10) probabilities, under the model being audited."""


def audit_held_model(
    predict: Predict, data: MnistData, run_path: str | Path | None, epochs_done: int
) -> HeldAudit:
    """The audit of the model a process holds, trained `epochs_done` epochs on `data`.

    When that model is the one its run saved last (last.keras of that many epochs), the audit
    is `audit_run`'s: read from audit.npz when it was made of that file and data, else computed
    and written there, so that `mnist-tui audit RUN` reuses it. Otherwise (a model opened from
    a file, a run that lost last.keras) it is computed and not kept.

    Raises:
        RunError: the digits the data leaves out cannot be loaded again; one sentence.
    """
    full = full_training_data(data)
    last: Path | None = None
    if run_path:
        with contextlib.suppress(RunError):
            run = RunDirectory.open(run_path)
            if (run.path / LAST_MODEL).exists() and run.epochs_saved == epochs_done:
                last = run.path / LAST_MODEL
    target = last.parent / AUDIT_FILE if last is not None else None
    stamp = _stamp(last) if last is not None else ""
    if target is not None:
        cached = read_audit(target)
        if (
            cached is not None
            and cached.stamp == stamp
            and cached.model_file == LAST_MODEL
            and cached.fingerprint == full.fingerprint
        ):
            return HeldAudit(cached, full, True, target)
    probabilities = predict(full.x_train, full.y_train)
    audit = TrainingAudit(
        LAST_MODEL if last is not None else "the model in memory",
        epochs_done,
        stamp,
        full.fingerprint,
        full.y_train,
        np.asarray(probabilities, np.float32),
    )
    if target is not None:
        try:
            write_audit(target, audit)
        except OSError:
            target = None  # a read-only run is still audited, only not kept
    return HeldAudit(audit, full, False, target)


def write_audit(target: Path, audit: TrainingAudit) -> None:
    """Save the audit as an npz of its arrays and its provenance."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        model_file=np.array(audit.model_file),
        epoch=np.array(audit.epoch),
        stamp=np.array(audit.stamp),
        fingerprint=np.array(audit.fingerprint),
        labels=audit.labels,
        probabilities=audit.probabilities,
    )
    write_atomic(target, buffer.getvalue())


def read_audit(source: Path) -> TrainingAudit | None:
    """A saved audit, or None when there is none or it cannot be read (it is then redone)."""
    try:
        with np.load(source, allow_pickle=False) as saved:
            return TrainingAudit(
                str(saved["model_file"]),
                int(saved["epoch"]),
                str(saved["stamp"]),
                str(saved["fingerprint"]),
                saved["labels"].astype(np.uint8),
                saved["probabilities"].astype(np.float32),
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
