"""The training-set audit: each training digit's loss under a run's model; the labels it doubts."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tui.core.data.mnist import DataError, MnistData, load_recorded
from tui.core.inspect.predictions import losses
from tui.core.runs.files import write_atomic
from tui.core.runs.layout import BEST_MODEL, LAST_MODEL, RunDirectory, RunError

AUDIT_FILE = "audit.npz"
"""Where a run keeps its audit, beside the model it was computed with."""

DOUBT_OTHER = 0.5
"""A label is doubted when the model gives another class at least this probability..."""
DOUBT_LABEL = 0.1
"""...and its label less than this."""
DOUBT_RULE = (
    f"label doubted: the model gives another class >= {DOUBT_OTHER:.0%} and the label "
    f"< {DOUBT_LABEL:.0%}"
)
"""The rule in words, for every place that marks a doubted label."""

Order = Literal["doubt", "loss"]
ORDERS: tuple[Order, ...] = ("doubt", "loss")


@dataclass(frozen=True, eq=False)
class TrainingAudit:
    """Per-digit figures for a run's whole training set (validation part and any digits left
    out included), in the source's index order, under the model of one epoch."""

    model_file: str
    """The run's model file that was read: last.keras, else best.keras."""
    epoch: int
    """The epoch that model file holds."""
    stamp: str
    """The model file's size and modification time: a changed file is audited again."""
    fingerprint: str
    """The data's fingerprint (`DataInfo.fingerprint`)."""
    labels: np.ndarray = field(repr=False)
    """(n,) the recorded labels."""
    probabilities: np.ndarray = field(repr=False)
    """(n, 10) float32 class probabilities."""

    @property
    def predicted(self) -> np.ndarray:
        predicted: np.ndarray = self.probabilities.argmax(axis=1).astype(np.uint8)
        return predicted

    @property
    def label_probability(self) -> np.ndarray:
        """The probability the model gives each digit's label."""
        chosen: np.ndarray = np.take_along_axis(
            self.probabilities, self.labels.astype(np.int64)[:, None], axis=1
        )[:, 0]
        return chosen

    @property
    def loss(self) -> np.ndarray:
        """Each digit's cross-entropy against its label."""
        return losses(self.probabilities, self.labels)

    @property
    def doubt(self) -> np.ndarray:
        """How much more the model believes some other class than the label: from -1 (the
        label, surely) to 1 (another class, surely); the order of `--order doubt`."""
        others = self.probabilities.copy()
        rows = np.arange(len(others))
        others[rows, self.labels] = -1.0
        margin: np.ndarray = others.max(axis=1) - self.label_probability
        return margin

    @property
    def doubted(self) -> np.ndarray:
        """Whether each label is doubted by `DOUBT_RULE`."""
        others = self.probabilities.copy()
        others[np.arange(len(others)), self.labels] = 0.0
        flagged: np.ndarray = (others.max(axis=1) >= DOUBT_OTHER) & (
            self.label_probability < DOUBT_LABEL
        )
        return flagged

    def ranked(
        self, order: Order = "doubt", label: int | None = None, predicted: int | None = None
    ) -> np.ndarray:
        """Training indices, most doubted (or highest loss) first, of the digits with that
        label and that prediction (None: any)."""
        keep = np.ones(len(self.labels), bool)
        if label is not None:
            keep &= self.labels == label
        if predicted is not None:
            keep &= self.predicted == predicted
        chosen = np.flatnonzero(keep)
        score = (self.doubt if order == "doubt" else self.loss)[chosen]
        # Stable, so that ties keep index order and a listing is repeatable.
        ranked: np.ndarray = chosen[np.argsort(-score, kind="stable")]
        return ranked


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
