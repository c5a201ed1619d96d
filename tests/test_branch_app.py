"""Branches in the app: `b` picks a kept epoch of a run (on the dashboard or the runs screen), the
engine opens it as a new run, `t` trains it on from there; refusals write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_helpers import app_on_engine, idle, toasts, train, until
from textual.widgets import Input, Static
from tiny import TINY

from tui.branch import claim_branch_at, claim_round
from tui.core.data.mnist import MnistData
from tui.core.runs.checkpoints import CHECKPOINTS, checkpoint_path
from tui.core.runs.layout import RUN_JSON
from tui.core.settings.requests import Setup
from tui.core.training.controller import ControllerError, TrainingController
from tui.core.training.events import StopReason
from tui.screens.branch import EpochPicker
from tui.screens.compare import CompareScreen
from tui.screens.runs import RunsScreen

PARENT = TINY.with_changes(epochs=4)


def runs_in(root: Path) -> set[str]:
    return {path.name for path in root.iterdir()} if root.is_dir() else set()


def panel_note(app: object) -> str:
    return str(app.dashboard.panel.query_one("#hp-note", Static).render())  # type: ignore[attr-defined]


async def test_b_branches_epoch_2_and_t_trains_it_on_from_epoch_3(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    async with app_on_engine(PARENT, mnist_small, runs_dir=runs) as (app, pilot, _):
        await train(pilot, app)
        parent = Path(app.snapshot.run)
        parent_rate = app.snapshot.hparams.learning_rate

        await pilot.press("b")
        picker = app.screen
        assert isinstance(picker, EpochPicker)
        assert [kept.epoch for kept in picker.epochs] == [1, 2, 3, 4]
        assert picker.highlighted == 4, "the newest kept epoch first"
        await pilot.press("up", "up")
        assert picker.highlighted == 2
        await pilot.press("enter")
        await until(pilot, lambda: app.snapshot.run != str(parent) and idle(app))

        branch = Path(app.snapshot.run)
        assert branch.parent == runs and branch != parent
        lineage = json.loads((branch / RUN_JSON).read_text())["lineage"]
        assert lineage["parent_name"] == parent.name and lineage["parent_epoch"] == 2
        # The parent's epochs up to the branch point, on the curves too.
        assert app.snapshot.epochs_done == 2
        assert [e.epoch for e in app.dashboard.curves.epochs] == [1, 2]
        panel = app.dashboard.panel
        await until(pilot, lambda: f"Branch of {parent.name}@2" in panel_note(app))
        assert panel.query_one("#hp-conv_filters", Input).disabled
        assert panel.query_one("#hp-optimizer").disabled, "kept in the checkpoint's optimizer"
        rate = panel.query_one("#hp-learning_rate", Input)
        assert not rate.disabled
        rate.value = "0.0005"

        await train(pilot, app)
        assert app.snapshot.stopped is not None
        assert app.snapshot.stopped.reason is StopReason.FINISHED
        assert [e.epoch for e in app.snapshot.history] == [1, 2, 3, 4]
        rates = [e.learning_rate for e in app.snapshot.history]
        assert rates == pytest.approx([parent_rate, parent_rate, 0.0005, 0.0005]), (
            "the branch's first epoch is 3"
        )
        lineage = json.loads((branch / RUN_JSON).read_text())["lineage"]
        assert lineage["changed"] == {"learning_rate": [parent_rate, 0.0005]}

        # The runs screen lists the branch right under its parent, with the epoch it left at.
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await until(pilot, lambda: not screen.loading and screen.table.row_count == 2)
        names = [summary.name for summary, _ in screen.shown]
        assert names == [parent.name, branch.name]
        assert [depth for _, depth in screen.shown] == [0, 1]
        assert str(screen.table.get_row_at(1)[1]).startswith("└@2 ")

        # Compared, the table below the curves names the one setting that differed.
        await pilot.press("space", "down", "space", "c")
        compare = app.screen
        assert isinstance(compare, CompareScreen) and compare.comparison is not None
        assert compare.comparison.settings == ("learning_rate",)
        assert [c.shared for c in compare.plot.curves] == [0, 1], "the branch from epoch 2 on"


async def test_refused_branches_write_nothing(mnist_small: MnistData, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    async with app_on_engine(TINY, mnist_small, runs_dir=runs) as (app, pilot, _):
        await pilot.press("b")
        assert any("No run to branch from yet" in toast for toast in toasts(app))
        await train(pilot, app)
        parent = Path(app.snapshot.run)
        before = runs_in(runs)

        # A damaged checkpoint: one sentence, and no run directory left behind.
        checkpoint_path(parent, 1).write_bytes(b"PK\x03\x04 cut short")
        await pilot.press("b", "up", "enter")
        await until(pilot, lambda: any("is damaged" in toast for toast in toasts(app)))
        assert runs_in(runs) == before
        assert app.snapshot.run == str(parent) and not isinstance(app.screen, EpochPicker)

        # A checkpoint that is gone between the picker and Enter.
        await pilot.press("b")
        assert isinstance(app.screen, EpochPicker) and app.screen.highlighted == 2
        checkpoint_path(parent, 2).unlink()
        await pilot.press("enter")
        await until(pilot, lambda: any("kept no checkpoint" in toast for toast in toasts(app)))
        assert runs_in(runs) == before

        # A run that kept no checkpoint at all (made before they were kept): no picker.
        shutil.rmtree(parent / CHECKPOINTS)
        app.clear_notifications()
        await pilot.press("b")
        await until(pilot, lambda: any("to branch from" in toast for toast in toasts(app)))
        assert not isinstance(app.screen, EpochPicker)
        assert runs_in(runs) == before

        assert app.snapshot.run == str(parent)


def test_a_fresh_branch_refuses_optimizer_changes_and_records_the_rest(
    mnist_small: MnistData, tmp_path: Path
) -> None:
    """The engine's side of `b` then `t`: what the panel locks is refused there too, and what
    the branch changes is recorded in its lineage, as `--from` with flags records it."""
    setup = Setup(TINY, preset="tiny", runs_dir=str(tmp_path), progress_interval=0.0)
    controller = TrainingController(setup, data=mnist_small)
    controller.load()
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        parent = Path(controller.snapshot.run)
        controller.claim_round(TINY.with_changes(epochs=4))  # claimed, so training from now on
        with pytest.raises(ControllerError, match="finish first"):
            claim_branch_at(controller, str(parent), 1)
        assert runs_in(tmp_path) == {parent.name}
    finally:
        controller.close()

    controller = TrainingController(setup, data=mnist_small)
    controller.load()
    try:
        made, job = claim_branch_at(controller, str(parent), 1)
        assert job.run() is None
        hparams = controller.snapshot.hparams
        # Momentum is kept in the optimizer's state: a carried-on model would take it silently.
        with pytest.raises(ControllerError, match="cannot change in a branch"):
            claim_round(controller, hparams.with_changes(momentum=0.5), None)
        assert json.loads((made / RUN_JSON).read_text())["lineage"]["changed"] == {}
        job = claim_round(controller, hparams.with_changes(batch_size=32), None)
        assert job.run() is StopReason.FINISHED
        lineage = json.loads((made / RUN_JSON).read_text())["lineage"]
        assert lineage["changed"] == {"batch_size": [TINY.batch_size, 32]}
        assert [e.epoch for e in controller.snapshot.history] == [1, 2]
    finally:
        controller.close()
