"""The headless sweep command: an Optuna study whose trials are runs, a line per trial as it
ends, then a table of them all with the best marked; rich, no Textual.

It takes a typed `SweepRequest`, never argparse, and reports bad input as `UsageError` (exit 2)
before anything trains. A sweep outlives its terminal: `--detach` starts it in a process of its
own session, and a SIGHUP sends a foreground one's output to the folder's log. While it lives it
holds its folder's lock and keeps `status.json` there, which `ps`, `stop` and the sweep screen
read. It is steered by signals, which reach it whatever it is doing and need no server: SIGTERM
stops it after the trial in progress (a second one: now), SIGINT stops that trial now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
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
from typing import IO, cast

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui.core.experiments.space import Choice, SearchSpace, default_space, load_space, show
from tui.core.experiments.study import (
    DEFAULT_TRIALS,
    FINISHED,
    SweepError,
    SweepFolder,
    SweepSettings,
    TrialResult,
    best,
    result_of,
    results,
)
from tui.core.experiments.sweep import WORKER_ENV, SweepRunner, recover, sampler_seed
from tui.core.experiments.sweep_status import (
    LOG_FILE,
    SweepLock,
    SweepStatus,
    is_live,
    read_status,
    register,
    write_status,
)
from tui.core.runs.layout import HPARAMS_TOML, now_stamp
from tui.core.settings.requests import Setup
from tui.core.settings.toml import load_toml, save_toml
from tui.core.training import budget
from tui.core.training.controller import TrainingController
from tui.core.training.events import DataLoaded, Notice, TrainingEvent
from tui.core.training.phase import Phase
from tui.engine import registry
from tui.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, say_error

WATCH_EVERY = 0.5
"""Seconds between two looks at the study while `--workers` processes run the trials."""
DETACH_TIMEOUT = 60.0
"""Seconds `--detach` waits for the background sweep to say it has started."""


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
    detach: bool = False
    """Run in the background and return once it has started."""
    carried: tuple[str, ...] = ()
    """Flags that the background process of `--detach` is given again (devices, strategy)."""


def run_sweep(request: SweepRequest, console: Console) -> int:
    """Make or reopen the sweep, run its trials here or in `--workers` processes, print them;
    the exit code (130 when Ctrl+C stopped it)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = _resumed(request) if request.resume is not None else _created(request)
    if request.detach:
        if is_live(folder.path):
            raise UsageError(_busy(folder))
        return _detach(folder, request, console)
    if os.environ.get(WORKER_ENV):
        return _run(folder, request, console, None)  # its parent holds the lock and the status
    lock = SweepLock(folder.path)
    if not lock.acquire():
        raise UsageError(_busy(folder))
    status = _Status(folder)
    try:
        record = register(registry.state_dir(), folder.path)
    except (OSError, registry.RegistryError):
        record = None  # `ps` will not list it; the sweep itself is unharmed
    try:
        return _run(folder, request, console, status)
    finally:
        status.set_phase("ended")
        if record is not None:
            with contextlib.suppress(OSError):
                record.unlink()
        lock.release()


def _busy(folder: SweepFolder) -> str:
    status = read_status(folder.path)
    pid = f" (pid {status.pid})" if status is not None else ""
    return (
        f"the sweep {folder.path.name} is running{pid}; `{PROG} stop {folder.path.name}` "
        "stops it, or give it more processes with --workers when you start it."
    )


def _run(
    folder: SweepFolder, request: SweepRequest, console: Console, status: _Status | None
) -> int:
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
    with _signals(console, folder) as steer:
        if status is not None:
            steer.phase = status.set_phase
        if request.workers > 1:
            interrupted = _with_workers(folder, request.workers, console, steer, status)
            study = folder.study(0)
        else:
            study, interrupted = _in_this_process(folder, request, console, steer, status)
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


def _detach(folder: SweepFolder, request: SweepRequest, console: Console) -> int:
    """Carry the sweep on in a process of its own session (a terminal that hangs up cannot
    reach it), its output in the folder's log; return once it has taken the sweep."""
    command = [sys.executable, "-m", "tui", "sweep", "--resume", str(folder.path)]
    if request.workers > 1:
        command += ["--workers", str(request.workers)]
    if request.save_config is not None:
        command += ["--save-config", str(Path(request.save_config).resolve())]
    command += request.carried
    log = folder.path / LOG_FILE
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + DETACH_TIMEOUT
    while True:
        status = read_status(folder.path)
        if status is not None and status.pid == process.pid:
            break
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            why = f"ended (exit {code})" if code is not None else "did not start in time"
            tail = f"; its log ends: {' / '.join(lines[-3:])}" if lines else ""
            say_error(f"the background sweep {why}{tail}")
            return EXIT_FAILED
        time.sleep(0.05)
    name = folder.path.name
    console.print(f"Sweep in the background (pid {process.pid}): {folder.path}", highlight=False)
    console.print(f"Watch it: {PROG} attach {folder.path}", highlight=False)
    console.print(
        f"List live sweeps: {PROG} ps · stop it after its trial: {PROG} stop {name} "
        "(--now: at once)",
        highlight=False,
    )
    console.print(f"Its output: {log}", highlight=False)
    return EXIT_OK


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
    folder: SweepFolder,
    request: SweepRequest,
    console: Console,
    steer: _Steering,
    status: _Status | None,
) -> tuple[optuna.Study, bool]:
    """Load TensorFlow and the data once, then run trials until the sweep has them; the study
    and whether it was stopped (a signal)."""
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

        def ended(result: TrialResult) -> None:
            _trial_line(result, console)
            if status is not None:
                status.update(study)

        runner = SweepRunner(
            folder,
            controller,
            study,
            ended,
            on_start=(lambda _: status.update(study)) if status is not None else None,
        )
        steer.now, steer.after = runner.stop, runner.stop_after_trial
        if status is not None:
            status.update(study, "running")
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


