"""A sweep: an Optuna study whose trials are runs of the training controller, the folder that
keeps it (its settings, the study's store, one run directory per trial), and what the trials
came to.

Optuna does the searching (TPE), the pruning (the median rule) and the sharing (its journal file
or a database that several processes or machines point at); this module only turns a trial into
a round of the controller and back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import queue
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from tui.core.experiments.space import SearchSpace, Value, decode
from tui.core.runs.files import write_json
from tui.core.runs.layout import TIME_FORMAT, RunError, read_info
from tui.core.runs.lock import pid_alive
from tui.core.training.controller import ControllerError, TrainingController
from tui.core.training.events import EpochEnded, RunRecording, StopReason, TrainingEvent

SWEEP_JSON = "sweep.json"
JOURNAL = "study.journal"
"""The study's store when no `--storage` is given: Optuna's journal file, nothing to start."""
TRIALS_DIR = "trials"
"""Where the trials' run directories go, inside the sweep's folder."""
ASK_LOCK = ".ask.lock"
DEFAULT_ROOT = Path("sweeps")
DEFAULT_TRIALS = 10
WORKER_ENV = "MNIST_TUI_SWEEP_WORKER"
"""The slot of a `--workers` process (1, 2, ...), so that each seeds its sampler differently."""
PRUNE_AFTER = 2
"""Trials that must complete before the median pruner judges others."""
HOST = socket.gethostname()
STORAGE_ATTEMPTS = 4
"""Tries at opening a database store that other processes are creating at the same moment."""


class SweepError(Exception):
    """A sweep folder or store that cannot be used; str(err) is one sentence."""


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep is: kept in its folder's sweep.json, so that `--resume` and `--workers`
    processes carry on the same sweep."""

    space: SearchSpace
    preset: str
    """The preset the space's base started from (names the trials' run directories)."""
    study: str
    """The study's name in the store."""
    trials: int | None = DEFAULT_TRIALS
    """Trials to finish (complete or pruned), counted over every process on the store."""
    timeout: float | None = None
    """Seconds after which a process starts no new trial."""
    trial_budget: float | None = None
    """Seconds a trial may train; its objective is the accuracy reached by then."""
    storage: str | None = None
    """A database URL Optuna's RDB storage takes; None keeps the journal in the folder."""
    data_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["space"] = self.space.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> SweepSettings:
        values = dict(data)
        values["space"] = SearchSpace.from_dict(data["space"], where)
        return cls(**values)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "sweep"


