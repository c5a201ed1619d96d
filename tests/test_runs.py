"""Run directories on real MNIST slices: files, atomic checkpoints, resume after kills, listing."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny

from tui.core import runs
from tui.core.config import Hyperparams
from tui.core.data import MnistData
from tui.core.events import (
    EpochEnded,
    StopReason,
    TrainingEvent,
    TrainingStarted,
    TrainingStopped,
)
from tui.core.runtime import import_keras
from tui.core.session import TrainingSession

keras = import_keras()

TINY = tiny.TINY.with_changes(learning_rate=3e-3)
STEPS = 15  # ceil(900 / 64)


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / runs.METRICS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def header_count(run: Path) -> int:
    return sum(
        line.startswith("epoch,") for line in (run / runs.METRICS_CSV).read_text().splitlines()
    )


def iterations(model: Any) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> TrainingSession:
    """Two epochs of TINY written to a run directory, evaluated and predicted."""
    root = tmp_path_factory.mktemp("runs")
    run = runs.RunDirectory.create(root, "tiny", TINY, mnist_small)
    session = TrainingSession(TINY, mnist_small, callbacks=run.callbacks())
    assert session.train() is StopReason.FINISHED
    run.save_evaluation(session.evaluate())
    run.save_predictions(session.predict())
    session.run_dir = run  # type: ignore[attr-defined]
    return session


@pytest.fixture
def run_copy(trained: TrainingSession, tmp_path: Path) -> Path:
    """A private copy of the trained run, for tests that change or resume it."""
    source: runs.RunDirectory = trained.run_dir  # type: ignore[attr-defined]
    target = tmp_path / "runs" / source.name
    shutil.copytree(source.path, target)
    return target


# --- what a run writes --------------------------------------------------------------------------
def test_run_writes_every_file(trained: TrainingSession) -> None:
    run: runs.RunDirectory = trained.run_dir  # type: ignore[attr-defined]
    assert run.path.parent.name.startswith("runs")
    assert run.name.endswith("-tiny")
    for name in (
        runs.RUN_JSON,
        runs.HPARAMS_TOML,
        runs.METRICS_CSV,
        runs.LAST_MODEL,
        runs.BEST_MODEL,
        runs.PREDICTIONS,
        runs.EVALUATION,
    ):
        assert (run.path / name).stat().st_size > 0, name
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")], "temporary files left"

    info = json.loads((run.path / runs.RUN_JSON).read_text())
    assert info["preset"] == "tiny"
    assert info["saved"] == {**info["saved"], "epoch": 2, "iterations": 2 * STEPS}
    assert info["train_samples"] == 900
    assert "2,000 train" in info["data"]
    assert runs.RunDirectory.open(run.path).hparams == TINY

    rows = metric_rows(run.path)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert header_count(run.path) == 1
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(
        [e.val_accuracy for e in trained.history]
    )
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    assert float(rows[0]["learning_rate"]) == pytest.approx(3e-3)

    saved = run.load_predictions()
    assert trained.last_prediction is not None
    np.testing.assert_array_equal(saved.probabilities, trained.last_prediction.probabilities)
    np.testing.assert_array_equal(saved.labels, trained.last_prediction.labels)


def test_last_model_reloads_and_predicts_the_same(
    trained: TrainingSession, mnist_small: MnistData
) -> None:
    run: runs.RunDirectory = trained.run_dir  # type: ignore[attr-defined]
    images = mnist_small.x_test[:64]
    reloaded = keras.saving.load_model(run.path / runs.LAST_MODEL)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), trained.model.predict(images, verbose=0), atol=1e-6
    )
    assert iterations(reloaded) == iterations(trained.model) == 2 * STEPS


def test_history_and_listing(trained: TrainingSession) -> None:
    run: runs.RunDirectory = trained.run_dir  # type: ignore[attr-defined]
    history = runs.load_history(run.path)
    assert [e.epoch for e in history] == [1, 2]
    for loaded, live in zip(history, trained.history, strict=True):
        assert loaded.loss == pytest.approx(live.loss)
        assert loaded.val_accuracy == pytest.approx(live.val_accuracy)
        assert loaded.learning_rate == pytest.approx(live.learning_rate)
        assert loaded.samples_per_sec > 0

    [summary] = runs.list_runs(run.path.parent)
    assert summary.problem is None
    assert (summary.preset, summary.epochs_done) == ("tiny", 2)
    assert summary.best_val_accuracy == pytest.approx(max(e.val_accuracy or 0 for e in history))
    assert trained.last_evaluation is not None
    assert summary.test_accuracy == pytest.approx(trained.last_evaluation.accuracy)
    assert summary.duration_seconds == pytest.approx(sum(e.seconds for e in history))


def test_tensorboard_logs_when_asked(tmp_path: Path, mnist_small: MnistData) -> None:
    run = runs.RunDirectory.create(tmp_path, "tiny", TINY.with_changes(epochs=1))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(runs.RunError, match="pip install tensorboard"):
            run.callbacks(tensorboard=True)
        return
    session = TrainingSession(run.hparams, mnist_small, callbacks=run.callbacks(tensorboard=True))
    assert session.train() is StopReason.FINISHED
    assert any((run.path / runs.TENSORBOARD).rglob("*tfevents*"))


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path / "elsewhere"))
    first = runs.RunDirectory.create(None, "my preset", TINY)
    second = runs.RunDirectory.create(None, "my preset", TINY, now=first_time(first))
    assert first.path.parent == tmp_path / "elsewhere"
    assert first.name.endswith("-my-preset")
    assert second.name == f"{first.name}-2"  # same second, same preset: no clash


def first_time(run: runs.RunDirectory) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(run.info["started"])


# --- resume --------------------------------------------------------------------------------------
def test_resume_continues_at_the_next_epoch(run_copy: Path, mnist_small: MnistData) -> None:
    resumed = runs.resume(run_copy)
    assert resumed.epochs_done == 2
    assert iterations(resumed.model) == 2 * STEPS
    assert [e.epoch for e in resumed.history] == [1, 2]

    events: list[TrainingEvent] = []
    session = resumed.session(mnist_small, events.append)
    session.controls.set_epoch_target(3)
    assert session.train() is StopReason.FINISHED

    started = next(e for e in events if isinstance(e, TrainingStarted))
    assert started.first_epoch == 3
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [3]
    assert iterations(session.model) == 3 * STEPS  # Adam's step count carried on
    assert [r["epoch"] for r in metric_rows(run_copy)] == ["0", "1", "2"]
    assert header_count(run_copy) == 1
    assert json.loads((run_copy / runs.RUN_JSON).read_text())["saved"]["epoch"] == 3


def test_resume_drops_a_metrics_row_the_model_never_saw(run_copy: Path) -> None:
    # A kill between CSVLogger's row and the checkpoint leaves one row too many.
    metrics = run_copy / runs.METRICS_CSV
    last_row = metrics.read_text().splitlines()[-1]
    with open(metrics, "a") as f:
        f.write("2" + last_row[1:] + "\n3,0.9,1.0")  # and a row cut short mid-write
    assert len(runs.load_history(run_copy)) == 3

    resumed = runs.resume(run_copy)
    assert resumed.epochs_done == 2
    assert [r["epoch"] for r in metric_rows(run_copy)] == ["0", "1"]


def test_resume_trusts_a_model_saved_just_before_the_kill(run_copy: Path) -> None:
    # A kill between renaming last.keras and rewriting run.json: the model is one epoch ahead.
    info_path = run_copy / runs.RUN_JSON
    info = json.loads(info_path.read_text())
    info["saved"] = {"epoch": 1, "iterations": STEPS}
    info_path.write_text(json.dumps(info))

    resumed = runs.resume(run_copy)
    assert resumed.epochs_done == 2
    assert len(resumed.history) == 2
    assert runs.RunDirectory.open(run_copy).epochs_saved == 2


def test_resume_errors_are_sentences(tmp_path: Path, run_copy: Path) -> None:
    with pytest.raises(runs.RunError, match="not a directory"):
        runs.resume(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(runs.RunError, match="not a run directory"):
        runs.resume(tmp_path / "empty")
    last = run_copy / runs.LAST_MODEL
    last.write_bytes(last.read_bytes()[:500])
    with pytest.raises(runs.RunError, match=r"last\.keras cannot be loaded .*best\.keras"):
        runs.resume(run_copy)


# --- atomic saves --------------------------------------------------------------------------------
def test_a_failing_save_leaves_the_previous_checkpoint(
    run_copy: Path, mnist_small: MnistData, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = (runs.LAST_MODEL, runs.BEST_MODEL)
    before = {name: (run_copy / name).read_bytes() for name in models}
    resumed = runs.resume(run_copy)

    def half_written_save(filepath: Any, *args: Any, **kwargs: Any) -> None:
        Path(filepath).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resumed.model, "save", half_written_save)
    events: list[TrainingEvent] = []
    session = resumed.session(mnist_small, events.append)
    session.controls.set_epoch_target(3)
    assert session.train() is StopReason.ERROR
    [stopped] = [e for e in events if isinstance(e, TrainingStopped)]
    assert "No space left on device" in stopped.message

    assert {name: (run_copy / name).read_bytes() for name in models} == before
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]
    assert runs.RunDirectory.open(run_copy).epochs_saved == 2
    monkeypatch.undo()
    assert runs.resume(run_copy).epochs_done == 2


# --- broken run directories ---------------------------------------------------------------------
def test_broken_runs_are_listed_with_a_problem(run_copy: Path) -> None:
    root = run_copy.parent

    def variant(name: str) -> Path:
        path = root / name
        shutil.copytree(run_copy, path)
        return path

    last = variant("20240101-000001-truncated") / runs.LAST_MODEL
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (variant("20240101-000002-nohparams") / runs.HPARAMS_TOML).unlink()
    (variant("20240101-000003-badtoml") / runs.HPARAMS_TOML).write_text("epochs = [")
    (variant("20240101-000004-garbage") / runs.METRICS_CSV).write_text(
        "epoch,loss,accuracy\nx,y,z\n"
    )
    (variant("20240101-000005-noinfo") / runs.RUN_JSON).write_text("{not json")
    (variant("20240101-000006-nomodel") / runs.LAST_MODEL).unlink()
    (root / "20240101-000007-empty").mkdir()

    listed = {s.name: s for s in runs.list_runs(root)}
    assert len(listed) == 8
    assert listed[run_copy.name].problem is None
    expected = {
        "truncated": "last.keras is damaged",
        "nohparams": "hparams.toml does not exist",
        "badtoml": "not valid TOML",
        "garbage": "metrics.csv line 2",
        "noinfo": "run.json is unreadable",
        "nomodel": "last.keras is missing",
        "empty": "not a run directory",
    }
    for name, summary in listed.items():
        if name == run_copy.name:
            continue
        note = expected[name.rsplit("-", 1)[1]]
        assert summary.problem is not None and note in summary.problem, (name, summary.problem)
    # What could be read is still shown.
    assert listed["20240101-000001-truncated"].epochs_done == 2
    assert listed["20240101-000001-truncated"].best_val_accuracy is not None


# --- real processes killed mid-training ---------------------------------------------------------
TRAINER = """
import signal, sys, time
from pathlib import Path
from tui.core import runs
from tui.core.config import Hyperparams
from tui.core.data import load_npz
from tui.core.runtime import import_keras
from tui.core.session import TrainingSession

