"""Sweeps on the bundled sample with the tiny network: trials are runs with their lineage, the
best trial printed is the one its run recorded, a trial that falls behind is pruned, a killed
sweep resumes without running a trial twice, and two processes share one study."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from tiny import TINY

from tui.cli import build_parser, resolve_hparams
from tui.core.data.mnist import MnistData
from tui.core.experiments.space import parse_space
from tui.core.experiments.study import (
    JOURNAL,
    TRIALS_DIR,
    SweepFolder,
    SweepSettings,
    TrialResult,
    results,
)
from tui.core.experiments.sweep import SweepRunner
from tui.core.runs.layout import HPARAMS_TOML, read_history
from tui.core.settings.requests import Setup
from tui.core.settings.toml import load_toml
from tui.core.training.controller import TrainingController

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tui" / "sample" / "mnist_sample.npz"
TINY_FLAGS = ["--data", str(SAMPLE), "--train-size", "600", "--conv-filters", "8",
              "--dense-units", "16"]  # fmt: skip
BEST = re.compile(r"^Best: trial (\d+), val_accuracy (\d\.\d{4}) \(", re.MULTILINE)
TRIAL_LINE = re.compile(r"^trial +(\d+) +(complete|pruned|failed) ", re.MULTILINE)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.pop("MNIST_TUI_DATA", None)
    return env


def _sweep(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "sweep", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=timeout,
    )


def _lineage(folder: Path) -> dict[int, Path]:
    """Each trial run under the sweep's folder, by the trial number its run.json names."""
    runs: dict[int, Path] = {}
    for run in sorted((folder / TRIALS_DIR).iterdir()):
        number = json.loads((run / "run.json").read_text())["sweep"]["trial"]
        assert number not in runs, f"trial {number} has two runs"
        runs[number] = run
    return runs


def _study(folder: Path) -> list[TrialResult]:
    return results(SweepFolder.open(folder).study(0))


def _recorded_best(run: Path) -> float:
    return float(json.loads((run / "run.json").read_text())["best"]["value"])


# --- the whole command ---------------------------------------------------------------------------
def test_a_four_trial_sweep_leaves_four_runs_a_store_and_the_best_its_run_recorded(
    tmp_path: Path,
) -> None:
    done = _sweep(
        tmp_path, *TINY_FLAGS, "--epochs", "1", "--trials", "4", "--out", "sw",
        "--save-config", "best.toml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "sw"
    assert (folder / JOURNAL).stat().st_size > 0 and (folder / "sweep.json").is_file()
    runs = _lineage(folder)
    assert sorted(runs) == [0, 1, 2, 3]
    ended = TRIAL_LINE.findall(done.stdout)
    assert [int(n) for n, _ in ended] == [0, 1, 2, 3], done.stdout
    for _, state in ended:
        assert state == "complete"  # one epoch a trial: nothing to prune before its end
    found = BEST.search(done.stdout)
    assert found is not None, done.stdout
    number, shown = int(found[1]), found[2]
    assert shown == f"{_recorded_best(runs[number]):.4f}"
    assert max(_recorded_best(run) for run in runs.values()) == _recorded_best(runs[number])
    assert f"Its run: {runs[number]}" in done.stdout
    # The saved settings are the best run's, and --config reads them back.
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "best.toml")])
    assert resolve_hparams(args) == load_toml(runs[number] / HPARAMS_TOML)
    # Each trial drew the settings its run trained with.
    for result in _study(folder):
        trained = load_toml(runs[result.number] / HPARAMS_TOML)
        assert {name: getattr(trained, name) for name in result.params} == result.params


# --- pruning, on the controller in this process -------------------------------------------------
@pytest.fixture
def controller(mnist_small: MnistData, tmp_path: Path) -> Iterator[TrainingController]:
    made = TrainingController(
        Setup(TINY, preset="tiny", runs_dir=str(tmp_path / "sw" / TRIALS_DIR)), data=mnist_small
    )
    made.load()
    yield made
    made.close()


def test_a_trial_that_falls_behind_is_pruned_not_failed(
    tmp_path: Path, controller: TrainingController
) -> None:
    space = parse_space({"learning_rate": [0.003, 1.0]}, TINY.with_changes(epochs=3), "test")
    settings = SweepSettings(space, preset="tiny", study="prune", trials=3)
    folder = SweepFolder.create(tmp_path / "sw", settings)
    study = folder.study(0)
    # Two sound trials for the median, then one whose learning rate no network survives.
    for rate in (0.003, 0.003, 1.0):
        study.enqueue_trial({"learning_rate": rate})
    ended: list[TrialResult] = []
    SweepRunner(folder, controller, study, ended.append).run()
    assert [(r.number, r.state) for r in ended] == [(0, "complete"), (1, "complete"), (2, "pruned")]
    pruned = ended[2]
    assert pruned.params == {"learning_rate": 1.0} and pruned.epochs < 3
    assert pruned.value is not None and pruned.value < min(r.value or 0 for r in ended[:2])
    run = _lineage(folder.path)[2]
    history = read_history(run, load_toml(run / HPARAMS_TOML), {})
    assert len(history) == pruned.epochs, "the run keeps the epochs trained before the pruning"
    assert study.trials[2].state is optuna.trial.TrialState.PRUNED


