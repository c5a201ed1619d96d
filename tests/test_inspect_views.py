"""Looking inside the model: the layers' health every epoch (recorded, reopened, a dead layer
told once), what the model looks at in a digit, and the clusters; the screens from their keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from app_helpers import app_on_engine, train, until
from textual.app import App
from textual.widgets import Static
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.inspect.problems import LayerProblem
from tui.core.runs.layout import LAYERS_JSONL
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.events import LayerHealthMeasured, ModelDescribed, Notice, TrainingEvent
from tui.screens.browser import PredictionBrowser
from tui.screens.clusters import STEPS, ClustersScreen
from tui.screens.inspect import InspectScreen
from tui.screens.model import ModelScreen, sparkline

TWO = TINY.with_changes(epochs=2)


@pytest.fixture
def controller(mnist_small: MnistData, tmp_path: Path) -> Iterator[TrainingController]:
    made = TrainingController(
        Setup(TWO, runs_dir=str(tmp_path), progress_interval=0.0), data=mnist_small
    )
    made.load()
    yield made
    made.close()


def events_of(controller: TrainingController) -> list[TrainingEvent]:
    seen: list[TrainingEvent] = []
    controller.subscribe(seen.append)
    return seen


def test_every_epoch_measures_every_learning_layer_and_records_it(
    controller: TrainingController,
) -> None:
    seen = events_of(controller)
    controller.claim_round().run()
    described = [e for e in seen if isinstance(e, ModelDescribed)]
    assert [layer.name for layer in described[0].layers][:2] == ["conv1", "pool1"]
    measured = [e for e in seen if isinstance(e, LayerHealthMeasured)]
    assert [m.epoch for m in measured] == [1, 2]
    layers = {f.layer for f in measured[-1].layers}
    assert layers == {"conv1", "hidden", "output"}
    assert measured[0].layers[0].update_ratio is None, "nothing to compare with yet"
    assert all(f.update_ratio and f.update_ratio > 0 for f in measured[1].layers)
    assert controller.snapshot.health == tuple(measured)
    recorded = (Path(controller.snapshot.run) / LAYERS_JSONL).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in recorded] == [1, 2]


def test_a_reopened_run_shows_its_layers_figures(
    controller: TrainingController, mnist_small: MnistData, tmp_path: Path
) -> None:
    controller.claim_round().run()
    run, health = controller.snapshot.run, controller.snapshot.health
    controller.close()
    again = TrainingController(Setup(TWO, runs_dir=str(tmp_path)), data=mnist_small)
    again.load()
    assert again.claim_open_run(run).run() is None
    assert again.snapshot.health == health
    assert [layer.name for layer in again.snapshot.layers][:1] == ["conv1"]
    again.close()


def test_a_run_whose_layers_jsonl_holds_problems_as_sentences_still_shows_them(
    controller: TrainingController, mnist_small: MnistData, tmp_path: Path
) -> None:
    controller.claim_round().run()
    run = controller.snapshot.run
    controller.close()
    dead_hidden = {"layer": "hidden", "weight_norm": 1.5, "update_ratio": None, "finite": True}
    # As mnist-tui wrote it before problems were typed: the sentence the log showed.
    old = [
        {
            "type": "LayerHealthMeasured",
            "epoch": epoch,
            "layers": [{**dead_hidden, "dead_share": 0.75}],
            "problems": [
                "hidden: 75% of its ReLU units output zero for every probe image (dead units)."
            ],
        }
        for epoch in (1, 2)
    ]
    (Path(run) / LAYERS_JSONL).write_text("".join(json.dumps(line) + "\n" for line in old))
    again = TrainingController(Setup(TWO, runs_dir=str(tmp_path)), data=mnist_small)
    again.load()
    assert again.claim_open_run(run).run() is None
    assert [m.problems for m in again.snapshot.health] == [
        (LayerProblem("hidden", "dead units", 0.75),)
    ] * 2
    again.close()


def test_a_dead_layer_is_marked_and_told_once(controller: TrainingController) -> None:
    controller.claim_round(TWO.with_changes(epochs=1)).run()
    hidden = controller.model.get_layer("hidden")
    kernel, bias = hidden.get_weights()
    # No input can make these units fire: zero weights and a bias far below zero.
    hidden.set_weights([np.zeros_like(kernel), np.full_like(bias, -10.0)])
    seen = events_of(controller)
    controller.claim_round(TWO.with_changes(epochs=3)).run()
    measured = [e for e in seen if isinstance(e, LayerHealthMeasured)]
    assert len(measured) == 2
    figures = {f.layer: f for f in measured[-1].layers}
    assert figures["hidden"].dead_share == 1.0
    assert all(
        ("hidden", "dead units") in {(p.layer, p.kind) for p in m.problems} for m in measured
    )
    told = [e for e in seen if isinstance(e, Notice) and "dead units" in e.text]
    assert len(told) == 1, "the log says so once"


def test_what_the_model_looks_at_and_the_clusters(controller: TrainingController) -> None:
    controller.claim_round().run()
    image = controller.data.x_test[0]
    seen = controller.ask(lambda model: model.explain(image, None, "smoothgrad"))
    assert seen.class_index == int(seen.probabilities.argmax())
    assert seen.saliency.shape == (28, 28) and 0 <= seen.saliency.min() <= seen.saliency.max() <= 1
    other = controller.ask(lambda model: model.explain(image, 3, "gradient"))
    assert other.class_index == 3 and not np.array_equal(other.saliency, seen.saliency)
    assert [m.layer for m in seen.maps] == ["conv1"]
    points = controller.ask(lambda model: model.clusters())
    assert points.shape == (len(controller.data.y_test), 2) and points.dtype == np.float32


def test_sparklines_rise_with_their_values() -> None:
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([1e-4, 1e-2, 1.0], log=True) == "▁▅█", "decades apart, evenly spaced"
    assert sparkline([None, 1.0]) == " ▁"


async def test_the_views_open_from_their_keys(mnist_small: MnistData) -> None:
    async with app_on_engine(TWO, mnist_small) as (app, pilot, engine):
        await train(pilot, app)
        await until(pilot, lambda: app.predictions is not None and app.test_images is not None)
        # v then w: what the model looked at in the selected digit.
        await pilot.press("v", "w")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await until(pilot, lambda: screen.seen is not None)
        header = str(screen.query_one("#inspect-header").render())
        assert "what makes it class" in header and "SmoothGrad" in header
        assert "conv1: the channels that fired most" in "\n".join(
            str(w.render()) for w in screen.query("Static")
        )
        first = screen.seen
        await pilot.press("5")
        await until(pilot, lambda: screen.seen is not first)
        assert screen.seen is not None and screen.seen.class_index == 5
        await pilot.press("g")
        await until(
            pilot, lambda: "plain gradient" in str(screen.query_one("#inspect-header").render())
        )
        await pilot.press("escape", "escape")
        # m: the layers and their health.
        await pilot.press("m")
        assert isinstance(app.screen, ModelScreen)
        table = app.screen.query_one("DataTable")
        assert table.row_count == len(engine.controller.snapshot.layers)
        assert str(table.get_row_at(0)[0]) == "conv1"
        await pilot.press("escape")
        # k: the clusters; Enter browses the digits under the cursor.
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ClustersScreen))
        # It opens at once (saying the digits are being projected) and draws them when they come.
        under = app.screen.query_one("#clusters-under", Static)
        await until(pilot, lambda: "Enter browses them" in str(under.render()))
        await pilot.press("enter")
        browser = app.screen
        assert isinstance(browser, PredictionBrowser) and browser.within is not None
        assert "near the cursor" in str(browser.query_one("#browser-header").render())
        assert set(browser.grid.order) <= set(browser.within)


class _Clusters(App[None]):
    def __init__(self, screen: ClustersScreen) -> None:
        super().__init__()
        self.clusters = screen

    def on_mount(self) -> None:
        self.push_screen(self.clusters)


async def test_the_line_under_the_cluster_cursor_counts_every_digit_there() -> None:
    # Five digits of four classes on one spot (the cursor starts at the points' mean, which
    # the far pair puts elsewhere); two far away.
    points = np.array([[0.0, 0.0]] * 5 + [[10.0, 10.0], [10.0, 9.0]])
    labels = np.array([6, 6, 0, 3, 5, 1, 1])
    predicted = np.array([6, 0, 0, 3, 5, 1, 1])
    browsed: list[tuple[np.ndarray, str]] = []

    async def project() -> np.ndarray:
        return points

    screen = ClustersScreen(labels, predicted, lambda i, label: browsed.append((i, label)), project)
    async with _Clusters(screen).run_test(size=(80, 24)) as pilot:
        await pilot.pause()

        def under() -> str:
            return str(screen.query_one("#clusters-under", Static).render())

        assert under().startswith("None under the cursor; the nearest: 7 digits"), under()
        for _ in range(STEPS):
            await pilot.press("shift+left", "shift+down")
        assert under().startswith(
            "Under the cursor: 5 digits (6: 2, 0: 1, 3: 1, 1 of other digits); 1 wrong."
        ), under()
        await pilot.press("enter")
        assert sorted(browsed[-1][0]) == [0, 1, 2, 3, 4]
