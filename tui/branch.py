"""`mnist-tui train --from RUN[@EPOCH]`: the headless side of branches, over the core's
`tui.core.experiments.branch` and the controller's public claims."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tui.core.experiments.branch import (
    BranchPoint,
    branch_point,
    branch_settings,
    changed_settings,
    create_branch,
    parse_from,
)
from tui.core.runs.layout import RunError
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup, TrainRequest
from tui.core.training.controller import TrainingController
from tui.errors import UsageError


@dataclass(frozen=True)
class BranchPlan:
    """A branch checked before anything loads or is written."""

    point: BranchPoint
    hparams: Hyperparams


def plan_branch(request: TrainRequest) -> BranchPlan:
    """Check `--from` and the settings typed with it; `UsageError` in one sentence."""
    assert request.branch_from is not None
    try:
        path, epoch = parse_from(request.branch_from, request.setup.runs_dir)
        point = branch_point(path, epoch)
        hparams = branch_settings(point, dict(request.branch_changes))
    except (RunError, ValueError) as err:
        raise UsageError(str(err)) from None
    return BranchPlan(point, hparams)


def open_branch(controller: TrainingController, plan: BranchPlan, setup: Setup) -> Path:
    """Make the branch's run directory and reopen it in `controller` (a loaded one); where it
    cannot be opened (the parent's data is gone, ...) the directory is removed again."""
    try:
        run = create_branch(
            plan.point, plan.hparams, setup.runs_dir, keep_checkpoints=setup.keep_checkpoints
        )
    except RunError as err:
        raise UsageError(str(err)) from None
    error = controller.claim_open_run(run.path).run()
    if error is not None:
        controller.close()  # its lock on the branch, if it got that far
        shutil.rmtree(run.path, ignore_errors=True)
        raise UsageError(error)
    return run.path


def branch_line(plan: BranchPlan, path: Path) -> str:
    """What `train` says before the branch trains."""
    point = plan.point
    changed = ", ".join(
        f"{name} {before} -> {after}"
        for name, (before, after) in changed_settings(point.parent.hparams, plan.hparams).items()
    )
    return (
        f"Branch {path.name} of {point.parent.name} at epoch {point.epoch}"
        f"{': ' + changed if changed else ' (no setting changed)'}"
    )
