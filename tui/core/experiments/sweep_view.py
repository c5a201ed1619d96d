"""A sweep as a viewer reads it, again and again while it runs: its trials from the study's
store, its process's status, the epochs of the trial in progress, and which settings mattered.

Read-only: it never creates a study nor writes in the folder, so that watching a sweep cannot
disturb it. Optuna's journal file can be read while the sweep appends to it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from tui.core.experiments.study import SweepFolder, TrialResult, best, results
from tui.core.experiments.sweep_status import SweepStatus, is_live, read_status
from tui.core.runs.layout import RunDirectory, RunError
from tui.core.training.events import EpochEnded

IMPORTANCE_AFTER = 5
"""Complete trials before importances are worth showing: fewer say more about luck."""
EVALUATOR = "PED-ANOVA"
"""Optuna's PedAnovaImportanceEvaluator: unlike fANOVA it needs no scikit-learn, which the
project does not depend on."""


@dataclass(frozen=True)
class SweepView:
    """One reading of a sweep."""

    name: str
    varied: tuple[str, ...]
    """The settings the space varies: the table's columns."""
    trials: tuple[TrialResult, ...] = ()
    best: TrialResult | None = None
    target: int | None = None
    """Trials to finish; None: no limit."""
    status: SweepStatus | None = None
    live: bool = False
    """A process drives the sweep now."""
    shown: int | None = None
    """The trial whose curve is drawn: the one in progress, else the best."""
    curve: tuple[EpochEnded, ...] = ()
    """Its epochs so far."""
    importances: tuple[tuple[str, float], ...] = ()
    """(setting, share), most important first."""
    importance_note: str = ""
    """What stands in for the importances when there are none."""
    runs: dict[int, Path] = field(default_factory=dict)
    """The run directory of each trial that has one."""


class SweepWatch:
    """Reads one sweep folder; keeps the store open and what does not change between reads."""

    def __init__(self, path: str | Path) -> None:
        """Raises `SweepError` when `path` is not a sweep folder."""
        self.folder = SweepFolder.open(path)
        self._study: optuna.Study | None = None
        self._runs: dict[int, Path] = {}
        self._importance_key: int = -1
        self._importances: tuple[tuple[str, float], ...] = ()
        self._importance_note = ""

    def read(self) -> SweepView:
        folder = self.folder
        found = self._trials()
        runs = self._find_runs(found)
        top = best(found)
        running = [r.number for r in found if r.state == "running"]
        shown = running[0] if running else (top.number if top is not None else None)
        curve: tuple[EpochEnded, ...] = ()
        if shown is not None and shown in runs:
            with contextlib.suppress(RunError, OSError, ValueError):
                curve = tuple(RunDirectory.open(runs[shown]).load_history())
        self._importance(found)
        return SweepView(
            name=folder.path.name,
            varied=tuple(folder.settings.space.varied),
            trials=tuple(found),
            best=top,
            target=folder.settings.trials,
            status=read_status(folder.path),
            live=is_live(folder.path),
            shown=shown,
            curve=curve,
            importances=self._importances,
            importance_note=self._importance_note,
            runs=dict(runs),
        )

    def _trials(self) -> list[TrialResult]:
        if self._study is None:
            try:
                self._study = optuna.load_study(
                    study_name=self.folder.settings.study, storage=self.folder.storage()
                )
            except KeyError:  # the sweep has not made its study yet
                return []
        return results(self._study)

    def _find_runs(self, found: list[TrialResult]) -> dict[int, Path]:
        """Each trial's run: the study names it once the trial ends; until then its run.json
        does (the sweep writes it before the first epoch)."""
        for result in found:
            if result.run is not None:
                self._runs[result.number] = self._local(Path(result.run))
        if any(r.number not in self._runs and r.state == "running" for r in found):
            for run in self.folder.trials_dir.iterdir() if self.folder.trials_dir.is_dir() else ():
                if run in self._runs.values():
                    continue
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    number = json.loads((run / "run.json").read_text())["sweep"]["trial"]
                    self._runs.setdefault(int(number), run)
        return self._runs

    def _local(self, run: Path) -> Path:
        """The study names a trial's run where it was made; a sweep folder moved or copied
        since has that run under its own trials/ folder."""
        here = self.folder.trials_dir / run.name
        return here if here.is_dir() else run

    def _importance(self, found: list[TrialResult]) -> None:
        complete = sum(r.state == "complete" for r in found)
        if complete == self._importance_key:
            return
        self._importance_key = complete
        self._importances = ()
        if len(self.folder.settings.space.varied) < 2:
            self._importance_note = "Importances compare settings; this sweep varies one."
        elif complete < IMPORTANCE_AFTER or self._study is None:
            self._importance_note = (
                f"Importances appear once {IMPORTANCE_AFTER} trials are complete "
                f"({complete} so far)."
            )
        else:
            try:
                shares = optuna.importance.get_param_importances(
                    self._study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
                )
            except Exception as err:  # whatever Optuna makes of odd trials, the screen stays up
                self._importance_note = f"Importances could not be computed: {err}"
                return
            self._importances = tuple((name, float(share)) for name, share in shares.items())
            self._importance_note = ""
