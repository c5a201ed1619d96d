"""The training controller's rules, on real MNIST digits and real `fit`s, without Textual.

Each test acts as a viewer would: it subscribes, asks (train, stop, pause, target, rate,
reset, open), and asserts on the events, the snapshot and the run directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.runs.layout import HPARAMS_TOML, LAST_MODEL, RunError
from tui.core.runs.resume import load_model_file
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup
from tui.core.settings.toml import load_toml
from tui.core.training.controller import ControllerError, TrainingController
from tui.core.training.events import (
    BatchProgress,
    EpochEnded,
    LearningRateChanged,
    Notice,
    Paused,
    PhaseChanged,
    Resumed,
    RunRecording,
    StopReason,
    TargetChanged,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.training.phase import Phase
from tui.core.training.snapshot import advance

ONE = TINY.with_changes(epochs=1, batch_size=50)
"""One epoch of 18 steps (900 images): long enough to act in, short enough to wait for."""


class Viewer:
    """Subscribes to a controller, keeps every event, and can act when one arrives."""

    def __init__(self, controller: TrainingController) -> None:
        self.events: list[TrainingEvent] = []
        self.hooks: list[tuple[Callable[[TrainingEvent], bool], Callable[[], None]]] = []
        self.start, self.unsubscribe = controller.subscribe(self)

    def __call__(self, event: TrainingEvent) -> None:
        self.events.append(event)
        for when, action in list(self.hooks):
            if when(event):
                self.hooks.remove((when, action))
                action()

    def once(self, when: Callable[[TrainingEvent], bool], action: Callable[[], None]) -> None:
        """Run `action` (on the publishing thread) at the first event that `when` accepts."""
        self.hooks.append((when, action))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def phases(self) -> list[Phase]:
        return [e.phase for e in self.of(PhaseChanged)]

    def folded(self) -> Any:
        snapshot = self.start
        for event in self.events:
            snapshot = advance(snapshot, event)
        return snapshot


def progress_in(epoch: int, step_at_least: int = 1) -> Callable[[TrainingEvent], bool]:
    return lambda e: isinstance(e, BatchProgress) and e.epoch == epoch and e.step >= step_at_least


@pytest.fixture
def make(mnist_small: MnistData, tmp_path: Path) -> Iterator[Callable[..., TrainingController]]:
    made: list[TrainingController] = []

    def build(hparams: Hyperparams = ONE, **setup: Any) -> TrainingController:
        options = {"runs_dir": str(tmp_path / "runs"), "progress_interval": 0.0, **setup}
        controller = TrainingController(Setup(hparams, preset="tiny", **options), data=mnist_small)
        controller.load()
        made.append(controller)
        return controller

    yield build
    for controller in made:
        controller.close()


def weights(model: Any) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


# --- phases and events ---------------------------------------------------------------------------
def test_a_round_moves_through_its_phases_and_records_everything(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2))
    viewer = Viewer(controller)
    assert viewer.start.phase is Phase.READY
    assert controller.claim_round().run() is StopReason.FINISHED
    assert viewer.phases == [
        Phase.STARTING,
        Phase.TRAINING,
        Phase.EVALUATING,
        Phase.FINISHED,
    ]
    started = viewer.of(TrainingStarted)[0]
    assert (started.first_epoch, started.target, started.steps_per_epoch) == (1, 2, 18)
    assert (started.train_samples, started.val_samples) == (900, 100)
    assert [e.epoch for e in viewer.of(EpochEnded)] == [1, 2]
    # Progress never goes backwards inside an epoch and never past its end.
    steps = [e.step for e in viewer.of(BatchProgress) if e.epoch == 1]
    assert steps == sorted(set(steps)) and steps[-1] <= 18
    snapshot = controller.snapshot
    assert snapshot == viewer.folded(), "a viewer's fold is the controller's own snapshot"
    assert snapshot.evaluation is not None and snapshot.evaluation.epochs_done == 2
    assert snapshot.predictions is not None and snapshot.predictions.samples == 500
    run = Path(snapshot.run)
    assert {"run.json", HPARAMS_TOML, "metrics.csv", LAST_MODEL, "predictions.npz"} <= {
        p.name for p in run.iterdir()
    }
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["epochs_done"] == 2 and evaluation["samples"] == 500
    assert evaluation["accuracy"] == pytest.approx(snapshot.evaluation.accuracy)


def test_a_late_subscriber_gets_what_an_early_one_accumulated(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2))
    early = Viewer(controller)
    late: list[Viewer] = []
    early.once(progress_in(2), lambda: late.append(Viewer(controller)))
    controller.claim_round().run()
    assert late, "the second viewer joined during epoch 2"
    assert late[0].folded() == early.folded() == controller.snapshot


def test_continue_same_model_and_new_settings(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2))
    controller.claim_round().run()
    first = controller.session
    before = weights(controller.model)
    viewer = Viewer(controller)
    # The epochs field at or below what is done: another round of the same length.
    controller.claim_round(ONE.with_changes(epochs=2)).run()
    assert controller.snapshot.epochs_done == 4
    assert controller.session is first, "same settings: the same session carries on"
    assert viewer.of(TrainingStarted)[0].first_epoch == 3
    assert not any(
        np.array_equal(a, b) for a, b in zip(before, weights(controller.model), strict=True)
    )
    run = controller.snapshot.run
    # New batch size: the same model, new run settings, the same run directory.
    controller.claim_round(ONE.with_changes(epochs=5, batch_size=100)).run()
    assert controller.session is not first
    assert controller.snapshot.epochs_done == 5
    assert controller.snapshot.run == run
    assert load_toml(Path(run) / HPARAMS_TOML).batch_size == 100
    # A network change is refused while the model exists; after a reset it is a new run.
    with pytest.raises(ControllerError, match="conv_filters"):
        controller.claim_round(ONE.with_changes(conv_filters=(4, 8)))
    controller.reset()
    controller.claim_round(ONE.with_changes(conv_filters=(4, 8))).run()
    assert controller.snapshot.run != run
    assert controller.snapshot.epochs_done == 1


def test_stop_now_rolls_back_to_the_saved_epoch_and_evaluates_that(
    make: Callable[..., Any],
) -> None:
    controller = make(ONE.with_changes(epochs=3))
    viewer = Viewer(controller)
    viewer.once(progress_in(2, 2), controller.stop_now)
    assert controller.claim_round().run() is StopReason.USER
    stopped = viewer.of(TrainingStopped)[0]
    assert (stopped.epochs_done, stopped.epoch) == (1, 2)
    assert 2 <= stopped.step < 18
    assert Phase.STOPPING in viewer.phases and viewer.phases[-1] is Phase.STOPPED
    # The model in memory is the one saved after epoch 1, and that is what was evaluated.
    saved = load_model_file(Path(controller.snapshot.run) / LAST_MODEL)
    for kept, on_disk in zip(weights(controller.model), weights(saved), strict=True):
        np.testing.assert_array_equal(kept, on_disk)
    evaluation = controller.snapshot.evaluation
    assert evaluation is not None and evaluation.epochs_done == 1
    test = controller.data.x_test
    expected = np.asarray(saved.predict(test, verbose=0)).argmax(axis=1)
    assert evaluation.accuracy == pytest.approx(float((expected == controller.data.y_test).mean()))


def test_a_stop_or_pause_asked_for_before_fit_starts_is_kept(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2))
    job = controller.claim_round()
    assert controller.snapshot.phase is Phase.STARTING
    controller.stop_now()
    assert job.run() is StopReason.USER
    assert controller.snapshot.epochs_done == 0

    viewer = Viewer(controller)
    job = controller.claim_round()
    controller.pause()
    assert controller.snapshot.phase is Phase.PAUSING
    viewer.once(lambda e: isinstance(e, Paused), controller.resume)
    assert job.run() is StopReason.FINISHED
    paused = viewer.of(Paused)
    assert paused and (paused[0].epoch, paused[0].step) == (1, 0), "paused before batch one"
    assert viewer.of(Resumed)
    assert [p for p in viewer.phases if p in (Phase.PAUSING, Phase.PAUSED)] == [
        Phase.PAUSING,
        Phase.PAUSED,
    ]


def test_pause_holds_training_and_stop_ends_a_pause(make: Callable[..., Any]) -> None:
    controller = make(ONE)
    viewer = Viewer(controller)
    paused = threading.Event()
    viewer.once(progress_in(1), controller.pause)
    viewer.once(lambda e: isinstance(e, Paused), paused.set)
    result: list[StopReason] = []
    worker = threading.Thread(target=lambda: result.append(controller.claim_round().run()))
    worker.start()
    assert paused.wait(60)
    assert controller.snapshot.phase is Phase.PAUSED
    seen = len(viewer.of(BatchProgress))
    worker.join(0.3)
    assert worker.is_alive(), "the round is held while paused"
    assert len(viewer.of(BatchProgress)) == seen, "no batch while paused"
    controller.stop_now()
    worker.join(60)
    assert result == [StopReason.USER]


def test_the_target_never_drops_below_the_epoch_in_progress(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=4))
    viewer = Viewer(controller)
    answers: list[int] = []
    viewer.once(progress_in(2), lambda: answers.append(controller.set_target(1)))
    assert controller.claim_round().run() is StopReason.FINISHED
    assert answers == [2]
    assert viewer.of(TargetChanged)[-1] == TargetChanged(2, 1)
    assert controller.snapshot.epochs_done == 2
    with pytest.raises(ControllerError, match="Nothing is training"):
        controller.set_target(9)


def test_a_live_target_is_recorded_at_once(make: Callable[..., Any]) -> None:
    """Issue 29, case 7: `+` raised the target, a kill -9, and the resume trained to the old one
    (hparams.toml kept it). The file now says the new target as soon as it is set."""
    controller = make(ONE.with_changes(epochs=2))
    viewer = Viewer(controller)
    on_disk: list[int] = []

    def raise_target() -> None:
        controller.set_target(3)
        run = Path(controller.snapshot.run)
        on_disk.append(load_toml(run / HPARAMS_TOML).epochs)  # what a kill -9 now would leave

    viewer.once(progress_in(1), raise_target)
    assert controller.claim_round().run() is StopReason.FINISHED
    assert on_disk == [3]
    assert controller.snapshot.epochs_done == 3
    assert load_toml(Path(controller.snapshot.run) / HPARAMS_TOML).epochs == 3


# Weights that all but stand still (SGD at 1e-9, no dropout, no batch norm): an epoch's training
# loss then depends only on the images it saw, the same for every epoch without augmentation.
FROZEN_AUGMENTED = ONE.with_changes(
    augment=True, optimizer="sgd", learning_rate=1e-9, momentum=0.0, epochs=4, clean_epochs=2
)


def test_the_last_clean_epochs_train_on_the_images_as_they_are(make: Callable[..., Any]) -> None:
    controller = make(FROZEN_AUGMENTED)
    viewer = Viewer(controller)
    assert controller.claim_round().run() is StopReason.FINISHED
    first, second, third, fourth = (e.loss for e in viewer.of(EpochEnded))
    assert first != pytest.approx(second, rel=2e-5)  # each augmented epoch varies the images
    assert third == pytest.approx(fourth, rel=1e-6)  # the clean ones see the same images
    assert [e.text for e in viewer.of(Notice) if "ugmentation" in e.text] == [
        "Augmentation off from epoch 3: the last epochs train on the images as they are."
    ]


def test_raising_the_target_turns_augmentation_on_until_the_new_last_epochs(
    make: Callable[..., Any],
) -> None:
    controller = make(FROZEN_AUGMENTED)
    viewer = Viewer(controller)
    viewer.once(progress_in(3), lambda: controller.set_target(6))
    assert controller.claim_round().run() is StopReason.FINISHED
    losses = [e.loss for e in viewer.of(EpochEnded)]
    assert len(losses) == 6
    assert losses[3] != pytest.approx(losses[2], rel=2e-5)  # epoch 4 augmented again
    assert losses[4] == pytest.approx(losses[5], rel=1e-6) == pytest.approx(losses[2], rel=1e-6)
    assert [e.text.split(":")[0] for e in viewer.of(Notice) if "ugmentation" in e.text] == [
        "Augmentation off from epoch 3",
        "Augmentation on again from epoch 4.",
        "Augmentation off from epoch 5",
    ]


def test_going_on_without_clean_epochs_turns_augmentation_on_again(
    make: Callable[..., Any],
) -> None:
    controller = make(FROZEN_AUGMENTED)
    controller.claim_round().run()  # ends with augmentation off
    viewer = Viewer(controller)
    controller.claim_round(FROZEN_AUGMENTED.with_changes(epochs=6, clean_epochs=0)).run()
    fifth, sixth = (e.loss for e in viewer.of(EpochEnded))
    assert fifth != pytest.approx(sixth, rel=2e-5)
    assert [e.text for e in viewer.of(Notice) if "ugmentation" in e.text] == [
        "Augmentation on again from epoch 5."
    ]


def test_the_learning_rate_changes_once_and_is_recorded(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2))
    viewer = Viewer(controller)
    viewer.once(progress_in(1, 2), lambda: controller.set_learning_rate(2.5e-4))
    controller.claim_round().run()
    assert [e.learning_rate for e in viewer.of(LearningRateChanged)] == [2.5e-4]
    assert math.isclose(viewer.of(EpochEnded)[-1].learning_rate or 0, 2.5e-4, rel_tol=1e-6)
    assert controller.snapshot.learning_rate == 2.5e-4
    # What a resume starts from is the rate in force, not the one the run began with.
    assert load_toml(Path(controller.snapshot.run) / HPARAMS_TOML).learning_rate == 2.5e-4
    with pytest.raises(ControllerError, match="Nothing is training"):
        controller.set_learning_rate(1e-4)


def test_a_new_model_trains_at_the_learning_rate_it_is_given(make: Callable[..., Any]) -> None:
    """Not at the one the controller started with (a panel changed before `t`)."""
    controller = make(ONE.with_changes(learning_rate=1e-3))
    viewer = Viewer(controller)
    controller.claim_round(ONE.with_changes(learning_rate=4e-3)).run()
    assert math.isclose(viewer.of(EpochEnded)[-1].learning_rate or 0, 4e-3, rel_tol=1e-6)


def test_a_reopened_run_goes_on_at_its_own_learning_rate(make: Callable[..., Any]) -> None:
    """Its schedule included: a resumed one-cycle run continues its curve, not another's."""
    recorded = ONE.with_changes(epochs=2, lr_schedule="onecycle", learning_rate=5e-3)
    first = make(recorded)
    first.claim_round().run()
    run = first.snapshot.run
    first.close()
    second = make(ONE.with_changes(learning_rate=1e-3))
    viewer = Viewer(second)
    second.claim_open_run(run).run()
    second.claim_round(recorded.with_changes(epochs=3)).run()
    # The last epoch of three ends the cosine part at its floor, a hundredth of the base rate.
    assert math.isclose(viewer.of(EpochEnded)[-1].learning_rate or 0, 5e-5, rel_tol=1e-2)


