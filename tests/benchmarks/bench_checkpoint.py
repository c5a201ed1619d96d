"""What an epoch's checkpoint costs, per preset: the atomic save of last.keras that every epoch
already made, keeping it as checkpoints/epoch-NNNN.keras (a hard link), the copy a file system
without hard links gets instead, and the bytes each epoch adds to the run.

Run from the project root (it prints a table; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_checkpoint.py

Each model is built from its preset and trained one step, so that its optimizer state is in
the archive as it is after a real epoch; then each cost is measured `--rounds` times (median).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tui.core.runs.checkpoints import keep_checkpoint  # noqa: E402
from tui.core.runs.record import save_model_atomic  # noqa: E402
from tui.core.settings.presets import preset  # noqa: E402
from tui.core.training.model import build_model  # noqa: E402


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f}"


def measure(name: str, rounds: int, folder: Path) -> list[str]:
    hparams = preset(name)
    model = build_model(hparams)
    images = np.random.default_rng(0).random((hparams.batch_size, 28, 28, 1), np.float32)
    model.fit(images, np.zeros(hparams.batch_size, np.int64), epochs=1, verbose=0)
    run = folder / name
    run.mkdir()
    last = run / "last.keras"
    saves, links, copies = [], [], []
    for epoch in range(1, rounds + 1):
        started = time.perf_counter()
        save_model_atomic(model, last)
        saves.append(time.perf_counter() - started)
        started = time.perf_counter()
        keep_checkpoint(last, run, epoch)
        links.append(time.perf_counter() - started)
        started = time.perf_counter()
        shutil.copyfile(last, run / "copy.keras")
        copies.append(time.perf_counter() - started)
    size = last.stat().st_size
    return [
        name,
        f"{model.count_params():,}",
        f"{size / 1e6:.2f}",
        median_ms(saves),
        median_ms(links),
        median_ms(copies),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = [["preset", "parameters", "MB an epoch", "save ms", "keep (link) ms", "copy ms"]]
    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        for name in ("default", "fast", "best"):
            rows.append(measure(name, args.rounds, Path(folder)))
    for row in rows:
        print(" | ".join(f"{cell:>14}" for cell in row))


if __name__ == "__main__":
    main()
