"""Branches: a new run that starts from a kept epoch of another run, with settings changed;
its lineage in run.json. No TensorFlow here: the branch is made from files, and then trained
by reopening it like any run (`TrainingController.claim_open_run`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tui.core.runs.catalog import archive_problem
from tui.core.runs.checkpoints import CHECKPOINTS, checkpoint_path, list_checkpoints
from tui.core.runs.files import write_atomic
from tui.core.runs.layout import (
    BEST_MODEL,
    LAST_MODEL,
    LAYERS_JSONL,
    METRICS_CSV,
    RunDirectory,
    RunError,
    cut_metrics,
    read_info,
    runs_root,
)
from tui.core.settings.hyperparams import SETTINGS, Hyperparams

BUSY_LINE = "The engine is training: stop it (s) or let it finish first, then branch."
"""Why a branch is refused while the engine it would open in is busy training."""


@dataclass(frozen=True)
class Lineage:
    """Where a branch comes from, as its run.json records it."""

    parent_name: str
    parent_epoch: int
    changed: dict[str, list[Any]]
    """{setting: [parent's value, branch's value]}."""

    @property
    def label(self) -> str:
        """ "<parent>@<epoch>", as compare and the runs screen write it."""
        return f"{self.parent_name}@{self.parent_epoch}"


def lineage_of(path: str | Path) -> Lineage | None:
    """The lineage run.json records for the run at `path`; None for a run of its own, or one
    whose run.json cannot be read (what it lacks is said where the run is opened)."""
    try:
        recorded = read_info(Path(path)).get("lineage")
    except RunError:
        return None
    if not isinstance(recorded, dict):
        return None
    try:
        name = str(recorded.get("parent_name") or Path(str(recorded["parent_path"])).name)
        changed = recorded.get("changed") or {}
        return Lineage(name, int(recorded["parent_epoch"]), dict(changed))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class BranchPoint:
    """A kept epoch of a run, checked: what a branch starts from."""

    parent: RunDirectory
    epoch: int
    checkpoint: Path
    iterations: int
    """The optimizer's step count at the end of that epoch."""


def find_run(name: str, runs_dir: str | Path | None = None) -> Path:
    """A run directory named by its path, or by its folder's name under the runs folder."""
    path = Path(name)
    if path.is_dir():
        return path
    under = runs_root(runs_dir) / name
    if under.is_dir():
        return under
    raise RunError(
        f"no run {name!r}: pass a run directory, or the name of one under {runs_root(runs_dir)}."
    )


def parse_from(spec: str, runs_dir: str | Path | None = None) -> tuple[Path, int | None]:
    """`RUN[@EPOCH]` as the run's path and the epoch (None: the last saved)."""
    name, at, epoch_text = spec.rpartition("@") if "@" in spec else (spec, "", "")
    epoch: int | None = None
    if at:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise RunError(
                f"--from {spec}: {epoch_text!r} is not an epoch number; write RUN@3."
            ) from None
    return find_run(name, runs_dir), epoch


def refused_changes(names: Iterable[str]) -> str | None:
    """The sentence refusing settings a branch cannot change, or None when all can change."""
    for name in sorted(names):
        spec = SETTINGS[name]
        flag = "--" + name.replace("_", "-")
        if spec.architecture:
            return (
                f"{flag} cannot change in a branch: {spec.label.lower()} is part of the network "
                "its checkpoint holds; start a new run to train with another."
            )
        if spec.in_optimizer:
            return (
                f"{flag} cannot change in a branch: the optimizer its checkpoint was saved with "
                "keeps it; start a new run to train with another."
            )
    return None


def branch_point(path: Path, epoch: int | None) -> BranchPoint:
    """The checked checkpoint of `epoch` of the run at `path` (None: its last saved epoch).

    Raises:
        RunError: not a run, an epoch it never saved, a checkpoint not kept or damaged.
    """
    parent = RunDirectory.open(path)
    if parent.info_damage is not None:
        raise RunError(
            f"run {parent.name}: {parent.info_damage}; resume it once to repair it, then branch."
        )
    saved = parent.epochs_saved
    chosen = saved if epoch is None else epoch
    if saved == 0:
        raise RunError(f"run {parent.name} has no saved epoch to branch from.")
    if not 1 <= chosen <= saved:
        raise RunError(
            f"run {parent.name} has saved epochs 1 to {saved}; epoch {chosen} is not one of them."
        )
    checkpoint = checkpoint_path(parent.path, chosen)
    if not checkpoint.is_file():
        kept = ", ".join(str(c.epoch) for c in list_checkpoints(parent.path)) or "none"
        raise RunError(
            f"run {parent.name} kept no checkpoint of epoch {chosen} (its keep policy let it "
            f"go, or it was made before checkpoints were kept); kept epochs: {kept}."
        )
    damage = archive_problem(checkpoint, thorough=True)
    if damage is not None:
        raise RunError(
            f"run {parent.name}: the checkpoint of epoch {chosen} is damaged ({damage}); "
            "branch from another epoch."
        )
    iterations = (parent.info.get("epoch_iterations") or {}).get(str(chosen))
    if iterations is None:
        raise RunError(
            f"run {parent.name}: run.json has no step count for epoch {chosen}, so a branch "
            "could not number its steps on; branch from another epoch."
        )
    if parent.data is None:
        raise RunError(
            f"run {parent.name} has no record of the data it trained on; a branch needs it."
        )
    return BranchPoint(parent, chosen, checkpoint, int(iterations))


