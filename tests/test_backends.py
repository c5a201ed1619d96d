"""The core on every installed Keras backend: each in a process of its own (Keras fixes its
backend at import, and this process already runs on TensorFlow), skipped with the reason when
the backend is not installed. The round trip itself is tests/backend_child.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny import TINY

from tui.cli import main
from tui.core.data.mnist import MnistData, load_sample
from tui.core.platform.backend import BACKENDS, display_name, installed
from tui.core.runs.resume import load_model_file
from tui.core.training.model import build_model

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def each_backend() -> list[Any]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                not installed(name), reason=f"the {name} backend is not installed here"
            ),
        )
        for name in BACKENDS
    ]


def search_path(*folders: Path) -> str:
    """PYTHONPATH for a child: `folders` first, then the caller's own (a backend may live there)."""
    return os.pathsep.join([*map(str, folders), *filter(None, [os.environ.get("PYTHONPATH")])])


def run_child(backend: str, out: Path, *args: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": search_path(ROOT, TESTS),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    done = subprocess.run(
        [sys.executable, str(TESTS / "backend_child.py"), str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def accuracy(model: Any, data: MnistData) -> float:
    scores = np.asarray(model.predict(data.x_test, verbose=0))
    return float(np.mean(scores.argmax(axis=1) == data.y_test))


@pytest.mark.parametrize("backend", each_backend())
def test_every_backend_trains_records_inspects_and_goes_on(backend: str, tmp_path: Path) -> None:
    # The child's data (see backend_child.py).
    data = load_sample().subset(train=2000, test=500)
    # A model this process (TensorFlow) saved, for the child to open on its own backend.
    model = build_model(TINY)
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=64, verbose=0)
    theirs = tmp_path / "from-this-process.keras"
    model.save(theirs)

    result = run_child(backend, tmp_path, str(theirs))

    assert result["backend"] == backend
    assert result["stopped"] == "finished"
    # Two epochs of 2,000 sample digits: far above chance (0.1) on any backend.
    assert result["evaluated"] > 0.6
    assert result["predicted"] == pytest.approx(result["evaluated"], abs=0.01)
    assert result["saliency"][1] == pytest.approx(1.0) and result["saliency"][0] >= 0.0
    assert (result["reopened_at"], result["went_on_to"], result["metric_rows"]) == (2, 3, 3)
    # The same weights give the same answers on any backend.
    assert result["foreign_accuracy"] == pytest.approx(accuracy(model, data), abs=0.005)
    assert (result["mixed_compute"], result["mixed_output"]) == ("float16", "float32")
    if backend != "tensorflow":  # TensorFlow's strategies have tests/test_distribute.py
        assert "--strategy mirrored is tf.distribute" in result["mirrored"]
        assert "\n" not in result["mirrored"]
        assert result["device"].startswith(f"{display_name(backend)} ")
        assert result["report"].startswith(f"{display_name(backend)} ")
    # ... and what the child saved opens here, on TensorFlow.
    opened = load_model_file(result["saved"])
    assert accuracy(opened, data) == pytest.approx(result["predicted"], abs=0.005)


def test_an_unknown_backend_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--backend", "theano", "--preset", "tiny"]) != 0
    err = capsys.readouterr().err
    assert "theano" in err and "tensorflow" in err and "Traceback" not in err


def test_another_backend_after_keras_loaded_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # This process runs Keras on TensorFlow already: switching now cannot work, and says so.
    import keras

    other = next(b for b in BACKENDS if b != keras.backend.backend())
    if not installed(other):
        pytest.skip(f"the {other} backend is not installed here")
    assert main(["evaluate", "--backend", other, "--model", "missing.keras"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "already runs on tensorflow" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.skipif(not installed("jax"), reason="the jax backend is not installed here")
def test_the_command_line_trains_on_the_backend_it_is_given(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": search_path(ROOT)}
    env.pop("KERAS_BACKEND", None)
    out = tmp_path / "model.keras"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui",
            "train",
            "--backend",
            "jax",
            "--data",
            str(ROOT / "tui" / "sample" / "mnist_sample.npz"),
            *("--train-size", "600", "--conv-filters", "8", "--dense-units", "16"),
            "--epochs",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "JAX" in done.stdout and out.is_file()


@pytest.mark.parametrize("backend", [p for p in each_backend() if p.values[0] != "tensorflow"])
def test_stop_and_pause_act_in_time_on_every_backend(backend: str) -> None:
    # The controller's own tests of the controls, on this backend. JAX dispatches steps
    # asynchronously: before session.InStep, both acted an epoch late there.
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": search_path(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            str(TESTS / "test_controller.py"),
            "-k",
            "stop_now_rolls_back or pause_holds",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout
