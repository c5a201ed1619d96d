"""Time to accuracy, whole processes side by side: the original script against a preset.

Run from the project root (it prints a table; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_time_to_accuracy.py --preset fast --rounds 3

Each round runs the original script (`original_script.py`: plain Keras, the `seed` model,
5 epochs of batch 32, no mnist-tui code) and then `mnist-tui train --preset P` on the same full
MNIST, each as a whole process (start-up, data, training, evaluation and saving included), and
reads the test accuracy each prints. The figure that travels between machines is the ratio of
the two times within a round.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCURACY = re.compile(r"Test accuracy: (\d+\.\d+)%")
TTA = re.compile(r"With test-time augmentation: (\d+\.\d+)%.*: (\d+\.\d+) s\)")


def _run(argv: list[str], cwd: Path) -> tuple[float, str]:
    """(wall seconds, standard output) of one whole process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XDG_CACHE_HOME=str(cwd / "cache"))
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, check=True)
    return time.perf_counter() - start, done.stdout


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, test accuracy) of one whole process."""
    seconds, out = _run(argv, cwd)
    found = ACCURACY.findall(out)
    if not found:
        raise RuntimeError(f"no accuracy in the output of {argv}:\n{out}")
    return seconds, float(found[-1]) / 100


def with_tta(model: Path, data: str, cwd: Path) -> str:
    """What test-time augmentation makes of a saved model, and what it costs, in words."""
    argv = [sys.executable, "-m", "tui", "evaluate", "--model", str(model), "--data", data]
    plain_seconds, _ = _run(argv, cwd)
    seconds, out = _run([*argv, "--tta"], cwd)
    found = TTA.search(out)
    if found is None:
        raise RuntimeError(f"no test-time augmentation in the output of {argv}:\n{out}")
    return (
        f"with --tta {float(found.group(1)):.2f}%, +{float(found.group(2)):.1f} s "
        f"(evaluate: {plain_seconds:.1f} s without, {seconds:.1f} s with)"
    )


def summarise(rows: list[tuple[float, float, float, float]], preset: str) -> None:
    """The table: median wall times, every accuracy, and the ratio of the times per round."""
    ratios = [ours / script for script, _, ours, _ in rows]
    print()
    print(f"{'':20} {'wall s (median)':>16} {'test accuracy':>22}")
    print(
        f"{'original script':20} {statistics.median(r[0] for r in rows):>16.1f} "
        f"{', '.join(f'{r[1]:.2%}' for r in rows):>22}"
    )
    print(
        f"{'preset ' + preset:20} {statistics.median(r[2] for r in rows):>16.1f} "
        f"{', '.join(f'{r[3]:.2%}' for r in rows):>22}"
    )
    print(
        f"time ratio preset/script: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}) over {len(rows)} rounds"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, help="another seed for the preset")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        metavar="N,...",
        help="after the rounds, train the preset once with each of these seeds",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="also evaluate each model the preset trained with test-time augmentation",
    )
    args = parser.parse_args(argv)
    script = [sys.executable, str(Path(__file__).with_name("original_script.py")), args.data]
    preset = [sys.executable, "-m", "tui", "train", "--preset", args.preset, "--data", args.data]
    if args.seed is not None:
        preset += ["--seed", str(args.seed)]
    rows: list[tuple[float, float, float, float]] = []
    for number in range(args.rounds):
        folder = Path(tempfile.mkdtemp(prefix="mnist-tui-tta-"))
        original = timed(script, folder)
        ours = timed([*preset, "--runs-dir", "runs", "--out", "model.keras"], folder)
        rows.append((*original, *ours))
        tta = f" · {with_tta(folder / 'model.keras', args.data, folder)}" if args.tta else ""
        print(
            f"round {number + 1}: script {original[0]:.1f} s {original[1]:.2%} · "
            f"{args.preset} {ours[0]:.1f} s {ours[1]:.2%} · ratio {ours[0] / original[0]:.3f}"
            f"{tta}",
            flush=True,
        )
    if rows:
        summarise(rows, args.preset)
    if args.seeds:
        print()
        for seed in args.seeds:
            folder = Path(tempfile.mkdtemp(prefix="mnist-tui-tta-"))
            run = [*preset, "--seed", str(seed), "--runs-dir", "runs", "--out", "model.keras"]
            seconds, accuracy = timed(run, folder)
            tta = f" · {with_tta(folder / 'model.keras', args.data, folder)}" if args.tta else ""
            print(f"{args.preset} seed {seed}: {accuracy:.2%} in {seconds:.1f} s{tta}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
