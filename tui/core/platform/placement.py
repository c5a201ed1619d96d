"""Where training runs, as a person chose it: the strategy, its devices, the precision, and
this process's place in a cluster (TF_CONFIG). Plain data, no TensorFlow: the command line and
the app check it before anything loads; `tui.core.platform.distribute` carries it out."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

STRATEGIES = ("default", "mirrored", "multiworker")
"""Names accepted by `--strategy` and `make_strategy`."""
CPU_REPLICAS = 2
"""Logical CPU devices that `--strategy mirrored` splits the CPU into when there is no GPU."""
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)
DEVICE_NAME = re.compile(
    r"^/?(?:job:[^/]+/replica:\d+/task:\d+/)?(?:device:)?(cpu|gpu):(\d+)$", re.I
)


class DistributeError(Exception):
    """A strategy or device set-up that cannot work; str(err) is a sentence a person can act on."""


# --- TF_CONFIG ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a multi-worker cluster, read from TF_CONFIG."""

    task_type: str
    """"chief", "worker" or "evaluator"."""
    index: int
    workers: int
    """How many processes train: the workers plus the chief, if there is one."""
    has_chief: bool

    @property
    def is_chief(self) -> bool:
        """The process that writes files: the chief, else worker 0."""
        if self.has_chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.index == 0


def read_tf_config(environ: Mapping[str, str] | None = None) -> ClusterTask:
    """Parse and check TF_CONFIG; raises DistributeError naming what is wrong."""
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not raw:
        raise DistributeError(
            f"--strategy multiworker needs {TF_CONFIG} to describe the cluster, e.g. "
            f"{_TF_CONFIG_EXAMPLE} (index 1 in the second process)."
        )
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise DistributeError(f"{TF_CONFIG} is not valid JSON ({err}).") from None
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    task = parsed.get("task") if isinstance(parsed, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise DistributeError(
            f'{TF_CONFIG} needs a "cluster" and a "task" object, e.g. {_TF_CONFIG_EXAMPLE}.'
        )
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise DistributeError(f'{TF_CONFIG}: cluster "{role}" must be a list of "host:port".')
    task_type, index = task.get("type"), task.get("index", 0)
    if not isinstance(task_type, str) or task_type not in cluster:
        raise DistributeError(
            f"{TF_CONFIG}: task type {task_type!r} is not a role of the cluster "
            f"({', '.join(cluster) or 'none'})."
        )
    if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise DistributeError(
            f"{TF_CONFIG}: task index {index!r} is out of range for the "
            f"{len(cluster[task_type])} {task_type} address(es)."
        )
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return ClusterTask(task_type, index, workers, "chief" in cluster)


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process should write files: always without TF_CONFIG, else the chief only."""
    env = os.environ if environ is None else environ
    if not env.get(TF_CONFIG, "").strip():
        return True
    return read_tf_config(env).is_chief


def parse_devices(text: str | None) -> tuple[str, ...]:
    """ "gpu:0,gpu:1" or "/cpu:0, /cpu:1" as canonical "/cpu:0"-style names; () for none.

    Raises:
        DistributeError: a name that is not cpu:N or gpu:N.
    """
    if not text or not text.strip():
        return ()
    names: list[str] = []
    for part in text.split(","):
        match = DEVICE_NAME.match(part.strip())
        if match is None:
            raise DistributeError(
                f"--devices: {part.strip()!r} is not a device name; use e.g. gpu:0,gpu:1 "
                "or cpu:0,cpu:1."
            )
        name = f"/{match.group(1).lower()}:{int(match.group(2))}"
        if name in names:
            raise DistributeError(f"--devices names {name} twice.")
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class DistributeOptions:
    """The run-time choice of strategy and precision (not a hyperparameter: like the data path,
    it changes where a run trains, not what it learns)."""

    strategy: str = "default"
    """default, mirrored or multiworker."""
    devices: tuple[str, ...] = ()
    """For mirrored: the devices to replicate over; empty means all GPUs, else the CPUs."""
    mixed_precision: bool = False
    """Compute in float16 where it is safe (a speed-up on recent GPUs, a slow-down on CPUs)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise DistributeError(
                f"strategy = {self.strategy!r} is not one of: {', '.join(STRATEGIES)}."
            )
        if self.devices and self.strategy != "mirrored":
            raise DistributeError("--devices only applies to --strategy mirrored.")
