"""Pilot tests of the app's wiring: prediction screens, run directories, resume, --model, save."""

from __future__ import annotations

import csv
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_app import SIZE, is_idle, log_text, start_training, wait_until
from textual.widgets import Input
from tiny import TINY

from tui.app import MnistApp, create_app
from tui.core import runs
from tui.core.data import MnistData
from tui.core.distribute import DistributeOptions
from tui.core.session import TrainingSession
from tui.screens.browser import PredictionBrowser
from tui.screens.confusion import ConfusionScreen
from tui.screens.draw import DrawScreen
from tui.screens.runs import RunsScreen
from tui.screens.save_model import SaveModelScreen


def make_app(data: MnistData, root: Path, **options: Any) -> MnistApp:
    return create_app(
        TINY.with_changes(epochs=1), data=data, progress_interval=0.0, runs_dir=root, **options
    )


def logged(app: MnistApp, text: str) -> bool:
    """`text` is in the log, however the log wrapped it (long paths break across lines)."""
    return "".join(text.split()) in "".join(log_text(app).split())


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / runs.METRICS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.fixture(scope="module")
def trained_run(mnist_small: MnistData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with one epoch of TINY, recorded headless as `mnist-tui train` does."""
    hparams = TINY.with_changes(epochs=1)
    run = runs.RunDirectory.create(
        tmp_path_factory.mktemp("template"), "tiny", hparams, mnist_small
    )
    session = TrainingSession(hparams, mnist_small, callbacks=run.callbacks())
    session.train()
    run.save_evaluation(session.evaluate(), session.epochs_done)
    run.save_predictions(session.predict())
    return run.path


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
    app = make_app(mnist_small, root, models_dir=tmp_path / "models")
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app) and app.predictions is not None)
        assert app.state == "finished"
        (run,) = run_dirs(root)
        assert app.run_dir is not None and app.run_dir.path == run
        assert logged(app, f"Recording this run in {run}")
        assert len(metric_rows(run)) == 1
        assert (run / runs.LAST_MODEL).is_file() and (run / runs.EVALUATION).is_file()
        with np.load(run / runs.PREDICTIONS) as saved:
            np.testing.assert_allclose(saved["probabilities"], app.predictions.probabilities)

        await pilot.press("v")
        browser = app.screen
        assert isinstance(browser, PredictionBrowser)
        assert browser.predictions is app.predictions and browser.images is mnist_small.x_test
        await pilot.press("escape")
        await pilot.press("c")
        assert isinstance(app.screen, ConfusionScreen)
        await pilot.press("escape")
        await pilot.press("d")
        draw = app.screen
        assert isinstance(draw, DrawScreen) and draw.predict_fn is not None
        assert draw.predict_fn(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)
        await pilot.press("escape")

        # S saves the model under a name; the file reloads and predicts the same.
        await pilot.press("S")
        dialog = app.screen
        assert isinstance(dialog, SaveModelScreen)
        dialog.query_one(Input).value = "mine"
        await pilot.press("enter")
        saved_path = tmp_path / "models" / "mine.keras"
        await wait_until(pilot, lambda: logged(app, f"model saved to {saved_path}"))
        reloaded = runs.load_model_file(saved_path)
        probabilities = reloaded.predict(mnist_small.x_test[:20], verbose=0)
        np.testing.assert_allclose(probabilities, app.predictions.probabilities[:20], atol=1e-5)

        # t continues the same run: one more row in the same directory, no new directory.
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.session is not None and app.session.epochs_done == 2
        assert run_dirs(root) == [run]
        assert [row["epoch"] for row in metric_rows(run)] == ["0", "1"]
        # hparams.toml keeps the length of a round: after a resume, t runs one more.
        assert runs.RunDirectory.open(run).hparams.epochs == 1


async def test_run_files_are_written_by_the_training_worker(
    mnist_small: MnistData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a run and updating its hparams.toml fsync files: never on the UI thread."""
    writes: list[tuple[str, int]] = []
    write_atomic = runs.write_atomic

    def spy(target: Path, data: bytes) -> None:
        writes.append((target.name, threading.get_ident()))
        write_atomic(target, data)

    monkeypatch.setattr(runs, "write_atomic", spy)
    ui_thread = threading.get_ident()  # the test runs on the app's event loop
    root = tmp_path / "runs"
    app = make_app(mnist_small, root)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        (run,) = run_dirs(root)
        assert app.run_dir is not None and app.run_dir.path == run
        assert {runs.HPARAMS_TOML, runs.RUN_JSON} <= {name for name, _ in writes}
        assert ui_thread not in {thread for _, thread in writes}
        # Continuing with another batch size rewrites hparams.toml, again off the UI thread.
        writes.clear()
        app.panel.query_one("#hp-batch_size", Input).value = "32"
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "finished"
        assert runs.HPARAMS_TOML in {name for name, _ in writes}
        assert ui_thread not in {thread for _, thread in writes}
        assert runs.RunDirectory.open(run).hparams == TINY.with_changes(epochs=1, batch_size=32)


async def test_a_run_directory_that_cannot_be_made_is_one_warning(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    root = tmp_path / "not-a-folder"
    root.write_text("a file where the runs folder should be")
    app = make_app(mnist_small, root)
    async with app.run_test(size=SIZE) as pilot:
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        # Training goes on unrecorded.
        assert app.state == "finished" and app.run_dir is None
        assert logged(app, f"This run is not recorded: cannot create a run directory in {root}")
        await wait_until(
            pilot, lambda: any(n.title == "No run directory" for n in app._notifications)
        )


async def test_without_a_model_the_screens_say_so(mnist_small: MnistData, tmp_path: Path) -> None:
    app = make_app(mnist_small, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.press("v")
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.query("#browser-empty")
        await pilot.press("escape", "c")
        assert isinstance(app.screen, ConfusionScreen)
        await pilot.press("escape", "d")
        assert isinstance(app.screen, DrawScreen) and app.screen.predict_fn is None
        await pilot.press("escape")
        # S without a model is not offered.
        await pilot.press("S")
        assert not isinstance(app.screen, SaveModelScreen)


async def test_resume_redraws_the_run_and_t_continues_it(
    mnist_small: MnistData, run_copy: Path
) -> None:
    app = make_app(mnist_small, run_copy.parent, resume_path=run_copy)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session is not None and app.state == "ready")
        assert [e.epoch for e in app.curves.epochs] == [1]
        assert app.status.epoch == 1 and app.predictions is not None
        assert app.panel.mode == "model"
        assert app.panel.query_one("#hp-conv_filters", Input).disabled
        assert app.panel.hyperparams().conv_filters == TINY.conv_filters
        assert logged(app, "t continues at epoch 2")
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.session.epochs_done == 2
        assert [e.epoch for e in app.curves.epochs] == [1, 2]
        assert logged(app, "Continuing: epoch 2")
        assert run_dirs(run_copy.parent) == [run_copy]
        assert [row["epoch"] for row in metric_rows(run_copy)] == ["0", "1"]


async def test_runs_screen_enter_resumes_the_run(mnist_small: MnistData, run_copy: Path) -> None:
    app = make_app(mnist_small, run_copy.parent)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_until(pilot, lambda: not screen.loading)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.session is not None and app.state == "ready")
        assert app.run_dir is not None and app.run_dir.path == run_copy
        assert [e.epoch for e in app.curves.epochs] == [1]


async def test_model_flag_browses_without_training(mnist_small: MnistData, run_copy: Path) -> None:
    model = run_copy / runs.LAST_MODEL
    app = make_app(mnist_small, run_copy.parent, model_path=model)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.predictions is not None)
        assert app.state == "ready" and app.session is None
        assert logged(app, f"opened {model}")
        await pilot.press("v")
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.predictions is app.predictions
        await pilot.press("escape", "d")
        assert isinstance(app.screen, DrawScreen) and app.screen.predict_fn is not None


