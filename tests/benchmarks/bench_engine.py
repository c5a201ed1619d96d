"""The engine with a viewer against the headless trainer, side by side; and how fast a viewer
hears the engine and the engine hears a key.

Run from the project root (it prints tables; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_engine.py --data ../shared/data/mnist.npz [--pin 1]

Throughput: whole processes, taking turns round by round, the same settings and data:
`mnist-tui train` (the headless trainer), then the app on a pseudo-terminal driving its engine
(`t`, wait for the test accuracy, `q`). Each epoch's time is what the run records (metrics.csv,
pauses excluded), so both pay for the same work; figures are medians of the epochs after the
first (which pays for tracing).

Latency, while training: a key (`+`/`-`) until the app shows the engine's new target (the app in
this process, its engine a real process); and a progress event from the moment the controller
publishes it until the app has drawn it (both in this process, one clock, a real socket between).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def headless(args: argparse.Namespace, flags: list[str], folder: Path) -> list[float]:
    subprocess.run(
        [*pinned(args), sys.executable, "-m", "tui", "train", *flags,
         "--runs-dir", str(folder / "runs"), "--out", str(folder / "model.keras")],
        check=True, capture_output=True, cwd=folder, timeout=3600,
    )  # fmt: skip
    return epoch_rates(folder / "runs")


def with_viewer(args: argparse.Namespace, flags: list[str], folder: Path) -> list[float]:
    """The app on a pty: `t`, wait for the test accuracy, `q` (the engine then ends)."""
    leader, follower = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    process = subprocess.Popen(
        [*pinned(args), sys.executable, "-m", "tui", *flags, "--runs-dir", str(folder / "runs")],
        stdin=follower, stdout=follower, stderr=follower, env=env, cwd=folder,
        start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            if time.monotonic() > deadline:
                raise TimeoutError(marker)
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                import re

                seen += re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", os.read(leader, 65536))

    try:
        read_until(b"press t to train", 120)
        os.write(leader, b"t")
        read_until(b"test accuracy", 3600)
        os.write(leader, b"q")
        process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(leader)
    return epoch_rates(folder / "runs")


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
    args = parser.parse_args(argv)
    state = tempfile.mkdtemp(prefix="mnist-tui-bench-engines-")
    os.chmod(state, 0o700)
    os.environ["MNIST_TUI_STATE_DIR"] = state
    flags = ["--data", args.data, "--preset", args.preset, "--epochs", str(args.epochs),
             "--train-size", str(args.train_size), "--validation-split", "0"]  # fmt: skip

    rates: dict[str, list[float]] = {"headless trainer": [], "engine + app viewer": []}
    ratios: list[float] = []
    for number in range(args.rounds):
        medians = []
        for name, run in (("headless trainer", headless), ("engine + app viewer", with_viewer)):
            folder = Path(tempfile.mkdtemp(prefix="mnist-tui-bench-"))
            epochs = run(args, flags, folder)[1:]
            rates[name] += epochs
            medians.append(statistics.median(epochs))
            print(f"round {number + 1}: {name}: {medians[-1]:,.0f} samples/s", flush=True)
        ratios.append(medians[1] / medians[0])
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
    base = statistics.median(rates["headless trainer"])
    print(f"{'set-up':24} {'samples/s (median)':>20} {'to headless':>12}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:24} {median:>20,.0f} {median / base:>12.3f}")
    print(
        f"viewer/headless within a round: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f})"
    )
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
