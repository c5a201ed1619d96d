"""Inspection timings: saliency, feature maps, clusters and layer health on the MNIST test set.

Run from the project root (it prints milliseconds; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_inspection.py --data ../shared/data/mnist.npz

The model is the `default` preset, untrained (the cost does not depend on the weights). The
per-digit functions run on `--digits` test images spread over the set and report the median and
the 90th percentile; the first call, which pays for TensorFlow's first kernels, is reported on
its own. Clusters run on every test image, `--repeats` times; so does the health probe.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tui.core.data.mnist import load_mnist  # noqa: E402
from tui.core.inspect.health import LayerHealthProbe  # noqa: E402
from tui.core.inspect.views import (  # noqa: E402
    pca_2d,
    penultimate_features,
    saliency,
    top_feature_maps,
)
from tui.core.render import render_overlay  # noqa: E402
from tui.core.settings.presets import preset  # noqa: E402
from tui.core.training.model import build_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mnist.npz"


def per_call(fn: Callable[[int], Any], indices: list[int]) -> tuple[float, float, float]:
    """(first call, median, 90th percentile) in milliseconds of `fn(index)` over `indices`."""
    start = time.perf_counter()
    fn(indices[0])
    first = (time.perf_counter() - start) * 1000
    times = []
    for index in indices[1:]:
        start = time.perf_counter()
        fn(index)
        times.append((time.perf_counter() - start) * 1000)
    return first, statistics.median(times), float(np.percentile(times, 90))


def repeated(fn: Callable[[], Any], times: int) -> tuple[list[float], Any]:
    """Milliseconds of each of `times` calls of `fn`, and the last result."""
    spent, result = [], None
    for _ in range(times):
        start = time.perf_counter()
        result = fn()
        spent.append((time.perf_counter() - start) * 1000)
    return spent, result


def ms(spent: list[float]) -> str:
    """First call, and the median of the others when there are any."""
    if len(spent) == 1:
        return f"{spent[0]:8.1f} ms"
    return f"{spent[0]:8.1f} / {statistics.median(spent[1:]):7.1f} ms"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA) if DATA.is_file() else None)
    parser.add_argument("--digits", type=int, default=100, help="test digits per per-digit row")
    parser.add_argument("--probe", type=int, default=256, help="images in the health probe")
    parser.add_argument("--repeats", type=int, default=4, help="calls of each whole-set row")
    args = parser.parse_args(argv)

    data = load_mnist(args.data, allow_download=False)
    images, labels = data.x_test, data.y_test
    model = build_model(preset("default"), compile_model=False)
    picks = np.linspace(0, len(images) - 1, max(args.digits, 2)).astype(int).tolist()
    print(f"data: {data.describe()}; {len(images):,} test images")
    print(f"model: preset 'default', {model.count_params():,} parameters, untrained")
    # numpy's OpenBLAS starts a thread per core; beside TensorFlow's threads on a busy machine
    # they wait on each other, and pca_2d slows tenfold (OPENBLAS_NUM_THREADS=1 avoids it).
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load {load}; OPENBLAS_NUM_THREADS={blas}")
    print(f"per-digit rows: {len(picks)} digits; ms as first call / median / p90\n")

    rows: list[tuple[str, Callable[[int], Any]]] = [
        ("saliency smoothgrad (16 samples)", lambda i: saliency(model, images[i], int(labels[i]))),
        (
            "saliency gradient",
            lambda i: saliency(model, images[i], int(labels[i]), method="gradient"),
        ),
        ("top_feature_maps (4 per layer)", lambda i: top_feature_maps(model, images[i])),
        (
            "render_overlay (28x14 cells)",
            lambda i: render_overlay(images[i], images[i][..., 0]),
        ),
    ]
    for name, fn in rows:
        first, median, p90 = per_call(fn, picks)
        print(f"{name:<36} {first:8.1f} / {median:7.1f} / {p90:7.1f} ms per digit")

    print(f"\nwhole-set rows: ms as first call / median of the next {args.repeats - 1}\n")
    rss_before = peak_rss_mib()
    spent, features = repeated(lambda: penultimate_features(model, images), args.repeats)
    print(f"{'penultimate_features, all images':<36} {ms(spent)}  -> {features.shape}")
    spent, _ = repeated(lambda: pca_2d(features), args.repeats)
    print(f"{'pca_2d, all images':<36} {ms(spent)}")
    print(f"{'peak RSS before / after clusters':<36} {rss_before:8.0f} / {peak_rss_mib():.0f} MiB")

    probe_images = images[: args.probe]
    spent, probe = repeated(lambda: LayerHealthProbe(model, probe_images), 1)
    print(f"{'LayerHealthProbe(...) build':<36} {ms(spent)}  ({len(probe_images)} probe images)")
    spent, rows_out = repeated(probe.measure, args.repeats)
    print(f"{'LayerHealthProbe.measure':<36} {ms(spent)}")
    print(f"  layers: {', '.join(row.layer for row in rows_out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
