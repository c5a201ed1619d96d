"""The engine with a viewer against the headless trainer, side by side; and how fast a viewer
hears the engine and the engine hears a key.

Run from the project root (it prints tables; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_engine.py --data ../shared/data/mnist.npz [--pin 1]

Throughput: whole processes, taking turns round by round, the same settings and data:
`mnist-tui train` (the headless trainer), then the app on a pseudo-terminal driving its engine
(`t`, wait for the test accuracy, `q`). Each epoch's time is what the run records (metrics.csv,
pauses excluded), so both pay for the same work; figures are medians of the epochs after the
first (which pays for tracing). Beside the wall clock, each of those epochs' CPU seconds by the
scheduler's count: the trainer's (the headless process, or the engine) and the app's. On a VM the
same work takes a different time from one minute to the next, in CPU time as in wall time, so the
app's share of its engine's CPU in the same epochs is the steady figure: what the viewer costs a
core it shares, and 1 / (1 + share) the ratio it allows.

With `--pairs N`, also one engine whose viewer is stopped (SIGSTOP) for every other epoch: the
viewer's cost within one process, the machine's slow drift cancelled by comparing each viewed
epoch with the unviewed epochs on either side. It overstates that cost: each viewed epoch also
pays for the stopped one's events, and Textual answers SIGCONT by re-entering application mode
and repainting the whole screen (the app's CPU in viewed epochs: 4.3% of its engine's, against
1.8% for an app that is never stopped). Read it as a lower bound of the ratio.

Latency, while training: a key (`+`/`-`) until the app shows the engine's new target (the app in
this process, its engine a real process); and a progress event from the moment the controller
publishes it until the app has drawn it (both in this process, one clock, a real socket between).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tui.core.training.events import BatchProgress, TrainingEvent  # noqa: E402
from tui.core.training.phase import FITTING, IDLE  # noqa: E402


def epoch_rates(runs_root: Path) -> list[float]:
    """samples/s of each epoch of the one run under `runs_root`, from its records."""
    (run,) = [p for p in runs_root.iterdir() if p.is_dir()]
    import json

    samples = json.loads((run / "run.json").read_text())["train_samples"]
    with open(run / "metrics.csv", newline="") as f:
        return [samples / float(row["epoch_seconds"]) for row in csv.DictReader(f)]


def pinned(args: argparse.Namespace) -> list[str]:
    """`taskset -c CPU` when --pin is given: the app, its engine (a child, which inherits the
    mask) and the headless trainer then share one core, so what the viewer costs shows."""
    return ["taskset", "-c", str(args.pin)] if args.pin is not None else []


class Side(NamedTuple):
    """One side of a round, the epochs after the first: samples/s, the trainer's CPU seconds
    (the headless process, or the engine), and the app's (none for the headless side)."""

    rates: list[float]
    trainer_cpu: list[float]
    app_cpu: list[float]


def epochs_done(runs_root: Path) -> int:
    """Epochs the one run under `runs_root` has recorded so far (rows of its metrics.csv)."""
    metrics = list(runs_root.glob("*/metrics.csv"))
    return len(metrics[0].read_text().splitlines()) - 1 if metrics else 0


RUN_LIMIT = 3600.0
"""Seconds a side may take before the benchmark gives up on it."""


def cpu_per_epoch(
    runs_root: Path, pids: list[int], epochs: int, wait: Callable[[], None]
) -> list[list[float]]:
    """Each process's CPU seconds in each epoch after the first, read as each epoch's row
    lands in metrics.csv (`wait` between looks: sleep, or read the app's output; it raises
    when what it watches has ended)."""
    at_end: dict[int, list[float]] = {}
    done = 0
    deadline = time.monotonic() + RUN_LIMIT
    while done < epochs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done} of {epochs} epochs in {RUN_LIMIT:.0f} s ({runs_root})")
        wait()
        now = epochs_done(runs_root)
        if now > done:
            done = now
            at_end[done] = [cpu_seconds(pid) for pid in pids]
    both = [e for e in range(2, epochs + 1) if {e - 1, e} <= at_end.keys()]
    return [[at_end[e][i] - at_end[e - 1][i] for e in both] for i in range(len(pids))]


