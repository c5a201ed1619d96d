"""Shared fixtures: the offline MNIST copy beside the project and a small real slice of it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.core.data import MnistData, load_npz

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding mnist.npz and mnist/*.gz (see its README); skips the test if absent."""
    if not (SHARED_DATA / "mnist.npz").is_file():
        pytest.skip(f"offline MNIST copy not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_small(shared_data: Path) -> MnistData:
    """The first 2,000 train and 500 test examples of real MNIST, loaded once per session."""
    return load_npz(shared_data / "mnist.npz").subset(train=2000, test=500)


@pytest.fixture(autouse=True, scope="session")
def runs_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs recorded by the app in tests go to a temporary folder, not to ./runs."""
    saved = os.environ.get("MNIST_TUI_RUNS")
    os.environ["MNIST_TUI_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    yield
    if saved is None:
        os.environ.pop("MNIST_TUI_RUNS", None)
    else:
        os.environ["MNIST_TUI_RUNS"] = saved
