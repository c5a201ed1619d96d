"""The commands that reach live engines and sweeps: `ps`, `stop` and `train --detach`.

They never import TensorFlow (an engine answers them with its snapshot) nor Optuna (a sweep
answers with its status file, and is stopped by a signal).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tui.core.experiments.sweep_status import (
    DEFAULT_ROOT,
    SweepNotRunning,
    find_sweep,
    live_sweeps,
    read_status,
    stop_sweep,
)
from tui.core.platform.login import login_description
from tui.core.settings.requests import StopRequest, TrainRequest
from tui.core.training.events import LoadFailed, Notice, PhaseChanged, RunRecording, TrainingEvent
from tui.core.training.phase import FITTING, Phase
from tui.core.training.snapshot import Snapshot, advance
from tui.engine import protocol as p
from tui.engine import registry
from tui.engine.client import EngineClient, EngineUnavailable, with_engine
from tui.engine.spawn import SpawnError, spawn_engine, wait_for_socket
from tui.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, PROG, say_error
from tui.format import format_eta, format_percent

DETACH_TIMEOUT = 300.0
"""Seconds `train --detach` waits for the engine to start recording its run."""


def eta_seconds(snapshot: Snapshot) -> float | None:
    """Seconds until the epoch target, from the recent epochs' times; None when unknown."""
    if snapshot.phase not in FITTING:
        return None
    times = [e.seconds for e in snapshot.history[-3:] if e.seconds]
    per_epoch = sum(times) / len(times) if times else None
    progress = snapshot.progress
    current = progress.eta_seconds if progress is not None else per_epoch
    left = max(snapshot.target - snapshot.epoch_in_progress, 0)
    if current is None or (left and per_epoch is None):
        return None
    return current + left * (per_epoch or 0.0)


def _since(started: str) -> str:
    try:
        when = datetime.fromisoformat(started)
    except ValueError:
        return started
    seconds = (datetime.now() - when).total_seconds()
    return format_eta(seconds) if seconds < 86_400 else when.strftime("%Y-%m-%d %H:%M")


async def _snapshots(engines: list[p.EngineInfo]) -> list[tuple[p.EngineInfo, Snapshot | None]]:
    async def one(info: p.EngineInfo) -> tuple[p.EngineInfo, Snapshot | None]:
        try:
            client = await EngineClient.connect(info.socket, "ps", timeout=2.0)
        except EngineUnavailable:
            return info, None
        await client.close()
        return info, client.welcome.snapshot

    return list(await asyncio.gather(*(one(info) for info in engines)))


def run_ps(console: Console | None = None) -> int:
    """`mnist-tui ps`: one line per live engine of this user."""
    console = console or Console(highlight=False, soft_wrap=True)
    try:
        engines = registry.live_engines()
        sweeps = live_sweeps(registry.state_dir(create=False))
    except registry.RegistryError as err:
        say_error(str(err))
        return EXIT_FAILED
    if sweeps:
        _print_sweeps(sweeps, console)
        if not engines:
            return EXIT_OK
    if not engines:
        console.print("No live trainings. `mnist-tui` or `mnist-tui train --detach` starts one.")
        return EXIT_OK
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("run", "phase", "epoch", "val acc", "ETA", "pid", "since"):
        left = title in ("run", "phase")
        table.add_column(title, no_wrap=not left, justify="left" if left else "right")
    for info, snapshot in asyncio.run(_snapshots(engines)):
        run = Path(info.run).name if info.run else "(no run yet)"
        if snapshot is None:
            table.add_row(run, "not answering", "-", "-", "-", str(info.pid), _since(info.started))
            continue
        stopping = snapshot.stop_after_epoch and snapshot.phase in FITTING
        table.add_row(
            Path(snapshot.run).name if snapshot.run else run,
            "stopping after this epoch" if stopping else snapshot.phase.label,
            f"{snapshot.epochs_done}/{snapshot.target}",
            format_percent(snapshot.last_val_accuracy, missing="-"),
            format_eta(eta_seconds(snapshot)),
            str(info.pid),
            _since(info.started),
        )
    console.print(table)
    return EXIT_OK


