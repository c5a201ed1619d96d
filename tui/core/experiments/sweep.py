"""A sweep's trainer: runs the trials of an Optuna study, each a round of the training
controller recorded as a run, reporting each epoch so that the median pruner can stop a trial
that falls behind; and recovers the trials a killed process left running.

Optuna does the searching (TPE), the pruning (the median rule) and the sharing (its journal file
or a database that several processes or machines point at); this module only turns a trial into
a round of the controller and back. The folder and the study are `study.py`'s.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from tui.core.experiments.study import FINISHED, SweepFolder, TrialResult, result_of
from tui.core.runs.layout import RunError, read_info
from tui.core.runs.lock import pid_alive
from tui.core.training.controller import ControllerError, TrainingController
from tui.core.training.events import EpochEnded, RunRecording, StopReason, TrainingEvent

WORKER_ENV = "MNIST_TUI_SWEEP_WORKER"
"""The slot of a `--workers` process (1, 2, ...), so that each seeds its sampler differently."""
HOST = socket.gethostname()


def sampler_seed(base_seed: int, shared: bool, trials_so_far: int) -> int:
    """The sampler's seed: the settings' seed for a lone sweep, so that it repeats; moved by
    the worker slot, the trials already run (a resume) and, on a shared store, the host, so
    that processes working together do not draw the same settings."""
    slot = int(os.environ.get(WORKER_ENV, "0") or 0)
    seed = base_seed + 1000 * slot + trials_so_far
    if shared:
        seed += zlib.crc32(HOST.encode())
    return seed % 2**32


def _alive(pid: object) -> bool:
    return isinstance(pid, int) and pid_alive(pid)


def recover(folder: SweepFolder, study: optuna.Study) -> list[int]:
    """Fail the trials left running by processes of this machine that have ended (a kill, a
    crash, a power cut) and queue each one's settings again, once; their numbers."""
    recovered = []
    storage = folder.storage()
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != HOST or _alive(attrs.get("pid")):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(
            trial_id, "note", f"interrupted: its process ({attrs.get('pid')}) ended"
        )
        study.tell(trial.number, state=TrialState.FAIL)
        retry(study, trial.number, trial.params)
        recovered.append(trial.number)
    return recovered


def retry(study: optuna.Study, number: int, params: dict[str, Any]) -> None:
    """Queue a trial with the settings of trial `number`, unless one already is: the next
    trial any process asks for."""
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("retry_of") == number:
            return
    study.enqueue_trial(dict(params), user_attrs={"retry_of": number})


def _metric(event: EpochEnded) -> tuple[str, float | None]:
    if event.val_accuracy is not None:
        return "val_accuracy", event.val_accuracy
    return "accuracy", event.accuracy


