"""How the screens scale: the runs screen over a thousand run directories, and the prediction
browser over the full 10,000 test digits (time to show, and the app's memory).

Run from the project root (it prints figures; nothing is asserted here):

    .venv/bin/python tests/benchmarks/bench_screens.py --data ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from textual.app import App  # noqa: E402


def rss_mib() -> float:
    """This process's resident memory now, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thousand_runs(runs: int) -> Path:
    """`runs` copies of one small real run (its records, a small model archive)."""
    from tui.core.data.mnist import load_sample
    from tui.core.settings.hyperparams import Hyperparams
    from tui.core.settings.requests import Setup
    from tui.core.training.controller import TrainingController

    root = Path(tempfile.mkdtemp(prefix="mnist-tui-runs-"))
    hparams = Hyperparams(epochs=3, conv_filters=(4,), dense_units=8, train_size=600)
    controller = TrainingController(Setup(hparams, runs_dir=str(root / "one")), data=load_sample())
    controller.load()
    controller.claim_round().run()
    controller.close()
    (template,) = (root / "one").iterdir()
    for number in range(runs):
        target = (
            root
            / "many"
            / f"2025{number // 28 % 12 + 1:02d}{number % 28 + 1:02d}-{number:06d}-tiny"
        )
        shutil.copytree(template, target, ignore=shutil.ignore_patterns("best.keras", "*.npz"))
    return root / "many"


async def runs_screen(root: Path) -> tuple[float, float]:
    """(seconds to list, seconds from `R` to the filled table)."""
    from tui.core.runs.catalog import list_runs
    from tui.screens.runs import RunsScreen

    start = time.perf_counter()
    listed = list_runs(root)
    listing = time.perf_counter() - start

    class Host(App[None]):
        pass

    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        screen = RunsScreen(root)
        await app.push_screen(screen)
        while screen.loading or len(screen.summaries) < len(listed):
            await pilot.pause(0.01)
        shown = time.perf_counter() - start
    return listing, shown


async def browser(data_path: str) -> tuple[float, float, float]:
    """(MiB before, MiB after paging through all 10,000 digits, seconds to first paint)."""
    import numpy as np

    from tui.core.data.mnist import load_mnist
    from tui.core.inspect.predictions import Predictions
    from tui.screens.browser import PredictionBrowser

    data = load_mnist(data_path)
    images = np.rint(data.x_test[..., 0] * 255).astype(np.uint8)
    labels = data.y_test
    probabilities = np.eye(10, dtype=np.float32)[labels] * 0.9 + 0.01
    del data

    class Host(App[None]):
        pass

    app = Host()
    async with app.run_test(size=(200, 60)) as pilot:
        before = rss_mib()
        start = time.perf_counter()
        await app.push_screen(PredictionBrowser(Predictions(probabilities, labels), images))
        await pilot.pause()
        first = time.perf_counter() - start
        for _ in range(120):
            await pilot.press("pagedown")
        await pilot.press("end")
        await pilot.pause()
        after = rss_mib()
    return before, after, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MNIST_TUI_STATE_DIR", tempfile.mkdtemp())
    root = thousand_runs(args.runs)
    listing, shown = asyncio.run(runs_screen(root))
    print(f"{args.runs} run directories: listed in {listing:.2f} s; screen filled in {shown:.2f} s")
    before, after, first = asyncio.run(browser(args.data))
    print(
        f"browser over 10,000 digits: first page in {first:.2f} s; memory {before:.0f} MiB before "
        f"opening it, {after:.0f} MiB after paging through all of it (+{after - before:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
