"""Pilot tests of the app's wiring: prediction screens, run directories, resume, --model, save."""

from __future__ import annotations

import csv
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from app_helpers import app_on_engine, idle, logged, round_over, toasts, train, until
from textual.widgets import Input
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.platform.distribute import DistributeOptions
from tui.core.runs import files, layout
from tui.core.runs.resume import load_model_file
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.phase import Phase
from tui.screens.browser import PredictionBrowser
from tui.screens.confusion import ConfusionScreen
from tui.screens.draw import DrawScreen
from tui.screens.runs import RunsScreen
from tui.screens.save_model import SaveModelScreen

ONE = TINY.with_changes(epochs=1)


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / layout.METRICS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.fixture(scope="module")
def trained_run(mnist_small: MnistData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with one epoch of TINY, recorded headless as `mnist-tui train` does."""
    root = tmp_path_factory.mktemp("template")
    controller = TrainingController(Setup(ONE, preset="tiny", runs_dir=str(root)), data=mnist_small)
    controller.load()
    controller.claim_round().run()
    controller.close()
    (run,) = run_dirs(root)
    return run


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of `trained_run` inside tmp_path/runs, for a test to change."""
    target = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, target)
    return target


async def test_train_records_a_run_then_v_c_d_s_and_continue(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    models = tmp_path / "models"
    async with app_on_engine(ONE, mnist_small, runs_dir=root, models_dir=str(models)) as (
        app,
        pilot,
        engine,
    ):
        await train(pilot, app)
        await until(pilot, lambda: app.predictions is not None and app.test_images is not None)
        (run,) = run_dirs(root)
        assert app.snapshot.run == str(run)
        assert logged(app, f"Recording this run in {run}")
        assert len(metric_rows(run)) == 1
        assert (run / layout.LAST_MODEL).is_file() and (run / layout.EVALUATION).is_file()
        assert app.predictions is not None
        with np.load(run / layout.PREDICTIONS) as saved:
            np.testing.assert_allclose(saved["probabilities"], app.predictions.probabilities)
        # The browser shows the engine's test images, sent over the socket as they are.
        expected_images = np.rint(mnist_small.x_test[..., 0] * 255).astype(np.uint8)
        np.testing.assert_array_equal(app.test_images, expected_images)

        await pilot.press("v")
        browser = app.screen
        assert isinstance(browser, PredictionBrowser)
        assert browser.predictions is app.predictions
        await pilot.press("escape", "c")
        assert isinstance(app.screen, ConfusionScreen)
        await pilot.press("escape", "d")
        draw = app.screen
        assert isinstance(draw, DrawScreen) and draw.classify is not None
        # A drawing goes to the engine and its probabilities come back.
        probabilities = await draw.classify(np.zeros((1, 28, 28, 1), np.float32))
        assert probabilities is not None
        assert probabilities.shape == (1, 10) and probabilities.sum() == pytest.approx(1)
        await pilot.press("escape")

        # S saves the model under a name; the file reloads and predicts the same.
        await pilot.press("S")
        dialog = app.screen
        assert isinstance(dialog, SaveModelScreen)
        dialog.query_one(Input).value = "mine"
        await pilot.press("enter")
        saved_path = models / "mine.keras"
        await until(pilot, lambda: logged(app, f"model saved to {saved_path}"))
        reloaded = load_model_file(saved_path)
        again = reloaded.predict(mnist_small.x_test[:20], verbose=0)
        np.testing.assert_allclose(again, app.predictions.probabilities[:20], atol=1e-5)

        # t continues the same run: one more row in the same directory, no new directory.
        await train(pilot, app)
        assert engine.controller.snapshot.epochs_done == 2
        assert run_dirs(root) == [run]
        assert [row["epoch"] for row in metric_rows(run)] == ["0", "1"]
        # hparams.toml keeps the length of a round: after a resume, t runs one more.
        assert layout.RunDirectory.open(run).hparams.epochs == 1


async def test_run_files_are_never_written_on_an_event_loop(
    mnist_small: MnistData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a run and updating it fsync files: never on the app's loop, nor the engine's
    (which would stall every viewer), only on the engine's job thread."""
    writes: list[tuple[str, str]] = []
    write_atomic = files.write_atomic

    def spy(target: Path, data: bytes) -> None:
        writes.append((target.name, threading.current_thread().name))
        write_atomic(target, data)

    monkeypatch.setattr(layout, "write_atomic", spy)
    monkeypatch.setattr(files, "write_atomic", spy)
    root = tmp_path / "runs"
    async with app_on_engine(ONE, mnist_small, runs_dir=root) as (app, pilot, _engine):
        await train(pilot, app)
        app.dashboard.panel.query_one("#hp-batch_size", Input).value = "32"
        await train(pilot, app)
        (run,) = run_dirs(root)
        assert {layout.HPARAMS_TOML, layout.RUN_JSON} <= {name for name, _ in writes}
        assert {thread for _, thread in writes} <= {"engine-job_0"}, writes
        assert layout.RunDirectory.open(run).hparams == ONE.with_changes(batch_size=32)


async def test_a_run_directory_that_cannot_be_made_is_one_warning(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    root = tmp_path / "not-a-folder"
    root.write_text("a file where the runs folder should be")
    async with app_on_engine(ONE, mnist_small, runs_dir=root) as (app, pilot, _engine):
        before = app.snapshot.stopped
        await pilot.press("t")
        # The warning shows while training starts (its toast lasts 10 s: a round on a loaded
        # machine can outlast it, so it is looked for before the round ends).
        await until(pilot, lambda: any("No run directory" in t for t in toasts(app)))
        await until(pilot, lambda: round_over(app, before))
        # Training goes on unrecorded.
        assert app.phase is Phase.FINISHED and not app.snapshot.run
        assert logged(app, f"This run is not recorded: cannot create a run directory in {root}")


async def test_without_a_model_the_screens_say_so(mnist_small: MnistData, tmp_path: Path) -> None:
    async with app_on_engine(ONE, mnist_small, runs_dir=tmp_path) as (app, pilot, _engine):
        await pilot.press("v")
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.query("#browser-empty")
        await pilot.press("escape", "c")
        assert isinstance(app.screen, ConfusionScreen)
        await pilot.press("escape", "d")
        assert isinstance(app.screen, DrawScreen) and app.screen.classify is None
        await pilot.press("escape")
        # S without a model is not offered.
        await pilot.press("S")
        assert not isinstance(app.screen, SaveModelScreen)


async def test_resume_redraws_the_run_and_t_continues_it(
    mnist_small: MnistData, run_copy: Path
) -> None:
    async with app_on_engine(ONE, mnist_small, runs_dir=run_copy.parent, resume=run_copy) as (
        app,
        pilot,
        engine,
    ):
        await until(pilot, lambda: app.snapshot.model is not None and app.phase is Phase.READY)
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1]
        assert app.snapshot.epochs_done == 1
        await until(pilot, lambda: app.predictions is not None)
        assert app.dashboard.panel.mode == "model"
        assert app.dashboard.panel.query_one("#hp-conv_filters", Input).disabled
        assert app.dashboard.panel.hyperparams().conv_filters == TINY.conv_filters
        assert logged(app, "t continues at epoch 2")
        await train(pilot, app)
        assert engine.controller.snapshot.epochs_done == 2
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1, 2]
        assert logged(app, "Continuing: epoch 2")
        assert run_dirs(run_copy.parent) == [run_copy]
        assert [row["epoch"] for row in metric_rows(run_copy)] == ["0", "1"]


async def test_runs_screen_enter_resumes_the_run(mnist_small: MnistData, run_copy: Path) -> None:
    async with app_on_engine(ONE, mnist_small, runs_dir=run_copy.parent) as (app, pilot, _engine):
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await until(pilot, lambda: not screen.loading)
        await pilot.press("enter")
        await until(pilot, lambda: app.snapshot.run == str(run_copy) and idle(app))
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1]