keras = import_keras()
root, npz, marker = sys.argv[1:4]
data = load_npz(npz).subset(train=2000, test=500)
hparams = Hyperparams(**{hparams})


class HoldInEpochTwo(keras.callbacks.Callback):
    # Parks training a few batches into epoch 2 so the test kills it there, not by timing luck.
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 2 and batch == 8:  # the second group of 8 batches
            Path(marker).write_text("in epoch 2")
            while not session.controls.stop_requested:
                time.sleep(0.02)


run = runs.RunDirectory.create(root, "tiny", hparams, data)
session = TrainingSession(hparams, data, callbacks=[*run.callbacks(), HoldInEpochTwo()])
signal.signal(signal.SIGTERM, lambda *_: session.controls.stop_now())
print(session.train().name, session.epochs_done, flush=True)
"""


def start_trainer(tmp_path: Path, shared_data: Path, hparams: Hyperparams) -> subprocess.Popen[str]:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER.replace("{hparams}", repr(hparams.to_dict())))
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(tmp_path / "runs"),
            str(shared_data / "mnist.npz"),
            str(tmp_path / "marker"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def wait_for_epoch_two(process: subprocess.Popen[str], marker: Path, timeout: float = 120) -> None:
    """Poll the filesystem until the trainer is parked inside epoch 2 (bounded)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, "the trainer exited before reaching epoch 2"
        assert time.monotonic() < deadline, "the trainer did not reach epoch 2 in time"
        time.sleep(0.05)