def branch_settings(point: BranchPoint, changes: Mapping[str, Any]) -> Hyperparams:
    """The parent's settings with `changes` (the flags typed); ValueError for a bad value."""
    refused = refused_changes(changes)
    if refused is not None:
        raise RunError(refused)
    return Hyperparams.from_dict(dict(changes), base=point.parent.hparams)


def changed_settings(before: Hyperparams, after: Hyperparams) -> dict[str, list[Any]]:
    """{name: [before, after]} for every setting that differs."""
    changed: dict[str, list[Any]] = {}
    for field in fields(Hyperparams):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old != new:
            changed[field.name] = [_plain(old), _plain(new)]
    return changed


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def create_branch(
    point: BranchPoint,
    hparams: Hyperparams,
    runs_dir: str | Path | None = None,
    *,
    keep_checkpoints: int | None = None,
) -> RunDirectory:
    """A new run directory that holds the parent's epochs up to the branch point, its own copy
    of that epoch's model as last.keras, and its lineage; it is then trained by reopening it.

    Raises:
        RunError: the run directory cannot be written (nothing is left of it).
    """
    parent, epoch = point.parent, point.epoch
    assert parent.data is not None  # branch_point checked it
    train_samples = int(parent.info.get("train_samples") or 0)
    run = RunDirectory.create(runs_dir, parent.preset, hparams, parent.data, train_samples)
    try:
        _fill(run, point)
    except OSError as err:
        shutil.rmtree(run.path, ignore_errors=True)
        raise RunError(
            f"cannot write the branch {run.path}: {err.strerror or err}; free some disk space "
            "or pass another --runs-dir."
        ) from None
    best = _best_until(parent, epoch)
    steps = parent.info.get("epoch_iterations") or {}
    run.info.update(
        {
            "saved": {"epoch": epoch, "iterations": point.iterations},
            "best": best,
            "epoch_iterations": {k: v for k, v in steps.items() if int(k) <= epoch},
            "lineage": {
                "parent_path": str(parent.path),
                "parent_name": parent.name,
                "parent_epoch": epoch,
                "changed": changed_settings(parent.hparams, hparams),
            },
        }
    )
    keep = keep_checkpoints if keep_checkpoints is not None else parent.info.get("keep_checkpoints")
    if keep is not None:
        run.info["keep_checkpoints"] = keep
    if best is not None and int(best["epoch"]) != epoch:
        source = checkpoint_path(parent.path, int(best["epoch"]))
        _own_copy(source, run.path / BEST_MODEL)
    run.write_info()
    return run


def _fill(run: RunDirectory, point: BranchPoint) -> None:
    parent, epoch = point.parent, point.epoch
    (run.path / CHECKPOINTS).mkdir()
    for checkpoint in list_checkpoints(parent.path):
        if checkpoint.epoch <= epoch:
            _own_copy(checkpoint.path, checkpoint_path(run.path, checkpoint.epoch))
    _own_copy(point.checkpoint, run.path / LAST_MODEL)
    _own_copy(point.checkpoint, run.path / BEST_MODEL)
    metrics = parent.path / METRICS_CSV
    if metrics.is_file():
        write_atomic(run.path / METRICS_CSV, metrics.read_bytes())
        cut_metrics(run.path / METRICS_CSV, epoch)
    with contextlib.suppress(FileNotFoundError):  # figures to look at: a branch may lack them
        write_atomic(run.path / LAYERS_JSONL, (parent.path / LAYERS_JSONL).read_bytes())


def _own_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (the run's files are replaced by renames, never
    written in place, so deleting or re-saving the parent leaves the branch's bytes as they
    are), else a copy."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _best_until(parent: RunDirectory, epoch: int) -> dict[str, Any] | None:
    """The parent's best epoch up to the branch point whose checkpoint was kept, else the
    branch point itself (run.json's "best" of the branch)."""
    history = [e for e in parent.load_history() if e.epoch <= epoch]
    kept = {c.epoch for c in list_checkpoints(parent.path)}
    best: dict[str, Any] | None = None
    for event in history:
        metric = "val_accuracy" if event.val_accuracy is not None else "accuracy"
        value = getattr(event, metric)
        if value is None or event.epoch not in kept:
            continue
        if best is None or value > best["value"]:
            best = {"epoch": event.epoch, "metric": metric, "value": value}
    return best


__all__ = [
    "BUSY_LINE",
    "BranchPoint",
    "Lineage",
    "branch_point",
    "branch_settings",
    "create_branch",
    "find_run",
    "lineage_of",
    "parse_from",
    "refused_changes",
]
