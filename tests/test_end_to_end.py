"""End to end on full MNIST through the real CLI: the `fast` preset reaches 99.0%, the promise
its tuning was for (issue 14)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_fast_preset_reaches_its_accuracy_on_full_mnist(shared_data: Path, tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "tui", "train", "--preset", "fast",
         "--data", str(shared_data / "mnist.npz"), "--out", str(tmp_path / "fast.keras"),
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "60,000 train / 10,000 test" in done.stdout
    accuracy = float(re.findall(r"Test accuracy: (\d+\.\d\d)%", done.stdout)[-1])
    assert accuracy >= 99.0, done.stdout
    assert (tmp_path / "fast.keras").is_file()
