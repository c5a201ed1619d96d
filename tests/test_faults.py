"""Faults at the edges (issue 29): suspicious data files, a data path that came from the
environment, and the CPU count a process may really use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui.core.data import mnist as mnist_module
from tui.core.data.mnist import DataError, load_mnist, load_npz, load_sample


def sample_arrays() -> dict[str, np.ndarray]:
    """A few hundred real digits from the bundled sample, as the uint8 arrays of an npz."""
    data = load_sample().subset(train=300, test=100)
    return {
        "x_train": np.rint(data.x_train[..., 0] * 255).astype(np.uint8),
        "y_train": data.y_train,
        "x_test": np.rint(data.x_test[..., 0] * 255).astype(np.uint8),
        "y_test": data.y_test,
    }


def one_sentence(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and message.endswith("."), message
    return message


def test_a_binarised_mnist_is_refused_with_the_range_found(tmp_path: Path) -> None:
    """0/1 pixels scale to 0-0.004: training on them reaches chance without a word."""
    arrays = sample_arrays()
    binarised = tmp_path / "binarised.npz"
    np.savez(binarised, **{**arrays, "x_train": (arrays["x_train"] > 127).astype(np.uint8)})
    with pytest.raises(DataError) as info:
        load_npz(binarised)
    message = one_sentence(info.value)
    assert str(binarised) in message
    assert "0 or 1" in message and "0-255" in message


def test_float_pixels_are_refused_naming_their_range(tmp_path: Path) -> None:
    arrays = sample_arrays()
    scaled = tmp_path / "scaled.npz"
    np.savez(scaled, **{**arrays, "x_test": arrays["x_test"] / np.float32(255.0)})
    with pytest.raises(DataError) as info:
        load_npz(scaled)
    message = one_sentence(info.value)
    assert "float32 from 0 to 1" in message and "uint8 pixels 0-255" in message


def test_real_digits_still_load(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, **sample_arrays())
    assert float(load_npz(good).x_train.max()) == 1.0


def test_a_missing_file_from_the_environment_says_it_came_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "gone.npz"
    monkeypatch.setenv(mnist_module.ENV_VAR, str(missing))
    with pytest.raises(DataError) as info:
        load_mnist(allow_download=False)
    message = one_sentence(info.value)
    assert str(missing) in message and "$MNIST_TUI_DATA" in message
    # A path typed on the command line is the user's own: no mention of the variable.
    with pytest.raises(DataError) as typed:
        load_mnist(missing, allow_download=False)
    assert "MNIST_TUI_DATA" not in str(typed.value)
