"""Pilot and snapshot tests of the prediction browser, confusion matrix and draw screens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import until
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Static
from tiny import TINY

from tui.core.data.mnist import MnistData, load_sample
from tui.core.data.preprocess import preprocess_drawing
from tui.core.inspect.predictions import PredictionFilter, Predictions, PredictionSort
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.events import StopReason
from tui.screens.browser import NO_MODEL, PredictionBrowser
from tui.screens.confusion import ConfusionScreen
from tui.screens.draw import DrawScreen
from tui.widgets.canvas import Canvas
from tui.widgets.digit import DigitCard, DigitGrid, ProbabilityBars


class ScreenHost(App[None]):
    """A bare app that shows one screen, as the main app will when a key is pressed."""

    def __init__(self, make_screen: Callable[[], Screen[None]]) -> None:
        super().__init__()
        self.make_screen = make_screen

    def on_mount(self) -> None:
        self.push_screen(self.make_screen())


def fake_predictions(labels: np.ndarray, seed: int = 0) -> Predictions:
    """Probabilities as a mediocre model would give: ~10% wrong, and 4s often taken for 9s.

    The errors are deliberate and random, so every filter has something to find.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    target = labels.astype(np.intp).copy()
    wrong = rng.random(n) < 0.08
    target[wrong] = (target[wrong] + rng.integers(1, 10, int(wrong.sum()))) % 10
    fours = np.flatnonzero(labels == 4)
    target[fours[::4]] = 9
    logits = rng.normal(size=(n, 10))
    logits[np.arange(n), target] += rng.uniform(2.5, 7.0, n)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return Predictions((exp / exp.sum(axis=1, keepdims=True)).astype(np.float32), labels)


