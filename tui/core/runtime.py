"""TensorFlow and Keras start-up: quiet logging, device facts, native stderr redirection."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TextIO


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python logging off the terminal.

    Must run before TensorFlow is first imported: the C++ log level is read once at load time.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN prints a banner about numerical differences on import; it is noise for users.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"))
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


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
    import keras

    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return keras  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DeviceInfo:
    """What TensorFlow trains on."""

    kind: str
    """"GPU" or "CPU"."""
    name: str
    """Human name, e.g. "NVIDIA A100-SXM4-40GB" or "CPU (2 threads)"."""
    count: int
    """How many devices of that kind TensorFlow sees."""

    def describe(self) -> str:
        return self.name if self.count <= 1 else f"{self.count}x {self.name}"


def device_info() -> DeviceInfo:
    """The device training will use, as TensorFlow sees it (CPU when there is no GPU)."""
    import_keras()
    try:
        import tensorflow as tf
    except ImportError:  # another Keras backend
        import keras

        return DeviceInfo("CPU", f"CPU ({keras.backend.backend()} backend)", 1)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return DeviceInfo("GPU", str(details.get("device_name", "GPU")), len(gpus))
    return DeviceInfo("CPU", f"CPU ({os.cpu_count() or 1} cores)", 1)


@dataclass(frozen=True)
class GpuStatus:
    """One GPU as TensorFlow (memory) and NVML (utilisation) see it; None where unknown."""

    index: int
    name: str
    memory_in_use: int | None = None
    """Bytes TensorFlow holds on it now (`tf.config.experimental.get_memory_info`)."""
    memory_peak: int | None = None
    """Most bytes TensorFlow has held on it since start-up."""
    memory_total: int | None = None
    """The card's memory, from NVML."""
    utilisation: int | None = None
    """Percent of time a kernel ran over NVML's last sample period."""

    def describe(self) -> str:
        parts = [f"GPU {self.index}: {self.name}"]
        if self.memory_in_use is not None:
            memory = f"{_gib(self.memory_in_use)} in use"
            if self.memory_peak is not None:
                memory += f", peak {_gib(self.memory_peak)}"
            if self.memory_total is not None:
                memory += f" of {_gib(self.memory_total)}"
            parts.append(memory)
        if self.utilisation is not None:
            parts.append(f"{self.utilisation}% busy")
        return " · ".join(parts)


@dataclass(frozen=True)
class DeviceReport:
    """What the machine offers and what training uses, for the device panel."""

    backend: str
    """Keras backend and its version, e.g. "tensorflow 2.21.0"."""
    devices: tuple[str, ...]
    """Physical devices the backend sees, e.g. ("CPU:0",) or ("CPU:0", "GPU:0", "GPU:1")."""
    training_on: str
    """The strategy and its replicas, or the single device."""
    gpus: tuple[GpuStatus, ...] = ()
    cpu_cores: int = 1
    intra_op_threads: int = 0
    """Threads inside one op; 0 means TensorFlow chooses (one per core)."""
    inter_op_threads: int = 0
    """Ops run side by side; 0 means TensorFlow chooses."""
    precision: str = "float32"
    """The Keras dtype policy, "mixed_float16" with mixed precision."""

    @property
    def cpu_only(self) -> bool:
        return not self.gpus

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) rows, in panel order."""
        rows = [
            ("Backend", self.backend),
            ("Trains on", self.training_on),
            ("Devices", ", ".join(self.devices) or "none listed"),
        ]
        if self.cpu_only:
            rows.append(("GPU", "none: CPU only"))
        rows += [("GPU", gpu.describe()) for gpu in self.gpus]
        rows.append(
            (
                "CPU",
                f"{self.cpu_cores} cores · intra-op threads {_threads(self.intra_op_threads)}"
                f" · inter-op {_threads(self.inter_op_threads)}",
            )
        )
        rows.append(("Precision", self.precision))
        return rows

    def render(self) -> str:
        """Plain text, one `label  value` row per line."""
        width = max(len(label) for label, _ in self.lines())
        return "\n".join(f"{label:<{width}}  {value}" for label, value in self.lines())


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _threads(count: int) -> str:
    return str(count) if count else "auto"


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
    cores = os.cpu_count() or 1
    if backend != "tensorflow":
        return DeviceReport(
            backend=f"{backend} (Keras {keras.__version__})",
            devices=(),
            training_on=training_on or f"{backend}'s default device",
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


def tensorflow_log_path() -> Path:
    """Where TensorFlow's native output and Python warnings go: the user's cache directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "mnist-tui" / "tensorflow.log"


@contextlib.contextmanager
def native_stderr_to(path: str | Path) -> Iterator[TextIO]:
    """Point file descriptor 2 at `path` while keeping Python's stderr on the terminal.

    TensorFlow's C++ runtime writes straight to descriptor 2, below Python, so a TUI painted on
    the terminal would be scribbled over. The terminal stays reachable through a duplicate
    descriptor, which becomes `sys.stderr` and `sys.__stderr__` (Textual paints on the latter).

    Yields:
        The terminal stream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace")
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    old_stderr, old_dunder = sys.stderr, sys.__stderr__
    sys.stderr = sys.__stderr__ = terminal  # type: ignore[misc]
    try:
        yield terminal
    finally:
        with contextlib.suppress(OSError, ValueError):
            terminal.flush()
        sys.stderr, sys.__stderr__ = old_stderr, old_dunder  # type: ignore[misc]
        os.dup2(saved, 2)
        os.close(saved)
        with contextlib.suppress(OSError):
            terminal.close()


@contextlib.contextmanager
def quiet_runtime(log_path: Path) -> Iterator[None]:
    """Send native stderr, Python warnings and library logging to `log_path`.

    TensorFlow must be imported inside this: its C++ runtime writes banners to descriptor 2 at
    import time, under Python, where nothing else can catch them. Warnings go through logging
    (`logging.captureWarnings`), so one handler on the root logger takes both.
    """
    with native_stderr_to(log_path), open(log_path, "a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
