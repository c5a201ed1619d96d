"""`mnist-tui audit`: a run's training digits that its model doubts most, drawn in the terminal."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.columns import Columns
from rich.console import Console, Group
from rich.text import Text

from tui.core.experiments.audit import audit_run
from tui.core.experiments.doubt import DOUBT_RULE, ORDERS, Order, TrainingAudit
from tui.core.runs.layout import runs_root
from tui.errors import EXIT_OK, UsageError


@dataclass(frozen=True)
class AuditRequest:
    """`mnist-tui audit RUN`."""

    run: str
    """A run directory, or a run's name in the runs folder."""
    runs_dir: str | None = None
    top: int = 20
    """How many digits to show (and to write with `write_exclude`)."""
    label: int | None = None
    """Only digits labelled so."""
    predicted: int | None = None
    """Only digits the model predicts as so."""
    order: Order = "doubt"
    write_exclude: str | None = None
    """A file to write the shown digits' indices to, for `train --exclude-file`."""
    compact: bool = False
    color: bool = True

    def __post_init__(self) -> None:
        if self.top < 1:
            raise UsageError(f"--top = {self.top} is out of range: at least 1.")
        for flag, value in (("--label", self.label), ("--predicted", self.predicted)):
            if value is not None and not 0 <= value <= 9:
                raise UsageError(f"{flag} = {value} is not a digit: 0 to 9.")
        if self.order not in ORDERS:
            raise UsageError(f"--order = {self.order!r}: one of {', '.join(ORDERS)}.")


def find_run(run: str, runs_dir: str | None) -> Path:
    """The run directory `run` names: a path, else a name in the runs folder."""
    for candidate in (Path(run).expanduser(), runs_root(runs_dir) / run):
        if candidate.is_dir():
            return candidate
    raise UsageError(
        f"no run {run!r}: pass a run directory, or a run's name in {runs_root(runs_dir)}."
    )


def _card(
    audit: TrainingAudit, data_image: object, index: int, *, compact: bool, color: bool
) -> Group:
    """One training digit: the image, its index, label, prediction, both probabilities, loss."""
    from tui.core.render import render_digit

    label = int(audit.labels[index])
    predicted = int(audit.predicted[index])
    doubted = bool(audit.doubted[index])
    caption = Text(no_wrap=True)
    caption.append(f"#{index}\nlabel {label} pred {predicted}\n")
    caption.append(f"p(label) {audit.label_probability[index]:.1%}\n")
    caption.append(f"p(pred) {audit.probabilities[index, predicted]:.1%}\n")
    caption.append(f"loss {audit.loss[index]:.2f}")
    if doubted:
        caption.append(" doubted", style="bold red" if color else "")
    return Group(render_digit(data_image, compact=compact, color=color), caption, Text(""))  # type: ignore[arg-type]


def run_audit(request: AuditRequest, console: Console) -> int:
    path = find_run(request.run, request.runs_dir)
    started = time.perf_counter()
    audit, data, reused = audit_run(path)
    seconds = time.perf_counter() - started
    doubted = int(audit.doubted.sum())
    how = "reused from audit.npz" if reused else f"computed in {seconds:.1f} s"
    console.print(
        f"Run {path.name}: {len(audit.labels):,} training digits under {audit.model_file} "
        f"(epoch {audit.epoch}), {how}; {doubted:,} labels doubted ({DOUBT_RULE}).",
        highlight=False,
    )
    ranked = audit.ranked(request.order, request.label, request.predicted)
    shown = [int(i) for i in ranked[: request.top]]
    if not shown:
        console.print("No training digits match.", highlight=False)
        return EXIT_OK
    # Half-blocks need colour to mean anything; without it (NO_COLOR, a pipe) use shade characters.
    color = request.color and not os.environ.get("NO_COLOR") and console.color_system is not None
    images = data.x_train
    cards = [_card(audit, images[i], i, compact=request.compact, color=color) for i in shown]
    console.print(Columns(cards, padding=(0, 2)))
    what = "most doubted" if request.order == "doubt" else "highest-loss"
    among = sum(bool(audit.doubted[i]) for i in shown)
    console.print(
        f"The {len(shown)} {what} shown, of {len(ranked):,} that match; {among} of them doubted.",
        highlight=False,
    )
    if request.write_exclude is not None:
        from tui.core.data.exclusion import write_exclude_file

        note = (
            f"the {len(shown)} {what} training digits of run {path.name} "
            f"({audit.model_file}, epoch {audit.epoch})"
        )
        try:
            written = write_exclude_file(request.write_exclude, shown, note)
        except OSError as err:
            raise UsageError(
                f"cannot write {request.write_exclude}: {err.strerror or err}."
            ) from None
        console.print(
            f"Wrote their indices to {written}; `mnist-tui train --exclude-file {written}` "
            "trains without them.",
            highlight=False,
        )
    return EXIT_OK
