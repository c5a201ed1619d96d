"""What a run directory records during `fit`: metrics, atomic checkpoints, TensorBoard logs.

A failure to write (a full disk, a folder gone) never stops training: the recording that
failed is reported once and switched off, and the model stays in memory for `--out` or `S`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.core.platform.runtime import TENSORBOARD_MISSING, import_keras, tensorboard_installed
from tui.core.runs.checkpoints import keep_checkpoint, prune
from tui.core.runs.files import replacing, reserve_unique
from tui.core.runs.layout import (
    BEST_MODEL,
    LAST_MODEL,
    METRICS_CSV,
    TENSORBOARD,
    RunDirectory,
    RunError,
    finite,
)
from tui.core.training.callback import EpochClock
from tui.core.training.model import portable

keras = import_keras()

FailureSink = Callable[[str], None]
"""Told, once per recording that stops working, one sentence saying what was lost."""


def save_model_atomic(model: Any, target: Path) -> None:
    """`model.save(target)` through a temporary file and a rename.

    Keras's `ModelCheckpoint` calls `model.save(filepath)` on the final name, so a kill during the
    write leaves a truncated archive; it has no write-then-rename option, hence this helper.
    The temporary name ends in `.keras` because `Model.save` picks the format from the suffix.
    The model is saved `portable`: without its augmentation layer, so that plain Keras opens it.
    """
    with replacing(target, suffix=".tmp.keras") as tmp:
        portable(model).save(tmp)


def save_model_file(model: Any, path: Path, *, overwrite: bool) -> Path:
    """Save `model` atomically to `path`, or beside it under a numbered name when `overwrite` is
    False and the name is taken; returns where it went.

    Raises:
        RunError: the file cannot be written (the sentence says why).
    """
    target = path
    try:
        if not overwrite:
            target = reserve_unique(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_model_atomic(model, target)
    except OSError as err:
        raise RunError(f"the model was not saved to {target}: {err.strerror or err}") from None
    return target


def run_callbacks(
    run: RunDirectory,
    clock: EpochClock,
    learning_rate: Callable[[], float],
    on_failure: FailureSink,
    *,
    tensorboard: bool = False,
) -> list[Any]:
    """Keras callbacks that record into `run`: metrics, checkpoints, TensorBoard if asked.

    Args:
        run: the run directory.
        clock: the session's epoch clock, so that metrics.csv's epoch time excludes pauses.
        learning_rate: the learning rate in force (changed live or not); hparams.toml follows it.
        on_failure: told when a recording stops working.
        tensorboard: also write TensorBoard logs into the run's tensorboard/ folder.

    Raises:
        RunError: TensorBoard logs were asked for but TensorBoard is not installed.

    Order matters: the epoch extras go into the logs before CSVLogger writes them, and the
    metrics row is written before the checkpoint, so after a kill metrics.csv has at least the
    rows of the saved model (`resume` drops any extra one).
    """
    callbacks: list[Any] = [
        EpochExtras(clock),
        Guarded(
            keras.callbacks.CSVLogger(str(run.path / METRICS_CSV), append=True),
            f"metrics.csv in {run.path}",
            on_failure,
        ),
        Guarded(
            AtomicCheckpoint(run, learning_rate),
            f"the checkpoints in {run.path}",
            on_failure,
        ),
    ]
    if tensorboard:
        # TensorFlow stopped depending on TensorBoard; without it every summary write fails
        # inside fit, so refuse up front with the fix.
        if not tensorboard_installed():
            raise RunError(TENSORBOARD_MISSING)
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.path / TENSORBOARD)))
    return callbacks


class EpochExtras(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Adds `learning_rate` and `epoch_seconds` to each epoch's logs so CSVLogger records them.

    Keras's own LearningRateScheduler adds `learning_rate` to the logs the same way; the CSV then
    holds everything needed to redraw the curves and rebuild the history on resume.
    """

    def __init__(self, clock: EpochClock) -> None:
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        logs["epoch_seconds"] = self.clock.elapsed()
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )


class Guarded(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Runs a recording callback's epoch hooks; the first `OSError` switches it off and is
    reported instead of ending `fit`."""

    def __init__(self, inner: Any, what: str, on_failure: FailureSink) -> None:
        super().__init__()
        self.inner = inner
        self.what = what
        self.on_failure = on_failure
        self.failed = False

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.inner.set_params(params)

    def _call(self, hook: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.inner, hook)(*args)
        except (OSError, RunError) as err:
            self.failed = True
            reason = getattr(err, "strerror", None) or err
            self.on_failure(
                f"{self.what} stopped recording ({reason}); training goes on, the model "
                "stays in memory: save it with S or --out, and free some space."
            )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_end", logs)


class AtomicCheckpoint(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Saves last.keras each epoch and best.keras on improvement, each through a rename, keeps
    each epoch's model under checkpoints/ as the run's keep policy says, and keeps
    hparams.toml's learning rate at the one in force.

    Not `ModelCheckpoint`: it writes in place (see `save_model_atomic`). The optimizer state is
    part of a `.keras` archive of a compiled model, so a reloaded model continues exactly.
    """

    def __init__(self, run: RunDirectory, learning_rate: Callable[[], float]) -> None:
        super().__init__()
        self.run = run
        self.learning_rate = learning_rate
        self.best: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        recorded = self.run.info.get("best") or {}
        self.best = finite(recorded.get("value"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        metric = "val_accuracy" if logs.get("val_accuracy") is not None else "accuracy"
        value = finite(logs.get(metric))
        best: dict[str, Any] | None = None
        if value is not None and (self.best is None or value > self.best):
            save_model_atomic(self.model, self.run.path / BEST_MODEL)
            self.best = value
            best = {"epoch": epoch + 1, "metric": metric, "value": value}
        save_model_atomic(self.model, self.run.path / LAST_MODEL)
        keep_checkpoint(self.run.path / LAST_MODEL, self.run.path, epoch + 1)
        rate = self.learning_rate()
        if rate != self.run.hparams.learning_rate:
            self.run.change_hparams(learning_rate=rate)
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.run.record_save(epoch + 1, iterations, best)
        prune(self.run.path, self.run.info)


__all__ = ["LAST_MODEL", "RunDirectory", "run_callbacks", "save_model_atomic"]
