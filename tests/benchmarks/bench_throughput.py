"""What makes training faster on this machine: input pipeline, XLA, steps per execution, threads.

Run from the project root (it prints a table; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_throughput.py --preset seed --train-size 20000

Each variant trains in its own process (thread settings only take effect before TensorFlow
starts), with the app's own per-batch callback attached, so a variant that would starve live
progress pays for it here too. Every variant sees the same images, model and batch size; the
figure is the median samples/s of the epochs after the first (which pays for tracing), over
several rounds in which the variants take turns (so that a noisy spell slows all of them), and
the ratio is against the first variant, the way the session trains today.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "mnist.npz"

VARIANTS: dict[str, dict[str, Any]] = {
    "numpy arrays, 1 batch per call": {},
    "tf.data, cache + prefetch": {"pipeline": "tf.data"},
    "jit_compile=True (XLA)": {"jit": True},
    "steps_per_execution=8": {"steps_per_execution": 8},
    "intra-op 2, inter-op 1 threads": {"intra": 2, "inter": 1},
    "intra-op 1, inter-op 2 threads": {"intra": 1, "inter": 2},
}


def run_variant(options: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train in this process with `options`; returns samples/s per epoch and progress counts."""
    import tensorflow as tf

    if options.get("intra") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(options["intra"])
        tf.config.threading.set_inter_op_parallelism_threads(options["inter"])

    sys.path.insert(0, str(ROOT))
    from tui.core.data.mnist import load_mnist
    from tui.core.settings.presets import preset
    from tui.core.training.callback import ControlCallback, EpochClock, ProgressCallback, RoundState
    from tui.core.training.controls import TrainingControls
    from tui.core.training.events import BatchProgress, TrainingEvent
    from tui.core.training.model import build_model, build_optimizer

    hparams = preset(args.preset).with_changes(validation_split=0.0)
    data = load_mnist(args.data)
    x, y = data.x_train[: args.train_size], data.y_train[: args.train_size]
    model = build_model(hparams, compile_model=False)
    model.compile(
        optimizer=build_optimizer(hparams),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=options.get("jit", False),
        steps_per_execution=options.get("steps_per_execution", 1),
    )
    progress: list[int] = []

    def sink(event: TrainingEvent) -> None:
        if isinstance(event, BatchProgress):
            progress.append(event.step)

    # The session's own callbacks: the controls read before each group, progress after it.
    controls = TrainingControls(args.epochs, hparams.learning_rate)
    steps = -(-len(x) // hparams.batch_size)
    state, clock = RoundState(0, steps), EpochClock()
    own = [
        ControlCallback(
            controls, sink, state, clock, train_samples=len(x), lr_schedule=hparams.lr_schedule
        ),
        ProgressCallback(
            sink, state, clock, batch_size=hparams.batch_size, train_samples=len(x), interval=0.2
        ),
    ]
    seconds: list[float] = []

    import keras

    class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.start)

    fit_args: dict[str, Any] = {"batch_size": hparams.batch_size, "shuffle": True}
    inputs: tuple[Any, ...] = (x, y)
    if options.get("pipeline") == "tf.data":
        dataset = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .cache()
            .shuffle(len(x), seed=hparams.seed, reshuffle_each_iteration=True)
            .batch(hparams.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        inputs, fit_args = (dataset,), {}
    model.fit(
        *inputs,
        epochs=args.epochs,
        verbose=0,
        callbacks=[*own, EpochTimer()],
        **fit_args,
    )
    return {
        "samples_per_sec": [len(x) / s for s in seconds],
        "progress_per_epoch": len(progress) / args.epochs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="variants run in turn this often")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_variant(json.loads(args.child), args)))
        return 0
    print(
        f"preset {args.preset}, {args.train_size:,} images, {args.epochs} epochs per variant, "
        f"{args.rounds} rounds, median samples/s of epochs 2+"
    )
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    updates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, options in VARIANTS.items():
            result = _child(name, options, args)
            if result is not None:
                rates[name].extend(result["samples_per_sec"][1:] or result["samples_per_sec"])
                updates[name].append(result["progress_per_epoch"])
    rows = [
        (name, statistics.median(rates[name]), statistics.median(updates[name]))
        for name in VARIANTS
        if rates[name]
    ]
    if not rows:
        return 1
    reference = rows[0][1]
    print()
    print(f"{'variant':36} {'samples/s':>10} {'ratio':>6} {'s/epoch':>8} {'updates/epoch':>14}")
    for name, rate, per_epoch_updates in rows:
        seconds = args.train_size / rate
        print(
            f"{name:36} {rate:>10,.0f} {rate / reference:>6.2f} {seconds:>8.1f} "
            f"{per_epoch_updates:>14.0f}"
        )
    return 0


def _child(name: str, options: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """Run one variant in a fresh process; None (and the error shown) when it fails."""
    command = [
        sys.executable,
        __file__,
        *("--data", args.data, "--preset", args.preset),
        *("--train-size", str(args.train_size), "--epochs", str(args.epochs)),
        *("--child", json.dumps(options)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    rate = statistics.median(result["samples_per_sec"][1:] or result["samples_per_sec"])
    print(f"  {name}: {rate:,.0f} samples/s", flush=True)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
