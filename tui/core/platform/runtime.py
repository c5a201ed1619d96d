"""Keras and its backend at run time: importing them quietly, and what devices they see."""

from __future__ import annotations

import contextlib
import importlib.util
from types import ModuleType
from typing import Any

from tui.core.platform.backend import backend_version, display_name, share_the_gpu
from tui.core.platform.cpus import cores_text, usable_cores
from tui.core.platform.devices import DeviceInfo, DeviceReport, GpuStatus
from tui.core.platform.quiet import quiet_tensorflow

TENSORBOARD_MISSING = (
    "--tensorboard needs the tensorboard package; install it with `pip install tensorboard` "
    "(or `pip install 'mnist-tui[tensorboard]'`), or train without --tensorboard."
)
"""What to say when TensorBoard logs are asked for but the package is not installed."""


def tensorboard_installed() -> bool:
    """Whether Keras's TensorBoard callback can write logs; TensorFlow no longer brings it."""
    return importlib.util.find_spec("tensorboard") is not None


def import_keras() -> ModuleType:
    """Import Keras (and its TensorFlow backend) quietly; returns the `keras` module."""
    quiet_tensorflow()
    share_the_gpu()
    import keras

    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return keras  # type: ignore[no-any-return]


def to_numpy(value: object) -> Any:
    """A tensor of whichever backend runs (or a Keras variable, or an array) as a float32 NumPy
    array, detached from any gradient: PyTorch refuses `numpy()` on a tensor that keeps one."""
    import numpy as np

    return np.asarray(import_keras().ops.convert_to_numpy(value), dtype=np.float32)


def device_info() -> DeviceInfo:
    """The device training will use, as the backend sees it (CPU when there is no GPU).

    On JAX and PyTorch the name starts with the backend ("JAX 0.10.2 on CPU (2 cores)"), so that
    every log line and panel that shows it says what ran; TensorFlow, the default, goes unnamed.
    """
    keras = import_keras()
    backend = keras.backend.backend()
    if backend != "tensorflow":
        kind, name, count = _other_backend_device(backend)
        return DeviceInfo(
            kind, f"{display_name(backend)} {backend_version(backend)} on {name}", count
        )
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return DeviceInfo("GPU", str(details.get("device_name", "GPU")), len(gpus))
    return DeviceInfo("CPU", _cpu_name(), 1)


def device_report(training_on: str | None = None) -> DeviceReport:
    """Gather a `DeviceReport`; safe before TensorFlow initialises its devices.

    Only physical devices are listed (listing logical ones would initialise TensorFlow and fix
    its device layout, which a later `--strategy mirrored` needs to choose). GPU memory is read
    only when there are GPUs, NVML only when `pynvml` (nvidia-ml-py) is installed.

    Args:
        training_on: what trains, e.g. `TrainingSession.device`; default: the single device.
    """
    keras = import_keras()
    backend = keras.backend.backend()
    precision = keras.mixed_precision.global_policy().name
    cores = usable_cores()
    if backend != "tensorflow":
        version = backend_version(backend)
        return DeviceReport(
            backend=f"{display_name(backend)} {version} (Keras {keras.__version__})",
            devices=_other_backend_devices(backend),
            training_on=training_on or device_info().describe(),
            gpus=_other_backend_gpus(backend),
            cpu_cores=cores,
            precision=precision,
        )
    import tensorflow as tf

    physical = tf.config.list_physical_devices()
    names = tuple(d.name.removeprefix("/physical_device:") for d in physical)
    gpus = tuple(
        _gpu_status(tf, index, device)
        for index, device in enumerate(tf.config.list_physical_devices("GPU"))
    )
    return DeviceReport(
        backend=f"tensorflow {tf.__version__} (Keras {keras.__version__})",
        devices=names,
        training_on=training_on or device_info().describe(),
        gpus=gpus,
        cpu_cores=cores,
        intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        precision=precision,
    )


def _cpu_name() -> str:
    return f"CPU ({cores_text(usable_cores())})"


def _other_backend_device(backend: str) -> tuple[str, str, int]:
    """(kind, name, count) of what JAX or PyTorch trains on: its GPUs, else the CPU."""
    gpus = _other_backend_gpus(backend)
    if gpus:
        return "GPU", gpus[0].name, len(gpus)
    return "CPU", _cpu_name(), 1


def _other_backend_devices(backend: str) -> tuple[str, ...]:
    """Devices as "CPU:0", "GPU:0", ... the way the TensorFlow report lists them."""
    gpus = _other_backend_gpus(backend)
    return ("CPU:0", *(f"GPU:{gpu.index}" for gpu in gpus))


def _other_backend_gpus(backend: str) -> tuple[GpuStatus, ...]:
    """The GPUs JAX (`jax.devices()`) or PyTorch (`torch.cuda`) sees, with their memory."""
    if backend == "jax":
        import jax

        statuses = []
        for index, device in enumerate(d for d in jax.devices() if d.platform == "gpu"):
            stats = device.memory_stats() or {}
            in_use, peak = stats.get("bytes_in_use"), stats.get("peak_bytes_in_use")
            total, busy = _nvml(index)
            statuses.append(
                GpuStatus(
                    index,
                    str(device.device_kind),
                    None if in_use is None else int(in_use),
                    None if peak is None else int(peak),
                    total or _int_or_none(stats.get("bytes_limit")),
                    busy,
                )
            )
        return tuple(statuses)
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return ()
        statuses = []
        for index in range(torch.cuda.device_count()):
            total, busy = _nvml(index)
            statuses.append(
                GpuStatus(
                    index,
                    torch.cuda.get_device_name(index),
                    int(torch.cuda.memory_allocated(index)),
                    int(torch.cuda.max_memory_allocated(index)),
                    total or int(torch.cuda.get_device_properties(index).total_memory),
                    busy,
                )
            )
        return tuple(statuses)
    return ()


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _gpu_status(tf: ModuleType, index: int, device: object) -> GpuStatus:
    details = tf.config.experimental.get_device_details(device)
    name = str(details.get("device_name", f"GPU {index}"))
    in_use = peak = None
    # Before TensorFlow has set the GPU up there is nothing to report, and asking raises.
    with contextlib.suppress(ValueError, RuntimeError):
        info = tf.config.experimental.get_memory_info(f"GPU:{index}")
        in_use, peak = int(info["current"]), int(info["peak"])
    total, busy = _nvml(index)
    return GpuStatus(index, name, in_use, peak, total, busy)


def _nvml(index: int) -> tuple[int | None, int | None]:
    """(total memory, utilisation %) of GPU `index` from NVML, or Nones without it.

    Assumes NVML and CUDA number the cards alike, true unless CUDA_VISIBLE_DEVICES reorders them.
    """
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None, None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            busy = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML raises its own error types for a missing driver or card
        return None, None
    return total, busy
