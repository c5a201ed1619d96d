"""A sweep's folder and study, read or made without the trainer: its settings, the study's
store (Optuna's journal file, or a database several processes or machines share), one run
directory per trial, and what the trials came to.

Apart from the trainer (`sweep.py`) so that a viewer can read a sweep without TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tui.core.experiments.space import SearchSpace, Value, decode
from tui.core.experiments.sweep_status import DEFAULT_ROOT, SWEEP_JSON
from tui.core.runs.files import write_json
from tui.core.runs.layout import TIME_FORMAT

JOURNAL = "study.journal"
"""The study's store when no `--storage` is given: Optuna's journal file, nothing to start."""
TRIALS_DIR = "trials"
"""Where the trials' run directories go, inside the sweep's folder."""
ASK_LOCK = ".ask.lock"
DEFAULT_TRIALS = 10
PRUNE_AFTER = 2
"""Trials that must complete before the median pruner judges others."""
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


def creation_race(err: Exception) -> bool:
    """Whether `err` is what the loser of a race to create a new database's tables gets (seen
    with SQLite: a duplicate Alembic version, a table that already exists, a locked file)."""
    text = repr(err)
    return any(sign in text for sign in ("IntegrityError", "already exists", "database is locked"))
