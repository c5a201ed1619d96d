"""Snapshots of the views inside the model (what it looks at, its layers, the clusters), at two
sizes, from a scripted engine that answers with fixed figures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from app_helpers import until
from scripted_engine import ScriptedEngine
from test_snapshots_app import FINISHED, HPARAMS, state
from textual.pilot import Pilot
from textual.worker import WorkerState

from tui.app import MnistApp, create_app
from tui.core.data.mnist import load_sample
from tui.core.inspect.problems import LayerProblem
from tui.core.settings.presets import preset
from tui.core.training.budget import estimate
from tui.core.training.events import (
    LayerFigures,
    LayerHealthMeasured,
    LayerInfo,
    ModelDescribed,
    PredictionsReady,
)
from tui.engine import protocol as p
from tui.engine.arrays import pack
from tui.screens.browser import PredictionBrowser
from tui.screens.clusters import ClustersScreen
from tui.screens.inspect import InspectScreen

SIZES = [(80, 24), (120, 40)]
SAMPLE = load_sample()
IMAGES = np.rint(SAMPLE.x_test[:500, ..., 0] * 255).astype(np.uint8)
LABELS = SAMPLE.y_test[:500]
RNG = np.random.default_rng(7)
PREDICTED = np.where(RNG.random(500) < 0.06, (LABELS + 1) % 10, LABELS).astype(np.uint8)
PROBABILITIES = np.full((500, 10), 0.01, np.float32)
PROBABILITIES[np.arange(500), PREDICTED] = 0.91
CENTRES = RNG.normal(scale=6.0, size=(10, 2))
POINTS = (CENTRES[LABELS] + RNG.normal(size=(500, 2))).astype(np.float32)

LAYERS = (
    LayerInfo("conv1", "Conv2D", (None, 26, 26, 32), 320, True),
    LayerInfo("pool1", "MaxPooling2D", (None, 13, 13, 32), 0, True),
    LayerInfo("conv2", "Conv2D", (None, 11, 11, 64), 18496, True),
    LayerInfo("pool2", "MaxPooling2D", (None, 5, 5, 64), 0, True),
    LayerInfo("flatten", "Flatten", (None, 1600), 0, True),
    LayerInfo("hidden", "Dense", (None, 128), 204928, True),
    LayerInfo("output", "Dense", (None, 10), 1290, True),
)


def health(epoch: int) -> LayerHealthMeasured:
    decay = 0.5**epoch
    figures = (
        LayerFigures("conv1", 3.1 + 0.1 * epoch, None if epoch == 1 else 0.2 * decay, 0.0, True),
        LayerFigures("conv2", 8.4 + 0.3 * epoch, None if epoch == 1 else 0.3 * decay, 0.02, True),
        LayerFigures("hidden", 11.0 + epoch, None if epoch == 1 else 0.4 * decay, 0.55, True),
        LayerFigures("output", 2.5, None if epoch == 1 else 0.1 * decay, None, True),
    )
    return LayerHealthMeasured(epoch, figures, (LayerProblem("hidden", "dead units", 0.55),))


INSIDE = [*FINISHED, ModelDescribed(LAYERS), *(health(n) for n in range(1, 6))]


def answer(command: p.Command) -> p.Reply:
    if isinstance(command, p.GetPredictions):
        value: Any = p.Arrays(pack(PROBABILITIES), pack(LABELS, "uint8"), 1)
    elif isinstance(command, p.GetTestImages):
        value = p.Arrays(pack(IMAGES, "uint8"), pack(LABELS, "uint8"))
    elif isinstance(command, p.GetClusters):
        value = p.Arrays(pack(POINTS), pack(LABELS, "uint8"))
    elif isinstance(command, p.Explain):
        ys, xs = np.mgrid[0:28, 0:28]
        heat = np.exp(-((ys - 12) ** 2 + (xs - 15) ** 2) / 40.0).astype(np.float32)
        fixed = np.random.default_rng(3)  # the same tiles however often it is asked
        tiles = tuple(
            p.Tile(layer, channel, 0.8 - 0.1 * i, pack(tile))
            for layer, side in (("conv1", 26), ("conv2", 11))
            for i, channel in enumerate((3, 17, 5, 9))
            for tile in [fixed.random((side, side)).astype(np.float32)]
        )
        value = p.Explanation(pack(PROBABILITIES[0]), 4, pack(heat), tiles)
    else:
        return p.Reply(command.id, error="scripted")
    return p.Reply(command.id, value=value)


@pytest.fixture
def app() -> Iterator[MnistApp]:
    engine = ScriptedEngine(state(INSIDE), answer).__enter__()
    yield create_app(engine.options, engine.connector())
    engine.__exit__(None, None, None)


async def ready(pilot: Pilot[None]) -> None:
    app: Any = pilot.app
    await until(
        pilot,
        lambda: app.handle.client and app.predictions is not None and app.test_images is not None,
    )
    await pilot.pause()


def keys(*pressed: str) -> Any:
    async def run_before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press(*pressed)
        for _ in range(50):
            screen: Any = pilot.app.screen
            if getattr(screen, "seen", True) is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_what_the_model_looks_at(snap_compare: Any, app: MnistApp, size: Any) -> None:
    assert snap_compare(app, terminal_size=size, run_before=keys("v", "w"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_the_layers(snap_compare: Any, app: MnistApp, size: Any) -> None:
    assert snap_compare(app, terminal_size=size, run_before=keys("m"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_the_clusters(snap_compare: Any, app: MnistApp, size: Any) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press("k")
        for _ in range(250):  # the screen opens at once; the points follow
            if "Enter browses" in str(pilot.app.screen.query_one("#clusters-under").render()):
                break
            await pilot.pause(0.02)
        await pilot.press("right", "up")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_the_scripted_model_is_the_default_preset() -> None:
    """The fixed layers are the ones the default preset builds, so the snapshot tells no tale."""
    assert preset("default") == HPARAMS
    assert sum(layer.params for layer in LAYERS) == estimate(HPARAMS).params


async def test_esc_closes_the_clusters_screen_while_the_engine_is_still_projecting() -> None:
    release = threading.Event()

    def slow(command: p.Command) -> p.Reply:
        if isinstance(command, p.GetClusters):
            assert release.wait(30)
        return answer(command)

    with ScriptedEngine(state(INSIDE), slow) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await ready(pilot)
                await asyncio.wait_for(pilot.press("k"), 10)
                await until(pilot, lambda: isinstance(app.screen, ClustersScreen), 10)
                await asyncio.wait_for(pilot.press("escape"), 10)
                await until(pilot, lambda: not isinstance(app.screen, ClustersScreen), 10)
            finally:
                release.set()
            await pilot.pause()
            assert not isinstance(app.screen, ClustersScreen), "the late answer reopened nothing"


async def test_a_question_whose_screen_closed_before_the_answer_is_dropped_cleanly() -> None:
    """`w` asks the engine; esc closes the screen before it answers. The request is cancelled
    with the screen: the late answer writes to no widget, and nothing says anything went wrong."""
    asked, release = threading.Event(), threading.Event()

    def slow(command: p.Command) -> p.Reply:
        if isinstance(command, p.Explain):
            asked.set()
            assert release.wait(30)
        return answer(command)

    with ScriptedEngine(state(INSIDE), slow) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            try:
                await ready(pilot)
                await pilot.press("v", "w")
                await until(pilot, lambda: isinstance(app.screen, InspectScreen), 10)
                inspect = app.screen
                assert await asyncio.to_thread(asked.wait, 10)
                (worker,) = [w for w in app.workers if w.node is inspect]
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, InspectScreen), 10)
            finally:
                release.set()
            # Replies come in order: once a later command is answered, the late one has arrived.
            assert app.handle.client is not None
            await app.handle.client.request(p.Pause)
            await pilot.pause()
            assert worker.state is WorkerState.CANCELLED
            assert app.is_running and isinstance(app.screen, PredictionBrowser)
            assert not app.screen.query("Toast") and inspect.seen is None


async def test_news_from_the_engine_reaches_the_screens_that_are_open() -> None:
    """The model screen and the browser follow the app's snapshot while they are open: a new
    epoch's health redraws the layers, new predictions redraw the browser's verdicts."""
    better = np.full((500, 10), 0.01, np.float32)
    better[np.arange(500), LABELS] = 0.91  # every digit right
    current = {"probabilities": PROBABILITIES}

    def answers(command: p.Command) -> p.Reply:
        if isinstance(command, p.GetPredictions):
            arrays = p.Arrays(pack(current["probabilities"]), pack(LABELS, "uint8"), 2)
            return p.Reply(command.id, value=arrays)
        return answer(command)

    with ScriptedEngine(state(INSIDE), answers) as engine:
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)

            def header(selector: str) -> str:
                return str(app.screen.query_one(selector).render())

            await pilot.press("m")
            assert "health after 5 epochs" in header("#model-header")
            engine.emit(health(6))
            await until(pilot, lambda: "health after 6 epochs" in header("#model-header"), 10)

            await pilot.press("escape", "v")
            assert isinstance(app.screen, PredictionBrowser)
            wrong = int((PREDICTED != LABELS).sum())
            assert f"accuracy {1 - wrong / 500:.1%}" in header("#browser-header")
            current["probabilities"] = better
            engine.emit(PredictionsReady(500, 1.0, 2))
            await until(pilot, lambda: "accuracy 100.0%" in header("#browser-header"), 10)
            await pilot.press("m")  # misclassified only: none left
            assert "0 of 500" in header("#browser-header")
