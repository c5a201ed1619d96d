"""The sweep screen on real sweeps of the tiny network: the trials table with the best marked,
the objective plot, importances once five trials are complete (a sentence before), Enter opens
a trial's run; `W` on the dashboard lists the sweeps; `attach SWEEP` opens the screen."""

from __future__ import annotations

import contextlib
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from app_helpers import until
from scripted_engine import ScriptedEngine
from test_app_signals import Terminal
from test_snapshots_app import HPARAMS, LOADED, state
from test_snapshots_sweep import trial, write_sweep
from test_sweep import _lineage
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static
from tiny import TINY

from tui.app import create_app
from tui.core.data.mnist import MnistData
from tui.core.experiments.space import parse_space
from tui.core.experiments.study import TRIALS_DIR, SweepFolder, SweepSettings, best, results
from tui.core.experiments.sweep import SweepRunner
from tui.core.experiments.sweep_status import (
    RECORDS,
    SweepLock,
    SweepStatus,
    live_sweeps,
    write_status,
)
from tui.core.settings.requests import AppOptions, Setup
from tui.core.training.controller import TrainingController
from tui.engine import protocol as p
from tui.screens.confirm import ConfirmScreen
from tui.screens.sweep import BEST, SweepApp, SweepListScreen, SweepScreen
from tui.widgets.objective import ObjectivePlot


@dataclass(frozen=True)
class Sweeps:
    full: Path
    """Six one-epoch trials over two settings, finished."""
    early: Path
    """The same sweep as it was after two trials."""


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> Sweeps:
    root = tmp_path_factory.mktemp("sweeps")
    space = parse_space(
        {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "dropout": [0.0, 0.3]},
        TINY.with_changes(epochs=1),
        "test",
    )
    folder = SweepFolder.create(
        root / "sw", SweepSettings(space, preset="tiny", study="sw", trials=2)
    )
    setup = Setup(TINY, preset="tiny", runs_dir=str(folder.trials_dir), progress_interval=0.0)
    controller = TrainingController(setup, data=mnist_small)
    try:
        controller.load()
        SweepRunner(folder, controller, folder.study(0)).run()
        shutil.copytree(folder.path, root / "early")
        folder = folder.with_settings(trials=6)
        SweepRunner(folder, controller, folder.study(0)).run()
    finally:
        controller.close()
    return Sweeps(folder.path, root / "early")


async def _read(pilot: Pilot[Path | None] | Pilot[None]) -> SweepScreen:
    screen = pilot.app.screen
    assert isinstance(screen, SweepScreen)
    await until(pilot, lambda: screen.view is not None)  # type: ignore[arg-type]
    await pilot.pause()
    return screen


