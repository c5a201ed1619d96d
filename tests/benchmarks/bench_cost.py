"""How the cost of an epoch grows: the `fast` preset's epoch time against the training-set size
and against the batch size.

Run from the project root (it prints two tables; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_cost.py

Each cell is one `mnist-tui train` process of two epochs; the figure is the second epoch's time
as the command's own table prints it (the first also traces the graph). Batch sizes run with
the preset's other settings, its learning rate included.
"""

from __future__ import annotations

import argparse
import os
import re
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
    args = parser.parse_args(argv)

    print(f"{args.preset}: epoch time against the training-set size (batch as the preset)")
    print(f"{'train images':>14} {'epoch s':>9} {'samples/s':>10}")
    for size in (int(n) for n in args.sizes.split(",")):
        seconds, rate = second_epoch(args.data, args.preset, "--train-size", str(size))
        print(f"{size:>14,} {seconds:>9.1f} {rate:>10,}", flush=True)
    print()
    print(f"{args.preset}: epoch time against the batch size (60,000 images)")
    print(f"{'batch':>14} {'epoch s':>9} {'samples/s':>10}")
    for batch in (int(n) for n in args.batches.split(",")):
        seconds, rate = second_epoch(args.data, args.preset, "--batch-size", str(batch))
        print(f"{batch:>14} {seconds:>9.1f} {rate:>10,}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
