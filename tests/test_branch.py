"""Branches and per-epoch checkpoints: a branch starts from its parent's checkpoint of an epoch,
replays the parent's epochs with the same settings, and records what it changed."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.experiments.branch import branch_point, branch_settings, create_branch
from tui.core.runs.catalog import list_runs, summarise
from tui.core.runs.checkpoints import Checkpoint, checkpoint_path, list_checkpoints, to_prune
from tui.core.runs.layout import RUN_JSON, RunError
from tui.core.runs.resume import resume
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.events import EpochEnded, StopReason

keras = pytest.importorskip("keras")

PARENT = TINY.with_changes(epochs=4, dropout=0.2, augment=True)
"""Dropout and augmentation on: a branch must replay their randomness too, not only the order."""
STEPS = 15  # ceil(900 / 64)
TOLERANCE = 1e-5
"""The README's determinism note: the same settings and seed give the same epochs on one
machine (bit for bit on this CPU); this allows a GPU's last digits."""


@dataclass
class Parent:
    run: Path
    history: list[EpochEnded]


def controller_for(
    root: Path, data: MnistData, hparams: Hyperparams = PARENT
) -> TrainingController:
    setup = Setup(hparams, preset="tiny", runs_dir=str(root), progress_interval=0.0)
    controller = TrainingController(setup, data=data)
    controller.load()
    return controller


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> Iterator[Parent]:
    controller = controller_for(tmp_path_factory.mktemp("runs"), mnist_small)
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        snapshot = controller.snapshot
        yield Parent(Path(snapshot.run), list(snapshot.history))
    finally:
        controller.close()


def train_branch(
    parent: Parent, epoch: int, tmp_path: Path, data: MnistData, **changes: object
) -> tuple[Path, list[EpochEnded]]:
    """Make a branch of `parent` at `epoch` and train it to the parent's target in-process."""
    point = branch_point(parent.run, epoch)
    branch = create_branch(point, branch_settings(point, changes), tmp_path / "runs")
    controller = controller_for(tmp_path / "runs", data)
    try:
        assert controller.claim_open_run(branch.path).run() is None
        assert controller.claim_round().run() is StopReason.FINISHED
        return branch.path, list(controller.snapshot.history)
    finally:
        controller.close()


def weights(model: object) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]  # type: ignore[attr-defined]


