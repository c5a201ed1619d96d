"""One backend's round trip, run by tests/test_backends.py in a process of its own (Keras fixes
its backend at import): train, record, evaluate, predict, explain, save, reopen and go on, open
another backend's model. Prints one JSON object, the last line of its output.

Usage: KERAS_BACKEND=jax python tests/backend_child.py OUT_DIR [MODEL_FROM_ANOTHER_BACKEND]
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from tiny import TINY

from tui.core.data.mnist import load_sample
from tui.core.platform.distribute import DistributeError, DistributeOptions, prepare
from tui.core.platform.runtime import device_report, import_keras
from tui.core.runs.resume import load_model_file
from tui.core.settings.requests import Setup
from tui.core.training.controller import TrainingController


def main(out: Path, foreign: str | None) -> dict[str, Any]:
    keras = import_keras()
    data = load_sample().subset(train=2000, test=500)
    hparams = TINY.with_changes(epochs=2, train_size=2000)
    setup = Setup(hparams, preset="tiny", runs_dir=str(out / "runs"), progress_interval=0.0)
    result: dict[str, Any] = {"backend": keras.backend.backend()}

    first = TrainingController(setup, data=data)
    first.load()
    result["stopped"] = first.claim_round().run().value
    snapshot = first.snapshot
    assert snapshot.evaluation is not None and snapshot.predictions is not None
    result["device"] = snapshot.device
    result["report"] = device_report(snapshot.device).backend
    result["evaluated"] = snapshot.evaluation.accuracy
    predictions = first.predictions
    assert predictions is not None
    result["predicted"] = float(np.mean(predictions.predicted == predictions.labels))
    explanation = first.ask(
        lambda model: model.explain(data.x_test[0], int(data.y_test[0]), "smoothgrad")
    )
    result["saliency"] = [float(explanation.saliency.min()), float(explanation.saliency.max())]
    result["saved"] = str(first.save_model(out / f"{result['backend']}.keras"))
    run = snapshot.run
    first.close()

    second = TrainingController(setup, data=data)
    second.load()
    assert second.claim_open_run(run).run() is None
    result["reopened_at"] = second.snapshot.epochs_done
    second.claim_round(hparams.with_changes(epochs=3)).run()
    result["went_on_to"] = second.snapshot.epochs_done
    result["metric_rows"] = len((Path(run) / "metrics.csv").read_text().strip().splitlines()) - 1
    second.close()

    # Mixed precision chosen where the backend loads (the engine's loop, `train`'s main thread)
    # and the model built in the training thread, as the engine and `train` do.
    mixed = Setup(
        hparams.with_changes(epochs=1),
        preset="tiny",
        record=False,
        distribute=DistributeOptions(mixed_precision=True),
    )
    third = TrainingController(mixed, data=data)
    loader = threading.Thread(target=third.load)
    loader.start()
    loader.join()
    third.claim_round().run()
    model = third.model
    result["mixed_compute"] = model.get_layer("conv1").compute_dtype
    result["mixed_output"] = str(model.outputs[0].dtype)
    third.close()

    try:
        prepare(DistributeOptions(strategy="mirrored"))
        result["mirrored"] = "accepted"
    except DistributeError as err:
        result["mirrored"] = str(err)

    if foreign:
        model = load_model_file(foreign)
        scores = np.asarray(model.predict(data.x_test, verbose=0))
        result["foreign_accuracy"] = float(np.mean(scores.argmax(axis=1) == data.y_test))
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)))
