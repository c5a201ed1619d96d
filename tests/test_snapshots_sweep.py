"""Snapshots of the sweep screen at two sizes, on a sweep folder written with fixed trials (no
training): complete, pruned, failed and a running one whose run has two epochs so far, its
process's lock held, so that every part of the screen shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from app_helpers import until
from textual.pilot import Pilot
from tiny import TINY

from tui.core.experiments.space import parse_space
from tui.core.experiments.study import SweepFolder, SweepSettings
from tui.core.experiments.sweep_status import SweepLock, SweepStatus, write_status
from tui.core.runs.layout import HPARAMS_TOML, METRICS_CSV, RUN_JSON
from tui.core.settings.toml import save_toml
from tui.screens.sweep import SweepApp, SweepScreen

SIZES = [(80, 24), (120, 40)]
START = datetime(2025, 1, 1, 9, 0, 0)
DISTRIBUTIONS = {
    "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
    "batch_size": optuna.distributions.CategoricalDistribution([64, 128, 256]),
}
# number, state, learning rate, dropout, batch size, objective, epochs, seconds
TRIALS = [
    (0, optuna.trial.TrialState.COMPLETE, 0.003, 0.2, 128, 0.9712, 3, 42),
    (1, optuna.trial.TrialState.COMPLETE, 0.0008, 0.35, 64, 0.9540, 3, 55),
    (2, optuna.trial.TrialState.PRUNED, 0.0002, 0.1, 256, 0.8810, 1, 14),
    (3, optuna.trial.TrialState.COMPLETE, 0.005, 0.05, 128, 0.9801, 3, 40),
    (4, optuna.trial.TrialState.COMPLETE, 0.0015, 0.45, 256, 0.9655, 3, 38),
    (5, optuna.trial.TrialState.FAIL, 0.0095, 0.3, 64, None, 0, 3),
    (6, optuna.trial.TrialState.COMPLETE, 0.004, 0.15, 128, 0.9760, 3, 41),
]


def trial(number: int, state: Any, lr: float, dropout: float, batch: int,
          value: float | None, epochs: int, seconds: int) -> optuna.trial.FrozenTrial:  # fmt: skip
    """A trial as a sweep would have stored it, at a fixed time."""
    began = START + timedelta(minutes=number)
    finished = state is not optuna.trial.TrialState.RUNNING
    return optuna.trial.FrozenTrial(
        number=number,
        state=state,
        value=value,
        values=None,
        datetime_start=began,
        datetime_complete=began + timedelta(seconds=seconds) if finished else None,
        params={"learning_rate": lr, "dropout": dropout, "batch_size": batch},
        distributions=DISTRIBUTIONS,
        user_attrs={"epochs": epochs, "metric": "val_accuracy"},
        system_attrs={},
        intermediate_values={1: value} if state is optuna.trial.TrialState.PRUNED else {},
        trial_id=number,
    )


def write_sweep(path: Path) -> SweepFolder:
    """A sweep folder holding `TRIALS` and trial 7 running, two epochs into its run."""
    space = parse_space(
        {
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "dropout": {"low": 0.0, "high": 0.5},
            "batch_size": [64, 128, 256],
        },
        TINY.with_changes(epochs=3),
        "test",
    )
    folder = SweepFolder.create(path, SweepSettings(space, "tiny", "sw", trials=10))
    study = folder.study(0)
    for row in TRIALS:
        study.add_trial(trial(*row))
    study.add_trial(trial(7, optuna.trial.TrialState.RUNNING, 0.0045, 0.1, 128, None, 0, 0))
    run = folder.trials_dir / "20250101-090700-tiny"
    run.mkdir()
    save_toml(TINY.with_changes(epochs=3), run / HPARAMS_TOML)
    info = {"format": 2, "preset": "tiny", "train_samples": 540, "sweep": {"trial": 7}}
    (run / RUN_JSON).write_text(json.dumps(info))
    (run / METRICS_CSV).write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.912,0.31,0.951,0.17\n"
        "1,0.968,0.11,0.973,0.09\n"
    )
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Iterator[Path]:
    folder = write_sweep(tmp_path / "sw")
    lock = SweepLock(folder.path)
    assert lock.acquire()
    write_status(
        folder.path,
        SweepStatus(pid=1, phase="running", trials=10, finished=6, running=(7,),
                    best_trial=3, best_value=0.9801),
    )  # fmt: skip
    yield folder.path
    lock.release()


async def _shown(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, SweepScreen)
    await until(pilot, lambda: screen.view is not None and bool(screen.view.importances), 30)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_the_sweep_screen(snap_compare: Any, sweep: Path, size: Any) -> None:
    assert snap_compare(SweepApp(sweep), terminal_size=size, run_before=_shown)
