"""Pilot and snapshot tests of the runs screen, the compare plot and the save-model dialog."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
import tiny
from app_helpers import until
from scripted_engine import ScriptedEngine
from test_snapshots_app import FINISHED, HPARAMS, LOADED, state
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static

from tui.app import create_app
from tui.core.data.info import DataInfo
from tui.core.data.mnist import MnistData
from tui.core.runs.layout import (
    EVALUATION,
    FORMAT,
    HPARAMS_TOML,
    LAST_MODEL,
    METRICS_CSV,
    RUN_JSON,
    RunDirectory,
)
from tui.core.runs.lock import RunLock
from tui.core.runs.resume import resume
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import AppOptions, Setup
from tui.core.settings.toml import dump_toml
from tui.core.training.controller import TrainingController
from tui.core.training.events import EpochEnded, StopReason
from tui.core.training.phase import Phase
from tui.engine import protocol as p
from tui.engine import registry
from tui.screens.runs import LIVE, MARK, WARNING, CompareScreen, RunsScreen
from tui.screens.save_model import SaveModelScreen, name_problem
from tui.widgets.compare import ComparePlot, RunCurve

TINY = tiny.TINY.with_changes(learning_rate=3e-3, conv_filters=(4,), dense_units=8, train_size=500)


class RunsHost(App[None]):
    """A bare app that opens the runs screen and records what it dismissed with."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.opened: list[Path | None] = []

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.root), self.opened.append)


