"""A sweep outlives its terminal: `--detach` returns at once while the trials go on, `ps` lists
it with its progress, `stop` ends it after the trial in progress (and `--resume` carries it on),
and a SIGHUP sends a foreground sweep's output to its log instead of ending it. Real processes,
the tiny network, one-epoch trials on the bundled sample."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_app_signals import Terminal
from test_cli import cli
from test_sweep import TINY_FLAGS, _env, _lineage, _study

from tui.core.experiments.sweep_status import LOG_FILE, SweepStatus, is_live, read_status

SWEEP = [sys.executable, "-m", "tui", "sweep", *TINY_FLAGS, "--epochs", "1"]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _status(folder: Path) -> SweepStatus:
    status = read_status(folder)
    assert status is not None
    return status


def _detached(tmp_path: Path, trials: int) -> Path:
    started = time.monotonic()
    done = cli(tmp_path, "sweep", *SWEEP[4:], "--trials", str(trials), "--out", "sw",
                    "--detach")  # fmt: skip
    assert done.code == 0, done.err
    folder = tmp_path / "sw"
    # It came back while the sweep still runs: a 4-trial sweep takes far longer than loading.
    assert is_live(folder), "the background sweep is running"
    assert time.monotonic() - started < 60
    assert f"Sweep in the background (pid {_status(folder).pid}): {folder}" in done.out
    assert f"mnist-tui attach {folder}" in done.out and "mnist-tui stop sw" in done.out
    return folder


@pytest.mark.slow
def test_a_detached_sweep_returns_at_once_shows_in_ps_and_finishes_its_trials(
    tmp_path: Path,
) -> None:
    folder = _detached(tmp_path, trials=4)
    _wait_for(lambda: bool(_status(folder).running), 300, "a trial to start")
    ps = cli(tmp_path, "ps")
    assert ps.code == 0, ps.err
    line = re.search(rf"^sw +trial ([1-4]) of 4 .* {_status(folder).pid} ", ps.out, re.M)
    assert line is not None, ps.out
    _wait_for(lambda: not is_live(folder), 600, "the sweep to end")
    finished = [r for r in _study(folder) if r.state in ("complete", "pruned")]
    assert len(finished) == 4 and sorted(_lineage(folder)) == [0, 1, 2, 3]
    log = (folder / LOG_FILE).read_text()
    assert re.search(r"^Best: trial \d+, val_accuracy", log, re.M), log
    assert _status(folder).phase == "ended" and _status(folder).finished == 4
    assert "No live trainings" in cli(tmp_path, "ps").out


@pytest.mark.slow
def test_stop_ends_a_sweep_after_its_trial_and_resume_carries_it_on(tmp_path: Path) -> None:
    folder = _detached(tmp_path, trials=4)
    _wait_for(lambda: _status(folder).running == (1,), 300, "trial 1 to start")
    stop = cli(tmp_path, "stop", "sw")
    assert stop.code == 0, stop.err
    assert "The sweep sw stops when its trial in progress ends (trial 2 of 4)" in stop.out
    _wait_for(lambda: not is_live(folder), 300, "the sweep to stop")
    states = {r.number: r.state for r in _study(folder)}
    assert states == {0: "complete", 1: "complete"}, "trial 1 finished; none started after it"
    log = (folder / LOG_FILE).read_text()
    assert f"Stopped; carry on with: mnist-tui sweep --resume {folder}" in log
    assert cli(tmp_path, "stop", "sw").code == 2  # not running any more

    done = cli(tmp_path, "sweep", "--resume", str(folder), timeout=600)
    assert done.code == 0, done.err
    after = _study(folder)
    assert [r.number for r in after if r.state in ("complete", "pruned")] == [0, 1, 2, 3]
    assert sorted(_lineage(folder)) == [0, 1, 2, 3], "one run per trial, none twice"


@pytest.mark.slow
def test_a_foreground_sweep_whose_terminal_hangs_up_goes_on_into_its_log(tmp_path: Path) -> None:
    folder = tmp_path / "sw"
    process = subprocess.Popen(
        [*SWEEP, "--trials", "3", "--out", str(folder)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: (folder / "status.json").is_file() and bool(_status(folder).running),
            300,
            "trial 0 to start",
        )
        process.send_signal(signal.SIGHUP)
        out, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    log = (folder / LOG_FILE).read_text()
    assert "The terminal went away: the sweep goes on" in log
    assert re.search(r"^Best: trial \d+", log, re.M) and "Best: trial" not in out
    assert [r.state for r in _study(folder)] == ["complete"] * 3


@pytest.mark.slow
def test_a_sweep_that_had_a_terminal_writes_its_log_in_plain_text_after_a_hang_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started on a terminal, the sweep's console writes colours; once the terminal hangs up,
    what it writes to its log (the last trials, the table, the best) has no escape codes. They
    went on being written, as on the terminal, until the console was told."""
    monkeypatch.delenv("MNIST_TUI_DATA", raising=False)
    folder = tmp_path / "sw"
    term = Terminal([*SWEEP, "--trials", "4", "--out", str(folder)], tmp_path)

    def second_trial() -> bool:  # the sweep's signal handlers are in place by then
        status = read_status(folder)
        return status is not None and status.finished >= 1 and bool(status.running)

    try:
        assert term.poll_until(second_trial, 300), term.output[-2000:]
        os.kill(term.pid, signal.SIGHUP)
        assert term.wait(600) == 0, term.output[-2000:]
    finally:
        term.close()
    log = (folder / LOG_FILE).read_text()
    assert re.search(r"^Best: trial \d+", log, re.M), log
    assert "\x1b" not in log, log
