"""How the cost of an epoch grows: the `fast` preset's epoch time against the training-set size
and against the batch size.

Run from the project root (it prints two tables; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_cost.py

Each cell is the median over `--rounds` `mnist-tui train` processes of two epochs (the cells take
turns round by round, so a noisy spell slows all of them); the figure is the second epoch's
time as the command's own table prints it (the first also traces the graph). Batch sizes run
with the preset's other settings, its learning rate included.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EPOCH_ROW = re.compile(r"^\s*2/2\s.*?\s([\d.]+)s\s+([\d,]+)\s*$", re.MULTILINE)


def second_epoch(data: str, preset: str, *flags: str) -> tuple[float, int]:
    """(seconds, samples per second) of the second epoch of a two-epoch run."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-tui-cost-"))
    argv = [sys.executable, "-m", "tui", "train", "--preset", preset, "--data", data,
            "--epochs", "2", "--runs-dir", str(folder / "runs"), "--out", str(folder / "m.keras"),
            *flags]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XDG_CACHE_HOME=str(folder / "cache"))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    found = EPOCH_ROW.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"no second epoch from {argv}:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1)), int(found.group(2).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--sizes", default="6000,15000,30000,60000")
    parser.add_argument("--batches", default="32,64,128,256,512")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    cells = [("train images", f"{int(n):,}", ["--train-size", n]) for n in args.sizes.split(",")]
    cells += [("batch", n, ["--batch-size", n]) for n in args.batches.split(",")]
    seconds: dict[str, list[float]] = {label: [] for _, label, _ in cells}
    for number in range(args.rounds):
        for _, label, flags in cells:
            seconds[label].append(second_epoch(args.data, args.preset, *flags)[0])
        print(f"round {number + 1} of {args.rounds} done", flush=True)
    for axis, heading in (("train images", "batch as the preset"), ("batch", "60,000 images")):
        print()
        print(f"{args.preset}: epoch time against the {axis} ({heading}), median of {args.rounds}")
        print(f"{axis:>14} {'epoch s':>9} {'range':>11} {'images/s':>10}")
        for kind, label, flags in cells:
            if kind != axis:
                continue
            times = seconds[label]
            images = int(flags[1]) if kind == "train images" else 60_000
            middle = statistics.median(times)
            spread = f"{min(times):.1f}-{max(times):.1f}"
            print(f"{label:>14} {middle:>9.1f} {spread:>11} {images / middle:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
