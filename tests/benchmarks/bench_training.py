"""Training throughput, side by side: plain `model.fit`, the headless session, the whole app.

Run from the project root (it prints a table; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_training.py --data ../shared/data/mnist.npz

The set-ups train the same model on the same data with the same batch size, taking turns
epoch by epoch so that a noisy machine slows all of them alike. Each figure is timed from the
start to the end of an epoch (Keras's own epoch hooks), so all of them pay for the same work;
figures are medians of the epochs after the first (which pays for tracing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tui.core.config import Hyperparams, preset  # noqa: E402
from tui.core.data import MnistData, load_mnist  # noqa: E402
from tui.core.events import TrainingEvent  # noqa: E402
from tui.core.runtime import import_keras  # noqa: E402

keras = import_keras()

from tui.core.model import STEPS_PER_EXECUTION, build_model  # noqa: E402
from tui.core.session import TrainingSession  # noqa: E402


class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Wall time of each epoch; epoch hooks only, so Keras keeps its async batch dispatch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class PlainFit:
    """`model.fit` as the original script calls it, one epoch per call.

    With one batch per call into TensorFlow it is the original script, the reference; with the
    session's `STEPS_PER_EXECUTION` it is the same settings as the app without the app, which
    shows what the callback and the UI themselves cost.
    """

    def __init__(self, hparams: Hyperparams, data: MnistData, steps_per_execution: int) -> None:
        self.name = (
            "plain model.fit (the script)"
            if steps_per_execution == 1
            else f"plain model.fit, {steps_per_execution} steps/call"
        )
        self.model = build_model(hparams, steps_per_execution=steps_per_execution)
        self.hparams = hparams
        self.data = data
        self.epoch = 0
        self.timer = EpochTimer()

    def run_epoch(self) -> float:
        x, y = self.data.x_train, self.data.y_train
        self.model.fit(
            x,
            y,
            batch_size=self.hparams.batch_size,
            epochs=self.epoch + 1,
            initial_epoch=self.epoch,
            verbose=0,
            callbacks=[self.timer],
        )
        self.epoch += 1
        return len(x) / self.timer.seconds[-1]


class HeadlessSession:
    """The core `TrainingSession` with its callback and an event sink that keeps everything."""

    name = "TrainingSession (headless)"

    def __init__(self, hparams: Hyperparams, data: MnistData) -> None:
        self.events: list[TrainingEvent] = []
        self.session = TrainingSession(hparams, data, self.events.append)

    def run_epoch(self) -> float:
        self.session.controls.set_epoch_target(self.session.epochs_done + 1)
        self.session.train()
        return self.session.history[-1].samples_per_sec


class WholeApp:
    """The Textual app training headless (`run_test`), log, curves and progress all live.

    Each `t` runs one more epoch (the panel's epoch target is 1), exactly as a user continues.
    """

    name = "Textual app (run_test)"

    def __init__(self, hparams: Hyperparams, data: MnistData) -> None:
        from tui.app import create_app

        self.app = create_app(hparams.with_changes(epochs=1), data=data)
        self.pilot: Any = None
        self.ui_share: list[float] = []
        self.key_latencies: list[float] = []
        """Seconds from a key press to its effect on screen state, measured while training."""
        self.measure_keys = False

    async def run_epoch(self) -> float:
        app = self.app
        done = app.session.epochs_done if app.session else 0
        ui_cpu = time.thread_time()
        await self.pilot.press("t")
        if self.measure_keys:
            await self.press_keys_while_training()
        await wait_for(
            lambda: (
                app.session is not None
                and app.session.epochs_done > done
                and app.state in ("finished", "stopped", "error")
            ),
        )
        epoch = app.session.history[-1]
        # What the UI itself costs: CPU seconds of the event-loop thread per second of the
        # epoch (the wait above also covers evaluation, so this errs high).
        self.ui_share.append((time.thread_time() - ui_cpu) / epoch.seconds)
        return float(epoch.samples_per_sec)

    async def press_keys_while_training(self, presses: int = 20) -> None:
        """Alternate `+` and `-` during the epoch; time each until the status bar's target moves.

        The frame that shows it follows within one refresh (Textual paints at up to 60 Hz).
        """
        app = self.app
        await wait_for(lambda: app.state == "training" and app.session is not None)
        await wait_for(lambda: app.session is not None and app.session.controls.epoch_target > 0)
        await asyncio.sleep(0.5)  # let the epoch get going: the figure is about a busy trainer
        for index in range(presses):
            if app.state != "training":
                break
            before = app.status.target
            start = time.perf_counter()
            app.simulate_key("plus" if index % 2 == 0 else "minus")
            try:
                await wait_for(lambda b=before: app.status.target != b, timeout=5.0, tick=0.001)
            except TimeoutError:
                continue
            self.key_latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.1)


async def wait_for(
    condition: Callable[[], bool], timeout: float = 600.0, tick: float = 0.05
) -> None:
    """Poll `condition` while the app's event loop runs.

    Not `pilot.pause()`: that pings every widget on the screen on each call, which would bill
    the benchmark's own polling to the app.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(tick)


async def take_turns(setups: list[Any], rates: dict[str, list[float]], epochs: int) -> None:
    """Epoch by epoch, each set-up in turn; the app stays open (and idle) in between."""
    app_setup = next((s for s in setups if isinstance(s, WholeApp)), None)

    async def rounds() -> None:
        for epoch in range(epochs):
            for setup in setups:
                if setup is app_setup:
                    rate = await setup.run_epoch()
                else:
                    # In a thread, so that the open app's event loop keeps running meanwhile.
                    rate = await asyncio.to_thread(setup.run_epoch)
                rates[setup.name].append(rate)
                print(f"epoch {epoch + 1}: {setup.name}: {rate:,.0f} samples/s", flush=True)

    if app_setup is None:
        await rounds()
        return
    async with app_setup.app.run_test(size=(120, 40)) as pilot:
        app_setup.pilot = pilot
        await wait_for(lambda: app_setup.app.state == "ready")
        await rounds()
        # One more app epoch for key latency, not counted, so it does not colour throughput.
        app_setup.measure_keys = True
        await app_setup.run_epoch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--epochs", type=int, default=4, help="per set-up; first is warm-up")
    parser.add_argument("--train-size", type=int, default=0, help="0 = the whole training set")
    parser.add_argument("--no-app", action="store_true", help="skip the Textual set-up")
    args = parser.parse_args(argv)
    # The app records a run directory as it trains; keep those out of the working tree.
    os.environ.setdefault("MNIST_TUI_RUNS", tempfile.mkdtemp(prefix="mnist-tui-bench-"))

    data = load_mnist(args.data)
    if args.train_size:
        data = data.subset(train=args.train_size)
    # No validation split: the reference script had none, and it would cost all alike.
    hparams = preset(args.preset).with_changes(validation_split=0.0)
    script, same_settings = PlainFit(hparams, data, 1), PlainFit(hparams, data, STEPS_PER_EXECUTION)
    setups: list[Any] = [script, same_settings, HeadlessSession(hparams, data)]
    if not args.no_app:
        setups.append(WholeApp(hparams, data))
    rates: dict[str, list[float]] = {s.name: [] for s in setups}
    asyncio.run(take_turns(setups, rates, args.epochs))

    reference = statistics.median(rates[script.name][1:])
    same = statistics.median(rates[same_settings.name][1:])
    print()
    print(f"preset {args.preset}, batch {hparams.batch_size}, {len(data.x_train):,} images/epoch,")
    print(f"{args.epochs} epochs each (first dropped), {data.describe()}")
    print(f"{'set-up':32} {'samples/s (median)':>20} {'to the script':>14} {'to same plain':>14}")
    for setup in setups:
        median = statistics.median(rates[setup.name][1:])
        print(
            f"{setup.name:32} {median:>20,.0f} {median / reference:>14.3f} {median / same:>14.3f}"
        )
        if isinstance(setup, WholeApp):
            share = statistics.median(setup.ui_share[1:])
            print(f"  (UI event loop: {share:.1%} of one core while training, incl. evaluation)")
            if setup.key_latencies:
                keys = sorted(setup.key_latencies)
                p95 = keys[min(len(keys) - 1, round(0.95 * (len(keys) - 1)))]
                print(
                    f"key press to effect while training ({len(keys)} presses): "
                    f"p50 {statistics.median(keys) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
