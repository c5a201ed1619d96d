"""How much memory a model and batch will need, estimated from the hyperparameters alone, and
whether the machine has it: settings that cannot fit are refused before TensorFlow tries (and
the kernel's out-of-memory killer ends the process without a word)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tui.core.platform.devices import DeviceReport
from tui.core.settings.hyperparams import IMAGE_SIZE, Hyperparams, conv_output_side

FLOAT_BYTES = 4
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 1}
"""Variables an optimizer keeps per weight (moments, momentum)."""
RUNTIME_BYTES = 600 * 2**20
"""What TensorFlow itself takes before any model (its kernels, thread pools, allocator)."""
REFUSE_SHARE = 0.9
"""Refuse when the estimate is above this share of the memory available."""
WARN_SHARE = 0.5
"""Warn when above this share: it may fit, but not beside much else."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes that training one batch needs, by what they hold."""

    params: int
    """Weights (trainable and not)."""
    weights_bytes: int
    """Weights, their gradients and the optimizer's slots."""
    activations_bytes: int
    """One batch's activations, kept for the backward pass, and their gradients."""

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes + RUNTIME_BYTES

    def describe(self) -> str:
        return (
            f"{self.params:,} parameters and batch activations need about "
            f"{_size(self.total_bytes)} ({_size(self.weights_bytes)} for weights, gradients "
            f"and optimizer state, {_size(self.activations_bytes)} for one batch)"
        )


def estimate(hparams: Hyperparams) -> MemoryEstimate:
    """The memory a training step of this network at this batch size needs, roughly.

    Counts the layers `model.build_model` makes: per conv block its Conv2D layers (each with
    batch norm and its ReLU when asked), a 2x2 max pool; then Flatten, an optional Dense hidden
    layer, Dense(10).
    """
    side, channels = IMAGE_SIZE, 1
    params = 0
    activations = IMAGE_SIZE * IMAGE_SIZE * (3 if hparams.augment else 1)
    k = hparams.kernel_size
    for block, filters in enumerate(hparams.conv_filters):
        for conv in range(hparams.convs_per_block):
            stride = hparams.stride_of(block) if conv == 0 else 1
            side = conv_output_side(side, k, hparams.padding, stride)
            params += k * k * channels * filters + (4 * filters if hparams.batch_norm else filters)
            activations += side * side * filters * (3 if hparams.batch_norm else 1)
            channels = filters
        side //= 2
        activations += side * side * filters
    flat = side * side * channels
    units = hparams.dense_units
    if units:
        params += (flat + 1) * units
        activations += units * (2 if hparams.dropout else 1)
    params += ((units or flat) + 1) * 10
    activations += 10
    slots = OPTIMIZER_SLOTS.get(hparams.optimizer, 2)
    weights_bytes = params * FLOAT_BYTES * (2 + slots)
    # Forward activations are kept for the backward pass, which makes as many gradients.
    activations_bytes = 2 * activations * hparams.batch_size * FLOAT_BYTES
    return MemoryEstimate(params, weights_bytes, activations_bytes)


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of RAM the machine can give a new allocation now (MemAvailable), or None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Verdict:
    """Whether settings fit: `refuse` stops them; a `warning` is shown but training starts."""

    estimate: MemoryEstimate
    available: int | None
    where: str
    refuse: bool = False
    warning: str = ""
    reason: str = ""


def check(hparams: Hyperparams, available: int | None, where: str = "RAM") -> Verdict:
    """Compare the estimate with the memory `available` (bytes; None when unknown).

    Args:
        hparams: the settings about to train.
        available: free RAM, or the GPU's memory when training on one.
        where: what `available` is, for the sentence ("RAM", "GPU memory").
    """
    needed = estimate(hparams)
    if available is None:
        return Verdict(needed, None, where)
    share = needed.total_bytes / max(available, 1)
    if share > REFUSE_SHARE:
        return Verdict(
            needed,
            available,
            where,
            refuse=True,
            reason=f"these settings do not fit: {needed.describe()}, and {_size(available)} of "
            f"{where} is available; use a smaller batch_size, fewer or narrower conv_filters, "
            "fewer convs_per_block or fewer dense_units.",
        )
    if share > WARN_SHARE:
        return Verdict(
            needed,
            available,
            where,
            warning=f"these settings may not fit: {needed.describe()}, of "
            f"{_size(available)} of {where} available.",
        )
    return Verdict(needed, available, where)


def check_on(hparams: Hyperparams, devices: DeviceReport | None) -> Verdict:
    """`check` against the smallest GPU's memory where GPUs report it, else against free RAM."""
    gpus = [g for g in (devices.gpus if devices else ()) if g.memory_total]
    if gpus:
        return check(hparams, min(g.memory_total or 0 for g in gpus), "GPU memory")
    return check(hparams, available_memory())


def _size(count: int) -> str:
    if count >= 2**30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.0f} MiB"
