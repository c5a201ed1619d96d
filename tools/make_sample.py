"""Build the bundled MNIST sample, tui/sample/mnist_sample.npz, from a full Keras mnist.npz."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "mnist.npz"
DEFAULT_OUTPUT = ROOT / "tui" / "sample" / "mnist_sample.npz"
TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
SEED = 20240527


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Pick `per_class` indices of each digit at random, returned in the original order.

    Keeping the original order means the sample reads like a prefix-free slice of MNIST,
    so "first n" subsets of it stay roughly balanced too.
    """
    chosen = [
        rng.choice(np.flatnonzero(labels == digit), size=per_class, replace=False)
        for digit in range(10)
    ]
    return np.sort(np.concatenate(chosen))


def main(argv: list[str] | None = None) -> None:
    """Write the sample and print its size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(SEED)
    with np.load(args.source) as full:
        x_train, y_train = full["x_train"], full["y_train"]
        x_test, y_test = full["x_test"], full["y_test"]
    train_idx = stratified_indices(y_train, TRAIN_PER_CLASS, rng)
    test_idx = stratified_indices(y_test, TEST_PER_CLASS, rng)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        x_train=x_train[train_idx].astype(np.uint8),
        y_train=y_train[train_idx].astype(np.uint8),
        x_test=x_test[test_idx].astype(np.uint8),
        y_test=y_test[test_idx].astype(np.uint8),
    )
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size:,} bytes): {train_idx.size} train / {test_idx.size} test")


if __name__ == "__main__":
    main()
