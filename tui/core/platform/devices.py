"""What a machine offers for training and what a run uses of it, as plain data (no TensorFlow:
the app shows it from the engine's reports)."""

from __future__ import annotations

from dataclasses import dataclass

from tui.core.platform.cpus import cores_text


@dataclass(frozen=True)
class DeviceInfo:
    """What TensorFlow trains on."""

    kind: str
    """"GPU" or "CPU"."""
    name: str
    """Human name, e.g. "NVIDIA A100-SXM4-40GB" or "CPU (2 cores)"."""
    count: int
    """How many devices of that kind TensorFlow sees."""

    def describe(self) -> str:
        return self.name if self.count <= 1 else f"{self.count}x {self.name}"


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
                f"{cores_text(self.cpu_cores)} · intra-op threads {_threads(self.intra_op_threads)}"
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
