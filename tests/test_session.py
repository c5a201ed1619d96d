"""TrainingSession and its controls while a real `fit` runs on a small slice of MNIST."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tui.core.config import Hyperparams
from tui.core.data import MnistData
from tui.core.events import (
    BatchProgress,
    EpochEnded,
    Evaluated,
    LearningRateChanged,
    Paused,
    Predicted,
    Resumed,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.model import STEPS_PER_EXECUTION, build_model
from tui.core.runtime import import_keras
from tui.core.session import TrainingSession

keras = import_keras()

SECOND_GROUP = STEPS_PER_EXECUTION
"""The first batch of the second group Keras runs in one call: callbacks see only group starts."""

TINY = Hyperparams(
    epochs=1,
    batch_size=50,
    conv_filters=(4,),
    dense_units=8,
    dropout=0.0,
    validation_split=0.1,
    train_size=1000,
)


@pytest.fixture
def data(mnist_small: MnistData) -> MnistData:
    return mnist_small


class Recorder:
    """A sink that keeps every event; optional hooks run on matching events."""

    def __init__(self) -> None:
        self.events: list[TrainingEvent] = []
        self.hooks: list[tuple[type, Callable[[Any], None]]] = []

    def __call__(self, event: TrainingEvent) -> None:
        self.events.append(event)
        for kind, hook in self.hooks:
            if isinstance(event, kind):
                hook(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class BatchHook(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
    """Counts batches begun and runs `action(epoch, batch)` on the training thread."""

    def __init__(self, action: Callable[[int, int], None] | None = None) -> None:
        super().__init__()
        self.action = action
        self.begun = 0
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.begun += 1
        if self.action:
            self.action(self.epoch, batch)


def make_session(
    data: MnistData, hparams: Hyperparams = TINY, hook: BatchHook | None = None, **kw: Any
) -> tuple[TrainingSession, Recorder]:
    sink = Recorder()
    session = TrainingSession(
        hparams, data, sink, callbacks=[hook] if hook else [], progress_interval=0.0, **kw
    )
    return session, sink


def test_events_arrive_in_order_and_describe_the_run(data: MnistData) -> None:
    session, sink = make_session(data, TINY.with_changes(epochs=2))
    assert session.train() is StopReason.FINISHED
    kinds = [type(e) for e in sink.events]
    assert kinds[0] is TrainingStarted and kinds[-1] is TrainingStopped
    started = sink.of(TrainingStarted)[0]
    assert (started.first_epoch, started.target) == (1, 2)
    assert (started.train_samples, started.val_samples) == (900, 100)
    assert started.steps_per_epoch == 18
    assert started.params == session.model.count_params()
    epochs = sink.of(EpochEnded)
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(e.val_accuracy is not None and 0 <= e.val_accuracy <= 1 for e in epochs)
    assert epochs[1].loss < epochs[0].loss
    # Progress never goes backwards within an epoch and every report sits inside its epoch.
    first_epoch_end = kinds.index(EpochEnded)
    steps = [e.step for e in sink.events[:first_epoch_end] if isinstance(e, BatchProgress)]
    assert steps == sorted(steps) and steps and steps[-1] <= 18
    progress = sink.of(BatchProgress)
    assert all(p.samples_per_sec > 0 and p.eta_seconds >= 0 for p in progress)
    assert sink.of(TrainingStopped)[0].epochs_done == 2
    assert session.history == epochs


def test_progress_is_throttled(data: MnistData) -> None:
    sink = Recorder()
    session = TrainingSession(
        TINY.with_changes(batch_size=10), data, sink, progress_interval=3600.0
    )
    session.train()
    # 90 steps in the epoch, but an hour between reports leaves room for the first one only.
    assert len(sink.of(BatchProgress)) == 1


def test_stop_now_ends_fit_before_the_next_group_of_batches(data: MnistData) -> None:
    session: TrainingSession
    requested_at: list[int] = []

    def stop_at_fifth(epoch: int, batch: int) -> None:
        if epoch == 2 and batch == SECOND_GROUP:
            requested_at.append(hook.begun)
            session.controls.stop_now()

    hook = BatchHook(stop_at_fifth)
    session, sink = make_session(data, TINY.with_changes(epochs=3), hook)
    assert session.train() is StopReason.USER
    # The batch that asked ran; not one more began.
    assert hook.begun == requested_at[0]
    assert session.epochs_done == 1
    stopped = sink.of(TrainingStopped)[-1]
    assert stopped.reason is StopReason.USER and stopped.epochs_done == 1


def test_stop_now_from_another_thread(data: MnistData) -> None:
    session, sink = make_session(data, TINY.with_changes(epochs=50))
    first_epoch = threading.Event()
    sink.hooks.append((EpochEnded, lambda e: first_epoch.set()))
    worker = threading.Thread(target=session.train)
    worker.start()
    assert first_epoch.wait(60)
    session.controls.stop_now()
    worker.join(60)
    assert not worker.is_alive()
    assert sink.of(TrainingStopped)[-1].reason is StopReason.USER
    assert session.epochs_done < 50


def test_stop_after_epoch_finishes_the_epoch_in_progress(data: MnistData) -> None:
    session: TrainingSession

    def ask(epoch: int, batch: int) -> None:
        if epoch == 1 and batch == SECOND_GROUP:
            session.controls.stop_after_epoch()

    session, sink = make_session(data, TINY.with_changes(epochs=3), BatchHook(ask))
    assert session.train() is StopReason.AFTER_EPOCH
    assert session.epochs_done == 1
    assert [e.epoch for e in sink.of(EpochEnded)] == [1]


def test_raising_the_target_while_training_runs_more_epochs(data: MnistData) -> None:
    session: TrainingSession

    def extend(epoch: int, batch: int) -> None:
        if epoch == 1 and batch == SECOND_GROUP:
            session.controls.change_epoch_target(+1)

    session, sink = make_session(data, TINY.with_changes(epochs=1), BatchHook(extend))
    assert session.train() is StopReason.FINISHED
    assert [e.epoch for e in sink.of(EpochEnded)] == [1, 2]
    assert sink.of(EpochEnded)[-1].target == 2


def test_lowering_the_target_never_drops_below_the_epoch_in_progress(data: MnistData) -> None:
    session: TrainingSession
    answers: list[int] = []

    def shrink(epoch: int, batch: int) -> None:
        if epoch == 2 and batch == SECOND_GROUP:
            answers.append(session.controls.set_epoch_target(1))

    session, _ = make_session(data, TINY.with_changes(epochs=4), BatchHook(shrink))
    assert session.train() is StopReason.FINISHED
    assert answers == [2]
    assert session.epochs_done == 2


def test_pause_holds_training_until_resumed(data: MnistData) -> None:
    session: TrainingSession
    paused = threading.Event()
    hook = BatchHook(lambda e, b: session.controls.pause() if (e, b) == (1, SECOND_GROUP) else None)
    session, sink = make_session(data, TINY, hook)
    sink.hooks.append((Paused, lambda e: paused.set()))
    worker = threading.Thread(target=session.train)
    worker.start()
    assert paused.wait(60)
    begun_when_paused = hook.begun
    assert session.controls.paused
    # Nothing moves while paused: the training thread is parked before the group after it.
    worker.join(0.3)
    assert worker.is_alive()
    assert hook.begun == begun_when_paused
    session.controls.resume()
    worker.join(60)
    assert not worker.is_alive()
    assert sink.of(Resumed) and sink.of(Resumed)[0].paused_seconds > 0
    assert sink.of(TrainingStopped)[-1].reason is StopReason.FINISHED


def test_stop_now_releases_a_pause(data: MnistData) -> None:
    session: TrainingSession
    hook = BatchHook(lambda e, b: session.controls.pause() if (e, b) == (1, SECOND_GROUP) else None)
    session, sink = make_session(data, TINY, hook)
    sink.hooks.append((Paused, lambda e: session.controls.stop_now()))
    assert session.train() is StopReason.USER


def test_learning_rate_changes_live(data: MnistData) -> None:
    session: TrainingSession
    hook = BatchHook(
        lambda e, b: (
            session.controls.set_learning_rate(2.5e-4) if (e, b) == (1, SECOND_GROUP) else None
        )
    )
    session, sink = make_session(data, TINY, hook)
    session.train()
    assert [e.learning_rate for e in sink.of(LearningRateChanged)] == [2.5e-4]
    assert math.isclose(sink.of(EpochEnded)[-1].learning_rate, 2.5e-4, rel_tol=1e-6)
    with pytest.raises(ValueError, match="learning_rate"):
        session.controls.set_learning_rate(0.0)


def test_cosine_schedule_decays_towards_the_target(data: MnistData) -> None:
    session, sink = make_session(data, TINY.with_changes(epochs=2, lr_schedule="cosine"))
    session.train()
    first, second = sink.of(EpochEnded)
    assert first.learning_rate < TINY.learning_rate
    assert second.learning_rate < first.learning_rate


def test_training_runs_groups_of_batches_per_call_and_reports_every_step_once(
    data: MnistData,
) -> None:
    # The measured speed-up (bench_throughput.py) only holds if the model gets the setting.
    hook = BatchHook()
    session, sink = make_session(data, TINY, hook)
    session.train()
    assert session.model.steps_per_execution == STEPS_PER_EXECUTION
    iterations = session.model.optimizer.iterations.numpy()
    assert iterations == 18 and hook.begun == math.ceil(18 / STEPS_PER_EXECUTION)
    steps = [p.step for p in sink.of(BatchProgress)]
    assert steps == sorted(set(steps)) and steps[-1] == 18


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # unbuilt
def test_a_model_saved_at_8_batches_per_call_trains_under_a_strategy(
    data: MnistData, tmp_path: Path
) -> None:
    # A run resumed under --strategy mirrored: Keras restores the saved setting, which its
    # multi-step loop cannot run under a strategy (keras-team/keras#19246).
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    path = tmp_path / "saved.keras"
    build_model(TINY).save(path)
    with strategy.scope():
        model = keras.models.load_model(path)
    assert model.steps_per_execution == STEPS_PER_EXECUTION
    session, sink = make_session(data, TINY, model=model, strategy=strategy)
    assert session.train() is StopReason.FINISHED, sink.of(TrainingStopped)[-1].message
    assert model.steps_per_execution == 1


def test_continue_after_a_finished_run_keeps_counting(data: MnistData) -> None:
    session, sink = make_session(data, TINY)
    session.train()
    iterations = int(session.model.optimizer.iterations.numpy())
    assert iterations == 18
    session.controls.set_epoch_target(2)
    assert session.train() is StopReason.FINISHED
    assert sink.of(TrainingStarted)[-1].first_epoch == 2
    assert [e.epoch for e in sink.of(EpochEnded)] == [1, 2]
    assert int(session.model.optimizer.iterations.numpy()) == 2 * iterations
    # Nothing left to do: the call says so instead of training again.
    assert session.train() is StopReason.FINISHED
    assert len(sink.of(EpochEnded)) == 2


def test_nan_loss_stops_training(data: MnistData) -> None:
    session: TrainingSession

    def poison(epoch: int, batch: int) -> None:
        # What a diverging run ends up with: weights that are no longer numbers.
        if (epoch, batch) == (1, SECOND_GROUP):
            kernel = session.model.get_layer("output").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype=np.float32))

    session, sink = make_session(data, TINY.with_changes(epochs=3), BatchHook(poison))
    assert session.train() is StopReason.NAN
    stopped = sink.of(TrainingStopped)[-1]
    assert "nan" in stopped.message.lower()
    assert session.epochs_done == 0
    assert not sink.of(EpochEnded)


def test_an_exception_inside_training_is_reported_not_raised(data: MnistData) -> None:
    def explode(epoch: int, batch: int) -> None:
        if batch == SECOND_GROUP:
            raise RuntimeError("disk on fire")

    session, sink = make_session(data, TINY, BatchHook(explode))
    assert session.train() is StopReason.ERROR
    assert sink.of(TrainingStopped)[-1].message == "RuntimeError: disk on fire"
    # The session stays usable: the hook is gone and training works again.
    session.extra_callbacks.clear()
    assert session.train() is StopReason.FINISHED


def test_evaluate_and_predict_cover_the_test_set(data: MnistData) -> None:
    session, sink = make_session(data, TINY.with_changes(epochs=2, learning_rate=1e-2))
    session.train()
    evaluated = session.evaluate()
    predicted = session.predict()
    assert sink.events[-2:] == [evaluated, predicted]
    assert isinstance(evaluated, Evaluated) and isinstance(predicted, Predicted)
    assert evaluated.samples == len(data.y_test)
    assert predicted.probabilities.shape == (len(data.y_test), 10)
    np.testing.assert_allclose(predicted.probabilities.sum(axis=1), 1.0, rtol=1e-4)
    assert math.isclose(predicted.accuracy, evaluated.accuracy, abs_tol=1e-6)
    assert evaluated.accuracy > 0.5


def test_a_short_batch_norm_run_predicts_well_in_inference_mode(data: MnistData) -> None:
    # With Keras's default batch-norm momentum a short run kept most of the initial moving
    # variance and predicted near chance in inference mode, while training accuracy looked fine.
    hparams = TINY.with_changes(
        epochs=3,
        batch_size=25,
        batch_norm=True,
        padding="same",
        conv_filters=(16, 32),
        dense_units=32,
        learning_rate=3e-3,
    )
    session, sink = make_session(data, hparams)
    session.train()
    trained = sink.of(EpochEnded)[-1].accuracy
    assert trained > 0.85
    assert session.evaluate().accuracy > trained - 0.1