def _print_sweeps(sweeps: list[Path], console: Console) -> None:
    """One line per live sweep: which trial of how many, the best so far."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("sweep", "progress", "best so far", "pid", "since"):
        table.add_column(title, no_wrap=True, justify="right" if title == "pid" else "left")
    for folder in sweeps:
        status = read_status(folder)
        if status is None:
            table.add_row(folder.name, "starting", "-", "-", "-")
            continue
        phase = "" if status.phase == "running" else f", {status.phase}"
        table.add_row(
            folder.name,
            status.progress + phase,
            status.best,
            str(status.pid),
            _since(status.started),
        )
    console.print(table)


def _stop_sweep(folder: Path, now: bool, console: Console) -> int:
    try:
        status = stop_sweep(folder, now)
    except SweepNotRunning as err:
        say_error(str(err))
        return EXIT_BAD_INPUT
    when = (
        "now; the trial in progress is re-run by --resume"
        if now
        else f"when its trial in progress ends ({status.progress})"
    )
    console.print(f"The sweep {folder.name} stops {when} (pid {status.pid}).")
    console.print(f"Carry it on later: {PROG} sweep --resume {folder}")
    return EXIT_OK


def run_stop(request: StopRequest, console: Console | None = None) -> int:
    """`mnist-tui stop [RUN|SWEEP] [--now]`: ask a live engine, or a sweep, to stop training."""
    console = console or Console(highlight=False, soft_wrap=True)
    if request.run is not None:
        try:
            sweep = find_sweep(registry.state_dir(create=False), request.run, DEFAULT_ROOT)
        except registry.RegistryError as err:
            say_error(str(err))
            return EXIT_FAILED
        if sweep is not None:
            return _stop_sweep(sweep, request.now, console)
    try:
        engine = registry.find_engine(request.run)
    except registry.RegistryError as err:
        say_error(str(err))
        return EXIT_FAILED
    if engine is None:
        what = f"training {request.run}" if request.run else "training"
        say_error(f"no live {what}; `{PROG} ps` lists the live ones.")
        return EXIT_BAD_INPUT
    kind = p.StopNow if request.now else p.StopAfterEpoch
    by = login_description()  # its viewers say who stopped it, and from where
    try:
        reply = asyncio.run(with_engine(engine.socket, "stop", lambda c: c.request(kind, by=by)))
    except EngineUnavailable as err:
        say_error(str(err))
        return EXIT_FAILED
    name = Path(engine.run).name if engine.run else f"engine {engine.id}"
    if reply.error:
        say_error(f"{name}: {reply.error}")
        return EXIT_BAD_INPUT
    when = "within a group of batches" if request.now else "when its epoch ends"
    console.print(f"{name} stops {when} (engine pid {engine.pid}).")
    return EXIT_OK


def run_detached(request: TrainRequest, console: Console | None = None) -> int:
    """`mnist-tui train --detach`: an engine trains in the background; print where and how to
    come back once it records its run (or why it could not)."""
    console = console or Console(highlight=False, soft_wrap=True)
    if request.setup.distribute.strategy == "multiworker":
        say_error("--detach trains on this machine; run multiworker workers in the foreground.")
        return EXIT_BAD_INPUT
    try:
        engine = spawn_engine(
            request.setup,
            resume=request.resume,
            train=True,
            resume_epochs=request.resume_epochs,
        )
        wait_for_socket(engine)
    except SpawnError as err:
        say_error(str(err))
        return EXIT_FAILED
    try:
        outcome = asyncio.run(_wait_for_run(engine.socket))
    except (EngineUnavailable, TimeoutError) as err:
        reason = str(err) or f"the engine did not start training within {DETACH_TIMEOUT:.0f} s"
        tail = engine.log_tail()
        say_error(reason + (f"; the engine's log ends: {tail}" if tail else ""))
        return EXIT_FAILED
    if isinstance(outcome, str):
        say_error(outcome)
        return EXIT_BAD_INPUT
    console.print(f"Training in the background (engine pid {engine.pid}): {outcome}")
    name = Path(outcome).name
    console.print(f"Follow and steer it: {PROG} attach {name}")
    console.print(f"List live trainings: {PROG} ps · stop it: {PROG} stop {name}")
    return EXIT_OK


async def _wait_for_run(socket_path: str) -> str | Path:
    """The run directory the engine records into, or the sentence saying why it does not."""
    client = await EngineClient.connect(socket_path, "detach")
    snapshot = client.welcome.snapshot
    found: asyncio.Future[str | Path] = asyncio.get_running_loop().create_future()

    def on_event(event: TrainingEvent) -> None:
        nonlocal snapshot
        snapshot = advance(snapshot, event)
        if found.done():
            return
        if isinstance(event, RunRecording):
            found.set_result(Path(event.path))
        elif isinstance(event, LoadFailed | Notice) and getattr(event, "level", "error") == "error":
            found.set_result(event.reason if isinstance(event, LoadFailed) else event.text)
        elif isinstance(event, PhaseChanged) and event.phase in (Phase.BROKEN, Phase.FAILED):
            found.set_result(snapshot.problem or "the engine could not start training")
        elif isinstance(event, PhaseChanged) and event.phase is Phase.TRAINING:
            # A resumed run is opened (RunOpened), not recorded anew: it is known by now.
            found.set_result(
                Path(snapshot.run)
                if snapshot.run
                else "it trains, but records no run directory (see its log)"
            )

    reader = asyncio.ensure_future(client.run(on_event))
    try:
        if snapshot.run:
            return Path(snapshot.run)
        return await asyncio.wait_for(asyncio.shield(found), DETACH_TIMEOUT)
    finally:
        await client.close()
        reader.cancel()