def headless(args: argparse.Namespace, flags: list[str], folder: Path) -> Side:
    """`mnist-tui train`, its output kept in the folder's train.log."""
    runs = folder / "runs"
    with open(folder / "train.log", "wb") as log:
        trainer = subprocess.Popen(
            [*pinned(args), sys.executable, "-m", "tui", "train", *flags,
             "--runs-dir", str(runs), "--out", str(folder / "model.keras")],
            stdout=log, stderr=subprocess.STDOUT, cwd=folder,
        )  # fmt: skip

    def wait() -> None:
        time.sleep(0.05)
        if trainer.poll() is not None and epochs_done(runs) < args.epochs:
            raise RuntimeError(f"mnist-tui train ended ({trainer.returncode}): {folder}/train.log")

    try:
        (cpu,) = cpu_per_epoch(runs, [trainer.pid], args.epochs, wait)
    except BaseException:
        trainer.kill()
        trainer.wait()
        raise
    if trainer.wait(600) != 0:
        raise RuntimeError(f"mnist-tui train failed ({trainer.returncode}): {folder}/train.log")
    return Side(epoch_rates(runs)[1:], cpu, [])


class Viewer:
    """The app on a pty (`t` pressed once it is ready), its output read as it comes so that it
    never blocks on a full terminal; pinned like the headless side."""

    def __init__(self, args: argparse.Namespace, flags: list[str], folder: Path) -> None:
        self.leader, follower = pty.openpty()
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
        runs = str(folder / "runs")
        self.process = subprocess.Popen(
            [*pinned(args), sys.executable, "-m", "tui", *flags, "--runs-dir", runs],
            stdin=follower, stdout=follower, stderr=follower, env=env, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
        os.close(follower)
        self.seen = b""

    def read(self, wait: float) -> None:
        """What the app wrote within `wait` seconds; an app that has ended is an error."""
        ready, _, _ = select.select([self.leader], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.leader, 65536)
            except OSError:
                chunk = b""
            if not chunk and self.process.poll() is not None:
                raise RuntimeError(f"the app ended ({self.process.returncode}) before the run")
            self.seen += re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", chunk)

    def read_until(self, marker: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(marker)
            self.read(0.2)

    def train(self) -> None:
        self.read_until(b"press t to train", 120)
        os.write(self.leader, b"t")

    def finish(self) -> None:
        """Wait for the test accuracy, `q` (the engine then ends)."""
        self.read_until(b"test accuracy", 3600)
        os.write(self.leader, b"q")
        with contextlib.suppress(subprocess.TimeoutExpired):  # the figures are on disk
            self.process.wait(60)

    def close(self) -> None:
        """The app gone, whatever state it is in (stopped included)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGKILL)
        os.close(self.leader)


def with_viewer(args: argparse.Namespace, flags: list[str], folder: Path) -> Side:
    """The app on a pty: `t`, wait for the test accuracy, `q`."""
    viewer = Viewer(args, flags, folder)
    try:
        viewer.train()
        engine = engine_pid(folder / "runs")
        pids = [engine, viewer.process.pid]
        cpu, app = cpu_per_epoch(folder / "runs", pids, args.epochs, lambda: viewer.read(0.05))
        viewer.finish()
    finally:
        viewer.close()
    return Side(epoch_rates(folder / "runs")[1:], cpu, app)


def cpu_seconds(pid: int, *, main_thread: bool = False) -> float:
    """CPU time of every thread of `pid` so far (or of its main thread alone), from the
    scheduler's own count (nanoseconds; /proc/PID/stat's ticks are too coarse for a process
    that wakes for a few milliseconds). Threads that have ended no longer count: the figures
    assume the threads that work live as long as the run (the app's and the engine's do)."""
    total = 0
    tasks = Path(f"/proc/{pid}/task")
    for task in [tasks / str(pid)] if main_thread else tasks.iterdir():
        with contextlib.suppress(OSError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def engine_pid(runs: Path) -> int:
    """The engine process recording into `runs` (its start request names the folder)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            command = (entry / "cmdline").read_bytes().decode()
            if entry.name.isdigit() and "tui.engine" in command and str(runs) in command:
                return int(entry.name)
    raise LookupError(f"no engine recording into {runs}")


class Paired(NamedTuple):
    """Viewed epochs against the unviewed epochs on either side: wall-clock rate, and rate by
    CPU time (the engine's alone when unviewed; the engine's plus the app's when viewed)."""

    wall: list[float]
    cpu: list[float]
    app_share: float
    serving_share: float
    """The engine's main thread (its server: events out, commands in) against all of it."""


def alternating(args: argparse.Namespace, flags: list[str], folder: Path) -> Paired:
    """One engine, its viewer stopped (SIGSTOP: it costs nothing, the engine goes on sending)
    for odd epochs and running for even ones; each even epoch against the odd epochs on either
    side. Slow drift in the machine's speed then cancels, and neither side pays for a process
    of its own. On a VM the wall clock also counts time stolen by neighbours; the scheduler's
    CPU time of the two processes does not."""
    epochs = 2 * args.pairs + 3  # epochs 1-2 viewed, then off, on, ..., on, off
    viewer = Viewer(args, [*flags, "--epochs", str(epochs)], folder)
    at_end: dict[int, tuple[float, float, float]] = {}  # epoch: engine, its server, app CPU
    try:
        viewer.train()
        served_by = engine_pid(folder / "runs")
        done = 0
        while done < epochs:
            viewer.read(0.05)
            metrics = list((folder / "runs").glob("*/metrics.csv"))
            now = len(metrics[0].read_text().splitlines()) - 1 if metrics else 0
            if now > done:
                done = now
                at_end[done] = (
                    cpu_seconds(served_by),
                    cpu_seconds(served_by, main_thread=True),
                    cpu_seconds(viewer.process.pid),
                )
                # epoch `done + 1` trains next: odd ones without the viewer
                if done + 1 <= epochs and (done + 1) % 2 == 1 and done >= 2:
                    os.kill(viewer.process.pid, signal.SIGSTOP)  # the app alone, not its engine
                else:
                    os.kill(viewer.process.pid, signal.SIGCONT)
        os.kill(viewer.process.pid, signal.SIGCONT)
        viewer.finish()
    finally:
        viewer.close()
    rates = epoch_rates(folder / "runs")  # rates[e - 1] is epoch e's

    def used(epoch: int, which: int) -> float:
        """CPU seconds of one kind in `epoch` (from the end of the one before)."""
        return at_end[epoch][which] - at_end[epoch - 1][which]

    viewed = [e for e in range(4, epochs, 2) if {e - 2, e - 1, e, e + 1} <= at_end.keys()]
    wall = [rates[e - 1] / ((rates[e - 2] + rates[e]) / 2) for e in viewed]
    cpu = [((used(e - 1, 0) + used(e + 1, 0)) / 2) / (used(e, 0) + used(e, 2)) for e in viewed]
    if not viewed:
        raise RuntimeError("no viewed epoch has both of its neighbours' figures")
    share = sum(used(e, 2) for e in viewed) / sum(used(e, 0) for e in viewed)
    first, last = min(at_end), max(at_end)
    serving = (at_end[last][1] - at_end[first][1]) / (at_end[last][0] - at_end[first][0])
    return Paired(wall, cpu, share, serving)


async def key_latencies(flags: list[str], presses: int) -> list[float]:
    """Seconds from a key (`+`/`-`) to the engine's new target on screen, while it trains: the
    app in this process, its engine a real process."""
    from tui.app import create_app
    from tui.cli import app_options, build_parser

    app = create_app(app_options(build_parser().parse_args(flags)))
    keys: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while app.handle.client is None or app.phase not in IDLE:
            await asyncio.sleep(0.05)
        await pilot.press("t")
        while app.phase not in FITTING or app.snapshot.progress is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # a trainer well into its epoch: the figure is about a busy one
        for index in range(presses):
            if app.phase not in FITTING:
                break
            before = app.snapshot.target
            start = time.monotonic()
            app.simulate_key("plus" if index % 2 == 0 else "minus")
            while app.snapshot.target == before and time.monotonic() - start < 5:
                await asyncio.sleep(0.001)
            keys.append(time.monotonic() - start)
            await asyncio.sleep(0.2)
        await pilot.press("s")
        while app.phase not in IDLE:
            await asyncio.sleep(0.05)
    return keys


async def event_latencies(data_path: str, preset_name: str, train_size: int) -> list[float]:
    """Seconds from the controller publishing a progress event to the app having drawn it.

    The engine runs inside this process here (the real server, protocol and socket), so both
    moments are read off one clock; it shares the interpreter with the app, which makes these
    figures worse than an engine in its own process would give, not better.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from local_engine import LocalEngine

    from tui.app import create_app
    from tui.core.data.mnist import load_mnist
    from tui.core.settings.presets import preset

    data = load_mnist(data_path).subset(train=train_size)
    hparams = preset(preset_name).with_changes(epochs=2, validation_split=0.0)
    published: dict[tuple[int, int], float] = {}
    drawn: dict[tuple[int, int], float] = {}
    with LocalEngine(hparams, data, progress_interval=0.2) as engine:

        def heard(event: TrainingEvent) -> None:
            if isinstance(event, BatchProgress):
                published.setdefault((event.epoch, event.step), time.monotonic())

        engine.controller.subscribe(heard)
        app = create_app(engine.options, engine.connector())
        async with app.run_test(size=(120, 40)) as pilot:
            show = app.dashboard.progress.show_progress

            def timed(event: BatchProgress, target: int) -> None:
                show(event, target)
                drawn.setdefault((event.epoch, event.step), time.monotonic())

            app.dashboard.progress.show_progress = timed  # type: ignore[method-assign]
            while app.handle.client is None or app.phase not in IDLE:
                await asyncio.sleep(0.05)
            await pilot.press("t")
            while app.snapshot.stopped is None or app.phase not in IDLE:
                await asyncio.sleep(0.05)
    return [drawn[k] - published[k] for k in drawn.keys() & published.keys()]


async def model_screen_cost(
    flags: list[str], epochs: int, rounds: int
) -> tuple[list[float], list[float]]:
    """samples/s of epochs trained with the dashboard showing, then with the model screen
    (`m`, redrawn after every epoch) showing, `rounds` times in turn: the app in this process,
    a real engine, one model that goes on training."""
    from tui.app import create_app
    from tui.cli import app_options, build_parser

    app = create_app(app_options(build_parser().parse_args([*flags, "--epochs", str(epochs)])))
    async with app.run_test(size=(120, 40)) as pilot:
        while app.handle.client is None or app.phase not in IDLE:
            await asyncio.sleep(0.05)
        rates: list[list[float]] = []
        for screen_keys in ((), ("m",)) * rounds:
            await pilot.press(*screen_keys)
            before = app.snapshot.stopped
            done = app.snapshot.epochs_done
            await (
                app.dashboard.action_train()
            )  # as `t` does (the key itself works on the dashboard only)
            while app.snapshot.stopped is before or app.phase not in IDLE:
                await asyncio.sleep(0.05)
            epochs_run = [e for e in app.snapshot.history if e.epoch > done + 1]
            rates.append([e.samples_per_sec or 0.0 for e in epochs_run])
            if screen_keys:
                await pilot.press("escape")
    closed = [rate for segment in rates[0::2] for rate in segment]
    opened = [rate for segment in rates[1::2] for rate in segment]
    return closed, opened


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--epochs", type=int, default=4, help="per set-up and round")
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--pin", type=int, metavar="CPU", help="run each side on this core only")
    parser.add_argument(
        "--throughput-only", action="store_true", help="skip the model screen and the latencies"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="also train one engine whose viewer is stopped every other epoch, this many pairs",
    )
    args = parser.parse_args(argv)
    args.data = str(Path(args.data).resolve())  # each side runs in a folder of its own
    state = tempfile.mkdtemp(prefix="mnist-tui-bench-engines-")
    os.chmod(state, 0o700)
    os.environ["MNIST_TUI_STATE_DIR"] = state
    flags = ["--data", args.data, "--preset", args.preset, "--epochs", str(args.epochs),
             "--train-size", str(args.train_size), "--validation-split", "0"]  # fmt: skip

    rates: dict[str, list[float]] = {"headless trainer": [], "engine + app viewer": []}
    trainer_cpu: dict[str, list[float]] = {name: [] for name in rates}
    app_share: list[float] = []
    ratios: list[float] = []
    for number in range(args.rounds):
        medians = []
        for name, run in (("headless trainer", headless), ("engine + app viewer", with_viewer)):
            folder = Path(tempfile.mkdtemp(prefix="mnist-tui-bench-"))
            side = run(args, flags, folder)
            rates[name] += side.rates
            trainer_cpu[name] += side.trainer_cpu
            if side.app_cpu:  # the viewer's side
                pairs = zip(side.app_cpu, side.trainer_cpu, strict=True)
                app_share += [app / cpu for app, cpu in pairs if cpu > 0]
            medians.append(statistics.median(side.rates))
            print(f"round {number + 1}: {name}: {medians[-1]:,.0f} samples/s", flush=True)
            each = zip(side.rates, side.trainer_cpu, strict=False)  # an epoch may go unseen
            print(
                "  each epoch, samples/s and the trainer's CPU seconds:",
                ", ".join(f"{rate:,.0f} {cpu:.2f}" for rate, cpu in each),
                flush=True,
            )
        ratios.append(medians[1] / medians[0])
    paired: Paired | None = None
    if args.pairs:
        paired = alternating(args, flags, Path(tempfile.mkdtemp(prefix="mnist-tui-bench-")))
        for name, values in (("wall clock", paired.wall), ("CPU time", paired.cpu)):
            print(f"viewer running / stopped by {name}:", " ".join(f"{r:.3f}" for r in values))
    closed: list[float] = []
    opened: list[float] = []
    keys: list[float] = []
    events: list[float] = []
    if not args.throughput_only:
        closed, opened = asyncio.run(model_screen_cost(flags, args.epochs, args.rounds))
        long_run = [*flags, "--epochs", "50"]  # the last --epochs wins: long enough for keys
        keys = asyncio.run(key_latencies(long_run, args.presses))
        events = asyncio.run(event_latencies(args.data, args.preset, args.train_size))

    print()
    print(f"preset {args.preset}, {args.train_size:,} images, {args.epochs} epochs a run, "
          f"{args.rounds} rounds, epochs after the first of each run"
          + (f", each side pinned to CPU {args.pin}" if args.pin is not None else ""))  # fmt: skip
    if ratios:
        base = statistics.median(rates["headless trainer"])
        print(f"{'set-up':24} {'samples/s (median)':>20} {'to headless':>12}")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"{name:24} {median:>20,.0f} {median / base:>12.3f}")
        print(
            f"viewer/headless within a round: median {statistics.median(ratios):.3f} "
            f"(range {min(ratios):.3f}-{max(ratios):.3f})"
        )
    if ratios and app_share and all(trainer_cpu.values()):
        # The same work by the scheduler's count: the wall clock on a VM also varies with how
        # fast the host lets the same work run, and this shows whether the engine does more of
        # it than the headless trainer, and how much the app adds on the shared core.
        headless_cpu = statistics.median(trainer_cpu["headless trainer"])
        engine_cpu = statistics.median(trainer_cpu["engine + app viewer"])
        share = statistics.median(app_share)
        print(
            f"CPU seconds an epoch (median): headless trainer {headless_cpu:.2f}, engine "
            f"{engine_cpu:.2f} ({headless_cpu / engine_cpu:.3f}); the app {share:.2%} of its "
            f"engine's ({min(app_share):.2%}-{max(app_share):.2%} over {len(app_share)} epochs)"
        )
        print(
            f"the app's own cost, 1 / (1 + its share): {1 / (1 + share):.3f}; with the engine's "
            f"CPU against the headless trainer's: {headless_cpu / (engine_cpu * (1 + share)):.3f}"
        )
    if paired is not None:
        print(f"one engine, its viewer running / stopped in alternate epochs ({args.pairs} pairs):")
        for name, values in (("wall clock", paired.wall), ("CPU time", paired.cpu)):
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(
                f"  by {name:10} median {statistics.median(values):.3f}, "
                f"mean {statistics.mean(values):.3f} "
                f"(± {2 * spread / len(values) ** 0.5:.3f}, two standard errors)"
            )
        print(f"  the app's CPU time: {paired.app_share:.2%} of its engine's in the viewed epochs")
        print(f"  the engine's server thread: {paired.serving_share:.2%} of the engine's CPU time")
    if closed and opened:
        shut, shown = statistics.median(closed), statistics.median(opened)
        print(
            f"{'model screen closed':24} {shut:>20,.0f} {1.0:>12.3f}\n"
            f"{'model screen open':24} {shown:>20,.0f} {shown / shut:>12.3f}"
        )
    print()
    for label, values in (("key to the engine's answer on screen", keys),
                          ("event published to drawn on screen", events)):  # fmt: skip
        if values:
            print(
                f"{label} ({len(values)}): p50 {statistics.median(values) * 1000:.1f} ms, "
                f"p95 {percentile(values, 0.95) * 1000:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
