"""tf.distribute strategies, logical CPU devices, GPU memory growth and mixed precision."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from tui.core.platform.backend import strategy_refusal
from tui.core.platform.placement import (
    CPU_REPLICAS,
    DEVICE_NAME,
    STRATEGIES,
    TF_CONFIG,
    ClusterTask,
    DistributeError,
    DistributeOptions,
    is_chief,
    parse_devices,
    read_tf_config,
)
from tui.core.platform.runtime import device_info, import_keras

STEPS_PER_EXECUTION = 8
"""Batches per call into TensorFlow on one device. Each call returns to Python for the
callbacks (progress, pause, stop, learning rate), so 8 cuts that overhead eightfold: 16-20%
faster on a 2-core CPU (tests/benchmarks/bench_throughput.py), more on a GPU, where a small
model waits on Python. The controls then act between groups of 8 batches, a fraction of a
second. Strategies keep one batch per call (keras-team/keras#19246)."""

__all__ = [
    "CPU_REPLICAS",
    "STRATEGIES",
    "TF_CONFIG",
    "ClusterTask",
    "DistributeError",
    "DistributeOptions",
    "is_chief",
    "parse_devices",
    "read_tf_config",
]


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

    The model keeps its output layer in float32 (see `tui.core.training.model`) so that the softmax
    and the loss stay numerically stable; Keras wraps the optimizer in a LossScaleOptimizer itself.
    Applies to models built afterwards. Backend-neutral: it is Keras's own policy.

    Returns:
        The name of the global policy now in force.
    """
    global _precision
    keras = import_keras()
    name = "mixed_float16" if on else "float32"
    keras.mixed_precision.set_global_policy(name)
    _precision = name
    return name


_precision = "float32"
"""The policy `set_mixed_precision` chose for this process."""


def precision_here() -> None:
    """Apply the process's precision policy in the calling thread.

    Keras keeps its global dtype policy per thread: set where the backend loads, it is not in
    force in the thread that later builds the model (the engine's and `train`'s training thread),
    and `--mixed-precision` quietly trained in float32 there.
    """
    import_keras().mixed_precision.set_global_policy(_precision)


# --- strategies ------------------------------------------------------------------------------
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
    match = DEVICE_NAME.match(name.strip())
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


def steps_per_execution(strategy: Any = None) -> int:
    """Batches per call into the backend under `strategy` (see `STEPS_PER_EXECUTION`).

    One under any strategy: Keras's multi-step loop fails under MirroredStrategy and
    MultiWorkerMirroredStrategy alike with "You must feed a value for placeholder tensor"
    (keras-team/keras#19246; TensorFlow 2.21, Keras 3.15, on two CPU replicas and two workers).
    One on PyTorch, whose Keras trainer refuses any other number at the first `fit`.
    """
    if strategy is not None or import_keras().backend.backend() == "torch":
        return 1
    return STEPS_PER_EXECUTION


def training_device(strategy: Any) -> str:
    """What training runs on, in one line: the strategy's devices (see `describe_strategy`), or
    with no strategy the device TensorFlow picks, such as "CPU (2 cores)"."""
    return describe_strategy(strategy) if strategy is not None else device_info().describe()


def prepare(options: DistributeOptions) -> None:
    """Everything that must happen before TensorFlow initialises its devices.

    Mirrored on a machine without GPUs splits the CPU into logical devices (as many as named
    by --devices, else two) so that there is something to mirror over; every GPU gets memory
    growth; the precision policy is set. Multiworker checks TF_CONFIG first, so a bad one is
    reported before anything slow happens.
    """
    if options.strategy == "default" and not options.mixed_precision:
        # Nothing to do; in particular another Keras backend needs no TensorFlow here.
        enable_memory_growth_if_tensorflow()
        return
    if options.strategy != "default":
        backend = import_keras().backend.backend()
        if backend != "tensorflow":
            raise DistributeError(strategy_refusal(backend, options.strategy))
        tf = require_tensorflow(f"--strategy {options.strategy}")
        if options.strategy == "multiworker":
            read_tf_config()
        cpus = [d for d in options.devices if d.startswith("/cpu:")]
        if cpus:
            split_cpu(max(int(d.split(":")[1]) for d in cpus) + 1)
        elif (
            options.strategy == "mirrored"
            and not options.devices
            and not tf.config.list_physical_devices("GPU")
        ):
            split_cpu(CPU_REPLICAS)
    enable_memory_growth_if_tensorflow()
    set_mixed_precision(options.mixed_precision)


def make_strategy_for(options: DistributeOptions) -> Any:
    """The `tf.distribute.Strategy`, or None for the default (no distribution at all)."""
    if options.strategy == "default":
        return None
    return make_strategy(options.strategy, options.devices or None)
