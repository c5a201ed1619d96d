"""The engines' logs in the state folder (issue 29, case 16): an engine that ends cleanly
removes its log, and old logs of engines that are gone are pruned when the next one starts,
while a recent crash's log is kept for a person to read. Real engine processes, real files."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from tiny import TINY

from tui.core.settings.requests import Setup
from tui.engine import registry
from tui.engine.protocol import EngineInfo
from tui.engine.spawn import spawn_engine, wait_for_socket

SAMPLE = Path(__file__).resolve().parents[1] / "tui" / "sample" / "mnist_sample.npz"


def aged(path: Path, seconds: float) -> Path:
    path.write_text("Traceback (most recent call last): ...\n")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_engine_logs_go_with_a_clean_end_and_old_crashes_are_pruned(tmp_path: Path) -> None:
    folder = registry.state_dir()
    old_crash = aged(folder / "0badf00d.log", registry.CRASHED_LOG_KEEP + 3600)
    recent_crash = aged(folder / "0ddba11.log", 3600)
    # An engine that has been running for days: its log is old but it is alive (this process).
    living = aged(folder / "a11ve000.log", registry.CRASHED_LOG_KEEP + 3600)
    info = EngineInfo(
        id="a11ve000", pid=os.getpid(), socket=str(folder / "a11ve000.sock"), started="", version=""
    )
    registry.write_record(info)

    setup = Setup(TINY, preset="tiny", data_path=str(SAMPLE), runs_dir=str(tmp_path / "runs"))
    engine = spawn_engine(setup)
    try:
        wait_for_socket(engine)
        log = Path(engine.start.log)
        assert log.exists()
        assert not old_crash.exists()
        assert recent_crash.exists() and living.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            engine.process.send_signal(signal.SIGTERM)
        code = engine.process.wait(60)
        registry.remove_record(info)
    assert code == 0
    assert not log.exists(), "a clean end takes its log with it"
    assert recent_crash.exists()


def test_the_log_of_an_engine_that_was_killed_stays(tmp_path: Path) -> None:
    setup = Setup(TINY, preset="tiny", data_path=str(SAMPLE), runs_dir=str(tmp_path / "runs"))
    engine = spawn_engine(setup)
    wait_for_socket(engine)
    engine.process.kill()
    engine.process.wait(60)
    assert Path(engine.start.log).exists()
