"""Run the app in this terminal: `mnist-tui` on a new engine, `mnist-tui attach` on a live one.

What a process needs around the app and not inside it: a terminal, native stderr kept off the
screen, the signals that end it, the line it prints when it is gone, and finding the engine or
run to open.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tui.app import create_app
from tui.core.settings.requests import AppOptions, AttachRequest, Setup
from tui.engine.connect import Connector, SocketConnector
from tui.errors import UsageError
from tui.terminal import missing_terminal, terminal_driver


def run_app(options: AppOptions, connector: Connector | None = None) -> int:
    """Run the app in this terminal; returns the exit code (128 + the signal that ended it).

    Raises:
        UsageError: there is no terminal to run in, or the run to resume is not this user's
            to continue (nothing is started then).
    """
    from tui.core.platform.quiet import native_stderr_to, tensorflow_log_path

    _require_terminal()
    if options.resume is not None:
        _check_run(Path(options.resume))
    path = tensorflow_log_path()
    # The app is built inside the redirection so Textual paints on the terminal stream.
    with native_stderr_to(path):
        app = create_app(options, connector)
        app.log_path = str(path)
        app.handle_signals = True
        driver = terminal_driver()
        if driver is not None:
            app.driver_class = driver
        app.run()
    if app.farewell:
        # A terminal that hung up takes the farewell with it; the exit code still says why.
        with contextlib.suppress(OSError):
            print(app.farewell, file=sys.stdout, flush=True)
    return app.return_code or 0


def _require_terminal() -> None:
    problem = missing_terminal()
    if problem is not None:
        raise UsageError(problem)


def _check_run(run: Path) -> None:
    """Refuse a run that is another user's, not writable or trained into now, before any
    engine or data loads."""
    from tui.core.runs.access import check_continuable
    from tui.core.runs.layout import RunError

    try:
        check_continuable(run)
    except RunError as err:
        raise UsageError(str(err)) from None


def run_attached(request: AttachRequest) -> int:
    """`mnist-tui attach [RUN]`: the app on a live engine, or on a run that is no longer live;
    `attach SWEEP` (its folder or name): the sweep's screen; plain `attach` with no engine
    live: the newest live sweep's screen."""
    from tui.core.experiments.sweep_status import live_sweeps
    from tui.core.settings import presets
    from tui.engine import registry
    from tui.errors import EXIT_FAILED, say_error

    _require_terminal()
    try:
        state = registry.state_dir(create=False)
        sweep = _find_sweep(request.run, state)
        engine = registry.find_engine(request.run) if sweep is None else None
        if engine is None and request.run is None:
            sweep = next(iter(live_sweeps(state)), None)  # no training: the newest sweep
    except registry.RegistryError as err:
        say_error(str(err))
        return EXIT_FAILED
    if sweep is not None:
        return _run_sweep_screen(sweep)
    options = AppOptions(Setup(presets.preset(presets.DEFAULT_PRESET), runs_dir=request.runs_dir))
    if engine is not None:
        return run_app(options, SocketConnector(engine.socket))
    if request.run is not None:
        run = _find_run(request.run, request.runs_dir)
        if run is not None:
            _check_run(run)
            print(f"{run.name} is not training any more; opening it from {run}.", flush=True)
            return run_app(AppOptions(options.setup, resume=str(run)))
    say_error(
        "no live training to attach to"
        + (f" for {request.run}" if request.run else "")
        + "; `mnist-tui ps` lists live ones, `mnist-tui --resume RUN` opens a past run."
    )
    _print_recent_runs(request.runs_dir)
    return EXIT_FAILED


def _find_sweep(name: str | None, state_dir: Path) -> Path | None:
    from tui.core.experiments.sweep_status import DEFAULT_ROOT, find_sweep

    return find_sweep(state_dir, name, DEFAULT_ROOT) if name is not None else None


def _run_sweep_screen(folder: Path) -> int:
    """The sweep's screen; a trial opened there (Enter) then opens in the app, as a past run."""
    from tui.core.settings import presets
    from tui.screens.sweep import SweepApp  # Optuna: only for a sweep

    app = SweepApp(folder)
    driver = terminal_driver()
    if driver is not None:
        app.driver_class = driver
    run = app.run()
    if run is None:
        return app.return_code or 0
    print(f"Opening trial run {run}", flush=True)
    setup = Setup(presets.preset(presets.DEFAULT_PRESET), runs_dir=str(run.parent))
    return run_app(AppOptions(setup, resume=str(run)))


def _find_run(run: str, runs_dir: str | None) -> Path | None:
    from tui.core.runs.layout import runs_root

    for candidate in (Path(run), runs_root(runs_dir) / run):
        if candidate.is_dir():
            return candidate
    return None


def _print_recent_runs(runs_dir: str | None, most: int = 5) -> None:
    from tui.core.runs.catalog import list_runs
    from tui.core.runs.layout import runs_root
    from tui.format import count

    runs = list_runs(runs_dir)[:most]
    if not runs:
        return
    print(f"Recent runs in {runs_root(runs_dir)}:")
    for summary in runs:
        print(f"  {summary.name}  {count(summary.epochs_done, 'epoch')}")


__all__ = ["run_app", "run_attached"]
