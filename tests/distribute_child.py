"""Child process for tests/test_distribute.py: train a tiny model under a strategy, print JSON.

Devices must be configured before TensorFlow initialises them, once per process, so each
distribution set-up runs here in a fresh interpreter rather than inside pytest.
Usage: python tests/distribute_child.py STRATEGY MNIST_NPZ TRAIN_SIZE [--mixed-precision]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import tiny

from tui.core.platform.distribute import DistributeOptions, replicas
from tui.core.platform.runtime import import_keras
from tui.core.training.events import TrainingEvent

TINY = tiny.TINY.with_changes(learning_rate=3e-3, dense_units=32, train_size=0, seed=7)


def per_replica_batch(model: Any, strategy: Any, x: np.ndarray, y: np.ndarray) -> list[int]:
    """Batch sizes each replica receives from the iterator `fit` itself uses."""
    from keras.src.backend.tensorflow.trainer import TFEpochIterator

    iterator = TFEpochIterator(
        x=x, y=y, batch_size=TINY.batch_size, distribute_strategy=model.distribute_strategy
    )
    *_, distributed = next(iter(iterator))  # (first step, last step, DistributedIterator)
    images = next(distributed)[0]
    return [int(part.shape[0]) for part in strategy.experimental_local_results(images)]


def main(argv: list[str]) -> dict[str, Any]:
    name, npz, train_size = argv[0], argv[1], int(argv[2])
    options = DistributeOptions(strategy=name, mixed_precision="--mixed-precision" in argv)

    from tui.core.data.mnist import load_npz
    from tui.core.settings.requests import Setup
    from tui.core.training.controller import TrainingController

    data = load_npz(npz).subset(train=train_size, test=500)
    controller = TrainingController(
        Setup(TINY, distribute=options, record=False, progress_interval=0.0), data=data
    )
    events: list[TrainingEvent] = []
    controller.subscribe(events.append)
    controller.load()  # makes the devices and the strategy, as the engine does
    strategy = controller.strategy
    keras = import_keras()
    reason = controller.claim_round().run()
    evaluated = controller.snapshot.evaluation
    session = controller.session
    assert session is not None and evaluated is not None
    model = session.model
    result: dict[str, Any] = {
        "reason": reason.value,
        "events": [type(e).__name__ for e in events],
        "device": session.device,
        "replicas": replicas(strategy),
        "accuracy": evaluated.accuracy,
        "policy": keras.mixed_precision.global_policy().name,
        "output_dtype": str(model.outputs[0].dtype),
        "predict_dtype": str(session.predict().probabilities.dtype),
        "compute_dtype": model.get_layer("conv1").compute_dtype,
    }
    result.update(_steer(controller))
    if strategy is not None:
        x, y, _, _ = session.split()
        result["per_replica_batch"] = per_replica_batch(model, strategy, x[:256], y[:256])
        # Every trainable variable is a MirroredVariable: one copy per replica, kept in step.
        same = True
        for variable in model.trainable_variables:
            copies = [np.asarray(v) for v in strategy.experimental_local_results(variable.value)]
            same = same and len(copies) == result["replicas"] // max(1, _workers(strategy))
            same = same and all(np.array_equal(copies[0], c) for c in copies[1:])
        result["replica_weights_identical"] = same
        result["local_copies"] = len(
            strategy.experimental_local_results(model.trainable_variables[0].value)
        )
    return result


def _steer(controller: Any) -> dict[str, Any]:
    """One more epoch, steered as a viewer would: pause, resume, then stop now.

    The listener runs on the training thread between batches, so reacting inside it is exactly
    as timely as a key press would be, without any waiting.
    """
    from tui.core.training.events import BatchProgress, Paused, Resumed

    seen: list[str] = []

    def react(event: TrainingEvent) -> None:
        seen.append(type(event).__name__)
        if isinstance(event, BatchProgress) and "Paused" not in seen:
            controller.pause()
        elif isinstance(event, Paused):
            controller.resume()
        elif isinstance(event, Resumed):
            controller.stop_now()

    done = controller.snapshot.epochs_done
    controller.subscribe(react)
    reason = controller.claim_round(TINY.with_changes(epochs=done + 1)).run()
    return {
        "steered_reason": reason.value,
        "steered_events": [n for n in seen if n in ("Paused", "Resumed", "TrainingStopped")],
        "epochs_after_stop": controller.snapshot.epochs_done - done,
    }


def _workers(strategy: Any) -> int:
    return int(strategy.num_replicas_in_sync) // len(strategy.extended.worker_devices)


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1:])), flush=True)
