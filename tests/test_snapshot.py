"""The snapshot fold and the rule book of what can be asked in each phase (no TensorFlow)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import (
    BatchProgress,
    EpochEnded,
    Evaluated,
    ModelReset,
    PhaseChanged,
    PredictionsReady,
    RunOpened,
    StopReason,
    TargetChanged,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.training.phase import BUSY, FITTING, IDLE, Action, Phase
from tui.core.training.snapshot import (
    JOURNAL_LIMIT,
    MAX_EPOCHS,
    ModelInfo,
    Snapshot,
    advance,
    initial_snapshot,
    refusal,
)
from tui.engine import protocol as p

H = Hyperparams(epochs=3)


def epoch(n: int, target: int = 3) -> EpochEnded:
    return EpochEnded(n, target, 1.0 / n, 0.5 + n / 10, None, None, 1.0, 100.0, 1e-3)


def started(first: int = 1, target: int = 3) -> TrainingStarted:
    return TrainingStarted(first, target, 10, 900, 100, 1234, "CPU", H)


def fold(events: list[TrainingEvent], start: Snapshot | None = None) -> Snapshot:
    snapshot = start or initial_snapshot(H, "default")
    for event in events:
        snapshot = advance(snapshot, event)
    return snapshot


def test_a_round_folds_into_history_target_and_results() -> None:
    s = fold(
        [
            PhaseChanged(Phase.READY),
            PhaseChanged(Phase.STARTING),
            started(),
            PhaseChanged(Phase.TRAINING),
            BatchProgress(1, 5, 10, 2.0, 0.3, 100.0, 1.0),
            epoch(1),
            TargetChanged(4, 4),
            epoch(2, 4),
            TrainingStopped(StopReason.USER, 2, "", epoch=3, step=4),
            Evaluated(0.2, 0.9, 1000, 2),
            PredictionsReady(1000, 0.9, 1),
            PhaseChanged(Phase.STOPPED),
        ]
    )
    assert s.phase is Phase.STOPPED
    assert [e.epoch for e in s.history] == [1, 2]
    assert (s.epochs_done, s.target) == (2, 4)
    assert s.progress is None, "no stale in-epoch figure once the round has stopped"
    assert s.stopped is not None and s.stopped.epoch == 3
    assert s.evaluation is not None and s.evaluation.epochs_done == 2
    assert s.model == ModelInfo("trained", 1234, "")
    assert s.last_val_accuracy is None
    # The log keeps what happened, not the progress or the phase changes.
    kinds = {type(e) for e in s.journal}
    assert BatchProgress not in kinds and PhaseChanged not in kinds
    assert TrainingStopped in kinds and EpochEnded in kinds


def test_an_epoch_trained_again_replaces_the_old_one_and_later_ones() -> None:
    s = fold([started(), epoch(1), epoch(2), epoch(3)])
    s = fold([epoch(2)], s)
    assert [e.epoch for e in s.history] == [1, 2]
    assert s.epochs_done == 2


def test_a_reset_or_an_opened_run_forgets_the_old_model() -> None:
    trained = fold(
        [started(), epoch(1), Evaluated(0.1, 0.95, 10, 1), PredictionsReady(10, 0.95, 1)]
    )
    reset = advance(trained, ModelReset())
    assert (reset.model, reset.history, reset.evaluation, reset.predictions) == (
        None,
        (),
        None,
        None,
    )
    opened = advance(
        trained, RunOpened("/r", "fast", H.with_changes(epochs=2), 5, (epoch(1), epoch(2)), True)
    )
    assert opened.model == ModelInfo("run", 0, "/r")
    assert (opened.epochs_done, opened.target, opened.run) == (5, 5, "/r")
    assert opened.evaluation is None


def test_the_journal_keeps_the_newest_events_only() -> None:
    s = fold([TargetChanged(n % 1000 + 1, n % 1000 + 1) for n in range(JOURNAL_LIMIT + 10)])
    assert len(s.journal) == JOURNAL_LIMIT
    assert s.journal[-1] == TargetChanged(
        (JOURNAL_LIMIT + 9) % 1000 + 1, (JOURNAL_LIMIT + 9) % 1000 + 1
    )


EVENTS = st.sampled_from(
    [
        PhaseChanged(Phase.TRAINING),
        started(),
        BatchProgress(1, 2, 10, 1.0, None, 10.0, None),
        epoch(1),
        epoch(2),
        TargetChanged(7, 9),
        TrainingStopped(StopReason.AFTER_EPOCH, 2),
        Evaluated(0.3, 0.8, 10, 2),
        ModelReset(),
    ]
)


@given(st.lists(EVENTS, max_size=30), st.integers(0, 30))
def test_a_late_viewer_folds_to_the_same_snapshot(events: list[TrainingEvent], cut: int) -> None:
    """The engine sends a late viewer its snapshot, then the rest: the viewer ends equal."""
    cut = min(cut, len(events))
    early = fold(events)
    late_start = fold(events[:cut])
    # The snapshot crosses the socket: JSON there and back, typed again on arrival.
    wire = p.decode_server(p.encode(p.Welcome(1, p.EngineInfo("x", 1, "s", "t", "v"), late_start)))
    assert isinstance(wire, p.Welcome)
    assert fold(events[cut:], wire.snapshot) == early


# --- what can be asked in each phase -----------------------------------------------------------
def state(phase: Phase, *, model: bool = False, done: int = 0) -> Snapshot:
    s = initial_snapshot(H, "default")
    info = ModelInfo("trained", 10) if model else None
    return msgspec.structs.replace(s, phase=phase, model=info, epochs_done=done)


ALWAYS_REFUSED = {Phase.LOADING, Phase.BROKEN}


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("model", [False, True])
def test_every_action_in_every_phase(phase: Phase, model: bool) -> None:
    s = state(phase, model=model)
    allowed = {action for action in Action if refusal(s, action) is None}
    expected: set[Action] = set()
    if phase is not Phase.BROKEN and model:
        expected.add(Action.CLASSIFY)
    if phase in IDLE:
        expected |= {Action.TRAIN, Action.OPEN_RUN, Action.OPEN_MODEL}
        if model:
            expected |= {Action.RESET, Action.SAVE_MODEL}
    if phase in FITTING:
        expected.add(Action.STOP_NOW)
        if phase is not Phase.STOPPING:
            expected |= {
                Action.STOP_AFTER_EPOCH,
                Action.PAUSE,
                Action.CHANGE_TARGET,
                Action.SET_LEARNING_RATE,
            }
    assert allowed == expected
    for action in set(Action) - allowed:
        reason = refusal(s, action)
        assert reason is not None and reason.reason.endswith("."), (action, reason)


def test_idle_and_busy_cover_every_phase_but_broken_once() -> None:
    assert IDLE.isdisjoint(BUSY)
    assert set(Phase) == IDLE | BUSY | {Phase.BROKEN}


def test_a_model_at_the_epoch_limit_cannot_train_more() -> None:
    refused = refusal(state(Phase.FINISHED, model=True, done=MAX_EPOCHS), Action.TRAIN)
    assert refused is not None and str(MAX_EPOCHS) in refused.reason