HEALTHY = TINY.with_changes(train_size=2000, epochs=5)


def test_sigkill_during_epoch_two_resumes_at_epoch_two(
    tmp_path: Path, shared_data: Path, mnist_small: MnistData
) -> None:
    process = start_trainer(tmp_path, shared_data, HEALTHY)
    try:
        wait_for_epoch_two(process, tmp_path / "marker")
        [run_path] = (tmp_path / "runs").iterdir()
        epoch_one = metric_rows(run_path)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [r["epoch"] for r in epoch_one] == ["0"]

    resumed = runs.resume(run_path)
    assert resumed.epochs_done == 1
    assert iterations(resumed.model) == 29  # ceil(1800 / 64): epoch 1 only
    events: list[TrainingEvent] = []
    session = resumed.session(mnist_small, events.append)
    assert session.train() is StopReason.FINISHED

    assert next(e for e in events if isinstance(e, TrainingStarted)).first_epoch == 2
    assert [e.epoch for e in session.history] == [1, 2, 3, 4, 5]
    rows = metric_rows(run_path)
    assert rows[0] == epoch_one[0]
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert header_count(run_path) == 1
    final = session.history[-1].val_accuracy
    assert final is not None and 0.85 <= final <= 1.0


def test_sigterm_leaves_a_complete_resumable_run(tmp_path: Path, shared_data: Path) -> None:
    process = start_trainer(tmp_path, shared_data, HEALTHY)
    try:
        wait_for_epoch_two(process, tmp_path / "marker")
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.split() == ["USER", "1"]

    [summary] = runs.list_runs(tmp_path / "runs")
    assert summary.problem is None
    assert summary.epochs_done == 1
    resumed = runs.resume(summary.path)
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

    tiny = ["--train-size", "600", "--conv-filters", "8", "--dense-units", "16"]
    first = train(*tiny, "--epochs", "1", "--runs-dir", "my-runs")
    assert first.returncode == 0, first.stderr
    [run_path] = (tmp_path / "my-runs").iterdir()
    assert f"Run: {Path('my-runs') / run_path.name}" in first.stdout

    changed = train("--resume", str(run_path), "--batch-size", "32")
    assert changed.returncode == 2
    assert "--batch-size cannot change a run being resumed" in changed.stderr
    missing = train("--resume", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr

    second = train("--resume", str(run_path), "--epochs", "2")
    assert second.returncode == 0, second.stderr
    assert "Resuming" in second.stdout and "after epoch 1 (target 2)" in second.stdout
    assert [r["epoch"] for r in metric_rows(run_path)] == ["0", "1"]
    assert header_count(run_path) == 1
    [summary] = runs.list_runs(tmp_path / "my-runs")
    assert (summary.epochs_done, summary.problem) == (2, None)
    assert summary.test_accuracy is not None
    assert runs.RunDirectory.open(run_path).load_predictions().probabilities.shape == (10_000, 10)