async def test_model_flag_browses_without_training(mnist_small: MnistData, run_copy: Path) -> None:
    model = run_copy / layout.LAST_MODEL
    async with app_on_engine(ONE, mnist_small, model=model) as (app, pilot, _engine):
        await until(pilot, lambda: app.predictions is not None and app.test_images is not None)
        assert app.phase is Phase.READY and not app.snapshot.history
        assert logged(app, f"opened {model}")
        await pilot.press("v")
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.predictions is app.predictions
        await pilot.press("escape", "d")
        assert isinstance(app.screen, DrawScreen) and app.screen.classify is not None


async def test_a_bad_model_or_a_corrupt_run_is_one_line(
    mnist_small: MnistData, run_copy: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    async with app_on_engine(ONE, mnist_small, model=junk) as (app, pilot, _engine):
        await until(pilot, lambda: logged(app, "cannot be loaded"))
        assert app.phase is Phase.READY and app.predictions is None
        assert logged(app, f"model file {junk} cannot be loaded")

    (run_copy / layout.LAST_MODEL).write_bytes(b"\0" * 100)
    root = run_copy.parent
    async with app_on_engine(ONE, mnist_small, runs_dir=root, resume=run_copy) as (
        app,
        pilot,
        _engine,
    ):
        await until(pilot, lambda: logged(app, "cannot be loaded"))
        assert app.phase is Phase.READY and app.snapshot.model is None and app.is_running
        await until(pilot, lambda: any("cannot be loaded" in t for t in toasts(app)))
        # Still usable: a fresh model trains into a new run directory.
        await train(pilot, app)
        assert app.phase is Phase.FINISHED
        assert len(run_dirs(root)) == 2


async def test_a_folder_given_as_model_says_it_is_a_folder(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    async with app_on_engine(ONE, mnist_small, model=tmp_path) as (app, pilot, _engine):
        await until(pilot, lambda: logged(app, "is a folder"))
        assert not logged(app, "does not exist")


async def test_strategy_and_device_panel(mnist_small: MnistData, tmp_path: Path) -> None:
    import tensorflow as tf

    # Mirrored over the one CPU: the strategy's code path, without splitting the CPU (which
    # would change this test process's devices for the tests after it).
    mirrored = DistributeOptions("mirrored", ("/cpu:0",))
    async with app_on_engine(ONE, mnist_small, runs_dir=tmp_path, distribute=mirrored) as (
        app,
        pilot,
        engine,
    ):
        assert isinstance(engine.controller.strategy, tf.distribute.MirroredStrategy)
        assert app.snapshot.device.startswith("MirroredStrategy")
        assert app.dashboard.devices.report is not None
        assert not app.dashboard.devices.display
        await pilot.press("i")
        assert app.dashboard.devices.display
        before = app.snapshot.devices
        await train(pilot, app)
        assert app.phase is Phase.FINISHED
        # A fresh report after each epoch (the memory in use moves as training runs).
        await until(pilot, lambda: app.snapshot.devices is not before)
        assert app.dashboard.devices.report is not None
        assert app.dashboard.devices.report.training_on.startswith("MirroredStrategy")