class SweepRunner:
    """Runs trials of one sweep on one controller, one after another, until the sweep has its
    trials (over every process on the store), its time is up, or `stop()`."""

    def __init__(
        self,
        folder: SweepFolder,
        controller: TrainingController,
        study: optuna.Study,
        on_trial: Callable[[TrialResult], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        """
        Args:
            folder: the sweep.
            controller: loaded (`load()` returned READY), recording into the folder's trials/.
            study: the folder's study (`SweepFolder.study`).
            on_trial: told each trial this runner ends, on the calling thread.
            on_start: told the number of each trial this runner starts, on the calling thread.
        """
        self.folder = folder
        self.controller = controller
        self.study = study
        self.on_trial = on_trial
        self.on_start = on_start
        self._stopping = threading.Event()
        self._draining = threading.Event()

    def stop(self) -> None:
        """Stop the trial in progress now (it is re-run by a resume) and start no other. Safe
        from a signal handler."""
        self._stopping.set()
        with contextlib.suppress(ControllerError):  # between trials: nothing to stop
            self.controller.stop_now()

    def stop_after_trial(self) -> None:
        """Start no other trial; the one in progress trains to its end and counts. Safe from a
        signal handler."""
        self._draining.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop (now or after the trial) was asked for."""
        return self._stopping.is_set() or self._draining.is_set()

    def run(self) -> None:
        started = time.monotonic()
        timeout = self.folder.settings.timeout
        while not self.stopping:
            if timeout is not None and time.monotonic() - started >= timeout:
                return
            trial = self._ask()
            if trial is None:
                return
            if self.on_start is not None:
                self.on_start(trial.number)
            result = self._run_trial(trial)
            if self.on_trial is not None:
                self.on_trial(result)

    def _ask(self) -> Trial | None:
        target = self.folder.settings.trials
        with self.folder.ask_lock():
            if target is not None:
                taken = self.study.get_trials(
                    deepcopy=False, states=(*FINISHED, TrialState.RUNNING)
                )
                if len(taken) >= target:
                    return None
            trial = self.study.ask()
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("pid", os.getpid())
        return trial

    def _run_trial(self, trial: Trial) -> TrialResult:
        settings = self.folder.settings
        try:
            hparams = settings.space.suggest(trial)
        except ValueError as err:
            return self._finish(trial, TrialState.FAIL, note=str(err))
        epochs: queue.Queue[EpochEnded] = queue.Queue()

        def listener(event: TrainingEvent) -> None:
            if isinstance(event, RunRecording):
                self._record_lineage(trial)
            elif isinstance(event, EpochEnded):
                epochs.put(event)

        controller = self.controller
        _, unsubscribe = controller.subscribe(listener)
        try:
            if controller.snapshot.model is not None:
                controller.reset()  # every trial is a new model in a new run
            job = controller.claim_round(hparams, settings.preset)
        except ControllerError as err:
            unsubscribe()
            return self._finish(trial, TrialState.FAIL, note=str(err))
        outcome: list[StopReason] = []
        work = threading.Thread(target=lambda: outcome.append(job.run()), name="trial")
        began = time.monotonic()
        work.start()
        pruned = over_budget = halted = False
        values: list[float] = []
        metric = "val_accuracy"
        while work.is_alive() or not epochs.empty():
            try:
                event = epochs.get(timeout=0.1)
            except queue.Empty:
                budget = settings.trial_budget
                late = budget is not None and time.monotonic() - began > budget
                # A stop asked for before `fit` began found nothing to stop: ask again.
                if (late and not over_budget) or (self._stopping.is_set() and not halted):
                    try:
                        controller.stop_now()
                    except ControllerError:
                        continue  # not fitting yet, or not any more
                    over_budget = over_budget or late
                    halted = halted or self._stopping.is_set()
                continue
            metric, value = _metric(event)
            if value is None:
                continue
            values.append(value)
            trial.report(value, event.epoch)
            if not pruned and event.epoch < event.target and trial.should_prune():
                pruned = True
                with contextlib.suppress(ControllerError):  # it may have just ended
                    controller.stop_now()
        work.join()
        unsubscribe()
        reason = outcome[0] if outcome else StopReason.ERROR
        snapshot = controller.snapshot
        run = controller.recorder.run
        run_path = str(run.path) if run is not None else None
        trial.set_user_attr("run", run_path)
        trial.set_user_attr("epochs", snapshot.epochs_done)
        trial.set_user_attr("metric", metric)
        if reason in (StopReason.ERROR, StopReason.NAN):
            stopped = snapshot.stopped
            note = stopped.message if stopped and stopped.message else reason.value
            return self._finish(trial, TrialState.FAIL, note=note)
        if pruned:
            return self._finish(trial, TrialState.PRUNED)
        if self._stopping.is_set() and reason is not StopReason.FINISHED:
            number = trial.number
            result = self._finish(trial, TrialState.FAIL, note="interrupted")
            retry(self.study, number, trial.params)
            return result
        value = _recorded_best(run_path) if run_path else None
        if value is None and values:
            value = max(values)
        if value is None:
            return self._finish(trial, TrialState.FAIL, note="no epoch finished")
        return self._finish(trial, TrialState.COMPLETE, value)

    def _record_lineage(self, trial: Trial) -> None:
        """run.json names the sweep and the trial (on the training thread, before the run's
        first epoch is saved, so that nothing else writes run.json meanwhile)."""
        run = self.controller.recorder.run
        if run is None:
            return
        run.info["sweep"] = {
            "path": str(self.folder.path),
            "study": self.study.study_name,
            "trial": trial.number,
        }
        with contextlib.suppress(OSError):  # lineage is a courtesy; the trial still counts
            run.write_info()

    def _finish(
        self, trial: Trial, state: TrialState, value: float | None = None, note: str = ""
    ) -> TrialResult:
        if note:
            trial.set_user_attr("note", note)
        if state is TrialState.COMPLETE:
            frozen = self.study.tell(trial, value)
        else:
            frozen = self.study.tell(trial, state=state)
        return result_of(frozen)


def _recorded_best(run_path: str) -> float | None:
    """The best accuracy the run directory recorded (run.json's `best`)."""
    try:
        best = read_info(Path(run_path)).get("best") or {}
    except RunError:
        return None
    value = best.get("value")
    return float(value) if isinstance(value, int | float) else None