async def test_a_bad_model_or_a_corrupt_run_is_one_line(
    mnist_small: MnistData, run_copy: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    app = make_app(mnist_small, run_copy.parent, model_path=junk)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: logged(app, "cannot be loaded"))
        assert app.state == "ready" and app.predictions is None
        assert logged(app, f"model file {junk} cannot be loaded")

    (run_copy / runs.LAST_MODEL).write_bytes(b"\0" * 100)
    app = make_app(mnist_small, run_copy.parent, resume_path=run_copy)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: logged(app, "cannot be loaded"))
        assert app.state == "ready" and app.session is None and app.is_running
        # notify() posts a message: the toast is there a moment after the log line.
        await wait_until(
            pilot, lambda: any("cannot be loaded" in n.message for n in app._notifications)
        )
        # Still usable: a fresh model trains into a new run directory.
        await pilot.press("t")
        await wait_until(pilot, lambda: app.state == "training" or is_idle(app))
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "finished"
        assert len(run_dirs(run_copy.parent)) == 2


async def test_strategy_and_device_panel(mnist_small: MnistData, tmp_path: Path) -> None:
    import tensorflow as tf

    made: list[Any] = []
    prepared: list[bool] = []

    class OneCpuMirrored(DistributeOptions):
        def prepare(self) -> None:
            prepared.append(True)

        def make_strategy(self) -> Any:
            made.append(tf.distribute.MirroredStrategy(["/cpu:0"]))
            return made[-1]

    app = make_app(mnist_small, tmp_path / "runs", distribute=OneCpuMirrored())
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        assert prepared and app.strategy is made[0]
        assert app.status.device.startswith("MirroredStrategy")
        assert app.devices.report is not None
        assert not app.devices.display
        await pilot.press("i")
        assert app.devices.display
        app.devices.report = None  # so that only the report after an epoch can fill it again
        await start_training(pilot, app)
        await wait_until(pilot, lambda: is_idle(app))
        assert app.state == "finished"
        assert app.session is not None and app.session.strategy is made[0]
        await wait_until(pilot, lambda: app.devices.report is not None)
        assert app.devices.report.training_on.startswith("MirroredStrategy")


def test_cli_passes_app_flags_and_refuses_what_the_app_cannot_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tui.app
    from tui.cli import main

    seen: dict[str, Any] = {}

    def fake_run_app(hparams: Any, **options: Any) -> int:
        seen.update(options)
        return 0

    monkeypatch.setattr(tui.app, "run_app", fake_run_app)
    run = tmp_path / "run"
    argv = ["--resume", str(run), "--runs-dir", str(tmp_path), "--strategy", "mirrored"]
    assert main(argv) == 0
    assert seen["resume_path"] == run and seen["runs_dir"] == tmp_path
    assert seen["distribute"] == DistributeOptions("mirrored")
    assert seen["tensorboard"] is False
    assert main(["--tensorboard"]) == 0 and seen["tensorboard"] is True
    assert main(["--model", "m.keras"]) == 0 and seen["model_path"] == Path("m.keras")
    assert main(["--resume", str(run), "--model", "m.keras"]) == 2
    assert main(["--strategy", "multiworker"]) == 2
