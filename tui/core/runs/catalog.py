"""The catalog of runs: one summary per run directory, broken ones included, without Keras.

Listing reads each run's small files (run.json, hparams.toml, metrics.csv, evaluation.json)
and the table of contents of its `last.keras`, never the model's weights, so that a folder of
a thousand runs lists in well under a second.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tui.core.data.info import DataInfo
from tui.core.runs.checkpoints import Checkpoint, list_checkpoints
from tui.core.runs.layout import (
    EVALUATION,
    HPARAMS_TOML,
    LAST_MODEL,
    METRICS_CSV,
    RUN_FILES,
    RunError,
    data_info,
    name_parts,
    parse_time,
    read_info,
    read_metrics,
    runs_root,
)
from tui.core.runs.lock import is_locked
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.toml import load_toml
from tui.core.training.events import EpochEnded


@dataclass(frozen=True)
class RunSummary:
    """One line of the runs list; `problem` says why a broken run cannot be fully used."""

    path: Path
    started: datetime | None
    preset: str
    epochs_done: int
    best_val_accuracy: float | None
    """Best validation accuracy over the epochs; None for a run without a validation set."""
    best_accuracy: float | None
    """Best training accuracy over the epochs (what a run without validation can show)."""
    test_accuracy: float | None
    """From evaluation.json, when the run was evaluated."""
    test_samples: int | None
    """How many test images that accuracy was measured on."""
    duration_seconds: float
    """Training time: the sum of the epochs' durations (pauses excluded)."""
    data: DataInfo | None = None
    """The data the run trained on (None for runs recorded before data identities)."""
    live: bool = False
    """A process (an engine, a headless trainer) holds the run's lock: it is training now."""
    problem: str | None = None
    """None for a healthy run, else a sentence naming what is wrong."""
    checkpoints: tuple[Checkpoint, ...] = ()
    """The epochs kept under checkpoints/, each with its size: what a branch can start from."""
    note: str = ""
    """What a person wrote about the run (`mnist-tui note`)."""
    tags: tuple[str, ...] = ()
    parent: str | None = None
    """The path of the run this one branches from, or None for a run of its own."""
    parent_epoch: int | None = None
    """The parent's epoch the branch starts from."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoint_bytes(self) -> int:
        """What the checkpoints weigh together on disk."""
        return sum(c.size for c in self.checkpoints)


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    """Every run under `root`, newest first; a broken one gets a `problem` note, not an error."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    summaries = [
        summarise(entry)
        for entry in base.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    oldest = datetime.min
    return sorted(summaries, key=lambda s: (s.started or oldest, s.name), reverse=True)


def as_tree(summaries: Sequence[RunSummary]) -> list[tuple[RunSummary, int]]:
    """The runs with their depth in the tree of branches: each run of its own in the order
    given, its branches under it (earliest branch point first, then the order given), theirs
    under them. A branch whose parent is not among `summaries` stands at the top."""
    names = {s.name for s in summaries}
    children: dict[str, list[RunSummary]] = {}
    roots: list[RunSummary] = []
    for summary in summaries:
        parent = Path(summary.parent).name if summary.parent else None
        if parent is not None and parent in names and parent != summary.name:
            children.setdefault(parent, []).append(summary)
        else:
            roots.append(summary)
    order = {s.name: i for i, s in enumerate(summaries)}
    tree: list[tuple[RunSummary, int]] = []
    seen: set[str] = set()

    def visit(summary: RunSummary, depth: int) -> None:
        if summary.name in seen:  # a loop of hand-edited lineages: each run once
            return
        seen.add(summary.name)
        tree.append((summary, depth))
        under = children.get(summary.name, [])
        for child in sorted(under, key=lambda c: (c.parent_epoch or 0, order[c.name])):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    for summary in summaries:  # only runs caught in such a loop are left
        visit(summary, 0)
    return tree


def summarise(path: Path) -> RunSummary:
    """The summary of one run directory."""
    problems: list[str] = []
    stamp, preset = name_parts(path.name)
    started = parse_time(stamp)
    info: dict[str, Any] = {}
    try:
        info = read_info(path)
    except RunError as err:
        problems.append(f"{_sentence(err)}; opening the run rebuilds it from the other files")
    preset = str(info.get("preset") or preset or "?")
    started = parse_time(info.get("started")) or started
    if not any((path / name).exists() for name in RUN_FILES):
        return RunSummary(
            path, started, preset, 0, None, None, None, None, 0.0, problem="not a run directory."
        )

    hparams: Hyperparams | None = None
    try:
        hparams = load_toml(path / HPARAMS_TOML)
    except ValueError as err:
        problems.append(f"{err} It cannot be resumed")
    metrics = read_metrics(path, hparams or Hyperparams(), info)
    problems += metrics.problems()
    history: list[EpochEnded] = metrics.history

    saved = int(info.get("saved", {}).get("epoch", 0)) if info else len(history)
    last = path / LAST_MODEL
    if last.exists():
        damage = archive_problem(last)
        if damage:
            problems.append(f"{LAST_MODEL} is damaged ({damage}); it cannot be resumed")
    elif saved:
        problems.append(f"{LAST_MODEL} is missing; it cannot be resumed")
    if info and len(history) < saved:
        problems.append(f"{METRICS_CSV} has {len(history)} of {saved} epochs")
    if info and len(history) > saved + 1:  # one more is the epoch in progress at a kill
        problems.append(
            f"{len(history)} epochs were trained but only {saved} saved (the recording had "
            "stopped: a full disk?); a resume goes on from the saved one"
        )

    epochs = saved if info else len(history)
    kept = history[:epochs]
    test_accuracy, test_samples = _evaluation(path, problems)
    recorded = info.get("lineage")
    lineage: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    return RunSummary(
        path=path,
        started=started,
        preset=preset,
        epochs_done=epochs,
        best_val_accuracy=_best(e.val_accuracy for e in kept),
        best_accuracy=_best(e.accuracy for e in kept),
        test_accuracy=test_accuracy,
        test_samples=test_samples,
        duration_seconds=sum(e.seconds or 0.0 for e in history),
        data=data_info(info.get("data")),
        live=is_locked(path) is not None,
        problem="; ".join(problems) + "." if problems else None,
        checkpoints=tuple(list_checkpoints(path)),
        note=str(info.get("note") or ""),
        tags=tuple(str(tag) for tag in info.get("tags") or ()),
        parent=lineage.get("parent_path"),
        parent_epoch=lineage.get("parent_epoch"),
    )


def _best(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _evaluation(path: Path, problems: list[str]) -> tuple[float | None, int | None]:
    target = path / EVALUATION
    if not target.exists():
        return None, None
    try:
        recorded = json.loads(target.read_text(encoding="utf-8"))
        samples = recorded.get("samples")
        return float(recorded["accuracy"]), int(samples) if samples is not None else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        problems.append(f"{EVALUATION} is unreadable")
        return None, None


def archive_problem(path: Path, *, thorough: bool = False) -> str | None:
    """Why a `.keras` file is not a usable archive, or None; without loading TensorFlow.

    Args:
        path: the file.
        thorough: also check every member's checksum (reads the whole file; for opening a
            model, not for listing runs).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            broken = archive.testzip() if thorough else None
    except (OSError, zipfile.BadZipFile) as err:
        return str(err) or "not a zip archive"
    if broken is not None:
        return f"{broken} fails its checksum"
    if "config.json" not in names:
        return "no config.json inside"
    return None


def _sentence(err: Exception) -> str:
    return str(err).rstrip(".")
