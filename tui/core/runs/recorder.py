"""RunRecorder: the run-directory policy of a trainer: which run it records into, the lock it
holds on it, what goes in it, and what reopening one decides.

The controller owns the training lifecycle and asks this object, at each step, what the run
directory makes of it: a round begins (a new run, or the same one carried on), an epoch's layer
health is measured, a model is evaluated, a run is reopened. Nothing here imports Keras at
import time: the callbacks that write during `fit` and the resume that loads a model are
imported when they are first needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.data.mnist import DataError, MnistData, load_recorded
from tui.core.runs.access import check_owner
from tui.core.runs.layout import RunDirectory, RunError
from tui.core.runs.lock import RunLock
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import Evaluated, LayerHealthMeasured

if TYPE_CHECKING:
    from tui.core.inspect.predictions import Predictions
    from tui.core.runs.resume import ResumedRun
    from tui.core.settings.requests import Setup
    from tui.core.training.callback import EpochClock

Warn = Callable[[str, str], None]
"""Told one sentence for every viewer's log and a title for its notification."""


class RunRecorder:
    """The run directory one trainer records into, and its lock; safe under the caller's lock
    (the controller calls it while holding its own)."""

    def __init__(self, setup: Setup, holder: str, warn: Warn) -> None:
        """
        Args:
            setup: where runs go, whether to record at all, whether to write TensorBoard logs
                and whether `--data` was given.
            holder: what this process is, written into the locks of the runs it trains.
            warn: told what was not recorded, or what a reopened run continues on.
        """
        self.setup = setup
        self.holder = holder
        self.warn = warn
        self.run: RunDirectory | None = None
        self._lock: RunLock | None = None

    @property
    def enabled(self) -> bool:
        return self.setup.record

    # --- a round ------------------------------------------------------------------------------
    def begin_round(
        self,
        *,
        fresh: bool,
        preset: str,
        hparams: Hyperparams,
        round_length: int,
        data: MnistData,
        train_samples: Callable[[], int],
    ) -> RunDirectory | None:
        """Make or update the run directory a round records into (then `run`).

        A model that carries on keeps its run (its hparams.toml updated); a new model gets a new
        run, unless the run held saved nothing yet on this data, which is reused rather than left
        empty. A run that cannot be made is a warning: training goes on unrecorded.

        Args:
            fresh: the round trains a new model.
            preset: the preset the settings started from (names a new run).
            hparams: the settings the round trains with.
            round_length: the epochs one `t` adds, which hparams.toml keeps as its epochs.
            data: the data the round trains on.
            train_samples: the images it trains on after the validation split (asked only
                when a run is made).

        Returns:
            The run directory newly made for this round, to announce; None when the round goes
            on in the run held, or unrecorded.
        """
        if not self.enabled:
            return None
        run = self.run
        if not fresh and run is not None:
            try:
                run.update_hparams(hparams.with_changes(epochs=round_length))
                self._keep_policy(run)
            except OSError as err:
                self.warn(f"hparams.toml in {run.path} not updated: {err}", "")
            return None
        if run is not None and run.epochs_saved == 0 and run.data == data.info:
            with contextlib.suppress(OSError):
                run.update_hparams(hparams)
                self._keep_policy(run)
                return None
        try:
            created = RunDirectory.create(
                self.setup.runs_dir, preset, hparams, data.info, train_samples()
            )
            lock = RunLock(created.path, self.holder).acquire()
        except RunError as err:
            self.warn(f"This run is not recorded: {err}", "No run directory")
            self.release()
            return None
        self.release()
        self.run, self._lock = created, lock
        with contextlib.suppress(OSError):  # run.json was just written: a failure is unlikely
            self._keep_policy(created)
        return created

    def _keep_policy(self, run: RunDirectory) -> None:
        """Record `--keep-checkpoints` in run.json, where the checkpoint callback (and a later
        resume) reads it; without the flag the run keeps what it had."""
        keep = self.setup.keep_checkpoints
        if keep is not None and run.info.get("keep_checkpoints") != keep:
            run.info["keep_checkpoints"] = keep
            run.write_info()

    def callbacks(self, clock: EpochClock, learning_rate: Callable[[], float]) -> list[Any]:
        """The Keras callbacks that record the round into the run held (none when unrecorded).

        Args:
            clock: the session's epoch clock (metrics.csv's epoch time excludes pauses).
            learning_rate: the learning rate in force, which hparams.toml follows.
        """
        from tui.core.platform.runtime import tensorboard_installed
        from tui.core.runs.record import run_callbacks

        if self.run is None or not self.enabled:
            return []
        tensorboard = self.setup.tensorboard
        if tensorboard and not tensorboard_installed():
            tensorboard = False
            self.warn(
                "TensorBoard logs are off: the tensorboard package is not installed "
                "(`pip install tensorboard`).",
                "No TensorBoard",
            )
        return run_callbacks(
            self.run,
            clock,
            learning_rate,
            lambda text: self.warn(text, "Not recorded"),
            tensorboard=tensorboard,
        )

    def record_target(self, target: int) -> None:
        """A live change of the epoch target, written at once: a resume after a kill trains to
        it, as it does to a learning rate changed live."""
        run = self.run
        if run is None or not self.enabled:
            return
        try:
            run.change_hparams(epochs=target)
        except OSError as err:
            self.warn(f"cannot record the new target in {run.path}: {err.strerror or err}", "")

    def record_health(self, measured: LayerHealthMeasured) -> None:
        """Append an epoch's layer figures to layers.jsonl."""
        if self.run is not None and self.enabled:
            with contextlib.suppress(OSError):  # figures to look at: never worth a failure
                self.run.append_health(measured)

    def record_results(self, evaluated: Evaluated, predictions: Predictions) -> None:
        """Write the test results (evaluation.json, predictions.npz) of the model trained here."""
        run = self.run
        if run is None or not self.enabled:
            return
        try:
            run.save_evaluation(evaluated)
            run.save_predictions(predictions.probabilities, predictions.labels)
        except OSError as err:
            self.warn(f"cannot write the test results to {run.path}: {err.strerror or err}", "")

    # --- reopening ----------------------------------------------------------------------------
    def reopen(
        self, path: Path, scope: Callable[[], AbstractContextManager[Any]], data: MnistData
    ) -> tuple[ResumedRun, MnistData]:
        """Lock the run at `path` (kept if it is the one held), resume it and choose its data;
        from then on it is the run held, and the one held before is released.

        The run continues on the data it recorded: where `data` is other, the recorded source is
        loaded (and checked); where that is gone or has changed, the run is refused, unless
        `--data` was given, in which case run.json records the change.

        Args:
            path: the run directory.
            scope: the strategy's scope, entered to load the model (it then trains under it).
            data: the data in memory now.

        Returns:
            The resumed run and the data to continue it on (`data` itself, or the recorded one).

        Raises:
            RunError: not a run, held by another process, or its data cannot be had.
        """
        from tui.core.runs.resume import resume

        RunDirectory.open(path)  # a folder that is not a run is refused before anything else
        check_owner(path)
        path = path.resolve()
        same = self.run is not None and self.run.path == path
        lock = self._lock if same else RunLock(path, self.holder).acquire()
        try:
            with scope():
                resumed = resume(path)
            chosen = self._data_for(resumed.run_dir, data)
        except BaseException:
            if not same and lock is not None:
                lock.release()
            raise
        if not same:
            self.release()
        self.run, self._lock = resumed.run_dir, lock
        return resumed, chosen

    def _data_for(self, run: RunDirectory, current: MnistData) -> MnistData:
        recorded = run.data
        if recorded is None:
            self.warn(
                f"run {run.name} has no record of its data's fingerprint ({run.data_label}); "
                f"it continues on {current.describe()}.",
                "",
            )
            return current
        if recorded.fingerprint == current.fingerprint and not current.excluded:
            # The digits the run left out stay out (none: `current` itself).
            return _excluding(run, current, recorded.excluded)
        if recorded == current.info:
            return current
        if self.setup.data_path is not None and not current.excluded:
            current = _excluding(run, current, recorded.excluded)
            run.record_data_change(current.info)
            self.warn(
                f"run {run.name} was trained on {recorded.describe()}; it continues on "
                f"{current.describe()} as --data asks, and run.json records the change.",
                "Other data",
            )
            return current
        try:
            return load_recorded(recorded)
        except DataError as err:
            raise RunError(
                f"run {run.name} was trained on {recorded.describe()} from {recorded.source} "
                f"(fingerprint {recorded.short_fingerprint}), but {err}; pass --data PATH to "
                "continue it on other data (run.json records the change)."
            ) from None

    def release(self) -> None:
        """Stop holding the run (its lock released): a reset, another run, or the end."""
        if self._lock is not None:
            self._lock.release()
        self.run, self._lock = None, None


def recorded_data(path: Path) -> MnistData | None:
    """The data the run at `path` was trained on, loaded and checked, for a trainer that is to
    reopen it to load instead of its default source; None where the run names none that can
    still be had (reopening then says why)."""
    try:
        recorded = RunDirectory.open(path).data
        return load_recorded(recorded) if recorded is not None else None
    except (RunError, DataError, OSError):
        return None


def _excluding(run: RunDirectory, data: MnistData, excluded: tuple[int, ...]) -> MnistData:
    try:
        return data.excluding(excluded)
    except DataError as err:
        raise RunError(f"run {run.name} left out training digits, but {err}.") from None
