"""Branches over the controller: `mnist-tui train --from RUN[@EPOCH]` (headless) and an engine's
`Branch` command (the app's `b`) both plan, make and open a branch here, over the core's
`tui.core.experiments.branch` and the controller's public claims."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.experiments.branch import (
    BUSY_LINE,
    BranchPoint,
    branch_point,
    branch_settings,
    changed_settings,
    create_branch,
    parse_from,
    refused_changes,
)
from tui.core.runs.layout import RunError
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup, TrainRequest
from tui.core.training.controller import ControllerError, Job, TrainingController
from tui.core.training.events import StopReason
from tui.core.training.phase import FITTING, Phase
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


def claim_branch(
    controller: TrainingController, plan: BranchPlan, setup: Setup
) -> tuple[Path, Job[str | None]]:
    """Make the branch's run directory and claim its opening in `controller` (a loaded one);
    the job opens it, and where it cannot be opened (the parent's data is gone, ...) removes
    the directory again and returns why.

    Raises:
        ControllerError: the controller is busy (nothing is written then).
        RunError: the directory cannot be written (nothing is left of it).
    """
    phase = controller.snapshot.phase
    if phase in FITTING or phase is Phase.EVALUATING:
        raise ControllerError(BUSY_LINE)
    run = create_branch(
        plan.point, plan.hparams, setup.runs_dir, keep_checkpoints=setup.keep_checkpoints
    )
    try:
        opening = controller.claim_open_run(run.path)
    except ControllerError:
        shutil.rmtree(run.path, ignore_errors=True)
        raise

    def work() -> str | None:
        error = opening.run()
        if error is not None:
            shutil.rmtree(run.path, ignore_errors=True)
        return error

    return run.path, Job("open branch", work)


def claim_branch_at(
    controller: TrainingController, parent: str, epoch: int | None
) -> tuple[Path, Job[str | None]]:
    """An engine's `Branch`: epoch `epoch` of the run at `parent`, with its settings as they
    were (a viewer changes them before `t`, see `claim_round`); every refusal is one
    `ControllerError` sentence and leaves nothing written."""
    try:
        point = branch_point(Path(parent), epoch)
        plan = BranchPlan(point, point.parent.hparams)
        return claim_branch(controller, plan, controller.setup)
    except RunError as err:
        raise ControllerError(str(err)) from None


def open_branch(controller: TrainingController, plan: BranchPlan, setup: Setup) -> Path:
    """Make the branch's run directory and reopen it in `controller` (a loaded one); where it
    cannot be opened (the parent's data is gone, ...) the directory is removed again."""
    try:
        path, job = claim_branch(controller, plan, setup)
    except (RunError, ControllerError) as err:
        raise UsageError(str(err)) from None
    error = job.run()
    if error is not None:
        controller.close()  # its lock on the branch, if it got that far
        raise UsageError(error)
    return path


def claim_round(
    controller: TrainingController, hparams: Hyperparams | None, preset: str | None
) -> Job[StopReason]:
    """`controller.claim_round`; for a branch that has not trained past its branch point (one
    just made by `Branch`), the settings are checked as a branch's and those that differ from
    its parent's are recorded in its lineage, as `--from` with flags records them.

    Raises:
        ControllerError: not now, or a setting a branch cannot change.
    """
    run = controller.recorder.run
    lineage: Any = run.info.get("lineage") if run is not None else None
    fresh_branch = (
        run is not None
        and hparams is not None
        and isinstance(lineage, dict)
        and lineage.get("parent_epoch") == run.epochs_saved
        and controller.snapshot.epochs_done == run.epochs_saved
    )
    if not fresh_branch:
        return controller.claim_round(hparams, preset)
    assert run is not None and hparams is not None and isinstance(lineage, dict)
    recorded = lineage.get("changed") or {}
    try:
        parent = Hyperparams.from_dict(
            {name: before for name, (before, _) in recorded.items()}, base=run.hparams
        )
    except (ValueError, TypeError, AttributeError):
        return controller.claim_round(hparams, preset)  # a lineage edited by hand: as any run
    changed = changed_settings(parent, hparams)
    refused = refused_changes(changed)
    if refused is not None:
        raise ControllerError(refused)
    job = controller.claim_round(hparams, preset)
    if changed != recorded:
        lineage["changed"] = changed
        try:
            run.write_info()
        except OSError as err:
            controller.notice(f"run.json in {run.path} not updated: {err}", "warning", "")
    return job


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
