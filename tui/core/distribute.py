"""tf.distribute strategies, logical CPU devices, GPU memory growth and mixed precision."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tui.core.model import STEPS_PER_EXECUTION
from tui.core.runtime import device_info, import_keras

STRATEGIES = ("default", "mirrored", "multiworker")
"""Names accepted by `--strategy` and `make_strategy`."""
CPU_REPLICAS = 2
"""Logical CPU devices that `--strategy mirrored` splits the CPU into when there is no GPU."""
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)
_DEVICE = re.compile(r"^/?(?:job:[^/]+/replica:\d+/task:\d+/)?(?:device:)?(cpu|gpu):(\d+)$", re.I)


class DistributeError(Exception):
    """A strategy or device set-up that cannot work; str(err) is a sentence a person can act on."""


def require_tensorflow(what: str) -> ModuleType:
    """The `tensorflow` module, or DistributeError when Keras runs on another backend.

    Args:
        what: the feature that needs TensorFlow, for the message (e.g. "--strategy mirrored").
    """
    keras = import_keras()
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise DistributeError(
            f"{what} needs the TensorFlow backend but Keras runs on {backend}; "
            "unset KERAS_BACKEND (or set it to tensorflow) to use it."
        )
    import tensorflow as tf

    return tf  # type: ignore[no-any-return]


# --- before TensorFlow initialises its devices ------------------------------------------------
def split_cpu(n: int) -> None:
    """Make TensorFlow see the first CPU as `n` logical devices (for MirroredStrategy on a CPU).

    Must run before TensorFlow initialises its devices, i.e. before the first tensor or model.

    Raises:
        DistributeError: `n` is below 1, or TensorFlow has already initialised its devices
            with another configuration.
    """
    if n < 1:
        raise DistributeError(f"cannot split the CPU into {n} devices; use 1 or more.")
    tf = require_tensorflow("splitting the CPU into logical devices")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return  # already done, e.g. by an earlier call in this process
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == n:
            return
        raise DistributeError(
            f"cannot split the CPU into {n} logical devices: TensorFlow has already set up "
            f"{have}. Choose the strategy before anything builds a model or a tensor."
        ) from None


def enable_memory_growth() -> int:
    """Let every GPU allocate memory as needed instead of grabbing the whole card up front.

    A shared card stays usable by others. A no-op without GPUs; a GPU that TensorFlow has already
    initialised keeps its setting (it cannot change any more).

    Returns:
        How many GPUs now grow their memory.
    """
    tf = require_tensorflow("GPU memory growth")
    grown = 0
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            if not tf.config.experimental.get_memory_growth(gpu):
                continue
        grown += 1
    return grown


def set_mixed_precision(on: bool) -> str:
    """Compute in float16 with float32 variables ("mixed_float16"), or plain float32.

    The model keeps its output layer in float32 (see `tui.core.model`) so that the softmax and
    the loss stay numerically stable; Keras wraps the optimizer in a LossScaleOptimizer itself.
    Applies to models built afterwards. Backend-neutral: it is Keras's own policy.

    Returns:
        The name of the global policy now in force.
    """
    keras = import_keras()
    name = "mixed_float16" if on else "float32"
    keras.mixed_precision.set_global_policy(name)
    return name


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


# --- strategies ------------------------------------------------------------------------------
def parse_devices(text: str | None) -> tuple[str, ...]:
    """ "gpu:0,gpu:1" or "/cpu:0, /cpu:1" as canonical "/cpu:0"-style names; () for none.

    Raises:
        DistributeError: a name that is not cpu:N or gpu:N.
    """
    if not text or not text.strip():
        return ()
    names: list[str] = []
    for part in text.split(","):
        match = _DEVICE.match(part.strip())
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

    @property
    def is_default(self) -> bool:
        return self == DistributeOptions()

    def prepare(self) -> None:
        """Everything that must happen before TensorFlow initialises its devices.

        Mirrored on a machine without GPUs splits the CPU into logical devices (as many as named
        by --devices, else two) so that there is something to mirror over; every GPU gets memory
        growth; the precision policy is set. Multiworker checks TF_CONFIG first, so a bad one is
        reported before anything slow happens.
        """
        if self.strategy == "default" and not self.mixed_precision:
            # Nothing to do; in particular another Keras backend needs no TensorFlow here.
            enable_memory_growth_if_tensorflow()
            return
        if self.strategy != "default":
            tf = require_tensorflow(f"--strategy {self.strategy}")
            if self.strategy == "multiworker":
                read_tf_config()
            cpus = [d for d in self.devices if d.startswith("/cpu:")]
            if cpus:
                split_cpu(max(int(d.split(":")[1]) for d in cpus) + 1)
            elif (
                self.strategy == "mirrored"
                and not self.devices
                and not tf.config.list_physical_devices("GPU")
            ):
                split_cpu(CPU_REPLICAS)
        enable_memory_growth_if_tensorflow()
        set_mixed_precision(self.mixed_precision)

    def make_strategy(self) -> Any:
        """The `tf.distribute.Strategy`, or None for the default (no distribution at all)."""
        if self.strategy == "default":
            return None
        return make_strategy(self.strategy, self.devices or None)


def enable_memory_growth_if_tensorflow() -> None:
    """GPU memory growth when Keras runs on TensorFlow; nothing on other backends."""
    if import_keras().backend.backend() == "tensorflow":
        enable_memory_growth()


def make_strategy(name: str, devices: tuple[str, ...] | list[str] | None = None) -> Any:
    """A `tf.distribute.Strategy` by name.

    Args:
        name: "default" (TensorFlow's no-op strategy), "mirrored" (one process, several devices)
            or "multiworker" (several processes, described by TF_CONFIG).
        devices: for mirrored, the devices to use; None means every GPU, else every logical CPU.

    Raises:
        DistributeError: an unknown name, a device TensorFlow does not have, a bad TF_CONFIG,
            or a Keras backend other than TensorFlow.
    """
    if name not in STRATEGIES:
        raise DistributeError(f"strategy = {name!r} is not one of: {', '.join(STRATEGIES)}.")
    tf = require_tensorflow(f"--strategy {name}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices:
            wanted = [d if d.startswith("/") else "/" + d for d in devices]
            known = {_short(d.name) for d in tf.config.list_logical_devices()}
            missing = [d for d in wanted if _short(d) not in known]
            if missing:
                raise DistributeError(
                    f"--devices: TensorFlow has no {', '.join(missing)}; it sees "
                    f"{', '.join(sorted(known)) or 'nothing'}."
                )
        else:
            gpus = tf.config.list_logical_devices("GPU")
            wanted = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=wanted)
    read_tf_config()
    return _multi_worker_strategy(tf)


def _multi_worker_strategy(tf: ModuleType) -> Any:
    """MultiWorkerMirroredStrategy with a `reduce` that fits what Keras 3 asks of it.

    Keras 3's `fit` calls `strategy.reduce` in two ways MultiWorkerMirroredStrategy rejects
    (keras-team/keras#20585): on a whole (images, labels) batch at once, to learn the input
    shapes, and with `axis=0` on the scalar loss and metrics of each step. Here a structure is
    reduced leaf by leaf (small integers, like MNIST's uint8 labels, widened to int32 as the
    collectives require), and a scalar is averaged across replicas, which is what `axis=0`
    means for it. Everything else goes to TensorFlow unchanged.
    """

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):  # type: ignore[misc,name-defined]
        def reduce(self, reduce_op: Any, value: Any, axis: Any = None) -> Any:
            if isinstance(value, tuple | list | dict):
                return tf.nest.map_structure(lambda v: self._reduce_one(reduce_op, v, axis), value)
            return self._reduce_one(reduce_op, value, axis)

        def _reduce_one(self, reduce_op: Any, value: Any, axis: Any) -> Any:
            local = self.experimental_local_results(value)[0]
            if axis is not None and local.shape.rank == 0:
                axis = None
            if local.dtype.is_integer and local.dtype.size < 4:
                widened = self.run(lambda t: tf.cast(t, tf.int32), args=(value,))
                return tf.cast(super().reduce(reduce_op, widened, axis), local.dtype)
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy()


def _short(name: str) -> str:
    """ "/job:localhost/replica:0/task:0/device:CPU:1" -> "/cpu:1"."""
    match = _DEVICE.match(name.strip())
    return f"/{match.group(1).lower()}:{int(match.group(2))}" if match else name.lower()


def replicas(strategy: Any) -> int:
    """Replicas that train in step (across all workers); 1 without a strategy."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def describe_strategy(strategy: Any) -> str:
    """One line such as "MirroredStrategy · 2x CPU" or
    "MultiWorkerMirroredStrategy · 2 workers · 1x CPU each"."""
    kinds = [_short(d).split(":")[0].lstrip("/").upper() for d in strategy.extended.worker_devices]
    local = f"{len(kinds)}x {'/'.join(sorted(set(kinds)))}" if kinds else "?"
    # tf.distribute.MultiWorkerMirroredStrategy is an alias of CollectiveAllReduceStrategy.
    name = type(strategy).__name__.replace(
        "CollectiveAllReduceStrategy", "MultiWorkerMirroredStrategy"
    )
    total = replicas(strategy)
    if total > len(kinds) and kinds:
        return f"{name} · {total // len(kinds)} workers · {local} each"
    return f"{name} · {local}"


def steps_per_execution(strategy: Any) -> int:
    """Batches per call into TensorFlow under `strategy` (see `model.STEPS_PER_EXECUTION`).

    One under any strategy: Keras's multi-step loop fails under MirroredStrategy and
    MultiWorkerMirroredStrategy alike with "You must feed a value for placeholder tensor"
    (keras-team/keras#19246; TensorFlow 2.21, Keras 3.15, on two CPU replicas and two workers).
    """
    return STEPS_PER_EXECUTION if strategy is None else 1


def training_device(strategy: Any) -> str:
    """What training runs on, in one line: the strategy's devices (see `describe_strategy`), or
    with no strategy the device TensorFlow picks, such as "CPU (2 cores)"."""
    return describe_strategy(strategy) if strategy is not None else device_info().describe()