def test_a_trial_budget_stops_each_trial_and_scores_what_it_reached(
    tmp_path: Path, controller: TrainingController
) -> None:
    space = parse_space({"learning_rate": [0.003]}, TINY.with_changes(epochs=200), "test")
    settings = SweepSettings(space, preset="tiny", study="budget", trials=1, trial_budget=8.0)
    folder = SweepFolder.create(tmp_path / "sw", settings)
    ended: list[TrialResult] = []
    SweepRunner(folder, controller, folder.study(0), ended.append).run()
    [trial] = ended
    assert trial.state == "complete" and 1 <= trial.epochs < 200
    assert trial.value == _recorded_best(_lineage(folder.path)[0])


# --- killed, resumed, shared: real processes -----------------------------------------------------
def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def four_trials(folder: Path) -> list[str]:
    """`mnist-tui sweep` of four one-epoch trials of the tiny network into `folder`."""
    return [sys.executable, "-m", "tui", "sweep", *TINY_FLAGS, "--epochs", "1", "--trials", "4",
            "--out", str(folder)]  # fmt: skip


@pytest.mark.slow
def test_a_sweep_killed_during_trial_3_resumes_to_four_finished_trials_without_a_duplicate(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "sw"
    command = four_trials(folder)
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def third_trial_started() -> bool:
        # Its run directory is made, and run.json names the sweep: the trial is under way.
        if not (folder / TRIALS_DIR).is_dir():
            return False
        for run in (folder / TRIALS_DIR).iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError):
                if json.loads((run / "run.json").read_text())["sweep"]["trial"] == 2:
                    return True
        return False

    try:
        _wait_for(third_trial_started, 300, "the third trial")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = {r.number: r for r in _study(folder)}
    assert before[2].state == "running", "killed with its third trial in progress"

    done = _sweep(tmp_path, "--resume", str(folder))
    assert done.returncode == 0, done.stderr
    assert "Trial 2 was left running by a process that ended" in done.stdout
    after = _study(folder)
    finished = [r for r in after if r.state in ("complete", "pruned")]
    assert len(finished) == 4
    assert [r.number for r in after if r.state == "failed"] == [2]
    reruns = [r for r in after if r.note == "re-runs trial 2"]
    assert len(reruns) == 1 and reruns[0].params == before[2].params
    runs = _lineage(folder)
    assert sorted(runs) == sorted(r.number for r in after), "one run per trial, none twice"


@pytest.mark.slow
def test_two_processes_on_one_store_finish_a_four_trial_study_between_them(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "tui", "sweep", *TINY_FLAGS, "--epochs", "1", "--trials",
               "4", "--storage", store, "--study", "shared"]  # fmt: skip
    processes = [
        subprocess.Popen(
            [*command, "--out", name],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=store)
    states = [t.state for t in study.trials]
    assert len(states) == 4 and all(s.is_finished() for s in states), states
    numbers = [n for name in ("a", "b") for n in _lineage(tmp_path / name)]
    assert sorted(numbers) == [0, 1, 2, 3], "each trial ran once, in one of the two processes"


@pytest.mark.slow
def test_workers_share_the_sweeps_journal(tmp_path: Path) -> None:
    done = _sweep(
        tmp_path, *TINY_FLAGS, "--epochs", "1", "--trials", "4", "--workers", "2", "--out", "sw"
    )
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "sw"
    found = _study(folder)
    assert sorted(r.number for r in found if r.state in ("complete", "pruned")) == [0, 1, 2, 3]
    assert sorted(_lineage(folder)) == [0, 1, 2, 3]
    assert sorted(int(n) for n, _ in TRIAL_LINE.findall(done.stdout)) == [0, 1, 2, 3]
    assert (folder / "worker-1.log").is_file() and (folder / "worker-2.log").is_file()


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_after_saying_what_finished(tmp_path: Path) -> None:
    folder = tmp_path / "sw"
    command = four_trials(folder)
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (folder / JOURNAL).is_file() and len(_study(folder)) >= 2, 300, "trial 1")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Stopping the sweep" in out and "Stopped; carry on with: mnist-tui sweep --resume" in out
    assert re.search(r"^trial +0 +complete ", out, re.MULTILINE), out
    states = {r.number: (r.state, r.note) for r in _study(folder)}
    assert states[1] == ("failed", "interrupted")
    assert states[2] == ("waiting", "re-runs trial 1"), "queued for --resume"