# --- checkpoints --------------------------------------------------------------------------------
def test_every_epoch_keeps_a_checkpoint_listed_without_tensorflow(parent: Parent) -> None:
    kept = list_checkpoints(parent.run)
    assert [c.epoch for c in kept] == [1, 2, 3, 4]
    assert all(c.size > 0 for c in kept)
    info = json.loads((parent.run / RUN_JSON).read_text())
    assert info["epoch_iterations"] == {str(e): e * STEPS for e in (1, 2, 3, 4)}
    summary = summarise(parent.run)
    assert [c.epoch for c in summary.checkpoints] == [1, 2, 3, 4]
    assert summary.checkpoint_bytes == sum(c.size for c in kept)
    last = keras.saving.load_model(parent.run / "last.keras")
    four = keras.saving.load_model(checkpoint_path(parent.run, 4))
    for a, b in zip(weights(last), weights(four), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_keep_policy_spares_the_best_and_the_last() -> None:
    kept = [Checkpoint(e, Path(f"epoch-{e}"), 100) for e in range(1, 9)]
    assert [c.epoch for c in to_prune(kept, 2, {3, 8})] == [1, 2, 4, 5, 6]
    assert [c.epoch for c in to_prune(kept, 0, {3, 8})] == [1, 2, 4, 5, 6, 7]
    assert to_prune(kept, None, {3, 8}, budget=800) == []
    # Over the budget, the oldest go first until the rest fit (the best one stays).
    assert [c.epoch for c in to_prune(kept, None, {1, 8}, budget=550)] == [2, 3, 4]


def test_keep_checkpoints_prunes_while_training(tmp_path: Path, mnist_small: MnistData) -> None:
    setup = Setup(
        TINY.with_changes(epochs=4),
        preset="tiny",
        runs_dir=str(tmp_path),
        progress_interval=0.0,
        keep_checkpoints=1,
    )
    controller = TrainingController(setup, data=mnist_small)
    controller.load()
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        run = Path(controller.snapshot.run)
    finally:
        controller.close()
    info = json.loads((run / RUN_JSON).read_text())
    assert info["keep_checkpoints"] == 1
    assert {c.epoch for c in list_checkpoints(run)} == {4, info["best"]["epoch"]}


# --- branches -----------------------------------------------------------------------------------
def test_a_branch_starts_from_the_parents_checkpoint_and_step_count(
    parent: Parent, tmp_path: Path
) -> None:
    point = branch_point(parent.run, 2)
    branch = create_branch(point, branch_settings(point, {}), tmp_path / "runs")

    resumed = resume(branch.path)
    assert resumed.epochs_done == 2
    assert int(keras.ops.convert_to_numpy(resumed.model.optimizer.iterations)) == 2 * STEPS
    two = keras.saving.load_model(checkpoint_path(parent.run, 2))
    for a, b in zip(weights(resumed.model), weights(two), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [e.epoch for e in resumed.history] == [1, 2]
    assert [e.loss for e in resumed.history] == [e.loss for e in parent.history[:2]]
    info = json.loads((branch.path / RUN_JSON).read_text())
    assert info["lineage"] == {
        "parent_path": str(parent.run),
        "parent_name": parent.run.name,
        "parent_epoch": 2,
        "changed": {},
    }
    assert [c.epoch for c in list_checkpoints(branch.path)] == [1, 2]
    [listed] = list_runs(tmp_path / "runs")
    assert (listed.parent, listed.parent_epoch) == (str(parent.run), 2)


def test_the_same_settings_replay_the_parents_epochs(
    parent: Parent, tmp_path: Path, mnist_small: MnistData
) -> None:
    branch, history = train_branch(parent, 2, tmp_path, mnist_small)

    assert [e.epoch for e in history] == [1, 2, 3, 4]
    for mine, theirs in zip(history[2:], parent.history[2:], strict=True):
        assert mine.loss == pytest.approx(theirs.loss, rel=TOLERANCE)
        assert mine.val_loss == pytest.approx(theirs.val_loss, rel=TOLERANCE)
        assert mine.accuracy == pytest.approx(theirs.accuracy, rel=TOLERANCE)
    with open(branch / "metrics.csv", newline="") as rows:
        assert [r["epoch"] for r in csv.DictReader(rows)] == ["0", "1", "2", "3"]
    assert [c.epoch for c in list_checkpoints(branch)] == [1, 2, 3, 4]


def test_another_learning_rate_differs_and_is_recorded(
    parent: Parent, tmp_path: Path, mnist_small: MnistData
) -> None:
    branch, history = train_branch(parent, 2, tmp_path, mnist_small, learning_rate=0.03)

    assert history[2].loss != pytest.approx(parent.history[2].loss, rel=1e-3)
    assert history[2].learning_rate == pytest.approx(0.03)
    info = json.loads((branch / RUN_JSON).read_text())
    assert info["lineage"]["changed"] == {"learning_rate": [PARENT.learning_rate, 0.03]}


def test_a_branch_of_a_branch(parent: Parent, tmp_path: Path, mnist_small: MnistData) -> None:
    first, _ = train_branch(parent, 2, tmp_path, mnist_small, learning_rate=0.01)
    second = create_branch(branch_point(first, 3), PARENT, tmp_path / "runs")

    info = json.loads((second.path / RUN_JSON).read_text())
    assert (info["lineage"]["parent_path"], info["lineage"]["parent_epoch"]) == (str(first), 3)
    assert resume(second.path).epochs_done == 3


def test_branch_points_that_cannot_be_used_are_one_sentence(parent: Parent, tmp_path: Path) -> None:
    copy = tmp_path / parent.run.name
    shutil.copytree(parent.run, copy)
    with pytest.raises(RunError, match="epochs 1 to 4; epoch 7 is not one"):
        branch_point(copy, 7)
    checkpoint_path(copy, 3).unlink()
    with pytest.raises(RunError, match=r"kept no checkpoint of epoch 3.*kept epochs: 1, 2, 4"):
        branch_point(copy, 3)
    checkpoint_path(copy, 2).write_bytes(b"not a zip")
    with pytest.raises(RunError, match="checkpoint of epoch 2 is damaged"):
        branch_point(copy, 2)
    point = branch_point(copy, 1)
    with pytest.raises(RunError, match="--dropout cannot change in a branch"):
        branch_settings(point, {"dropout": 0.5})
    with pytest.raises(RunError, match="--momentum cannot change in a branch"):
        branch_settings(point, {"momentum": 0.5})
