"""Shared fixtures: real MNIST (the offline copy beside the project, else the bundled sample),
and private folders for the runs and the engines that tests make."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tui.core.data.mnist import MnistData, load_npz, load_sample

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FULL_MNIST = SHARED_DATA / "mnist.npz"

# Hypothesis fails an example slower than 200 ms as "flaky"; on a loaded 2-core machine (xdist
# workers beside TensorFlow's threads) a 0.1 ms check took 280 ms once. Speed is the
# benchmarks' business, not the property tests'.
settings.register_profile("mnist-tui", deadline=None)
settings.load_profile("mnist-tui")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding the full mnist.npz and mnist/*.gz (see its README); skips the test
    if absent. Only tests that need all 60,000/10,000 images use it."""
    if not FULL_MNIST.is_file():
        pytest.skip(f"needs the full MNIST, not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_small() -> MnistData:
    """2,000 train and 500 test real MNIST digits, loaded once per session: the first of the
    full set when it is beside the project, else of the bundled sample (so a fresh clone runs
    every test that only needs real digits)."""
    source = load_npz(FULL_MNIST) if FULL_MNIST.is_file() else load_sample()
    return source.subset(train=2000, test=500)


def _private(env: str, path: Path) -> Iterator[None]:
    saved = os.environ.get(env)
    os.environ[env] = str(path)
    yield
    if saved is None:
        os.environ.pop(env, None)
    else:
        os.environ[env] = saved


@pytest.fixture(autouse=True, scope="session")
def runs_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs recorded in tests go to a temporary folder, not to ./runs."""
    yield from _private("MNIST_TUI_RUNS", tmp_path_factory.mktemp("runs"))


@pytest.fixture(autouse=True, scope="session")
def engines_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Engines started in tests keep their sockets in a private folder (mode 0700), so that
    they never meet the user's own (`mnist-tui ps` on this machine shows none of them)."""
    folder = tmp_path_factory.mktemp("engines")
    folder.chmod(0o700)
    yield from _private("MNIST_TUI_STATE_DIR", folder)
