"""The headless sweep command: an Optuna study whose trials are runs, a line per trial as it
ends, then a table of them all with the best marked; rich, no Textual.

It takes a typed `SweepRequest`, never argparse, and reports bad input as `UsageError` (exit 2)
before anything trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import optuna
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui.core.experiments.space import Choice, SearchSpace, default_space, load_space, show
from tui.core.experiments.sweep import (
    DEFAULT_TRIALS,
    WORKER_ENV,
    SweepError,
    SweepFolder,
    SweepRunner,
    SweepSettings,
    TrialResult,
    best,
    recover,
    result_of,
    results,
    sampler_seed,
)
from tui.core.runs.layout import HPARAMS_TOML
from tui.core.settings.requests import Setup
from tui.core.settings.toml import load_toml, save_toml
from tui.core.training import budget
from tui.core.training.controller import TrainingController
from tui.core.training.events import DataLoaded, Notice, TrainingEvent
from tui.core.training.phase import Phase
from tui.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, say_error

WATCH_EVERY = 0.5
"""Seconds between two looks at the study while `--workers` processes run the trials."""


@dataclass(frozen=True)
class SweepRequest:
    """`mnist-tui sweep`."""

    setup: Setup
    """The data and the settings the space does not vary (preset, config file, flags)."""
    space: str | None = None
    """`--space FILE`; None sweeps the default space around the preset."""
    fixed: tuple[str, ...] = ()
    """Settings typed on the command line: the default space leaves them alone."""
    trials: int | None = None
    timeout: float | None = None
    trial_budget: float | None = None
    workers: int = 1
    storage: str | None = None
    study: str | None = None
    resume: str | None = None
    """A sweep folder to carry on."""
    out: str | None = None
    """The sweep's folder (default: sweeps/<time>-<preset>)."""
    save_config: str | None = None