class SweepFolder:
    """`sweeps/<time>-<preset>/`: sweep.json, study.journal (the default store) and trials/,
    one run directory per trial."""

    def __init__(self, path: Path, settings: SweepSettings) -> None:
        self.path = path
        self.settings = settings
        self._storage: optuna.storages.BaseStorage | None = None

    @classmethod
    def create(cls, path: str | Path | None, settings: SweepSettings) -> SweepFolder:
        """A new sweep folder at `path`, else under ./sweeps with a time-stamped name."""
        try:
            if path is None:
                stem = f"{datetime.now().strftime(TIME_FORMAT)}-{_slug(settings.preset)}"
                target, suffix = DEFAULT_ROOT / stem, 1
                DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
                while True:
                    try:
                        target.mkdir()
                        break
                    except FileExistsError:
                        suffix += 1
                        target = DEFAULT_ROOT / f"{stem}-{suffix}"
            else:
                target = Path(path)
                if (target / SWEEP_JSON).exists():
                    raise SweepError(
                        f"{target} already holds a sweep; carry it on with --resume {target}, "
                        "or choose another --out."
                    )
                target.mkdir(parents=True, exist_ok=True)
            folder = cls(target.resolve(), settings)
            (folder.path / TRIALS_DIR).mkdir(exist_ok=True)
            write_json(folder.path / SWEEP_JSON, settings.to_dict())
        except OSError as err:
            raise SweepError(
                f"cannot create the sweep folder {path or DEFAULT_ROOT}: {err.strerror or err}; "
                "choose another with --out."
            ) from None
        return folder

    @classmethod
    def open(cls, path: str | Path) -> SweepFolder:
        """The sweep in `path`; `SweepError` when it is not one."""
        path = Path(path)
        if not (path / SWEEP_JSON).is_file():
            raise SweepError(
                f"{path} is not a sweep folder (no {SWEEP_JSON}); pass a folder under sweeps/."
            )
        try:
            data = json.loads((path / SWEEP_JSON).read_text(encoding="utf-8"))
            settings = SweepSettings.from_dict(data, f"{path / SWEEP_JSON}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SweepError(f"{path / SWEEP_JSON} cannot be read: {err}") from None
        return cls(path.resolve(), settings)

    @property
    def trials_dir(self) -> Path:
        return self.path / TRIALS_DIR

    @property
    def store(self) -> str:
        """Where the study lives, as a person reads it."""
        return self.settings.storage or str(self.path / JOURNAL)

    def with_settings(self, **changes: Any) -> SweepFolder:
        """The same folder with some settings changed (a resume asking for more trials)."""
        folder = SweepFolder(self.path, dataclasses.replace(self.settings, **changes))
        write_json(self.path / SWEEP_JSON, folder.settings.to_dict())
        return folder

    def storage(self) -> optuna.storages.BaseStorage:
        """The study's store, opened once."""
        if self._storage is None:
            self._storage = self._open_storage()
        return self._storage

    def _open_storage(self) -> optuna.storages.BaseStorage:
        url = self.settings.storage
        if url is None:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(self.path / JOURNAL)))
        for attempt in range(STORAGE_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(url)
            except Exception as err:  # a bad URL, a missing driver, a database that is away
                # Processes that start together on a new database race to create its tables;
                # the loser's error goes once the winner has made them.
                if attempt + 1 < STORAGE_ATTEMPTS and creation_race(err):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                text = str(err).strip()
                first = text.splitlines()[0] if text else type(err).__name__
                raise SweepError(f"--storage {url} cannot be used: {first}") from None
        raise AssertionError("unreachable")

    def study(self, sampler_seed: int) -> optuna.Study:
        """The study, created on first use (by whichever process comes first)."""
        trials = self.settings.trials or 3 * DEFAULT_TRIALS
        sampler = optuna.samplers.TPESampler(
            seed=sampler_seed, n_startup_trials=max(2, min(10, trials // 3))
        )
        # The median rule, not successive halving: trials here last a few epochs, where
        # halving's rungs (a minimum resource times powers of its factor) leave one or two
        # rungs to judge on and need tuning per epoch count; the median compares each epoch
        # with the same epoch of the finished trials and needs none.
        pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER, n_warmup_steps=0)
        try:
            return optuna.create_study(
                storage=self.storage(),
                sampler=sampler,
                pruner=pruner,
                study_name=self.settings.study,
                direction="maximize",
                load_if_exists=True,
            )
        except SweepError:
            raise
        except Exception as err:
            raise SweepError(f"the study store {self.store} cannot be opened: {err}") from None

    @contextlib.contextmanager
    def ask_lock(self) -> Iterator[None]:
        """While held, no other process of this machine counts and asks for a trial: `--trials`
        is then never overshot by processes sharing the folder."""
        with open(self.path / ASK_LOCK, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def sampler_seed(base_seed: int, shared: bool, trials_so_far: int) -> int:
    """The sampler's seed: the settings' seed for a lone sweep, so that it repeats; moved by
    the worker slot, the trials already run (a resume) and, on a shared store, the host, so
    that processes working together do not draw the same settings."""
    slot = int(os.environ.get(WORKER_ENV, "0") or 0)
    seed = base_seed + 1000 * slot + trials_so_far
    if shared:
        seed += zlib.crc32(HOST.encode())
    return seed % 2**32


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class TrialResult:
    """One trial as a person reads it."""

    number: int
    state: str
    """complete, pruned, failed, running or waiting."""
    params: dict[str, Value]
    """The settings the space varies, as this trial drew them."""
    value: float | None
    """The objective: the best accuracy its run recorded (the last one reported if pruned)."""
    metric: str
    """val_accuracy, or accuracy for runs without a validation set."""
    epochs: int
    seconds: float | None
    run: str | None
    """Its run directory."""
    note: str = ""
    """Why it failed, or what it re-runs."""


def result_of(trial: FrozenTrial) -> TrialResult:
    attrs = trial.user_attrs
    seconds = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    note = str(attrs.get("note", ""))
    if "retry_of" in attrs and not note:
        note = f"re-runs trial {attrs['retry_of']}"
    return TrialResult(
        number=trial.number,
        state=trial.state.name.lower().replace("fail", "failed"),
        params={name: decode(name, value) for name, value in trial.params.items()},
        value=trial.value if trial.state in FINISHED else None,
        metric=str(attrs.get("metric", "val_accuracy")),
        epochs=int(attrs.get("epochs", 0)),
        seconds=seconds,
        run=attrs.get("run"),
        note=note,
    )


def results(study: optuna.Study) -> list[TrialResult]:
    return [result_of(t) for t in study.get_trials(deepcopy=False)]


def best(found: list[TrialResult]) -> TrialResult | None:
    """The complete trial with the highest objective (pruned ones stopped early)."""
    done = [r for r in found if r.state == "complete" and r.value is not None]
    return max(done, key=lambda r: (r.value, -r.number)) if done else None


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


def creation_race(err: Exception) -> bool:
    """Whether `err` is what the loser of a race to create a new database's tables gets (seen
    with SQLite: a duplicate Alembic version, a table that already exists, a locked file)."""
    text = repr(err)
    return any(sign in text for sign in ("IntegrityError", "already exists", "database is locked"))


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
    ) -> None:
        """
        Args:
            folder: the sweep.
            controller: loaded (`load()` returned READY), recording into the folder's trials/.
            study: the folder's study (`SweepFolder.study`).
            on_trial: told each trial this runner ends, on the calling thread.
        """
        self.folder = folder
        self.controller = controller
        self.study = study
        self.on_trial = on_trial
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop the trial in progress now (it is re-run by a resume) and start no other. Safe
        from a signal handler."""
        self._stopping.set()
        with contextlib.suppress(ControllerError):  # between trials: nothing to stop
            self.controller.stop_now()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        started = time.monotonic()
        timeout = self.folder.settings.timeout
        while not self._stopping.is_set():
            if timeout is not None and time.monotonic() - started >= timeout:
                return
            trial = self._ask()
            if trial is None:
                return
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