def banded_predict(images: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for a model: softmax of the ink in ten horizontal bands."""
    ink = images[..., 0].reshape(len(images), 28, 28)[:, 4:24].reshape(len(images), 10, 56)
    logits = ink.sum(axis=2) / 4.0
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


async def banded(images: np.ndarray) -> np.ndarray:
    """`banded_predict` as the draw screen asks its model: awaited."""
    return banded_predict(images)


@pytest.fixture
def predictions(mnist_small: MnistData) -> Predictions:
    return fake_predictions(mnist_small.y_test)


def browser_app(data: MnistData, predictions: Predictions, **kwargs: object) -> ScreenHost:
    return ScreenHost(lambda: PredictionBrowser(predictions, data.x_test, **kwargs))  # type: ignore[arg-type]


def visible_text(app: App[None], selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


# --- browser ------------------------------------------------------------------------------------
async def test_browser_moves_by_digit_row_and_page(
    mnist_small: MnistData, predictions: Predictions
) -> None:
    app = browser_app(mnist_small, predictions)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one(DigitGrid)
        assert isinstance(app.screen, PredictionBrowser)
        assert (grid.columns, grid.rows) == (5, 4)
        assert grid.selected_index == 0
        await pilot.press("right", "right", "down")
        assert grid.selected_index == 2 + grid.columns
        await pilot.press("pagedown")
        assert grid.selected_index == 2 + grid.columns + grid.page_size
        await pilot.press("end")
        assert grid.selected_index == len(mnist_small.y_test) - 1
        await pilot.press("down")  # already on the last digit: stays there
        assert grid.selected_index == len(mnist_small.y_test) - 1
        await pilot.press("home", "left", "up")
        assert grid.selected_index == 0

        # The detail pane follows the cursor, with the verdict and the three likeliest classes.
        await pilot.press("home", "right")
        await pilot.pause()
        caption = visible_text(app, "#detail-caption")
        label, guess = int(mnist_small.y_test[1]), int(predictions.predicted[1])
        assert caption.startswith(f"#1  true {label}  predicted {guess}")
        assert ("✓" if label == guess else "✗") in caption
        bars = str(app.screen.query_one("#detail-bars").render())
        expected_top = np.argsort(-predictions.probabilities[1], kind="stable")[:3]
        assert [int(line[0]) for line in bars.splitlines()] == expected_top.tolist()


async def test_browser_filters_match_numpy(
    mnist_small: MnistData, predictions: Predictions
) -> None:
    labels = mnist_small.y_test
    guesses = predictions.probabilities.argmax(axis=1)
    app = browser_app(mnist_small, predictions)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one(DigitGrid)

        await pilot.press("m")
        await pilot.pause()
        wrong = np.flatnonzero(guesses != labels)
        assert grid.order.tolist() == wrong.tolist()
        assert "misclassified" in visible_text(app, "#browser-header")
        subtitles = [str(card.border_subtitle) for card in app.screen.query(DigitCard)]
        assert subtitles and all("✗" in s for s in subtitles)

        # m, then 4, then p 9: every 4 that was taken for a 9.
        await pilot.press("4", "p", "9")
        await pilot.pause()
        fours_as_nines = np.flatnonzero((labels == 4) & (guesses == 9))
        assert len(fours_as_nines) > 3
        assert grid.order.tolist() == fours_as_nines.tolist()
        assert "true 4 → predicted 9" in visible_text(app, "#browser-header")

        await pilot.press("m")  # misclassified off: same set, since 4 != 9
        await pilot.press("4")  # the true class toggles off: every digit predicted 9
        await pilot.pause()
        assert grid.order.tolist() == np.flatnonzero(guesses == 9).tolist()

        await pilot.press("a", "o")
        await pilot.pause()
        confidence = predictions.probabilities.max(axis=1)
        assert grid.order.tolist() == np.argsort(confidence, kind="stable").tolist()
        assert "least confident first" in visible_text(app, "#browser-header")


async def test_browser_go_to_index_leaves_a_filter_that_hides_it(
    mnist_small: MnistData, predictions: Predictions
) -> None:
    correct = int(np.flatnonzero(predictions.predicted == mnist_small.y_test)[40])
    app = browser_app(mnist_small, predictions, filter=PredictionFilter(misclassified=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one(DigitGrid)
        await pilot.press("g", *str(correct), "enter")
        await pilot.pause()
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.prediction_filter.is_all
        assert grid.selected_index == correct

        # An out-of-range index is refused in the dialog, with a message.
        await pilot.press("g", "9", "9", "9", "9", "enter")
        await pilot.pause()
        assert "use 0 to 499" in visible_text(app, "#goto-error")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, PredictionBrowser)
        assert grid.selected_index == correct


async def test_browser_mouse_selects_a_card(
    mnist_small: MnistData, predictions: Predictions
) -> None:
    app = browser_app(mnist_small, predictions, sort=PredictionSort.LOSS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one(DigitGrid)
        cards = list(app.screen.query(DigitCard))
        assert await pilot.click(cards[7])
        assert grid.selected_index == int(grid.order[7])
        assert cards[7].has_class("-selected")
        assert sum(card.has_class("-selected") for card in cards) == 1


async def test_browser_renders_only_one_page_of_ten_thousand(mnist_small: MnistData) -> None:
    images = np.tile(mnist_small.x_test, (20, 1, 1, 1))
    labels = np.tile(mnist_small.y_test, 20)
    app = ScreenHost(lambda: PredictionBrowser(fake_predictions(labels), images))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one(DigitGrid)
        assert len(app.screen.query(DigitCard)) == grid.page_size == 6
        for _ in range(5):
            await pilot.press("pagedown")
        await pilot.press("end")
        await pilot.pause()
        assert grid.selected_index == 9999
        assert len(app.screen.query(DigitCard)) == 6


@pytest.mark.parametrize(
    "make",
    [
        lambda: PredictionBrowser(None, None),
        lambda: ConfusionScreen(None, None),
    ],
    ids=["browser", "confusion"],
)
async def test_without_a_model_the_screens_say_how_to_get_one(
    make: Callable[[], Screen[None]],
) -> None:
    app = ScreenHost(make)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        texts = [str(w.render()) for w in app.screen.query(Static)]
        assert NO_MODEL in texts
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PredictionBrowser | ConfusionScreen)


# --- confusion matrix ---------------------------------------------------------------------------
async def test_confusion_counts_and_enter_on_a_cell(
    mnist_small: MnistData, predictions: Predictions
) -> None:
    labels = mnist_small.y_test.astype(np.intp)
    guesses = predictions.probabilities.argmax(axis=1)
    counts = np.bincount(labels * 10 + guesses, minlength=100).reshape(10, 10)
    app = ScreenHost(lambda: ConfusionScreen(predictions, mnist_small.x_test))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        for true in range(10):
            row = [str(cell).strip() for cell in table.get_row_at(true)]
            shown = [int(cell.strip("[]")) for cell in row[:10]]
            assert shown == counts[true].tolist()
            assert row[true] == f"[{counts[true, true]}]"
        assert f"accuracy {predictions.accuracy:.1%}" in visible_text(app, "#confusion-header")

        # Walk from wherever the cursor starts to (true 4, predicted 9), as a person would.
        start = table.cursor_coordinate
        moves = ["down" if start.row < 4 else "up"] * abs(4 - start.row)
        moves += ["right" if start.column < 9 else "left"] * abs(9 - start.column)
        await pilot.press(*moves, "enter")
        await pilot.pause()
        browser = app.screen
        assert isinstance(browser, PredictionBrowser)
        assert browser.prediction_filter == PredictionFilter.pair(4, 9)
        grid = browser.query_one(DigitGrid)
        assert grid.order.tolist() == np.flatnonzero((labels == 4) & (guesses == 9)).tolist()
        assert len(grid.order) == counts[4, 9]

        # Escape goes back to the matrix; the recall column opens a whole true class.
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfusionScreen)
        await pilot.press("right", "enter")
        await pilot.pause()
        assert isinstance(app.screen, PredictionBrowser)
        assert app.screen.prediction_filter == PredictionFilter(true=4)


# --- drawing ------------------------------------------------------------------------------------
async def test_canvas_keyboard_drawing() -> None:
    app = ScreenHost(lambda: DrawScreen(banded))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        canvas = app.screen.query_one(Canvas)
        assert canvas.zoom == 1 and canvas.cursor == (14, 14)
        await pilot.press("left_square_bracket", "space")  # brush 1, one pixel
        await pilot.press("shift+right", "shift+right", "down", "space")
        await app.workers.wait_for_complete()
        await pilot.pause()
        expected = np.zeros((28, 28), dtype=np.float32)
        expected[14, 14:17] = 1.0
        expected[15, 16] = 1.0
        np.testing.assert_array_equal(canvas.pixels, expected)
        screen = app.screen
        assert isinstance(screen, DrawScreen)
        assert screen.last_probabilities is not None
        np.testing.assert_allclose(
            screen.last_probabilities,
            banded_predict(preprocess_drawing(expected)[np.newaxis])[0],
            rtol=1e-5,
        )
        await pilot.press("right_square_bracket", "right_square_bracket", "x")
        assert canvas.brush == 3
        assert canvas.pixels[14:17, 15:18].sum() == 0  # a 3x3 eraser around (15, 16)
        await pilot.press("c")
        await pilot.pause()
        assert not canvas.pixels.any() and screen.last_probabilities is None


async def test_why_after_clearing_asks_for_a_drawing_instead_of_explaining_the_old_one() -> None:
    asked: list[tuple[object, ...]] = []

    async def explain(*request: object) -> Any:
        asked.append(request)
        raise AssertionError("nothing is drawn: the model must not be asked")

    app = ScreenHost(lambda: DrawScreen(banded, explain=explain))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("space")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(screen, DrawScreen) and screen.last_probabilities is not None
        await pilot.press("c", "w")
        await pilot.pause()
        assert app.screen is screen and not asked


async def test_clearing_drops_a_prediction_already_running() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def held_predict(images: np.ndarray) -> np.ndarray:
        """The model, held until the test lets it answer: clear comes in while it looks."""
        started.set()
        await release.wait()
        return banded_predict(images)

    app = ScreenHost(lambda: DrawScreen(held_predict))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DrawScreen)
        canvas, bars = screen.query_one(Canvas), screen.query_one(ProbabilityBars)
        await pilot.press("space")
        await asyncio.wait_for(started.wait(), 60)
        await pilot.press("c")
        assert not canvas.pixels.any() and bars.probabilities is None
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        # The answer about the cleared drawing came back and was dropped.
        assert screen.last_probabilities is None and bars.probabilities is None
        assert "Draw something." in str(screen.query_one("#draw-verdict", Static).render())
        # The next drawing is shown as usual.
        await pilot.press("space")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.last_probabilities is not None and bars.probabilities is not None


async def test_several_drawings_in_a_row_show_the_newest_ones_answer() -> None:
    """Each stroke asks the model; the answers are let out newest first, and the older ones,
    let out after it, must not overwrite it (their requests were cancelled)."""
    asked: list[np.ndarray] = []
    gates: list[asyncio.Event] = []

    async def held(images: np.ndarray) -> np.ndarray:
        """Answers the n-th question with certainty for class n, once let out."""
        gate = asyncio.Event()
        asked.append(images)
        gates.append(gate)
        answer = np.eye(10, dtype=np.float32)[len(asked) - 1 : len(asked)]
        await gate.wait()
        return answer

    app = ScreenHost(lambda: DrawScreen(held))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DrawScreen)
        canvas = screen.query_one(Canvas)
        await pilot.press("space", "down", "space", "down", "down", "space")
        newest = preprocess_drawing(canvas.pixels)[np.newaxis]
        await until(pilot, lambda: bool(asked) and np.array_equal(asked[-1], newest), 10)
        for gate in reversed(gates):
            gate.set()
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        newest_answer = len(asked) - 1
        assert screen.last_probabilities is not None
        assert int(screen.last_probabilities.argmax()) == newest_answer
        shown = screen.query_one(ProbabilityBars).probabilities
        assert shown is not None and int(np.argmax(shown)) == newest_answer
        assert f"Looks like {newest_answer}" in str(screen.query_one("#draw-verdict").render())


def blocky(digit: np.ndarray) -> np.ndarray:
    """The 2x2 blocks of a digit that are mostly ink: what a person draws with brush 2."""
    blocks: np.ndarray = digit.reshape(14, 2, 14, 2).mean(axis=(1, 3)) > 0.35
    return blocks


async def draw_with_mouse(pilot: Pilot[None], blocks: np.ndarray) -> Canvas:
    """Click each ink block of `blocks` on a zoom-2 canvas with a 2-pixel brush."""
    canvas = pilot.app.screen.query_one(Canvas)
    assert canvas.zoom == 2 and canvas.brush == 2
    for row, column in zip(*np.nonzero(blocks), strict=True):
        # Zoom 2: a pixel is two cells wide and one tall; +1 for the border.
        assert await pilot.click(canvas, offset=(4 * int(column) + 1, 2 * int(row) + 1))
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return canvas


async def test_mouse_drawing_of_a_real_digit(mnist_small: MnistData) -> None:
    digit = mnist_small.x_test[0, :, :, 0]
    blocks = blocky(digit)
    app = ScreenHost(lambda: DrawScreen(banded))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        canvas = await draw_with_mouse(pilot, blocks)
        drawn = np.kron(blocks, np.ones((2, 2))).astype(np.float32)
        np.testing.assert_array_equal(canvas.pixels, drawn)
        screen = app.screen
        assert isinstance(screen, DrawScreen) and screen.last_probabilities is not None
        np.testing.assert_allclose(
            screen.last_probabilities,
            banded_predict(preprocess_drawing(drawn)[np.newaxis])[0],
            rtol=1e-5,
        )


@pytest.fixture
def trained(mnist_small: MnistData, tmp_path: Path) -> Iterator[TrainingController]:
    """A controller holding a model trained for three epochs on the 2,000-image slice."""
    hparams = TINY.with_changes(
        epochs=3,
        batch_size=32,
        conv_filters=(16,),
        dense_units=32,
        validation_split=0.0,
        train_size=0,
    )
    setup = Setup(hparams, preset="draw", runs_dir=str(tmp_path / "runs"), progress_interval=0.0)
    controller = TrainingController(setup, data=mnist_small)
    controller.load()
    assert controller.claim_round().run() is StopReason.FINISHED
    yield controller
    controller.close()


async def test_a_drawn_digit_is_recognised_by_a_trained_model(
    mnist_small: MnistData, trained: TrainingController
) -> None:
    """Draw real test digits with the mouse; a model trained briefly on the slice reads them
    through the controller's `classify`, as the app's draw screen does.

    About 15 s (TensorFlow start-up and three epochs on 2,000 images), so not marked slow.
    """

    def predict_fn(images: np.ndarray) -> np.ndarray:
        return trained.ask(lambda model: model.classify(images))

    async def classify(images: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(predict_fn, images)

    # The first few test digits whose blocky, preprocessed version the model gets right.
    chosen: list[int] = []
    for index in range(40):
        drawn = np.kron(blocky(mnist_small.x_test[index, :, :, 0]), np.ones((2, 2)))
        guess = predict_fn(preprocess_drawing(drawn)[np.newaxis]).argmax()
        if guess == mnist_small.y_test[index]:
            chosen.append(index)
    assert len(chosen) >= 20, "the model reads fewer than half the blocky digits"

    for index in chosen[:3]:
        blocks = blocky(mnist_small.x_test[index, :, :, 0])
        app = ScreenHost(lambda: DrawScreen(classify))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await draw_with_mouse(pilot, blocks)
            screen = app.screen
            assert isinstance(screen, DrawScreen) and screen.last_probabilities is not None
            assert int(screen.last_probabilities.argmax()) == int(mnist_small.y_test[index])
            verdict = str(screen.query_one("#draw-verdict", Static).render())
            assert f"Looks like {mnist_small.y_test[index]}" in verdict


# --- snapshots ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_small() -> MnistData:
    """Snapshots draw the bundled sample's digits, which every checkout has (not mnist_small,
    which is the full set's when it is beside the project)."""
    return load_sample().subset(train=2000, test=500)


@pytest.fixture(scope="module")
def sample_predictions(sample_small: MnistData) -> Predictions:
    return fake_predictions(sample_small.y_test)


SIZES = [
    pytest.param((120, 40), id="120x40"),
    pytest.param((80, 24), id="80x24"),
    pytest.param((60, 20), id="60x20"),
]


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_browser(
    snap_compare: Callable[..., bool],
    sample_small: MnistData,
    sample_predictions: Predictions,
    size: tuple[int, int],
) -> None:
    app = browser_app(sample_small, sample_predictions)
    assert snap_compare(app, press=["right", "down"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_detail_of_a_mistake(
    snap_compare: Callable[..., bool],
    sample_small: MnistData,
    sample_predictions: Predictions,
    size: tuple[int, int],
) -> None:
    app = browser_app(
        sample_small,
        sample_predictions,
        filter=PredictionFilter(misclassified=True),
        sort=PredictionSort.LOSS,
    )
    assert snap_compare(app, press=["right"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_confusion(
    snap_compare: Callable[..., bool],
    sample_small: MnistData,
    sample_predictions: Predictions,
    size: tuple[int, int],
) -> None:
    app = ScreenHost(lambda: ConfusionScreen(sample_predictions, sample_small.x_test))
    assert snap_compare(app, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_canvas(
    snap_compare: Callable[..., bool], sample_small: MnistData, size: tuple[int, int]
) -> None:
    digit = sample_small.x_test[0, :, :, 0]

    async def draw(pilot: Pilot[None]) -> None:
        canvas = pilot.app.screen.query_one(Canvas)
        canvas.brush = 1
        # The public painting API, one pixel at a time, as the keyboard would.
        for row, column in zip(*np.nonzero(digit > 0.5), strict=True):
            canvas.paint(int(row), int(column))
        canvas.cursor = (27, 0)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = ScreenHost(lambda: DrawScreen(banded))
    assert snap_compare(app, terminal_size=size, run_before=draw)


async def test_draw_screen_without_a_model_still_draws() -> None:
    app = ScreenHost(lambda: DrawScreen(None))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("space")
        await pilot.pause()
        assert app.screen.query_one(Canvas).pixels.any()
        assert NO_MODEL in str(app.screen.query_one("#draw-verdict", Static).render())


@pytest.mark.parametrize("screen", ["confusion", "browser"])
def test_snapshot_without_colour_shows_the_cursor(
    snap_compare: Callable[..., bool],
    sample_small: MnistData,
    sample_predictions: Predictions,
    monkeypatch: pytest.MonkeyPatch,
    screen: str,
) -> None:
    """Under NO_COLOR the cursor must show by something other than colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    if screen == "confusion":
        app = ScreenHost(lambda: ConfusionScreen(sample_predictions, sample_small.x_test))
    else:
        app = browser_app(sample_small, sample_predictions)
    assert snap_compare(app, press=["right", "down"], terminal_size=(80, 24))