def run_sweep(request: SweepRequest, console: Console) -> int:
    """Make or reopen the sweep, run its trials here or in `--workers` processes, print them;
    the exit code (130 when Ctrl+C stopped it)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = _resumed(request) if request.resume is not None else _created(request)
    settings = folder.settings
    console.print(f"Sweep: {folder.path}", highlight=False)
    target = f"{settings.trials} trials" if settings.trials is not None else "no trial limit"
    if settings.timeout is not None:
        target += f", new trials for {settings.timeout:g} s"
    console.print(
        f"Study {settings.study!r} in {folder.store}: {target}, TPE sampler, median pruner; "
        f"varies {_describe(settings.space)}",
        highlight=False,
    )
    if request.workers > 1:
        interrupted = _with_workers(folder, request.workers, console)
        study = folder.study(0)
    else:
        study, interrupted = _in_this_process(folder, request, console)
    return _summary(folder, study, request, console, interrupted)


# --- making or opening the sweep ----------------------------------------------------------------
def _created(request: SweepRequest) -> SweepFolder:
    setup = request.setup
    if setup.runs_dir is not None:
        raise UsageError(
            "a sweep records its trials in its own folder (<sweep>/trials); choose that folder "
            "with --out instead of --runs-dir."
        )
    if setup.distribute.strategy == "multiworker":
        raise UsageError(
            "a sweep's trials train on one machine each; to use several, point each at one "
            "study with --storage URL --study NAME."
        )
    if request.storage is not None and request.study is None:
        raise UsageError(
            "--storage needs --study NAME, so that every process and machine joins the same study."
        )
    try:
        if request.space is not None:
            space = load_space(request.space, setup.hparams, request.fixed)
        else:
            space = default_space(setup.hparams, request.fixed)
        space.check(f"space file {request.space}" if request.space else "the default space",
                    budget.available_memory())  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err)) from None
    trials = request.trials
    if trials is None and request.timeout is None:
        trials = DEFAULT_TRIALS
    out = Path(request.out) if request.out is not None else None
    existed = out is not None and out.exists()
    settings = SweepSettings(
        space=space,
        preset=setup.preset,
        study=request.study or "",
        trials=trials,
        timeout=request.timeout,
        trial_budget=request.trial_budget,
        storage=request.storage,
        data_path=setup.data_path,
    )
    try:
        folder = SweepFolder.create(out, settings)
    except SweepError as err:
        raise UsageError(str(err)) from None
    if not settings.study:
        folder = folder.with_settings(study=folder.path.name)
    try:
        folder.study(0)  # a store that cannot be used is said now, before anything trains
    except SweepError as err:
        if not existed:
            shutil.rmtree(folder.path, ignore_errors=True)
        raise UsageError(str(err)) from None
    return folder


def _resumed(request: SweepRequest) -> SweepFolder:
    try:
        folder = SweepFolder.open(request.resume or "")
        folder.study(0)
    except SweepError as err:
        raise UsageError(str(err)) from None
    changes: dict[str, object] = {}
    if request.trials is not None:
        changes["trials"] = request.trials
    if request.timeout is not None:
        changes["timeout"] = request.timeout
    return folder.with_settings(**changes) if changes else folder


def _describe(space: SearchSpace) -> str:
    parts = []
    for dimension in space.dimensions:
        if isinstance(dimension, Choice):
            parts.append(f"{dimension.name} in {{{', '.join(map(show, dimension.options))}}}")
        else:
            scale = ", log" if dimension.log else ""
            parts.append(f"{dimension.name} {show(dimension.low)}..{show(dimension.high)}{scale}")
    return "; ".join(parts)


# --- running trials here ------------------------------------------------------------------------
def _in_this_process(
    folder: SweepFolder, request: SweepRequest, console: Console
) -> tuple[optuna.Study, bool]:
    """Load TensorFlow and the data once, then run trials until the sweep has them; the study
    and whether Ctrl+C stopped it."""
    settings = folder.settings
    setup = dataclasses.replace(
        request.setup,
        hparams=settings.space.base,
        preset=settings.preset,
        runs_dir=str(folder.trials_dir),
        data_path=settings.data_path,
    )
    controller = TrainingController(setup, holder=f"{PROG} sweep")
    try:
        _, unsubscribe = controller.subscribe(lambda event: _loading(event, console))
        controller.load()
        unsubscribe()
        if controller.snapshot.phase is Phase.BROKEN:
            raise UsageError(controller.snapshot.problem)
        so_far = len(folder.study(0).get_trials(deepcopy=False))
        seed = sampler_seed(settings.space.base.seed, settings.storage is not None, so_far)
        study = folder.study(seed)
        for number in recover(folder, study):
            console.print(
                f"Trial {number} was left running by a process that ended: marked failed, "
                "its settings queued to run again.",
                highlight=False,
            )
        runner = SweepRunner(folder, controller, study, lambda r: _trial_line(r, console))
        with _ctrl_c_stops(runner.stop, console):
            runner.run()
        return study, runner.stopping
    finally:
        controller.close()


def _loading(event: TrainingEvent, console: Console) -> None:
    if isinstance(event, DataLoaded):
        console.print(f"Data: {event.data.describe()}", highlight=False)
        if event.notice:
            console.print(f"[yellow]{event.notice}[/]", highlight=False)
    elif isinstance(event, Notice) and event.level == "warning":
        console.print(Text(f"! {event.text}", style="yellow"))


@contextlib.contextmanager
def _ctrl_c_stops(stop: Callable[[], None], console: Console) -> Iterator[None]:
    """Ctrl+C (or SIGTERM, SIGHUP) stops the trial in progress and starts no other; a second
    Ctrl+C quits at once. The stopped trial is marked failed and queued to run again."""
    pressed = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        pressed += 1
        if pressed > 1 and signum == signal.SIGINT:
            say_error("interrupted again: quitting now (--resume re-runs the trial in progress).")
            os._exit(EXIT_INTERRUPTED)
        if pressed == 1:
            console.print("Stopping the sweep… (Ctrl+C again to quit at once)", highlight=False)
            stop()

    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _trial_line(result: TrialResult, console: Console) -> None:
    value = f"{result.metric} {result.value:.4f}" if result.value is not None else "-"
    seconds = f"{result.seconds:.1f} s" if result.seconds is not None else "-"
    settings = " ".join(f"{name}={show(v)}" for name, v in result.params.items())
    note = f"  ({result.note})" if result.note else ""
    console.print(
        f"trial {result.number:>3}  {result.state:<8}  {settings}  {value}  "
        f"{result.epochs} epoch{'' if result.epochs == 1 else 's'}  {seconds}{note}",
        highlight=False,
    )


# --- running trials in worker processes ----------------------------------------------------------
def _with_workers(folder: SweepFolder, workers: int, console: Console) -> bool:
    """Start `workers` processes of this same command on the sweep and report the trials they
    end until they have all exited; whether Ctrl+C stopped them."""
    study = folder.study(0)
    for number in recover(folder, study):
        console.print(f"Trial {number} was left running by a process that ended: queued again.")
    command = [sys.executable, "-m", "tui", "sweep", "--resume", str(folder.path)]
    processes: list[subprocess.Popen[bytes]] = []
    for slot in range(1, workers + 1):
        log = folder.path / f"worker-{slot}.log"
        with log.open("ab") as sink:
            processes.append(
                subprocess.Popen(
                    command,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, WORKER_ENV: str(slot)},
                    start_new_session=True,  # a Ctrl+C here reaches each of them once, below
                )
            )
    console.print(
        f"{workers} worker processes (pids {', '.join(str(p.pid) for p in processes)}); "
        f"their logs: {folder.path}/worker-N.log",
        highlight=False,
    )
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)

    shown = {r.number for r in results(study) if r.state not in ("running", "waiting")}
    with _ctrl_c_stops(stop, console):
        while True:
            running = any(p.poll() is None for p in processes)
            for trial in study.get_trials(deepcopy=False):
                if trial.number not in shown and trial.state.is_finished():
                    shown.add(trial.number)
                    _trial_line(result_of(trial), console)
            if not running:
                break
            time.sleep(WATCH_EVERY)
    failed = [p for p in processes if p.returncode not in (0, EXIT_INTERRUPTED)]
    for process in failed:
        say_error(f"worker {process.pid} ended with status {process.returncode}; see its log.")
    return stopped


# --- the end ------------------------------------------------------------------------------------
def _summary(
    folder: SweepFolder,
    study: optuna.Study,
    request: SweepRequest,
    console: Console,
    interrupted: bool,
) -> int:
    found = results(study)
    top = best(found)
    varied = folder.settings.space.varied
    table = Table(title=f"Trials of {folder.path.name}", header_style="bold", pad_edge=False)
    for title in ("", "trial", "state", *varied, "accuracy", "epochs", "time", "run"):
        table.add_column(title, justify="left" if title in ("state", "run") else "right")
    for result in found:
        table.add_row(
            "*" if top is not None and result.number == top.number else "",
            str(result.number),
            result.state,
            *(show(result.params[name]) if name in result.params else "-" for name in varied),
            f"{result.value:.4f}" if result.value is not None else "-",
            str(result.epochs),
            f"{result.seconds:.1f}s" if result.seconds is not None else "-",
            Path(result.run).name if result.run else "-",
        )
    # Written to a file or a pipe, the table keeps its width rather than the 80 columns rich
    # assumes there (the settings' names are the columns a reader needs whole).
    width = None if console.is_terminal else console.measure(table).maximum
    console.print(table, width=width)
    counts = {state: sum(r.state == state for r in found) for state in ("complete", "pruned")}
    failed = sum(r.state == "failed" for r in found)
    console.print(
        f"{counts['complete']} complete, {counts['pruned']} pruned, {failed} failed.",
        highlight=False,
    )
    if interrupted:
        console.print(
            f"Stopped; carry on with: {PROG} sweep --resume {folder.path}", highlight=False
        )
    if top is None or top.value is None:
        say_error("no trial completed, so there is no best settings to show.")
        return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    settings = ", ".join(f"{name} = {show(v)}" for name, v in top.params.items())
    console.print(
        f"Best: trial {top.number}, {top.metric} {top.value:.4f} ({settings})", highlight=False
    )
    console.print(f"Its run: {top.run}", highlight=False)
    if request.save_config is not None:
        best_hparams = folder.settings.space.base.with_changes(**top.params)
        if top.run is not None and (Path(top.run) / HPARAMS_TOML).is_file():
            best_hparams = load_toml(Path(top.run) / HPARAMS_TOML)
        save_toml(best_hparams, request.save_config)
        console.print(f"Its settings written to {request.save_config}", highlight=False)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK
