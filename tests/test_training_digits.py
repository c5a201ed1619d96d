"""The training-digits screen: the digits a real model doubts, ranked, filtered and marked; a run
without the marked ones recorded as `--exclude-file` records it; 80x24, NO_COLOR, no model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from app_helpers import app_on_engine, idle, logged, round_over, toasts, train, until
from test_audit import flip_sample_labels
from test_screens_predictions import ScreenHost, fake_predictions
from textual.widgets import Static
from tiny import TINY

from tui.core.data.exclusion import read_exclude_file
from tui.core.data.mnist import MnistData, load_npz, load_sample
from tui.core.experiments.audit import audit_run, read_audit
from tui.core.experiments.doubt import DOUBT_RULE, TrainingAudit
from tui.core.experiments.leave_out import LEAVE_OUT_FILE
from tui.core.training.phase import Phase
from tui.engine.handle import EngineHandle, TrainingDigits
from tui.screens.training_digits import TrainingDigitsScreen
from tui.widgets.digit import DigitCard, DigitGrid

FLIPPED_NET = TINY.with_changes(
    train_size=0, validation_split=0.0, conv_filters=(16,), dense_units=32
)
"""All 6,000 sample digits, 2 epochs: it learns the digits, not the labels made wrong."""


def _text(screen: object, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


def _titles(screen: object) -> list[str]:
    cards = screen.query(DigitCard)  # type: ignore[attr-defined]
    return [str(card.border_title) for card in cards if card.border_title]


async def test_doubted_first_a_label_filter_and_a_run_without_three(tmp_path: Path) -> None:
    path, flipped = flip_sample_labels(tmp_path)
    data = load_npz(path)
    async with app_on_engine(FLIPPED_NET, data, runs_dir=tmp_path / "runs") as (app, pilot, _):
        await train(pilot, app)
        first = Path(app.snapshot.run)
        headless, _, _ = audit_run(first, reuse=False)  # `mnist-tui audit RUN` first
        await pilot.press("a")
        screen = app.screen
        assert isinstance(screen, TrainingDigitsScreen)
        await until(pilot, lambda: bool(screen.query(DigitGrid)) and bool(_titles(screen)))
        grid = screen.query_one(DigitGrid)

        # The headless audit's figures, reused from the run's audit.npz, shown in its order.
        assert "audit.npz reused" in _text(screen, "#digits-header")
        audit = read_audit(first / "audit.npz")
        assert audit is not None and audit.model_file == "last.keras"
        assert np.array_equal(audit.probabilities, headless.probabilities)
        assert grid.order.tolist() == audit.ranked("doubt").tolist()
        doubted = audit.doubted
        assert doubted.sum() > 0
        titles = _titles(screen)
        assert titles[0] == f"#{grid.order[0]} ?"  # the most doubted, marked so
        marked_doubted = [t for t in titles if t.endswith("?")]
        assert len(marked_doubted) == int(doubted[grid.order[: len(titles)]].sum())
        assert DOUBT_RULE in _text(screen, "#digits-legend")
        top = set(grid.order[:60].tolist())
        # Measured (2026-12-07): 19 of the 20 flipped labels in the top 60.
        assert len(top & set(flipped.tolist())) >= 14

        await pilot.press("4")
        assert len(grid.order) and set(data.y_train[grid.order].tolist()) == {4}
        assert "label 4" in _text(screen, "#digits-header")
        await pilot.press("a")
        assert len(grid.order) == len(data.y_train)

        await pilot.press("home")  # the cursor stayed on the 4 it was on
        chosen = grid.order[:3].tolist()
        await pilot.press("x", "x", "x")  # each moves on to the next digit
        assert "3 ✕ marked to leave out" in _text(screen, "#digits-header")
        kept = first / LEAVE_OUT_FILE
        await until(pilot, lambda: kept.exists() and len(read_exclude_file(kept)) == 3)
        assert read_exclude_file(kept) == tuple(sorted(chosen))

        before = app.snapshot.stopped
        await pilot.press("t")
        await until(pilot, lambda: round_over(app, before) and app.snapshot.run != str(first))
        assert not isinstance(app.screen, TrainingDigitsScreen)
        recorded = json.loads((Path(app.snapshot.run) / "run.json").read_text())["data"]
        assert recorded["excluded"] == sorted(chosen)
        assert recorded["excluded_count"] == 3
        assert app.snapshot.data is not None and "3 left out" in app.snapshot.data.describe()

        # The new run's screen starts with those 3 still marked: t again keeps them out.
        await pilot.press("a")
        again = app.screen
        assert isinstance(again, TrainingDigitsScreen)
        await until(pilot, lambda: again.digits is not None)
        assert again.marked == set(chosen)
        header = _text(again, "#digits-header")
        assert "3 ✕ marked to leave out" in header and "its data leaves out 3" in header


@pytest.mark.parametrize("model", ["none", "damaged"])
async def test_without_a_model_the_screen_says_so_in_one_line(
    mnist_small: MnistData, tmp_path: Path, model: str
) -> None:
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    opened = junk if model == "damaged" else None
    async with app_on_engine(TINY, mnist_small, model=opened) as (app, pilot, _):
        if opened is not None:  # the app says so as it starts, and goes on without a model
            await until(pilot, lambda: logged(app, "cannot be loaded"))
        await pilot.press("a")
        screen = app.screen
        await until(pilot, lambda: "No model" in _text(screen, "#digits-message"))
        message = _text(screen, "#digits-message")
        assert "\n" not in message and "Traceback" not in message
        await pilot.press("t")  # nothing is marked: refused in a line, the screen stays
        assert isinstance(app.screen, TrainingDigitsScreen)


async def test_reopened_it_reuses_the_audit_and_a_damaged_one_is_redone(tmp_path: Path) -> None:
    sample = load_sample()  # data a run can find again, as `mnist-tui audit` needs
    async with app_on_engine(TINY, sample, runs_dir=tmp_path / "runs") as (app, pilot, _):
        await train(pilot, app)
        kept = Path(app.snapshot.run) / "audit.npz"

        async def audit_header() -> str:
            await pilot.press("a")
            screen = app.screen
            assert isinstance(screen, TrainingDigitsScreen)
            await until(pilot, lambda: screen.digits is not None)
            header = _text(screen, "#digits-header")
            await pilot.press("escape")
            return header

        assert "audited in" in await audit_header()
        assert audit_run(kept.parent)[2]  # `mnist-tui audit RUN` reuses what the app kept
        assert "audit.npz reused" in await audit_header()
        kept.write_bytes(b"not an npz")
        assert "audited in" in await audit_header()  # not a traceback: done again
        audit = read_audit(kept)
        assert audit is not None and len(audit.labels) == len(sample.y_train)


async def test_while_training_it_refuses_in_one_line(mnist_small: MnistData) -> None:
    async with app_on_engine(TINY.with_changes(epochs=500), mnist_small) as (app, pilot, _):
        await pilot.press("t")
        await until(pilot, lambda: app.phase is Phase.TRAINING and app.snapshot.epochs_done > 0)
        await pilot.press("a")
        screen = app.screen
        await until(pilot, lambda: "Training is running" in _text(screen, "#digits-message"))
        assert "\n" not in _text(screen, "#digits-message")
        await pilot.press("t")  # and no run without marked digits either
        await until(pilot, lambda: any("running" in toast for toast in toasts(app)))
        assert isinstance(app.screen, TrainingDigitsScreen)
        await pilot.press("escape", "s")
        await until(pilot, lambda: idle(app))


class FixedAudit(EngineHandle):
    """An engine handle whose audit is fixed figures, for pictures that do not move."""

    def __init__(self, digits: TrainingDigits) -> None:
        super().__init__(lambda text, severity: None)
        self.digits = digits

    async def training_digits(self) -> TrainingDigits | str:
        return self.digits


@pytest.fixture(scope="module")
def fixed_digits() -> TrainingDigits:
    sample = load_sample().subset(train=600)
    labels = sample.y_train
    probabilities = fake_predictions(labels, seed=3).probabilities
    images = np.rint(sample.x_train[..., 0] * 255.0).astype(np.uint8)
    audit = TrainingAudit("last.keras", 2, "", "", labels, probabilities)
    return TrainingDigits(audit, images, False, "", 0.4, (), ())


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_snapshot_80x24(
    snap_compare: Callable[..., bool],
    fixed_digits: TrainingDigits,
    monkeypatch: pytest.MonkeyPatch,
    no_color: bool,
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    app = ScreenHost(lambda: TrainingDigitsScreen(FixedAudit(fixed_digits), lambda: "no panel"))
    assert snap_compare(app, press=["x", "right"], terminal_size=(80, 24))


async def test_keys_order_filter_by_prediction_and_mark_the_most_doubted(
    fixed_digits: TrainingDigits,
) -> None:
    audit = fixed_digits.audit
    app = ScreenHost(lambda: TrainingDigitsScreen(FixedAudit(fixed_digits), lambda: "no panel"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainingDigitsScreen)
        await until(pilot, lambda: screen.digits is not None)
        grid = screen.query_one(DigitGrid)
        assert grid.order.tolist() == audit.ranked("doubt").tolist()

        await pilot.press("o")
        assert grid.order.tolist() == audit.ranked("loss").tolist()
        assert "highest loss first" in _text(screen, "#digits-header")
        await pilot.press("o", "p", "9")
        assert set(audit.predicted[grid.order].tolist()) == {9}
        assert "predicted 9" in _text(screen, "#digits-header")
        await pilot.press("a")
        assert len(grid.order) == len(audit.labels)

        doubted = int(audit.doubted.sum())
        await pilot.press("X")  # asks N, the count of doubted ones by default
        await pilot.press("enter")
        assert screen.marked == set(audit.ranked("doubt")[:doubted].tolist())
        assert f"{doubted} ✕ marked to leave out" in _text(screen, "#digits-header")
