"""The GPU path, on whichever Keras backend this process runs (KERAS_BACKEND): placement and
accuracy, mixed precision, the device report's memory, a batch too big for the card, and the
engine training on the GPU with the app attached. Marked `gpu`: left out of the quick run, and
skipped with the reason where the backend sees no GPU. tools/device_check.sh runs them on a GPU
box under JAX and under PyTorch.

Full MNIST comes from $MNIST_TUI_DATA, else the shared folder beside the project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from app_helpers import app_on_engine, train, until
from conftest import FULL_MNIST

from tui.core.data.mnist import MnistData, load_npz
from tui.core.platform.placement import DistributeOptions
from tui.core.platform.runtime import device_info, device_report, import_keras
from tui.core.settings.presets import PRESETS
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController
from tui.core.training.events import StopReason

pytestmark = pytest.mark.gpu

ACCURACY = 0.99
"""What `fast` and `fast-gpu` reach on full MNIST (README: time to 99%)."""
MIXED_TOLERANCE = 0.003
"""Mixed precision may cost this much test accuracy against float32 on the same settings."""


@pytest.fixture(scope="module", autouse=True)
def a_gpu() -> None:
    backend = import_keras().backend.backend()
    if device_info().kind != "GPU":
        pytest.skip(f"no GPU visible to {backend}")


@pytest.fixture(scope="module")
def mnist() -> MnistData:
    path = Path(os.environ.get("MNIST_TUI_DATA") or FULL_MNIST)
    if not path.is_file():
        pytest.skip(f"needs the full MNIST npz: set MNIST_TUI_DATA (not found at {path})")
    return load_npz(path)


def _controller(
    mnist: MnistData, tmp_path: Path, preset: str = "fast", **changes: Any
) -> TrainingController:
    mixed = bool(changes.pop("mixed_precision", False))
    hparams = PRESETS[preset].hparams.with_changes(**changes)
    setup = Setup(
        hparams,
        preset=preset,
        runs_dir=str(tmp_path / "runs"),
        distribute=DistributeOptions(mixed_precision=mixed),
    )
    controller = TrainingController(setup, data=mnist)
    controller.load()
    return controller


@pytest.fixture(scope="module")
def float32_accuracy(mnist: MnistData, tmp_path_factory: pytest.TempPathFactory) -> float:
    controller = _controller(mnist, tmp_path_factory.mktemp("float32"))
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        assert controller.snapshot.evaluation is not None
        return controller.snapshot.evaluation.accuracy
    finally:
        controller.close()


def test_fast_trains_on_the_gpu_and_reaches_its_accuracy(
    mnist: MnistData, tmp_path: Path, float32_accuracy: float
) -> None:
    controller = _controller(mnist, tmp_path)
    try:
        assert "CPU" not in controller.snapshot.device, controller.snapshot.device
        assert device_info().kind == "GPU"
    finally:
        controller.close()
    assert float32_accuracy >= ACCURACY


def test_fast_gpu_reaches_its_accuracy_on_the_gpu(mnist: MnistData, tmp_path: Path) -> None:
    # The GPU preset's time is the device check's to report (tools/device_check.sh); here, that
    # its bigger steps still reach 99% where they are meant to run.
    controller = _controller(mnist, tmp_path, preset="fast-gpu", mixed_precision=True)
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        assert controller.snapshot.evaluation is not None
        assert controller.snapshot.evaluation.accuracy >= ACCURACY
    finally:
        controller.close()
        import_keras().mixed_precision.set_global_policy("float32")


def test_mixed_precision_keeps_a_float32_output_and_the_accuracy(
    mnist: MnistData, tmp_path: Path, float32_accuracy: float
) -> None:
    controller = _controller(mnist, tmp_path, mixed_precision=True)
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        model = controller.model
        assert model is not None
        assert model.layers[0].dtype_policy.name == "mixed_float16" or any(
            layer.dtype_policy.name == "mixed_float16" for layer in model.layers
        )
        assert model.outputs[0].dtype == "float32"
        assert controller.snapshot.evaluation is not None
        assert controller.snapshot.evaluation.accuracy >= float32_accuracy - MIXED_TOLERANCE
    finally:
        controller.close()
        import_keras().mixed_precision.set_global_policy("float32")


def test_the_device_report_shows_gpu_memory(float32_accuracy: float) -> None:
    report = device_report()
    assert report.gpus, report.render()
    assert report.gpus[0].memory_in_use is not None
    assert "GiB" in report.render()


def test_a_batch_that_cannot_fit_is_one_sentence(mnist: MnistData, tmp_path: Path) -> None:
    # One step of 8,192 images through three 512-filter convs at full 28x28 size: 13 GiB per
    # activation in float32, about ten of them kept for the backward pass in the first block
    # alone, beyond the 80-141 GiB of one H100 or H200.
    controller = _controller(
        mnist,
        tmp_path,
        batch_size=8192,
        train_size=8192,
        conv_filters=(512, 512, 512),
        convs_per_block=3,
        first_stride=1,
        epochs=1,
    )
    try:
        assert controller.claim_round().run() is StopReason.ERROR
        stopped = controller.snapshot.stopped
        assert stopped is not None
        assert "\n" not in stopped.message and "Traceback" not in stopped.message
        assert "memory" in stopped.message.lower(), stopped.message
    finally:
        controller.close()


async def test_the_engine_trains_on_the_gpu_while_the_app_is_attached(mnist: MnistData) -> None:
    hparams = PRESETS["fast"].hparams.with_changes(epochs=1)
    async with app_on_engine(hparams, mnist, preset="fast") as (app, pilot, _engine):
        await train(pilot, app)
        await until(pilot, lambda: app.snapshot.evaluation is not None)
        assert "CPU" not in app.snapshot.device, app.snapshot.device
        assert app.snapshot.evaluation is not None
        assert app.snapshot.evaluation.accuracy > 0.97