def _rows(screen: SweepScreen) -> list[list[str]]:
    table: DataTable[object] = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def _text(screen: SweepScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_the_trials_table_marks_the_best_and_importances_show_after_five(
    sweeps: Sweeps,
) -> None:
    app = SweepApp(sweeps.full)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _read(pilot)
        rows = _rows(screen)
        found = results(SweepFolder.open(sweeps.full).study(0))
        top = best(found)
        assert top is not None
        assert [int(row[0].replace(BEST, "")) for row in rows] == list(range(6))
        assert [n for n, row in enumerate(rows) if BEST in row[0]] == [top.number]
        for row, result in zip(rows, found, strict=True):
            assert row[1] == "complete" and row[-2] == "1"
            assert row[-3] == f"{result.value:.2%}"
        header = _text(screen, "#sweep-header")
        assert "not running, 6 of 6 trials finished" in header
        assert f"best {top.value:.2%} (trial {top.number})" in header
        importances = _text(screen, "#sweep-importances")
        assert importances.startswith("Importance (PED-ANOVA, 6 complete trials): ")
        assert "learning_rate" in importances and "dropout" in importances
        assert len(screen.query_one(ObjectivePlot).trials) == 6


async def test_before_five_trials_importances_are_a_sentence(sweeps: Sweeps) -> None:
    app = SweepApp(sweeps.early)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _read(pilot)
        assert len(_rows(screen)) == 2
        assert _text(screen, "#sweep-importances") == (
            "Importances appear once 5 trials are complete (2 so far)."
        )


async def test_enter_on_a_trial_opens_its_run(sweeps: Sweeps) -> None:
    app = SweepApp(sweeps.full)
    async with app.run_test(size=(80, 24)) as pilot:
        await _read(pilot)
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()
    assert app.return_value == _lineage(sweeps.full)[3]


async def test_stopping_a_sweep_that_does_not_run_says_so(sweeps: Sweeps) -> None:
    app = SweepApp(sweeps.full)
    async with app.run_test(size=(80, 24)) as pilot:
        await _read(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SweepScreen), "nothing to confirm"
        assert any("is not running" in str(n.message) for n in app._notifications)


async def test_the_table_follows_the_sweep_and_keeps_the_cursor(tmp_path: Path) -> None:
    """A trial the sweep adds to its store appears at the next reading with the best mark
    moved to it, and the row the user had highlighted stays highlighted."""
    folder = write_sweep(tmp_path / "sw")
    app = SweepApp(folder.path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _read(pilot)
        assert [n for n, row in enumerate(_rows(screen)) if BEST in row[0]] == [3]
        await pilot.press("down", "down")
        complete = optuna.trial.TrialState.COMPLETE
        folder.study(0).add_trial(trial(8, complete, 0.004, 0.1, 128, 0.9890, 3, 40))
        await until(pilot, lambda: screen.table.row_count == 9, 10)
        await pilot.pause()
        rows = _rows(screen)
        assert [n for n, row in enumerate(rows) if BEST in row[0]] == [8]
        assert rows[8][1:] == ["complete", "128", "0.1", "0.004", "98.90%", "3", "40s"]
        assert screen.table.cursor_row == 2
        assert "best 98.90% (trial 8)" in _text(screen, "#sweep-header")


async def test_enter_on_the_running_trial_says_it_trains_instead_of_opening_it(
    tmp_path: Path,
) -> None:
    folder = write_sweep(tmp_path / "sw")  # trial 7 is running, the last row
    app = SweepApp(folder.path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _read(pilot)
        await pilot.press(*["down"] * 7, "enter")
        await pilot.pause()
        assert app.screen is screen and app.return_value is None
        assert any("Trial 7 is training" in str(n.message) for n in app._notifications)


@pytest.mark.parametrize(("key", "sent"), [("s", signal.SIGTERM), ("S", signal.SIGINT)])
async def test_s_and_shift_s_stop_a_live_sweep_after_asking(
    sweeps: Sweeps, tmp_path: Path, key: str, sent: signal.Signals
) -> None:
    """A live sweep (its lock held, its status naming a process): `s` asks, `y` sends that
    process SIGTERM (after the trial in progress), `S` SIGINT (now), as `mnist-tui stop` does."""
    folder = shutil.copytree(sweeps.early, tmp_path / "sw")
    # Stands in for the sweep's process, which answers SIGINT whatever it inherited: a `sleep`
    # started by a test run in a background job (bash sets SIGINT to ignored there) never died.
    answers = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"
    sweep = subprocess.Popen([sys.executable, "-c", answers])
    lock = SweepLock(folder)
    try:
        assert lock.acquire()
        write_status(folder, SweepStatus(pid=sweep.pid, phase="running", trials=2, finished=2))
        app = SweepApp(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _read(pilot)
            assert "running, 2 of 2 trials finished" in _text(screen, "#sweep-header")
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10)
            assert sweep.poll() is None, "nothing is sent before the answer"
            await pilot.press("y")
            # Waited for without blocking the app, which acts on the answer after the dialog
            # closes.
            await until(pilot, lambda: sweep.poll() is not None, 10)
            assert sweep.returncode == -sent
    finally:
        lock.release()
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()


async def test_the_sweep_list_opens_a_sweep_and_returns_the_trial_opened(
    sweeps: Sweeps, tmp_path: Path
) -> None:
    root = tmp_path / "sweeps"
    root.mkdir()
    shutil.copytree(sweeps.early, root / "20250101-090000-tiny")
    ended = SweepStatus(pid=1, phase="ended", trials=2, finished=2, best_trial=1, best_value=0.5)
    write_status(root / "20250101-090000-tiny", ended)
    (root / "not-a-sweep").mkdir()
    chosen: list[Path | None] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(SweepListScreen(root), chosen.append)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        listing: OptionList = app.screen.query_one(OptionList)
        assert [str(o.prompt) for o in listing.options] == [
            "20250101-090000-tiny  2 of 2 trials finished, best 50.00% (trial 1)"
        ]
        await pilot.press("enter")
        await _read(pilot)
        await pilot.press("enter")
        await pilot.pause()
    assert chosen == [_lineage(root / "20250101-090000-tiny")[0]]
    assert (root / "20250101-090000-tiny" / TRIALS_DIR).is_dir()


async def test_w_on_the_dashboard_lists_the_sweeps_and_opens_a_trial_in_the_engine(
    sweeps: Sweeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W lists ./sweeps; Enter on a sweep opens its screen, Enter on a trial asks this app's
    engine to open that trial's run, as the runs screen's Enter does."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(sweeps.full, tmp_path / "sweeps" / "20250101-090000-tiny")
    engine = ScriptedEngine(state(LOADED))
    with engine:
        app = create_app(AppOptions(Setup(HPARAMS, preset="default")), engine.connector())
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.handle.client is not None, 10)
            await pilot.press("W")
            assert isinstance(app.screen, SweepListScreen)
            await pilot.press("enter")
            screen = await _read(pilot)
            assert len(_rows(screen)) == 6
            await pilot.press("down", "enter")
            await until(pilot, lambda: any(isinstance(c, p.OpenRun) for c in engine.commands), 10)
    [opened] = [c for c in engine.commands if isinstance(c, p.OpenRun)]
    assert Path(opened.path) == _lineage(tmp_path / "sweeps" / "20250101-090000-tiny")[1]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_attach_by_name_shows_the_sweep_screen_in_a_terminal_and_q_quits(tmp_path: Path) -> None:
    """`mnist-tui attach NAME` finds the sweep under ./sweeps and draws its screen; q quits."""
    write_sweep(tmp_path / "sweeps" / "sw")
    term = Terminal([sys.executable, "-m", "tui", "attach", "sw"], tmp_path, size=(80, 24))

    def shown() -> bytes:
        return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", term.output)

    try:
        assert term.poll_until(lambda: b"Importance (PED-ANOVA" in shown(), 60), shown()[-2000:]
        assert b"Sweep sw" in shown()
        term.type(b"q")
        assert term.wait(30) == 0
    finally:
        term.close()


_HOLDER = """
import os, sys
from pathlib import Path
from tui.core.experiments.sweep_status import SweepLock, SweepStatus, register, write_status
from tui.engine.registry import state_dir
folder = Path(sys.argv[1])
if not SweepLock(folder).acquire():
    sys.exit("the sweep's lock is held")
write_status(folder, SweepStatus(os.getpid(), "running", 10, finished=6, running=(7,)))
register(state_dir(), folder)
print("live", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of this test's own: no engine or sweep another test left live is seen."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("MNIST_TUI_STATE_DIR", str(state))
    return state


@contextlib.contextmanager
def live_sweep(folder: Path) -> Iterator[None]:
    """A sweep folder made live as `sweep` makes it: another process holds its lock, has
    written its status (trial 7 of 10) and registered it where `ps` looks, until the block
    ends."""
    write_sweep(folder)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], 60)
        assert ready and holder.stdout.readline() == "live\n", "the holder took the lock"
        yield
    finally:
        holder.communicate("", timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_plain_attach_with_no_training_live_shows_the_live_sweep(
    tmp_path: Path, own_state: Path
) -> None:
    """`mnist-tui attach` and nothing else, after `sweep --detach` from another folder: no
    engine is live, so the newest live sweep's screen (it said "no live training")."""
    with live_sweep(tmp_path / "elsewhere" / "sw-live"):
        term = Terminal([sys.executable, "-m", "tui", "attach"], tmp_path, size=(80, 24))

        def shown() -> bytes:
            return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", term.output)

        try:
            assert term.poll_until(lambda: b"Sweep sw-live" in shown(), 60), shown()[-2000:]
            term.type(b"q")
            assert term.wait(30) == 0
        finally:
            term.close()


async def test_w_lists_a_live_sweep_kept_elsewhere_before_those_under_sweeps(
    sweeps: Sweeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_state: Path
) -> None:
    """A sweep started with `--out` elsewhere is listed (first, with its folder) while it
    runs, and opens with Enter; those under ./sweeps follow."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(sweeps.full, tmp_path / "sweeps" / "20250101-090000-tiny")
    with live_sweep(tmp_path / "elsewhere" / "sw-live"), ScriptedEngine(state(LOADED)) as engine:
        app = create_app(AppOptions(Setup(HPARAMS, preset="default")), engine.connector())
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: app.handle.client is not None, 10)
            await pilot.press("W")
            listed = app.screen.query_one("#sweep-list", OptionList)
            drawn = [listed.render_line(y).text for y in range(listed.size.height)]
            lines = [line.strip() for line in drawn if line.strip()]  # a long folder wraps
            assert listed.option_count == 2
            assert lines[0].startswith("sw-live  running, trial 7 of 10"), lines
            assert str(tmp_path / "elsewhere") in "".join(lines[:-1])
            assert lines[-1] == "20250101-090000-tiny", lines
            await pilot.press("enter")
            screen = await _read(pilot)
            assert "Sweep sw-live" in _text(screen, "#sweep-header")


async def test_a_live_sweep_with_a_stale_record_beside_it_is_listed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_state: Path
) -> None:
    """A sweep killed outright leaves its record; resumed, the same folder is recorded again.
    W lists it once (two options with one folder's id made the list raise), as `ps` does."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "sweeps" / "sw-live"
    with live_sweep(folder), ScriptedEngine(state(LOADED)) as engine:
        # A process that registers the folder and ends without removing its record, as a
        # killed sweep does.
        register = "from tui.core.experiments.sweep_status import register; import sys; "
        register += "from pathlib import Path; from tui.engine.registry import state_dir; "
        register += "register(state_dir(), Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", register, str(folder)], check=True, timeout=60)
        assert len(list((own_state / RECORDS).glob("*.json"))) == 2, "two records, one folder"
        assert live_sweeps(own_state) == [folder]
        app = create_app(AppOptions(Setup(HPARAMS, preset="default")), engine.connector())
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: app.handle.client is not None, 10)
            await pilot.press("W")
            assert app.screen.query_one("#sweep-list", OptionList).option_count == 1
