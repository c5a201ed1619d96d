"""Run directories on real MNIST slices: files, atomic checkpoints, locks, resume after kills,
and the catalog that lists them without TensorFlow."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny

from tui.core.data.mnist import MnistData
from tui.core.inspect.predictions import Predictions
from tui.core.platform.runtime import import_keras
from tui.core.runs.catalog import list_runs, summarise
from tui.core.runs.files import replacing, reserve_unique, write_atomic
from tui.core.runs.layout import (
    BEST_MODEL,
    EVALUATION,
    FORMAT,
    HPARAMS_TOML,
    LAST_MODEL,
    LOCK,
    METRICS_CSV,
    PREDICTIONS,
    RUN_JSON,
    RUNS_ENV,
    TENSORBOARD,
    RunDirectory,
    RunError,
)
from tui.core.runs.lock import RunBusy, RunLock, is_locked
from tui.core.runs.record import run_callbacks
from tui.core.runs.resume import load_model_file, resume
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.requests import Setup
from tui.core.training.callback import EpochClock
from tui.core.training.controller import TrainingController
from tui.core.training.events import (
    EpochEnded,
    Evaluated,
    Notice,
    RunRecording,
    StopReason,
    TrainingEvent,
    TrainingStarted,
)

keras = import_keras()

TINY = tiny.TINY.with_changes(learning_rate=3e-3)
STEPS = 15  # ceil(900 / 64)


def saved_predictions(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """What predictions.npz holds: (probabilities, labels)."""
    with np.load(run / PREDICTIONS) as saved:
        return saved["probabilities"], saved["labels"]


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / METRICS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def header_count(run: Path) -> int:
    return sum(line.startswith("epoch,") for line in (run / METRICS_CSV).read_text().splitlines())


def iterations(model: Any) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def stray_files(run: Path) -> list[str]:
    """Hidden files other than the lock: what an interrupted atomic write would leave."""
    return [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK]


def start_controller(
    root: Path, data: MnistData, hparams: Hyperparams = TINY, **setup: Any
) -> TrainingController:
    """A loaded controller that records runs under `root`."""
    options = {"runs_dir": str(root), "progress_interval": 0.0, **setup}
    controller = TrainingController(Setup(hparams, preset="tiny", **options), data=data)
    controller.load()
    return controller


@pytest.fixture
def make(mnist_small: MnistData) -> Iterator[Callable[..., TrainingController]]:
    """Controllers on the 2,000-image slice; each is closed (its run's lock released) after."""
    made: list[TrainingController] = []

    def build(root: Path, hparams: Hyperparams = TINY, **setup: Any) -> TrainingController:
        controller = start_controller(root, mnist_small, hparams, **setup)
        made.append(controller)
        return controller

    yield build
    for controller in made:
        controller.close()


def recorded(controller: TrainingController) -> list[TrainingEvent]:
    """Every event the controller publishes from now on."""
    events: list[TrainingEvent] = []
    controller.subscribe(events.append)
    return events


@dataclass(frozen=True)
class Trained:
    """What a finished round left: its run directory and what the controller said about it."""

    run: Path
    history: tuple[EpochEnded, ...]
    evaluation: Evaluated
    predictions: Predictions
    model: Any


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> Trained:
    """Two epochs of TINY recorded into a run directory, evaluated and predicted."""
    controller = start_controller(tmp_path_factory.mktemp("runs"), mnist_small)
    try:
        assert controller.claim_round().run() is StopReason.FINISHED
        snapshot = controller.snapshot
        assert snapshot.evaluation is not None and controller.predictions is not None
        return Trained(
            Path(snapshot.run),
            snapshot.history,
            snapshot.evaluation,
            controller.predictions,
            controller.model,
        )
    finally:
        controller.close()


@pytest.fixture
def run_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the trained run, for tests that change or resume it."""
    target = tmp_path / "runs" / trained.run.name
    shutil.copytree(trained.run, target)
    return target


# --- what a run writes --------------------------------------------------------------------------
def test_run_writes_every_file(trained: Trained, mnist_small: MnistData) -> None:
    run = trained.run
    assert run.parent.name.startswith("runs")
    assert run.name.endswith("-tiny")
    for name in (
        RUN_JSON,
        HPARAMS_TOML,
        METRICS_CSV,
        LAST_MODEL,
        BEST_MODEL,
        PREDICTIONS,
        EVALUATION,
    ):
        assert (run / name).stat().st_size > 0, name
    assert not stray_files(run), "temporary files left"

    info = json.loads((run / RUN_JSON).read_text())
    assert (info["format"], info["preset"]) == (FORMAT, "tiny")
    assert info["saved"] == {**info["saved"], "epoch": 2, "iterations": 2 * STEPS}
    assert info["best"]["metric"] == "val_accuracy"
    assert info["best"]["value"] == pytest.approx(max(e.val_accuracy or 0 for e in trained.history))
    assert info["train_samples"] == 900
    assert info["data"] == mnist_small.info.record()
    opened = RunDirectory.open(run)
    assert opened.hparams == TINY
    assert opened.data == mnist_small.info
    assert opened.data_label == mnist_small.describe()

    rows = metric_rows(run)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert header_count(run) == 1
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(
        [e.val_accuracy for e in trained.history]
    )
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    assert float(rows[0]["learning_rate"]) == pytest.approx(3e-3)

    probabilities, labels = saved_predictions(run)
    np.testing.assert_array_equal(probabilities, trained.predictions.probabilities)
    np.testing.assert_array_equal(labels, mnist_small.y_test)
    evaluation = json.loads((run / EVALUATION).read_text())
    assert (evaluation["samples"], evaluation["epochs_done"]) == (500, 2)
    assert evaluation["accuracy"] == pytest.approx(trained.evaluation.accuracy)
    assert evaluation["data"] == mnist_small.fingerprint


def test_last_model_reloads_and_predicts_the_same(trained: Trained, mnist_small: MnistData) -> None:
    images = mnist_small.x_test[:64]
    reloaded = load_model_file(trained.run / LAST_MODEL)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), trained.model.predict(images, verbose=0), atol=1e-6
    )
    assert iterations(reloaded) == iterations(trained.model) == 2 * STEPS


def test_history_and_listing(trained: Trained, mnist_small: MnistData) -> None:
    history = RunDirectory.open(trained.run).load_history()
    assert [e.epoch for e in history] == [1, 2]
    for loaded, live in zip(history, trained.history, strict=True):
        assert loaded.target == 2
        assert loaded.loss == pytest.approx(live.loss)
        assert loaded.val_accuracy == pytest.approx(live.val_accuracy)
        assert loaded.learning_rate == pytest.approx(live.learning_rate)
        assert loaded.samples_per_sec is not None and loaded.samples_per_sec > 0

    [summary] = list_runs(trained.run.parent)
    assert summary == summarise(trained.run)
    assert summary.problem is None
    assert (summary.preset, summary.epochs_done) == ("tiny", 2)
    assert summary.best_val_accuracy == pytest.approx(max(e.val_accuracy or 0 for e in history))
    assert summary.best_accuracy == pytest.approx(max(e.accuracy or 0 for e in history))
    assert summary.test_accuracy == pytest.approx(trained.evaluation.accuracy)
    assert summary.test_samples == 500
    assert summary.duration_seconds == pytest.approx(sum(e.seconds or 0 for e in history))
    assert summary.data == mnist_small.info
    assert not summary.live


def test_tensorboard_logs_when_asked(
    make: Callable[..., TrainingController], tmp_path: Path
) -> None:
    controller = make(tmp_path / "runs", TINY.with_changes(epochs=1), tensorboard=True)
    events = recorded(controller)
    assert controller.claim_round().run() is StopReason.FINISHED
    run = RunDirectory.open(controller.snapshot.run)
    if importlib.util.find_spec("tensorboard") is None:
        # Asked for but not installed: the round trains unlogged and says how to get the logs.
        warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
        assert any("pip install tensorboard" in text for text in warnings), warnings
        assert not (run.path / TENSORBOARD).exists()
        with pytest.raises(RunError, match="pip install tensorboard"):
            run_callbacks(run, EpochClock(), lambda: 1e-3, print, tensorboard=True)
        return
    assert any((run.path / TENSORBOARD).rglob("*tfevents*"))


def test_root_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_small: MnistData
) -> None:
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "elsewhere"))
    first = RunDirectory.create(None, "my preset", TINY, mnist_small.info, 900)
    started = datetime.fromisoformat(first.info["started"])
    second = RunDirectory.create(None, "my preset", TINY, mnist_small.info, 900, now=started)
    assert first.path.parent == (tmp_path / "elsewhere").resolve()
    assert first.name.endswith("-my-preset")
    assert second.name == f"{first.name}-2"  # same second, same preset: no clash


# --- resume --------------------------------------------------------------------------------------
def test_resume_continues_at_the_next_epoch(
    run_copy: Path, make: Callable[..., TrainingController]
) -> None:
    resumed = resume(run_copy)
    assert resumed.epochs_done == 2
    assert iterations(resumed.model) == 2 * STEPS
    assert [e.epoch for e in resumed.history] == [1, 2]

    controller = make(run_copy.parent)
    events = recorded(controller)
    assert controller.claim_open_run(run_copy).run() is None
    assert controller.snapshot.epochs_done == 2
    assert controller.claim_round(TINY.with_changes(epochs=3)).run() is StopReason.FINISHED

    started = next(e for e in events if isinstance(e, TrainingStarted))
    assert started.first_epoch == 3
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [3]
    assert not [e for e in events if isinstance(e, RunRecording)], "the same run goes on"
    assert iterations(controller.model) == 3 * STEPS  # Adam's step count carried on
    assert [r["epoch"] for r in metric_rows(run_copy)] == ["0", "1", "2"]
    assert header_count(run_copy) == 1
    assert json.loads((run_copy / RUN_JSON).read_text())["saved"]["epoch"] == 3


def test_resume_drops_a_metrics_row_the_model_never_saw(run_copy: Path) -> None:
    # A kill between CSVLogger's row and the checkpoint leaves one row too many.
    metrics = run_copy / METRICS_CSV
    last_row = metrics.read_text().splitlines()[-1]
    with open(metrics, "a") as f:
        f.write("2" + last_row[1:] + "\n3,0.9,1.0")  # and a row cut short mid-write
    assert len(RunDirectory.open(run_copy).load_history()) == 3

    resumed = resume(run_copy)
    assert resumed.epochs_done == 2
    assert [r["epoch"] for r in metric_rows(run_copy)] == ["0", "1"]


def test_resume_trusts_a_model_saved_just_before_the_kill(run_copy: Path) -> None:
    # A kill between renaming last.keras and rewriting run.json: the model is one epoch ahead.
    info_path = run_copy / RUN_JSON
    info = json.loads(info_path.read_text())
    info["saved"] = {"epoch": 1, "iterations": STEPS}
    info_path.write_text(json.dumps(info))

    resumed = resume(run_copy)
    assert resumed.epochs_done == 2
    assert len(resumed.history) == 2
    assert RunDirectory.open(run_copy).epochs_saved == 2


def test_resume_errors_are_sentences(tmp_path: Path, run_copy: Path) -> None:
    with pytest.raises(RunError, match="not a directory"):
        resume(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a run directory"):
        resume(tmp_path / "empty")
    last = run_copy / LAST_MODEL
    last.write_bytes(last.read_bytes()[:500])
    with pytest.raises(RunError, match=r"last\.keras cannot be loaded .*best\.keras"):
        resume(run_copy)


# --- atomic saves --------------------------------------------------------------------------------
def test_a_failing_save_leaves_the_previous_checkpoint(
    run_copy: Path, make: Callable[..., TrainingController], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = (LAST_MODEL, BEST_MODEL)
    before = {name: (run_copy / name).read_bytes() for name in models}
    controller = make(run_copy.parent)
    assert controller.claim_open_run(run_copy).run() is None

    def half_written_save(filepath: Any, *args: Any, **kwargs: Any) -> None:
        Path(filepath).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(controller.model, "save", half_written_save)
    events = recorded(controller)
    # A full disk stops the recording, not the training: the model stays in memory.
    assert controller.claim_round(TINY.with_changes(epochs=3)).run() is StopReason.FINISHED
    assert controller.snapshot.epochs_done == 3
    warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any("No space left on device" in t and "stopped recording" in t for t in warnings)

    assert {name: (run_copy / name).read_bytes() for name in models} == before
    assert not stray_files(run_copy)
    assert RunDirectory.open(run_copy).epochs_saved == 2
    controller.close()
    monkeypatch.undo()
    resumed = resume(run_copy)
    assert resumed.epochs_done == 2
    assert [r["epoch"] for r in metric_rows(run_copy)] == ["0", "1"]


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_an_atomic_write_gets_the_mode_a_new_file_would(tmp_path: Path) -> None:
    before = os.umask(0o027)
    try:
        write_atomic(tmp_path / "run.json", b"{}")
    finally:
        os.umask(before)
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o640


def test_two_reservations_of_one_name_get_two_files(tmp_path: Path) -> None:
    target = tmp_path / "models" / "fast.keras"
    first, second, third = (reserve_unique(target) for _ in range(3))
    assert first == target
    assert second == target.with_name("fast-2.keras")
    assert third == target.with_name("fast-3.keras")
    assert all(path.is_file() for path in (first, second, third))


# --- one writer per run -------------------------------------------------------------------------
def test_a_second_lock_on_a_run_is_refused_until_the_first_is_released(run_copy: Path) -> None:
    first = RunLock(run_copy, "mnist-tui train").acquire()
    assert first.acquire() is first  # taking it again is a no-op
    with pytest.raises(RunBusy) as err:
        RunLock(run_copy, "engine").acquire()
    message = str(err.value)
    assert f"run {run_copy.name} is being trained by mnist-tui train" in message
    assert f"pid {os.getpid()}" in message and "\n" not in message
    held = is_locked(run_copy)
    assert held is not None and (held["pid"], held["holder"]) == (os.getpid(), "mnist-tui train")
    first.release()
    assert is_locked(run_copy) is None

    second = RunLock(run_copy, "engine").acquire()
    assert second.stale is None, "a lock given back is not a stale one"
    with pytest.raises(RunBusy, match=f"mnist-tui attach {run_copy.name}"):
        RunLock(run_copy, "mnist-tui train").acquire()
    second.release()


LOCK_HOLDER = """
import sys
from pathlib import Path
from tui.core.runs.lock import RunLock

lock = RunLock(Path(sys.argv[1]), "a trainer in another process").acquire()
print("locked", flush=True)
sys.stdin.read()  # holds the lock until the test kills this process
"""


def test_a_lock_left_by_a_killed_process_is_taken_over(run_copy: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(run_copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        live = is_locked(run_copy)
        assert live is not None
        assert (live["pid"], live["holder"]) == (holder.pid, "a trainer in another process")
        [summary] = list_runs(run_copy.parent)
        assert summary.live
        with pytest.raises(RunBusy, match=f"a trainer in another process \\(pid {holder.pid}"):
            RunLock(run_copy, "mnist-tui train").acquire()
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    # The file still names the dead process, but the kernel dropped its lock with it.
    assert json.loads((run_copy / LOCK).read_text())["pid"] == holder.pid
    assert is_locked(run_copy) is None
    assert not list_runs(run_copy.parent)[0].live
    lock = RunLock(run_copy, "mnist-tui train").acquire()
    try:
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
        now = is_locked(run_copy)
        assert now is not None and now["pid"] == os.getpid()
    finally:
        lock.release()
    assert is_locked(run_copy) is None


# --- the catalog --------------------------------------------------------------------------------
def test_a_run_without_validation_lists_its_training_accuracy(
    make: Callable[..., TrainingController], tmp_path: Path
) -> None:
    controller = make(tmp_path / "runs", TINY.with_changes(validation_split=0.0))
    during: list[Any] = []

    def list_it_while_training(event: TrainingEvent) -> None:
        if isinstance(event, EpochEnded) and not during:
            during.append(summarise(Path(controller.snapshot.run)))

    controller.subscribe(list_it_while_training)
    assert controller.claim_round().run() is StopReason.FINISHED
    assert during and during[0].live, "a run being trained is listed as live"
    history = controller.snapshot.history
    assert all(e.val_accuracy is None for e in history)
    controller.close()

    [summary] = list_runs(tmp_path / "runs")
    assert summary.problem is None and not summary.live
    assert summary.best_val_accuracy is None
    assert summary.best_accuracy == pytest.approx(max(e.accuracy or 0 for e in history))
    assert summary.test_samples == 500
    info = json.loads((summary.path / RUN_JSON).read_text())
    assert info["best"]["metric"] == "accuracy"


def test_a_thousand_runs_are_listed(trained: Trained, tmp_path: Path) -> None:
    """Copies of one real run's small files, each with a stand-in last.keras (a zip with
    config.json, all the listing looks at). Prints the time; benchmarks assert on it."""
    root = tmp_path / "runs"
    stand_in = tmp_path / LAST_MODEL
    with zipfile.ZipFile(stand_in, "w") as archive:
        archive.writestr("config.json", "{}")
    names = [f"20250101-00{i // 60:02d}{i % 60:02d}-tiny" for i in range(1000)]
    for name in names:
        (root / name).mkdir(parents=True)
        for small in (RUN_JSON, HPARAMS_TOML, METRICS_CSV, EVALUATION):
            shutil.copyfile(trained.run / small, root / name / small)
        shutil.copyfile(stand_in, root / name / LAST_MODEL)

    started = time.perf_counter()
    listed = list_runs(root)
    elapsed = time.perf_counter() - started
    print(f"list_runs of {len(listed):,} run directories: {elapsed:.3f} s")

    # run.json's start time is the same in every copy, so the names order them.
    assert [s.name for s in listed] == sorted(names, reverse=True)
    assert all(s.problem is None and s.epochs_done == 2 for s in listed)
    assert all(s.test_accuracy == pytest.approx(trained.evaluation.accuracy) for s in listed)


# --- broken run directories ---------------------------------------------------------------------
def test_broken_runs_are_listed_with_a_problem(run_copy: Path) -> None:
    root = run_copy.parent

    def variant(name: str) -> Path:
        path = root / name
        shutil.copytree(run_copy, path)
        return path

    last = variant("20240101-000001-truncated") / LAST_MODEL
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (variant("20240101-000002-nohparams") / HPARAMS_TOML).unlink()
    (variant("20240101-000003-badtoml") / HPARAMS_TOML).write_text("epochs = [")
    (variant("20240101-000004-garbage") / METRICS_CSV).write_text("epoch,loss,accuracy\nx,y,z\n")
    (variant("20240101-000005-noinfo") / RUN_JSON).write_text("{not json")
    (variant("20240101-000006-nomodel") / LAST_MODEL).unlink()
    (variant("20240101-000007-badeval") / EVALUATION).write_text("{}")
    (root / "20240101-000008-empty").mkdir()

    listed = {s.name: s for s in list_runs(root)}
    assert len(listed) == 9
    assert listed[run_copy.name].problem is None
    expected = {
        "truncated": "last.keras is damaged",
        "nohparams": "hparams.toml does not exist",
        "badtoml": "not valid TOML",
        "garbage": "metrics.csv line 2",
        "noinfo": "run.json is unreadable",
        "nomodel": "last.keras is missing",
        "badeval": "evaluation.json is unreadable",
        "empty": "not a run directory",
    }
    for name, summary in listed.items():
        if name == run_copy.name:
            continue
        note = expected[name.rsplit("-", 1)[1]]
        assert summary.problem is not None and note in summary.problem, (name, summary.problem)
        assert "\n" not in summary.problem
    # What could be read is still shown.
    assert listed["20240101-000001-truncated"].epochs_done == 2
    assert listed["20240101-000001-truncated"].best_val_accuracy is not None
    assert listed["20240101-000007-badeval"].test_accuracy is None


# --- real processes killed mid-training ---------------------------------------------------------
TRAINER = """
import signal, sys, threading
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.controller import TrainingController
from tui.core.data.mnist import load_npz
from tui.core.training.events import BatchProgress, Paused
from tui.core.settings.requests import Setup