def test_the_cosine_schedule_decays_per_batch_over_the_target(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=2, lr_schedule="cosine", learning_rate=1e-2))
    viewer = Viewer(controller)
    controller.claim_round().run()
    first, second = viewer.of(EpochEnded)
    assert 0.99e-4 <= (second.learning_rate or 0) < (first.learning_rate or 0) < 1e-2


def test_the_one_cycle_schedule_rises_then_falls_per_batch(make: Callable[..., Any]) -> None:
    controller = make(ONE.with_changes(epochs=6, lr_schedule="onecycle", learning_rate=1e-2))
    viewer = Viewer(controller)
    controller.claim_round().run()
    rates = [e.learning_rate or 0 for e in viewer.of(EpochEnded)]
    assert len(rates) == 6
    assert rates[0] < rates[1] and all(a > b for a, b in itertools.pairwise(rates[1:]))
    assert 0.99e-4 <= rates[-1] < 0.2e-2 and max(rates) <= 1e-2


def test_a_diverged_round_rolls_back_and_can_train_again(
    make: Callable[..., Any], mnist_small: MnistData
) -> None:
    controller = make(ONE.with_changes(epochs=2))
    controller.claim_round().run()
    saved = weights(controller.model)
    # Pixels at float32's largest: the activations overflow and the first loss is NaN.
    blinding = np.full_like(mnist_small.x_train, 3e38)
    controller.data = dataclasses.replace(mnist_small, x_train=blinding)
    viewer = Viewer(controller)
    assert controller.claim_round(ONE.with_changes(epochs=4)).run() is StopReason.NAN
    assert controller.snapshot.phase is Phase.FAILED
    stopped = viewer.of(TrainingStopped)[-1]
    assert stopped.reason is StopReason.NAN and "loss became nan" in stopped.message
    assert not viewer.of(EpochEnded), "a diverged epoch is never reported, nor recorded"
    assert controller.snapshot.epochs_done == 2
    for kept, before in zip(weights(controller.model), saved, strict=True):
        np.testing.assert_array_equal(kept, before)
    rows = (Path(controller.snapshot.run) / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2
    controller.data = mnist_small
    assert controller.claim_round(ONE.with_changes(epochs=3)).run() is StopReason.FINISHED


def test_two_claims_at_once_start_one_round(make: Callable[..., Any]) -> None:
    controller = make(ONE)
    job = controller.claim_round()
    with pytest.raises(ControllerError, match="already running"):
        controller.claim_round()
    job.run()


def test_settings_that_cannot_fit_are_refused_before_training(make: Callable[..., Any]) -> None:
    controller = make(ONE)
    huge = ONE.with_changes(
        batch_size=8192, conv_filters=(512, 512), padding="same", dense_units=4096
    )
    with pytest.raises(ControllerError, match="do not fit"):
        controller.claim_round(huge)
    assert controller.snapshot.phase is Phase.READY


# --- runs -----------------------------------------------------------------------------------------
def test_open_a_run_and_continue_it(make: Callable[..., Any]) -> None:
    first = make(ONE.with_changes(epochs=2))
    first.claim_round().run()
    run = first.snapshot.run
    first.close()
    second = make(ONE)
    viewer = Viewer(second)
    assert second.claim_open_run(run).run() is None
    snapshot = second.snapshot
    assert (snapshot.phase, snapshot.epochs_done, snapshot.run) == (Phase.READY, 2, run)
    assert [e.epoch for e in snapshot.history] == [1, 2]
    assert snapshot.evaluation is not None
    second.claim_round(ONE.with_changes(epochs=3)).run()
    assert second.snapshot.epochs_done == 3
    assert not viewer.of(RunRecording), "the same run directory goes on"
    rows = (Path(run) / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3


def test_one_writer_per_run(make: Callable[..., Any]) -> None:
    first = make(ONE)
    first.claim_round().run()
    run = first.snapshot.run
    second = make(ONE)
    error = second.claim_open_run(run).run()
    assert error is not None and "being trained by" in error
    assert second.snapshot.phase is Phase.READY
    first.close()
    assert second.claim_open_run(run).run() is None


def test_an_opened_run_that_does_not_exist_is_one_line(
    make: Callable[..., Any], tmp_path: Path
) -> None:
    controller = make(ONE)
    error = controller.claim_open_run(tmp_path / "nope").run()
    assert error is not None and "not a directory" in error and "\n" not in error
    with pytest.raises(RunError):
        load_model_file(tmp_path)


# --- a run keeps its data -------------------------------------------------------------------------
def test_a_resumed_run_goes_back_to_its_own_data(
    make: Callable[..., Any], mnist_small: MnistData, tmp_path: Path
) -> None:
    from tui.core.data.mnist import load_npz, load_sample

    # A run trained on a file of its own.
    own = tmp_path / "own.npz"
    np.savez(
        own,
        x_train=np.rint(mnist_small.x_train[..., 0] * 255).astype(np.uint8),
        y_train=mnist_small.y_train,
        x_test=np.rint(mnist_small.x_test[..., 0] * 255).astype(np.uint8),
        y_test=mnist_small.y_test,
    )
    first = TrainingController(
        Setup(ONE, runs_dir=str(tmp_path / "runs"), progress_interval=0.0), data=load_npz(own)
    )
    first.load()
    first.claim_round().run()
    run = first.snapshot.run
    first.close()
    recorded = json.loads((Path(run) / "run.json").read_text())["data"]
    assert recorded["source"] == str(own.resolve()) and len(recorded["fingerprint"]) == 64

    # Opened where the default data is another (the bundled sample): the run's own comes back.
    sample = load_sample()
    second = make(ONE, data_path=None)
    second.data = sample
    assert second.claim_open_run(run).run() is None
    assert second.snapshot.data is not None
    assert second.snapshot.data.fingerprint == recorded["fingerprint"]
    assert second.snapshot.evaluation is not None
    assert second.snapshot.evaluation.samples == len(mnist_small.y_test)
    second.close()

    # The file changed since: refused in one line, nothing opened.
    changed = dict(np.load(own))
    changed["y_test"] = (changed["y_test"] + 1) % 10
    np.savez(own, **changed)
    third = make(ONE)
    third.data = sample
    error = third.claim_open_run(run).run()
    assert error is not None and "now holds other images or labels" in error
    assert "--data" in error and "\n" not in error
    assert third.snapshot.run == "" and third.snapshot.phase is Phase.READY
    third.close()

    # With --data, it continues on the data given, and run.json says so.
    fourth = make(ONE, data_path=str(own))
    fourth.data = load_npz(own)
    assert fourth.claim_open_run(run).run() is None
    info = json.loads((Path(run) / "run.json").read_text())
    assert info["data"]["fingerprint"] == fourth.data.fingerprint
    assert info["data_changes"][0]["from"]["fingerprint"] == recorded["fingerprint"]