class _Steering:
    """What a signal does to the trials, once they run: stop the one in progress now, or start
    no other after it."""

    def __init__(self) -> None:
        self.now: Callable[[], None] = lambda: None
        self.after: Callable[[], None] = lambda: None
        self.phase: Callable[[str], None] = lambda phase: None


@contextlib.contextmanager
def _signals(console: Console, folder: SweepFolder) -> Iterator[_Steering]:
    """SIGINT (Ctrl+C, `stop --now`) stops the trial in progress, marked failed and queued to
    run again, and starts no other; a second one quits at once. SIGTERM (`stop`) lets the trial
    in progress finish and starts no other; a second one stops it now. SIGHUP (the terminal went
    away) changes nothing but where the output goes: the folder's log."""
    steer = _Steering()
    count: dict[int, int] = {signal.SIGINT: 0, signal.SIGTERM: 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            _detach_output(folder.path / LOG_FILE)
            # The console chose its colours when it had a terminal; a log is read with less.
            console.file = cast("IO[str]", _Unstyled(console.file))  # Rich writes, flushes
            console.print("The terminal went away: the sweep goes on, its output here.")
            return
        count[signum] += 1
        if signum == signal.SIGINT and count[signum] > 1:
            say_error("interrupted again: quitting now (--resume re-runs the trial in progress).")
            os._exit(EXIT_INTERRUPTED)
        if signum == signal.SIGTERM and count[signum] == 1 and not count[signal.SIGINT]:
            console.print(
                "Stopping the sweep after the trial in progress… (again: stop it now)",
                highlight=False,
            )
            steer.phase("stopping")
            steer.after()
        elif count[signal.SIGINT] + count[signal.SIGTERM] <= 2:
            console.print("Stopping the sweep… (Ctrl+C again to quit at once)", highlight=False)
            steer.phase("stopping now")
            steer.now()

    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield steer
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _Unstyled(io.TextIOBase):
    """A text stream that passes on what is written to it without terminal escape codes."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(Text.from_ansi(text).plain)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _detach_output(log: Path) -> None:
    """Point this process's output at `log` and its input at nothing, for good: the terminal
    is gone, and a write to it would fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    targets = {1}
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            targets.add(stream.fileno())  # the app's copy of the terminal, beside descriptor 2
    with contextlib.suppress(OSError):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for target in targets:
            os.dup2(fd, target)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


class _Status:
    """The folder's status.json, kept by the process that holds the sweep's lock."""

    def __init__(self, folder: SweepFolder) -> None:
        self.folder = folder
        self.status = SweepStatus(
            pid=os.getpid(), phase="starting", trials=folder.settings.trials, started=now_stamp()
        )
        write_status(folder.path, self.status)

    def update(self, study: optuna.Study, phase: str | None = None) -> None:
        """Count the study's trials again (and set the phase, unless a stop already did)."""
        trials = study.get_trials(deepcopy=False)
        top = best([result_of(t) for t in trials if t.state.is_finished()])
        if phase is None or self.status.phase.startswith("stopping"):
            phase = self.status.phase
        fresh = dataclasses.replace(
            self.status,
            phase=phase,
            finished=sum(t.state in FINISHED for t in trials),
            running=tuple(t.number for t in trials if t.state is TrialState.RUNNING),
            best_trial=top.number if top is not None else None,
            best_value=top.value if top is not None else None,
        )
        if fresh != self.status:
            self.status = fresh
            write_status(self.folder.path, fresh)

    def set_phase(self, phase: str) -> None:
        self.status = self.status.with_phase(phase)
        write_status(self.folder.path, self.status)


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
def _with_workers(
    folder: SweepFolder,
    workers: int,
    console: Console,
    steer: _Steering,
    status: _Status | None,
) -> bool:
    """Start `workers` processes of this same command on the sweep and report the trials they
    end until they have all exited; whether a signal stopped them (each gets it too)."""
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

    def forward(signum: int) -> None:
        nonlocal stopped
        stopped = True
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    steer.now = lambda: forward(signal.SIGINT)
    steer.after = lambda: forward(signal.SIGTERM)
    shown = {r.number for r in results(study) if r.state not in ("running", "waiting")}
    while True:
        running = any(p.poll() is None for p in processes)
        for trial in study.get_trials(deepcopy=False):
            if trial.number not in shown and trial.state.is_finished():
                shown.add(trial.number)
                _trial_line(result_of(trial), console)
        if status is not None:
            status.update(study, "running")
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
