"""Compare runs: the settings that differ between them (only those), what each reached, and
which is a branch of which; and a run's note and tags. Without TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tui.core.runs.catalog import RunSummary, summarise
from tui.core.runs.files import write_json
from tui.core.runs.layout import HPARAMS_TOML, RUN_JSON, RunError, read_info
from tui.core.runs.lock import is_locked
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.toml import load_toml

UNKNOWN = "?"
"""A setting a run's damaged hparams.toml cannot say."""


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: one row per run."""

    runs: tuple[RunSummary, ...]
    settings: tuple[str, ...]
    """The settings whose values differ between the runs, in the order Hyperparams holds them."""
    values: tuple[tuple[str, ...], ...]
    """Per run, its value of each of `settings`, as text."""

    def header(self) -> list[str]:
        return ["run", "branch of", *self.settings, "best val acc", "test acc", "epochs", "time"]

    def rows(self) -> list[list[str]]:
        """One row of text per run, under `header`."""
        return [
            [
                run.name,
                lineage(run),
                *values,
                _percent(run.best_val_accuracy),
                _percent(run.test_accuracy),
                str(run.epochs_done),
                f"{run.duration_seconds:.1f}s",
            ]
            for run, values in zip(self.runs, self.values, strict=True)
        ]


def lineage(run: RunSummary) -> str:
    """ "<parent>@<epoch>" for a branch, "" for a run of its own."""
    if run.parent is None:
        return ""
    return f"{Path(run.parent).name}@{run.parent_epoch}"


def compare(paths: Sequence[Path]) -> Comparison:
    """Compare the runs at `paths` (at least two); `RunError` for a folder that is not a run."""
    if len(paths) < 2:
        raise RunError("compare needs two runs or more; name them as paths or folder names.")
    summaries: list[RunSummary] = []
    settings: list[dict[str, str]] = []
    for path in paths:
        summary = summarise(path)
        if summary.problem == "not a run directory.":
            raise RunError(f"{path} is not a run directory; pass folders listed under runs/.")
        summaries.append(summary)
        settings.append(_settings(path))
    names = [f.name for f in fields(Hyperparams)]
    differing = tuple(n for n in names if len({s.get(n, UNKNOWN) for s in settings}) > 1)
    values = tuple(tuple(s.get(n, UNKNOWN) for n in differing) for s in settings)
    return Comparison(tuple(summaries), differing, values)


def _settings(path: Path) -> dict[str, str]:
    try:
        hparams = load_toml(path / HPARAMS_TOML)
    except ValueError:
        return {}
    return {f.name: _text(getattr(hparams, f.name)) for f in fields(Hyperparams)}


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def training_refusal(path: Path) -> str | None:
    """Why a note cannot be written on the run at `path` now: a trainer holds it (it rewrites
    run.json every epoch, which would drop the note); None when it can."""
    if is_locked(path) is None:
        return None
    return (
        f"run {path.name} is training: its trainer rewrites run.json every epoch; add the "
        "note once it has stopped."
    )


def annotate(
    path: Path, note: str | None, tags: Sequence[str], *, replace_tags: bool = False
) -> dict[str, Any]:
    """Set a run's note (when given) and add `tags` to its tags (or, with `replace_tags`, make
    them its tags), in run.json; returns the new run.json. `RunError` when it is not a run,
    run.json is unreadable, or a trainer holds it (see `training_refusal`)."""
    if not path.is_dir() or not (path / RUN_JSON).exists():
        raise RunError(f"{path} is not a run directory; pass a folder listed under runs/.")
    refused = training_refusal(path)
    if refused is not None:
        raise RunError(refused)
    bad = [tag for tag in tags if not tag.strip() or any(c.isspace() for c in tag)]
    if bad:
        raise RunError(f"tag {bad[0]!r} is not a single word; write tags like `lr-drop`.")
    info = read_info(path)
    if note is not None:
        info["note"] = note
    merged = [] if replace_tags else list(info.get("tags") or [])
    merged += [tag for tag in tags if tag not in merged]
    info["tags"] = merged
    write_json(path / RUN_JSON, info)
    return info
