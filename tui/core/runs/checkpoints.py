"""A run's checkpoint per epoch (`checkpoints/epoch-0003.keras`): where each lies, what it
weighs, which are kept; without TensorFlow, so the runs list can show them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.runs.files import replacing

CHECKPOINTS = "checkpoints"
"""The folder of a run directory that holds one model per epoch, optimizer included."""
DEFAULT_BUDGET = 1 << 30
"""Without `--keep-checkpoints`, every epoch is kept while they weigh less than this together
(1 GiB: about 390 epochs of `default`, 2.7 MB each); past it the oldest go first."""
_FILE = re.compile(r"^epoch-(\d+)\.keras$")


@dataclass(frozen=True)
class Checkpoint:
    """One epoch's saved model."""

    epoch: int
    path: Path
    size: int
    """Bytes on disk."""


def checkpoint_path(run: Path, epoch: int) -> Path:
    return run / CHECKPOINTS / f"epoch-{epoch:04d}.keras"


def list_checkpoints(run: Path) -> list[Checkpoint]:
    """The run's checkpoints in epoch order (none for a run made before they were kept)."""
    try:
        entries = list(os.scandir(run / CHECKPOINTS))
    except OSError:
        return []
    found: list[Checkpoint] = []
    for entry in entries:
        match = _FILE.match(entry.name)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            found.append(Checkpoint(int(match.group(1)), Path(entry.path), entry.stat().st_size))
    return sorted(found, key=lambda c: c.epoch)


def keep_checkpoint(model_file: Path, run: Path, epoch: int) -> Path:
    """Keep `model_file` (just written, atomically) as the checkpoint of `epoch`.

    A hard link when the file system allows: the next save replaces `model_file` by a rename, so
    the link goes on holding this epoch's bytes and keeping it costs no write. Else a copy. Either
    way it appears under its name in one rename.
    """
    target = checkpoint_path(run, epoch)
    target.parent.mkdir(exist_ok=True)
    with replacing(target, suffix=".tmp.keras") as tmp:
        try:
            tmp.unlink()
            os.link(model_file, tmp)
        except OSError:
            shutil.copyfile(model_file, tmp)
    return target


def to_prune(
    kept: list[Checkpoint], keep: int | None, protected: set[int], budget: int = DEFAULT_BUDGET
) -> list[Checkpoint]:
    """The checkpoints the keep policy lets go, oldest first.

    Args:
        kept: the run's checkpoints (see `list_checkpoints`).
        keep: `--keep-checkpoints`: the newest this many stay; None keeps all within `budget`.
        protected: epochs never let go (the best and the last).
        budget: bytes all checkpoints may take when `keep` is None.
    """
    candidates = [c for c in kept if c.epoch not in protected]
    if keep is not None:
        newest = {c.epoch for c in sorted(kept, key=lambda c: c.epoch)[-keep:]} if keep else set()
        return [c for c in candidates if c.epoch not in newest]
    total = sum(c.size for c in kept)
    dropped: list[Checkpoint] = []
    for checkpoint in candidates:
        if total <= budget:
            break
        dropped.append(checkpoint)
        total -= checkpoint.size
    return dropped


def prune(run: Path, info: dict[str, Any]) -> list[int]:
    """Delete what the run's keep policy lets go (run.json's `keep_checkpoints`, its best and
    its last epoch protected); the epochs deleted."""
    keep = info.get("keep_checkpoints")
    best = (info.get("best") or {}).get("epoch")
    last = info.get("saved", {}).get("epoch")
    gone: list[int] = []
    for checkpoint in to_prune(list_checkpoints(run), keep, {best, last} - {None}):
        with contextlib.suppress(FileNotFoundError):
            checkpoint.path.unlink()
        gone.append(checkpoint.epoch)
    return gone
