"""How long training stands still between two epochs: NumPy arrays handed to `fit` (Keras's own
pipeline, with tf.data's autotuner) against mnist-tui's pipeline (`tui.core.data.pipeline`).

Run from the project root (it prints a table; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_epoch_boundary.py

Both train the `fast` model for `--epochs` epochs on the same images, taking turns for
`--rounds` rounds. The wait at a boundary is the time from the end of one epoch to the end of
the next epoch's first call into TensorFlow, less a typical call (the median of the epoch's
calls): what is left is time in which no batch trained. The same wait follows the last epoch,
before `fit` returns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tui.core.data.mnist import load_npz  # noqa: E402
from tui.core.data.pipeline import training_batches  # noqa: E402
from tui.core.platform.runtime import import_keras  # noqa: E402
from tui.core.settings.presets import preset  # noqa: E402
from tui.core.training.model import build_model  # noqa: E402

keras = import_keras()


class Waits(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Seconds between each epoch's end and the next one's first batch, less a typical call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[float] = []
        self.ended: float | None = None
        self.first_calls: list[float] = []
        self.after_last = 0.0
        self.mark = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.mark = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        now = time.perf_counter()
        if self.ended is not None:
            self.first_calls.append(now - self.ended)
            self.ended = None
        else:
            self.calls.append(now - self.mark)
        self.mark = now

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.ended = time.perf_counter()

    def on_train_end(self, logs: Any = None) -> None:
        self.mark = time.perf_counter()

    def waits(self) -> list[float]:
        typical = statistics.median(self.calls)
        return [max(0.0, seconds - typical) for seconds in self.first_calls]


def train(pipeline: str, x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[list[float], float]:
    """(the wait at each boundary, the wait after the last epoch) for one way of feeding fit."""
    hparams = preset("fast").with_changes(lr_schedule="constant")
    model = build_model(hparams)
    waits = Waits()
    if pipeline == "keras":
        model.fit(x, y, batch_size=hparams.batch_size, epochs=epochs, verbose=0, callbacks=[waits])
    else:
        batches = training_batches(x, y, hparams.batch_size, hparams.seed)
        model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=[waits])
    return waits.waits(), time.perf_counter() - waits.mark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=60_000)
    args = parser.parse_args(argv)
    data = load_npz(Path(args.data))
    x, y = data.x_train[: args.train_size], data.y_train[: args.train_size]

    rows: dict[str, list[tuple[list[float], float]]] = {"keras": [], "mnist-tui": []}
    for _ in range(args.rounds):
        for pipeline in rows:
            rows[pipeline].append(train(pipeline, x, y, args.epochs))
    print(f"\n{len(x):,} images, {args.epochs} epochs of fast, {args.rounds} rounds")
    print(f"{'pipeline':12} {'wait at each boundary, s':>40} {'after the last, s':>20}")
    for pipeline, runs in rows.items():
        for boundary, last in runs:
            shown = ", ".join(f"{w:.2f}" for w in boundary)
            print(f"{pipeline:12} {shown:>40} {last:>20.2f}")
        total = sum(sum(b) + last for b, last in runs) / len(runs)
        print(f"{pipeline:12} {'standing still per run (mean):':>40} {total:>19.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