class SaveHost(App[None]):
    """A bare app that asks for a model name and records the answer."""

    def __init__(self, existing: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.existing = existing
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(SaveModelScreen(existing=self.existing), self.answers.append)


async def listed(pilot: Pilot[None]) -> RunsScreen:
    """The runs screen once its loading worker has finished and the table is filled."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    assert not screen.loading
    return screen


def table_rows(screen: RunsScreen) -> list[list[str]]:
    table: DataTable[object] = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


# --- real runs ----------------------------------------------------------------------------------
def train_run(root: Path, data: MnistData, hparams: Hyperparams, started: datetime) -> Path:
    """Train a real run through the controller, as the app does, and give it a fixed start:
    named `<YYYYmmdd-HHMMSS>-tiny` and dated so in run.json, so the list's order is known."""
    setup = Setup(hparams, preset="tiny", runs_dir=str(root / "training"), progress_interval=0.0)
    controller = TrainingController(setup, data=data)
    try:
        controller.load()
        assert controller.claim_round().run() is StopReason.FINISHED
        trained = Path(controller.snapshot.run)
    finally:
        controller.close()
    target = root / f"{started:%Y%m%d-%H%M%S}-tiny"
    trained.rename(target)
    set_start(target, started)
    return target


def set_start(run: Path, started: datetime) -> None:
    info = json.loads((run / RUN_JSON).read_text())
    info["started"] = started.isoformat()
    (run / RUN_JSON).write_text(json.dumps(info))


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> Path:
    """Two tiny real runs, evaluated, plus two broken copies of them.

    `older` is the first run (2 epochs), `newer` the second (3 epochs, another seed); `damaged`
    is `older` with a truncated last.keras and `missing` is `newer` without its hparams.toml.
    """
    root = tmp_path_factory.mktemp("runs")
    older = train_run(root, mnist_small, TINY.with_changes(seed=1), datetime(2025, 1, 1, 9))
    newer = train_run(
        root, mnist_small, TINY.with_changes(seed=2, epochs=3), datetime(2025, 1, 2, 9)
    )
    (root / "training").rmdir()
    damaged = root / "20250103-090000-tiny"
    shutil.copytree(older, damaged)
    last = damaged / LAST_MODEL
    last.write_bytes(last.read_bytes()[:500])
    missing = root / "20250104-090000-tiny"
    shutil.copytree(newer, missing)
    (missing / HPARAMS_TOML).unlink()
    # The list is ordered by the start time in run.json: give each copy its own.
    set_start(damaged, datetime(2025, 1, 3, 9))
    set_start(missing, datetime(2025, 1, 4, 9))
    return root


def load_history(run: Path) -> list[EpochEnded]:
    return RunDirectory.open(run).load_history()


async def test_lists_every_run_and_notes_the_broken_ones(real_root: Path) -> None:
    app = RunsHost(real_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        names = [s.name for s in screen.summaries]
        assert names == [
            "20250104-090000-tiny",
            "20250103-090000-tiny",
            "20250102-090000-tiny",
            "20250101-090000-tiny",
        ]
        rows = table_rows(screen)
        assert [row[1] for row in rows] == [
            "2025-01-04 09:00",
            "2025-01-03 09:00",
            "2025-01-02 09:00",
            "2025-01-01 09:00",
        ]
        # The broken runs carry their note; the healthy ones have none and full figures.
        assert rows[0][-1].startswith(f"{WARNING} ") and "hparams.toml" in rows[0][-1]
        assert rows[1][-1].startswith(f"{WARNING} ") and "last.keras is damaged" in rows[1][-1]
        for row, summary, epochs in (
            (rows[2], screen.summaries[2], 3),
            (rows[3], screen.summaries[3], 2),
        ):
            assert row[-1] == ""
            assert summary.problem is None
            assert row[3] == str(epochs)
            assert summary.test_accuracy is not None
            assert row[5] == f"{summary.test_accuracy:.2%}"
            assert row[4] == f"{summary.best_val_accuracy:.2%}"
        header = str(screen.query_one("#runs-header", Static).render())
        assert "4 runs" in header and "2 with problems" in header

        # The highlighted broken run shows its whole note below the table.
        detail = screen.query_one("#runs-detail", Static)
        assert detail.has_class("-broken")
        assert f"{WARNING} " in str(detail.render())
        await pilot.press("down", "down")
        assert not detail.has_class("-broken")
        assert "20250102-090000-tiny" in str(detail.render())


async def test_compare_overlays_the_marked_runs(real_root: Path) -> None:
    app = RunsHost(real_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        # One run is not enough: a hint, no plot.
        await pilot.press("down", "down", "space", "c")
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "space")
        assert [row[0] for row in table_rows(screen)] == [" ", " ", MARK, MARK]
        assert "2 marked" in str(screen.query_one("#runs-header", Static).render())

        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        plot = app.screen.query_one(ComparePlot)
        expected = {
            name: load_history(real_root / name)
            for name in ("20250102-090000-tiny", "20250101-090000-tiny")
        }
        assert [c.name for c in plot.curves] == list(expected)
        for curve in plot.curves:
            history = expected[curve.name]
            assert curve.metric == "validation"
            assert curve.epochs == tuple(range(1, len(history) + 1))
            assert curve.accuracy == tuple(e.val_accuracy for e in history)
        assert [len(c.epochs) for c in plot.curves] == [3, 2]

        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        # Unmarking one leaves too few to compare again.
        await pilot.press("space", "c")
        assert isinstance(app.screen, RunsScreen)


async def test_runs_without_readable_metrics_are_left_out_of_comparisons(
    real_root: Path,
) -> None:
    app = RunsHost(real_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        # The first run lost hparams.toml, so its metrics cannot be read; the damaged model
        # of the second does not matter for its curve.
        await pilot.press("space", "down", "space", "c")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "space", "c")
        await pilot.pause()
        assert len(screen.marked) == 3
        assert isinstance(app.screen, CompareScreen)
        plot = app.screen.query_one(ComparePlot)
        assert [c.name for c in plot.curves] == ["20250103-090000-tiny", "20250102-090000-tiny"]


async def test_enter_opens_the_highlighted_run_and_escape_opens_none(real_root: Path) -> None:
    app = RunsHost(real_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.opened == [real_root / "20250102-090000-tiny"]
        # The path is one `resume` accepts: the caller continues the run from it.
        resumed = resume(app.opened[0])  # type: ignore[arg-type]
        assert resumed.epochs_done == 3

    app = RunsHost(real_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert app.opened == [None]


async def test_empty_and_missing_folders(tmp_path: Path) -> None:
    app = RunsHost(tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await listed(pilot)
        assert screen.summaries == ()
        assert "0 runs" in str(screen.query_one("#runs-header", Static).render())
        assert "No runs yet" in str(screen.query_one("#runs-detail", Static).render())
        await pilot.press("space", "c", "enter")
        await pilot.pause()
        assert app.opened == []


# --- compare plot -------------------------------------------------------------------------------
def test_curve_falls_back_to_training_accuracy(real_root: Path) -> None:
    history = load_history(real_root / "20250101-090000-tiny")
    with_val = RunCurve.from_history("a", history)
    assert with_val.metric == "validation"
    stripped = [msgspec.structs.replace(e, val_accuracy=None, val_loss=None) for e in history]
    without = RunCurve.from_history("b", stripped)
    assert without.metric == "train"
    assert without.accuracy == tuple(e.accuracy for e in history)


# --- save-model dialog --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "Type a name"),
        ("   ", "Type a name"),
        ("my model", "space cannot be in the name"),
        ("../escape", "'/' cannot be in the name"),
        (".hidden", "Start the name"),
        ("-rf", "Start the name"),
        ("x" * 65, "at most 64"),
    ],
)
def test_model_name_rules(text: str, problem: str) -> None:
    assert problem in (name_problem(text) or "")


def test_model_name_accepts_safe_names() -> None:
    for name in ("fast-99.2", "run_3", "A", "mine.keras"):
        assert name_problem(name) is None


async def test_save_dialog_rejects_bad_names_then_returns_a_good_one() -> None:
    app = SaveHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SaveModelScreen)
        error = app.screen.query_one("#save-model-error", Label)
        await pilot.press("enter")
        assert "Type a name" in str(error.render())
        await pilot.press(*"my/model")
        assert "'/' cannot be in the name" in str(error.render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.answers == [] and isinstance(app.screen, SaveModelScreen)

        field = app.screen.query_one(Input)
        field.value = ""
        await pilot.press(*"fast-2.keras")
        await pilot.pause()
        assert str(error.render()) == ""
        target = str(app.screen.query_one("#save-model-target", Label).render())
        assert target == "→ models/fast-2.keras"
        await pilot.press("enter")
        await pilot.pause()
        assert app.answers == ["fast-2"]


async def test_save_dialog_asks_before_replacing_and_cancels_with_escape() -> None:
    app = SaveHost(existing=("mine",))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        error = app.screen.query_one("#save-model-error", Label)
        assert "press Enter again to replace it" in str(error.render())
        assert app.answers == []
        await pilot.press("enter")
        await pilot.pause()
        assert app.answers == ["mine"]

    app = SaveHost()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*"kept", "escape")
        await pilot.pause()
        assert app.answers == [None]


# --- snapshots on hand-made runs ----------------------------------------------------------------
FULL_MNIST = DataInfo("path", "/data/mnist.npz", "0f" * 32, 60_000, 10_000)
"""The data the hand-made runs say they trained on."""


def write_run(
    root: Path,
    name: str,
    accuracies: list[tuple[float, float | None]],
    *,
    test: float | None,
    test_samples: int = 10_000,
    seconds: float = 12.0,
    model: bytes | None = None,
    data: DataInfo | None = FULL_MNIST,
    learning_rate: float = 0.001,
    info: dict[str, object] | None = None,
) -> None:
    """A run directory as training leaves it, with fixed figures and no real model.

    `accuracies` holds (train, validation) per epoch; `model` replaces the stand-in last.keras
    (a zip with config.json, all the listing checks), e.g. with truncated bytes; `data` None
    writes run.json as format 1 did (the data as a display string); `info` adds to run.json
    (a lineage, a note, tags).
    """
    path = root / name
    path.mkdir(parents=True)
    stamp, preset = name[:15], name[16:]
    started = datetime.strptime(stamp, "%Y%m%d-%H%M%S")
    validated = any(val is not None for _, val in accuracies)
    hparams = Hyperparams(
        epochs=len(accuracies),
        validation_split=0.1 if validated else 0.0,
        learning_rate=learning_rate,
    )
    (path / HPARAMS_TOML).write_text(dump_toml(hparams))
    run_info = {
        "format": FORMAT if data is not None else 1,
        "preset": preset,
        "started": started.isoformat(),
        "data": asdict(data) if data is not None else "mnist.npz · 60,000 train / 10,000 test",
        "train_samples": 54000,
        "saved": {"epoch": len(accuracies), "iterations": 422 * len(accuracies)},
        "best": None,
        **(info or {}),
    }
    (path / RUN_JSON).write_text(json.dumps(run_info))
    lines = ["epoch,accuracy,epoch_seconds,learning_rate,loss,val_accuracy,val_loss"]
    for epoch, (train, val) in enumerate(accuracies):
        val_cells = f"{val},{1 - val}" if val is not None else ","
        lines.append(f"{epoch},{train},{seconds},0.001,{1 - train},{val_cells}")
    (path / METRICS_CSV).write_text("\n".join(lines) + "\n")
    if test is not None:
        evaluation = {"loss": 1 - test, "accuracy": test, "samples": test_samples}
        (path / EVALUATION).write_text(json.dumps(evaluation))
    if model is None:
        with zipfile.ZipFile(path / LAST_MODEL, "w") as archive:
            archive.writestr("config.json", "{}")
    else:
        (path / LAST_MODEL).write_bytes(model)


@pytest.fixture
def fixed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four hand-made runs under ./runs (relative, so no temporary path reaches the screen)."""
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    write_run(
        root,
        "20250301-091500-default",
        [(0.912, 0.951), (0.962, 0.969), (0.973, 0.976), (0.979, 0.981), (0.983, 0.984)],
        test=0.9861,
        seconds=31.4,
        info={"note": LONG_NOTE, "tags": ["baseline"]},
    )
    write_run(
        root,
        "20250302-140000-fast",
        [(0.951, 0.978), (0.986, 0.988), (0.992, 0.991)],
        test=0.9921,
        seconds=44.0,
    )
    write_run(
        root,
        "20250302-160000-fast",
        [(0.951, 0.978), (0.986, 0.988), (0.990, 0.945)],
        test=0.9934,
        seconds=44.0,
        learning_rate=0.0005,
        info={
            "lineage": {
                "parent_path": "runs/20250302-140000-fast",
                "parent_name": "20250302-140000-fast",
                "parent_epoch": 2,
                "changed": {"learning_rate": [0.001, 0.0005]},
            },
            "note": "lr halved at 2",
            "tags": ["lr-drop"],
        },
    )
    write_run(
        root,
        "20250303-080000-seed",
        [(0.871, None), (0.944, None), (0.962, None), (0.970, None)],
        test=0.9702,
        seconds=9.5,
        data=None,  # recorded before runs kept their data's identity: still listed
    )
    write_run(
        root,
        "20250304-100000-default",
        [(0.905, 0.948), (0.958, 0.966)],
        test=None,
        model=b"PK\x03\x04 cut short by a kill",
    )
    return root


LONG_NOTE = (
    "The baseline every later run is measured against: default preset, full MNIST, five "
    "epochs, no augmentation, trained on the Xeon before the driver update."
)
"""Longer than the note column at 120 columns: the detail shows it whole."""
SIZES = [(120, 40), (80, 24)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_runs_list(
    snap_compare: Callable[..., bool], fixed_runs: Path, size: tuple[int, int]
) -> None:
    # Two runs marked; a branch under its parent; the cursor on the last run, whose note is
    # longer than its column, so the detail shows it whole.
    app = RunsHost(fixed_runs)
    press = ["down", "space", "down", "space", "down", "down"]
    assert snap_compare(app, press=press, terminal_size=size, run_before=listed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_compare(
    snap_compare: Callable[..., bool], fixed_runs: Path, size: tuple[int, int]
) -> None:
    # A run, its branch (drawn from its branch point) and another run; the table below says
    # which settings differ (epochs, learning rate) and what each reached.
    app = RunsHost(fixed_runs)
    press = ["down", "down", "space", "down", "space", "down", "space", "c"]
    assert snap_compare(app, press=press, terminal_size=size, run_before=listed)


async def test_each_compared_run_is_drawn_with_its_own_marker(fixed_runs: Path) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await pilot.press("down", "space", "down", "space", "down", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        plot = app.screen.query_one(ComparePlot)
        names = [curve.name for curve in plot.curves]
        assert len(names) == 3
        (branch,) = [curve for curve in plot.curves if curve.name == "20250302-160000-fast"]
        assert branch.epochs == (2, 3) and branch.shared == 1, "drawn from its branch point"
        # What the plot drew: legend rows ("│ ●● <run name>") and the data area below them.
        lines = plot.render().plain.splitlines()
        legend = {}
        for name in names:
            (row,) = [line for line in lines if f" {name}" in line]
            legend[name] = row.split(name)[0].strip(" │")[-1]
        assert len(set(legend.values())) == len(names), legend
        data_area = "\n".join(line for line in lines if not any(name in line for name in names))
        for curve in plot.curves:
            # Every epoch of a run is a point in that run's marker, and only its points are; a
            # branch's branch point is its parent's, drawn in the parent's marker.
            own_epochs, _ = curve.own
            assert data_area.count(legend[curve.name]) == len(own_epochs), curve.name


async def test_the_test_column_names_the_test_set_when_runs_differ_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    write_run(root, "20250301-091500-default", [(0.97, 0.98)], test=0.9861)
    sample = DataInfo("sample", "bundled sample", "1e" * 32, 6_000, 1_000)
    write_run(
        root, "20250302-091500-default", [(0.97, 0.98)], test=0.9912, test_samples=500, data=sample
    )
    app = RunsHost(root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        assert [s.test_samples for s in screen.summaries] == [500, 10_000]
        on_500, on_10k = (row[5] for row in table_rows(screen))
        assert "99.12%" in on_500 and "500" in on_500
        assert "98.61%" in on_10k and ("10,000" in on_10k or "10k" in on_10k)


async def test_a_run_without_validation_shows_its_best_training_accuracy(
    fixed_runs: Path,
) -> None:
    app = RunsHost(fixed_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await listed(pilot)
        [seed] = [s for s in screen.summaries if s.preset == "seed"]
        assert seed.best_val_accuracy is None
        assert seed.best_accuracy == pytest.approx(0.970)
        row = table_rows(screen)[screen.summaries.index(seed)]
        assert row[4] == "97.00% train", "a training accuracy, said to be one"


async def test_r_marks_the_live_run_and_enter_watches_its_engine(
    real_root: Path, tmp_path: Path
) -> None:
    """A run another engine trains (its lock held, its engine in the registry) is marked live
    in R, a finished one is not; Enter on the live one switches the app to that engine (as
    `mnist-tui attach` does) instead of asking this app's engine to open it."""
    root = tmp_path / "runs"
    finished = shutil.copytree(real_root / "20250101-090000-tiny", root / "20250101-090000-tiny")
    live = shutil.copytree(real_root / "20250102-090000-tiny", root / "20250102-090000-tiny")
    own = ScriptedEngine(state(LOADED))
    theirs = ScriptedEngine(state(FINISHED))
    with own, theirs, RunLock(live, "engine").acquire():
        info = msgspec.structs.replace(
            theirs.info, id=registry.new_engine_id(), pid=os.getpid(), socket=theirs.socket,
            run=str(live),
        )  # fmt: skip
        registry.write_record(info)
        options = AppOptions(Setup(HPARAMS, preset="default", runs_dir=str(root)))
        app = create_app(options, own.connector())
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.handle.client is not None, 10)
            await pilot.press("R")
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            await until(pilot, lambda: not screen.loading and screen.table.row_count == 2, 10)
            cells = {str(key.value): screen.table.get_row(key) for key in screen.table.rows}
            assert str(cells[str(live)][-2]) == LIVE
            assert not any("live" in str(cell) for cell in cells[str(finished)])
            assert "1 live" in str(screen.query_one("#runs-header", Static).render())
            detail = str(screen.query_one("#runs-detail", Static).render())
            assert "An engine holds it: Enter watches it" in detail
            await pilot.press("enter")  # the newest run, the live one, is highlighted
            # The scripted engines greet alike; the other one is in FINISHED, this app's in READY.
            await until(pilot, lambda: app.snapshot.phase is Phase.FINISHED, 10)
            assert app.snapshot.history == theirs.snapshot.history
            assert not [c for c in own.commands if isinstance(c, p.OpenRun)]
            registry.remove_record(info)