root, npz = sys.argv[1:3]
data = load_npz(npz).subset(train=2000, test=500)
hparams = Hyperparams(**{hparams})
setup = Setup(hparams, preset="tiny", runs_dir=root, progress_interval=0.0)
controller = TrainingController(setup, data=data, holder="a killable trainer")
controller.load()
asked = []


def park_in_epoch_two(event):
    # Pauses training a group of batches into epoch 2, so the test kills it there, not by luck.
    if isinstance(event, BatchProgress) and event.epoch == 2 and not asked:
        asked.append(event)
        controller.pause()
    elif isinstance(event, Paused):
        print(f"paused in epoch {{event.epoch}}", flush=True)


controller.subscribe(park_in_epoch_two)
signal.signal(signal.SIGTERM, lambda *_: controller.stop_now())
reasons = []
worker = threading.Thread(target=lambda: reasons.append(controller.claim_round().run()))
worker.start()
while worker.is_alive():
    worker.join(0.1)  # in slices, so that the SIGTERM handler runs (as `mnist-tui train` does)
controller.close()
print(reasons[0].name, controller.snapshot.epochs_done, flush=True)
"""


def start_trainer(tmp_path: Path, shared_data: Path, hparams: Hyperparams) -> subprocess.Popen[str]:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER.format(hparams=repr(hparams.to_dict())))
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(tmp_path / "runs"),
            str(shared_data / "mnist.npz"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def wait_for_epoch_two(process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Wait (bounded) for the trainer to say it is parked inside epoch 2."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the trainer did not reach epoch 2 in time"
    line = process.stdout.readline()
    assert line == "paused in epoch 2\n", (line, process.poll())


HEALTHY = TINY.with_changes(train_size=2000, epochs=5)


def test_sigkill_during_epoch_two_resumes_at_epoch_two(
    tmp_path: Path, shared_data: Path, make: Callable[..., TrainingController]
) -> None:
    process = start_trainer(tmp_path, shared_data, HEALTHY)
    try:
        wait_for_epoch_two(process)
        [run_path] = (tmp_path / "runs").iterdir()
        epoch_one = metric_rows(run_path)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [r["epoch"] for r in epoch_one] == ["0"]

    controller = make(tmp_path / "runs")
    events = recorded(controller)
    assert controller.claim_open_run(run_path).run() is None  # the dead trainer's lock is void
    assert controller.snapshot.epochs_done == 1
    assert iterations(controller.model) == 29  # ceil(1800 / 64): epoch 1 only
    assert controller.claim_round().run() is StopReason.FINISHED

    assert next(e for e in events if isinstance(e, TrainingStarted)).first_epoch == 2
    history = controller.snapshot.history
    assert [e.epoch for e in history] == [1, 2, 3, 4, 5]
    rows = metric_rows(run_path)
    assert rows[0] == epoch_one[0]
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert header_count(run_path) == 1
    final = history[-1].val_accuracy
    assert final is not None and 0.85 <= final <= 1.0


def test_sigterm_leaves_a_complete_resumable_run(tmp_path: Path, shared_data: Path) -> None:
    process = start_trainer(tmp_path, shared_data, HEALTHY)
    try:
        wait_for_epoch_two(process)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.split() == ["USER", "1"]

    [summary] = list_runs(tmp_path / "runs")
    assert summary.problem is None and not summary.live
    assert summary.epochs_done == 1
    resumed = resume(summary.path)
    assert resumed.epochs_done == 1
    assert [e.epoch for e in resumed.history] == [1]


# --- the headless CLI ---------------------------------------------------------------------------
def test_cli_trains_into_a_run_and_resumes_it(tmp_path: Path, shared_data: Path) -> None:
    def train(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui", "train", "--data", str(shared_data / "mnist.npz"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
            timeout=180,
        )

    tiny_flags = ["--train-size", "600", "--conv-filters", "8", "--dense-units", "16"]
    first = train(*tiny_flags, "--epochs", "1", "--runs-dir", "my-runs")
    assert first.returncode == 0, first.stderr
    [run_path] = (tmp_path / "my-runs").iterdir()
    assert f"Run: {run_path.resolve()}" in first.stdout  # absolute: it names one folder anywhere

    changed = train("--resume", str(run_path), "--batch-size", "32")
    assert changed.returncode == 2
    assert "--batch-size cannot change a run being resumed" in changed.stderr
    missing = train("--resume", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr

    second = train("--resume", str(run_path), "--epochs", "2")
    assert second.returncode == 0, second.stderr
    assert "Resuming" in second.stdout and "after epoch 1 (target 2" in second.stdout
    assert [r["epoch"] for r in metric_rows(run_path)] == ["0", "1"]
    assert header_count(run_path) == 1
    [summary] = list_runs(tmp_path / "my-runs")
    assert (summary.epochs_done, summary.problem) == (2, None)
    assert summary.test_accuracy is not None and summary.test_samples == 10_000
    probabilities, _ = saved_predictions(run_path)
    assert probabilities.shape == (10_000, 10)


def test_a_lock_whose_record_cannot_be_written_is_still_held_and_released(tmp_path: Path) -> None:
    """A full disk (here: a file-size limit of 0 bytes) while the lock writes who holds it."""
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from tui.core.runs.lock import RunLock, RunBusy\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "run = Path(sys.argv[1])\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))\n"
        "lock = RunLock(run, 'first').acquire()\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)\n"
        "try:\n"
        "    RunLock(run, 'second').acquire()\n"
        "    print('not held')\n"
        "except RunBusy:\n"
        "    print('held')\n"
        "lock.release()\n"
        "RunLock(run, 'third').acquire().release()\n"
        "print('released')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["held", "released"]
