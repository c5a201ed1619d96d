"""Shared fixtures: the offline MNIST copy beside the project and a small real slice of it."""

from __future__ import annotations

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
